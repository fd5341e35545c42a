// The socket bypass's settings: the kernel check (requirements.ts bypassSupport), the node
// switch in the plugin config, the per-pod opt-out annotation and its policy flag.
import { expect } from "chai";
import { formatStatus } from "../../app/status";
import {
  BYPASS_KERNEL_FIXES,
  BYPASS_OPEN_DIFFERENCES,
  bypassBacklogMax,
  bypassSupport,
  POLICY,
  podPolicy,
} from "../../datapath";
import { parseWaggleConfig, SOCKET_BYPASS_BACKLOG, WaggleConfigError } from "../../mesh/config";
import {
  InvalidAnnotationError,
  parseRedirectSettings,
  WAGGLE_ANNOTATIONS,
} from "../../mesh/redirect-settings";

const entry = { cniVersion: "0.3.1", name: "k8s-pod-network", type: "waggle" };

describe("socket bypass: kernel check", () => {
  it("is unavailable below the floor, naming what the kernel lacks", () => {
    const s = bypassSupport("6.9.12-generic");
    expect(s).to.include({ available: false, defaultOn: false, kernel: "6.9.12", floor: "6.10" });
    expect(s.missing.join()).to.contain("BPF_LINK_TYPE_SOCKMAP");
    expect(s.reason).to.contain("needs 6.10 or later");
  });

  it("can run from the floor on, and stays off by default while a difference is open", () => {
    const s = bypassSupport("6.18.44-fc-v1272", true);
    expect(s).to.include({ available: true, kernel: "6.18.44" });
    expect(s.missing).to.deep.equal([]);
    expect(s.differences).to.have.length(BYPASS_OPEN_DIFFERENCES.length);
    expect(s.defaultOn).to.equal(BYPASS_OPEN_DIFFERENCES.every((d) => d.fixedIn !== null));
    expect(s.reason).to.contain("off unless socket_bypass is true");
  });

  it("is unavailable without the kernel's BTF (its flow control cannot load), saying so", () => {
    const s = bypassSupport("6.18.44-fc-v1272", false);
    expect(s).to.include({ available: false, defaultOn: false, kernel: "6.18.44" });
    expect(s.missing).to.have.length(1);
    expect(s.reason).to.contain("kernel BTF").and.contain("flow control");
  });

  it("the floor is the newest fix it relies on", () => {
    const newest = BYPASS_KERNEL_FIXES.map((f) => f.since).sort((a, b) =>
      a.localeCompare(b, undefined, { numeric: true }),
    );
    expect(bypassSupport("7.0").floor).to.equal(newest.at(-1));
  });

  it("an unreadable release is unavailable, saying so", () => {
    const s = bypassSupport("weird");
    expect(s).to.include({ available: false, defaultOn: false, kernel: null });
    expect(s.reason).to.contain("unreadable");
  });
});

describe("socket bypass: the node switch (plugin config socket_bypass)", () => {
  it("is absent by default (the kernel's default applies)", () => {
    expect(parseWaggleConfig(entry).socketBypass).to.equal(undefined);
  });

  it("reads true and false", () => {
    expect(parseWaggleConfig({ ...entry, socket_bypass: true }).socketBypass).to.equal(true);
    expect(parseWaggleConfig({ ...entry, socket_bypass: false }).socketBypass).to.equal(false);
  });

  it("refuses anything but a boolean, naming the key (the plugin answers code 7)", () => {
    expect(() => parseWaggleConfig({ ...entry, socket_bypass: "yes" }))
      .to.throw(WaggleConfigError, "socket_bypass: must be true or false")
      .with.property("unsupported", false);
  });
});

describe("socket bypass: the backlog bound (plugin config socket_bypass_backlog)", () => {
  it("is absent by default: the node gets the default bound (4 MiB)", () => {
    expect(parseWaggleConfig(entry).socketBypassBacklog).to.equal(undefined);
    expect(bypassBacklogMax(undefined)).to.equal(SOCKET_BYPASS_BACKLOG.default);
    expect(SOCKET_BYPASS_BACKLOG.default).to.equal(4 * 1024 * 1024);
  });

  it("reads a whole number of bytes within the range, and the node gets it", () => {
    const c = parseWaggleConfig({ ...entry, socket_bypass_backlog: 1 << 20 });
    expect(c.socketBypassBacklog).to.equal(1 << 20);
    expect(bypassBacklogMax(c.socketBypassBacklog)).to.equal(1 << 20);
  });

  for (const bad of [SOCKET_BYPASS_BACKLOG.min - 1, 2 ** 32, 1048576.5, "4MiB", -1]) {
    it(`refuses ${JSON.stringify(bad)}, naming the key and the range`, () => {
      expect(() => parseWaggleConfig({ ...entry, socket_bypass_backlog: bad }))
        .to.throw(WaggleConfigError, "socket_bypass_backlog: must be a whole number of bytes from")
        .with.property("unsupported", false);
      if (typeof bad === "number") expect(() => bypassBacklogMax(bad)).to.throw(RangeError);
    });
  }
});

describe("socket bypass: the pod opt-out (waggle.io/socket-bypass)", () => {
  const key = WAGGLE_ANNOTATIONS.socketBypass;

  it('"false" opts the pod out and sets POLICY_NO_BYPASS', () => {
    const settings = parseRedirectSettings({ [key]: "false" });
    expect(settings.socketBypass).to.equal(false);
    const p = podPolicy({ settings, podIPs: ["10.1.2.3/32"] });
    expect(p.flags & POLICY.NO_BYPASS).to.equal(POLICY.NO_BYPASS);
  });

  it('absent or "true": the pod takes part (no flag)', () => {
    for (const annotations of [{}, { [key]: "true" }] as Record<string, string>[]) {
      const p = podPolicy({
        settings: parseRedirectSettings(annotations),
        podIPs: ["10.1.2.3/32"],
      });
      expect(p.flags & POLICY.NO_BYPASS).to.equal(0);
    }
  });

  it("anything but a boolean fails, naming the annotation", () => {
    expect(() => parseRedirectSettings({ [key]: "sometimes" }))
      .to.throw(InvalidAnnotationError, key)
      .with.property("problem", "must be a boolean");
  });
});

describe("socket bypass: waggle status --verbose names the node switch", () => {
  for (const on of [true, false]) {
    it(`says ${on ? "on" : "off"}`, () => {
      const text = formatStatus(
        {
          bpfRoot: "/sys/fs/bpf/waggle",
          datapath: { loaded: true, missing: [], mapEntries: {}, socketBypass: on },
          pods: [],
        },
        { verbose: true },
      );
      expect(text.split("\n")).to.include(`socket bypass: ${on ? "on" : "off"} (node switch)`);
    });
  }

  it("names the backlog bound the programs read", () => {
    const text = formatStatus(
      {
        bpfRoot: "/sys/fs/bpf/waggle",
        datapath: {
          loaded: true,
          missing: [],
          mapEntries: {},
          socketBypass: true,
          socketBypassBacklog: 1048576,
        },
        pods: [],
      },
      { verbose: true },
    );
    expect(text.split("\n")).to.include(
      "socket bypass backlog bound: 1048576 bytes unread per receiver",
    );
  });
});
