// Spec conformance of the plugin skeleton (cni/skel): environment, decoding, version
// negotiation, VERSION, error JSON, prevResult pass-through, GC plumbing, result conversion.
import { expect } from "chai";
import {
  CniError,
  type CniPlugin,
  type CniRequest,
  type CniResult,
  convertResult,
  ErrorCodes,
  type GcRequest,
  parseCniArgs,
  passThrough,
  runSkel,
  SUPPORTED_VERSIONS,
} from "../../cni/skel";

/** A plugin recording its calls; ADD passes prevResult through. */
function recordingPlugin(
  overrides: Partial<CniPlugin> = {},
): CniPlugin & { calls: string[]; last?: CniRequest } {
  const p: CniPlugin & { calls: string[]; last?: CniRequest } = {
    about: "test plugin v0",
    calls: [],
    async add(req) {
      p.calls.push("ADD");
      p.last = req;
      return passThrough(req.conf);
    },
    async del(req) {
      p.calls.push("DEL");
      p.last = req;
    },
    async check(req) {
      p.calls.push("CHECK");
      p.last = req;
    },
    async gc(req) {
      p.calls.push("GC");
      p.last = req;
    },
    async status(req) {
      p.calls.push("STATUS");
      p.last = req;
    },
    ...overrides,
  };
  return p;
}

const ENV = {
  CNI_CONTAINERID: "c0ffee01",
  CNI_NETNS: "/var/run/netns/test-pod",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin",
};

function conf(version: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion: version, name: "k8s-pod-network", type: "waggle", ...extra });
}

const CALICO_031: CniResult = {
  cniVersion: "0.3.1",
  interfaces: [
    { name: "cali12d4a061371" },
    { name: "eth0", mac: "3a:1e:9c:55:7d:02", sandbox: "/var/run/netns/x" },
  ],
  ips: [{ version: "4", address: "10.244.9.10/32", interface: 1 }],
  dns: {},
};

function resultFor(version: string): CniResult {
  return convertResult(CALICO_031, version as (typeof SUPPORTED_VERSIONS)[number]);
}

async function invoke(
  plugin: CniPlugin,
  command: string | undefined,
  stdin: string,
  env: Record<string, string | undefined> = ENV,
) {
  const out = await runSkel(plugin, { ...env, CNI_COMMAND: command }, stdin);
  const parsed = out.stdout ? (JSON.parse(out.stdout) as Record<string, unknown>) : undefined;
  return { ...out, json: parsed };
}

describe("cni skel: environment", () => {
  it("prints the about line and supported versions on stderr and exits 0 without CNI_COMMAND", async () => {
    const p = recordingPlugin();
    const out = await invoke(p, undefined, "", {});
    expect(out.exitCode).to.equal(0);
    expect(out.stdout).to.equal("");
    expect(out.stderr).to.contain("test plugin v0");
    expect(out.stderr).to.contain("0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
    expect(p.calls).to.deep.equal([]);
  });

  it("without CNI_COMMAND but with the other CNI_* variables (a runtime that lost it): code 4", async () => {
    const p = recordingPlugin();
    const out = await invoke(p, undefined, conf("1.0.0"));
    expect(out.exitCode).to.equal(1);
    expect(out.json).to.include({ code: 4, msg: "required env variables [CNI_COMMAND] missing" });
    expect(p.calls).to.deep.equal([]);
  });

  it("rejects a CNI_CONTAINERID longer than a file name (255) with code 4", async () => {
    const p = recordingPlugin();
    const out = await invoke(p, "ADD", conf("1.0.0"), { ...ENV, CNI_CONTAINERID: "a".repeat(256) });
    expect(out.json).to.include({ code: 4, msg: "CNI_CONTAINERID is too long" });
    expect(p.calls).to.deep.equal([]);
    const ok = await invoke(p, "DEL", conf("1.0.0"), { ...ENV, CNI_CONTAINERID: "a".repeat(255) });
    expect(ok.exitCode).to.equal(0);
  });

  it("rejects an unknown CNI_COMMAND with code 4", async () => {
    const out = await invoke(recordingPlugin(), "FROB", conf("1.0.0"));
    expect(out.exitCode).to.equal(1);
    expect(out.json).to.include({ code: 4, msg: "unknown CNI_COMMAND: FROB" });
  });

  const required: Record<string, string[]> = {
    ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
    CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
    DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
    GC: ["CNI_PATH"],
  };
  for (const [command, vars] of Object.entries(required)) {
    it(`${command} without ${vars.join(", ")} fails with code 4 naming all of them`, async () => {
      const p = recordingPlugin();
      const out = await invoke(p, command, conf("1.1.0"), {});
      expect(out.json?.code).to.equal(4);
      expect(out.json?.msg).to.equal(`required env variables [${vars.join(",")}] missing`);
      expect(p.calls).to.deep.equal([]);
    });
  }

  it("DEL accepts an empty CNI_NETNS", async () => {
    const p = recordingPlugin();
    const out = await invoke(p, "DEL", conf("0.3.1"), { ...ENV, CNI_NETNS: "" });
    expect(out.exitCode).to.equal(0);
    expect(out.stdout).to.equal("");
    expect(p.last?.env.netns).to.equal("");
  });

  it("STATUS and GC ignore the attachment variables", async () => {
    const p = recordingPlugin();
    const out = await invoke(p, "STATUS", conf("1.1.0"), { CNI_PATH: "/x" });
    expect(out.exitCode).to.equal(0);
    expect(p.last?.env).to.include({ containerId: "", ifname: "", netns: "" });
  });

  for (const bad of ["-leading-dash", "has space", "semi;colon", "slash/id"]) {
    it(`rejects CNI_CONTAINERID ${JSON.stringify(bad)} with code 4`, async () => {
      const out = await invoke(recordingPlugin(), "ADD", conf("1.0.0"), {
        ...ENV,
        CNI_CONTAINERID: bad,
      });
      expect(out.json).to.include({ code: 4, msg: "invalid characters in CNI_CONTAINERID" });
    });
  }

  for (const [bad, why] of [
    ["sixteen-chars-ab", "longer than 15 bytes"],
    [".", 'is "." or ".."'],
    ["..", 'is "." or ".."'],
    ["eth/0", "contains /, : or whitespace"],
    ["eth:0", "contains /, : or whitespace"],
    ["eth 0", "contains /, : or whitespace"],
  ]) {
    it(`rejects CNI_IFNAME ${JSON.stringify(bad)} with code 4 (${why})`, async () => {
      const out = await invoke(recordingPlugin(), "ADD", conf("1.0.0"), {
        ...ENV,
        CNI_IFNAME: bad,
      });
      expect(out.json).to.include({ code: 4, msg: `invalid CNI_IFNAME: ${why}` });
    });
  }

  it("splits CNI_PATH on colons", async () => {
    const p = recordingPlugin();
    await invoke(p, "DEL", conf("1.0.0"), { ...ENV, CNI_PATH: "/a::/b" });
    expect(p.last?.env.path).to.deep.equal(["/a", "/b"]);
  });
});

describe("cni skel: CNI_ARGS", () => {
  const known = ["K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"];

  it("parses containerd's args in any order", () => {
    const a = parseCniArgs(
      "K8S_POD_UID=u1;IgnoreUnknown=1;K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=shop;K8S_POD_INFRA_CONTAINER_ID=abc",
      known,
    );
    expect(Object.fromEntries(a)).to.deep.equal({
      K8S_POD_UID: "u1",
      IgnoreUnknown: "1",
      K8S_POD_NAME: "web-0",
      K8S_POD_NAMESPACE: "shop",
      K8S_POD_INFRA_CONTAINER_ID: "abc",
    });
  });

  it("refuses unknown keys without IgnoreUnknown (code 4, naming them)", () => {
    expect(() => parseCniArgs("K8S_POD_NAME=a;FOO=1", known))
      .to.throw(CniError, "unknown CNI_ARGS FOO")
      .with.property("code", 4);
  });

  for (const v of ["1", "true", "True", "TRUE"]) {
    it(`accepts unknown keys with IgnoreUnknown=${v}`, () => {
      expect(parseCniArgs(`IgnoreUnknown=${v};FOO=1`, known).get("FOO")).to.equal("1");
    });
  }

  it("refuses unknown keys with IgnoreUnknown=0", () => {
    expect(() => parseCniArgs("IgnoreUnknown=0;FOO=1", known)).to.throw(CniError);
  });

  it("refuses an IgnoreUnknown that is not a boolean", () => {
    expect(() => parseCniArgs("IgnoreUnknown=maybe", known)).to.throw(
      CniError,
      "IgnoreUnknown=maybe",
    );
  });

  for (const bad of ["K8S_POD_NAME", "=value", "K8S_POD_NAME=a;junk"]) {
    it(`refuses the malformed pair in ${JSON.stringify(bad)} (code 4)`, () => {
      expect(() => parseCniArgs(bad, known))
        .to.throw(CniError, "invalid CNI_ARGS pair")
        .with.property("code", 4);
    });
  }

  it("skips empty segments and keeps '=' inside values", () => {
    const a = parseCniArgs("K8S_POD_NAME=a=b;;", known);
    expect(a.get("K8S_POD_NAME")).to.equal("a=b");
  });

  it("an args error from a plugin handler becomes code 4 on stdout", async () => {
    const p = recordingPlugin({
      async add(req) {
        parseCniArgs(req.env.args, known);
        return passThrough(req.conf);
      },
    });
    const out = await invoke(p, "ADD", conf("1.0.0", { prevResult: resultFor("1.0.0") }), {
      ...ENV,
      CNI_ARGS: "BOGUS",
    });
    expect(out.exitCode).to.equal(1);
    expect(out.json?.code).to.equal(4);
  });
});

describe("cni skel: VERSION", () => {
  it("echoes the input cniVersion and lists the supported versions", async () => {
    const out = await invoke(recordingPlugin(), "VERSION", '{"cniVersion":"0.4.0"}', {});
    expect(out.exitCode).to.equal(0);
    expect(out.json).to.deep.equal({
      cniVersion: "0.4.0",
      supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    });
  });

  it("answers in 1.1.0 with empty or unreadable stdin", async () => {
    for (const stdin of ["", "not json", "[]", '{"cniVersion": 7}']) {
      const out = await invoke(recordingPlugin(), "VERSION", stdin, {});
      expect(out.json?.cniVersion, stdin).to.equal("1.1.0");
    }
  });

  it("needs no other variable and never calls the plugin", async () => {
    const p = recordingPlugin();
    const out = await invoke(p, "VERSION", '{"cniVersion":"1.1.0"}', { CNI_COMMAND: "VERSION" });
    expect(out.exitCode).to.equal(0);
    expect(p.calls).to.deep.equal([]);
  });
});

describe("cni skel: decoding and version negotiation", () => {
  it("code 6 for stdin that is not JSON", async () => {
    const out = await invoke(recordingPlugin(), "ADD", "{nope");
    expect(out.json).to.include({ code: 6, msg: "error decoding network config: not JSON" });
    expect(out.json?.cniVersion).to.equal("1.1.0");
  });

  it("code 6 for a config nested deeper than 64 levels, before any handler runs", async () => {
    const p = recordingPlugin();
    const deep = `${"[".repeat(20_000)}${"]".repeat(20_000)}`;
    const out = await invoke(p, "ADD", conf("1.0.0").replace(/}$/, `,"prevResult":{"x":${deep}}}`));
    expect(out.json).to.include({
      code: 6,
      msg: "error decoding network config: nested too deeply",
    });
    expect(p.calls).to.deep.equal([]);
    const shallow = `${"[".repeat(60)}${"]".repeat(60)}`;
    const fine = await invoke(p, "DEL", conf("1.0.0", { extra: JSON.parse(shallow) }));
    expect(fine.exitCode).to.equal(0);
  });

  it("code 6 for a config larger than 4 MiB", async () => {
    const p = recordingPlugin();
    const out = await invoke(p, "DEL", conf("1.0.0", { pad: "x".repeat(4 * 1024 * 1024) }));
    expect(out.json).to.include({ code: 6, msg: "error decoding network config: too large" });
    expect(p.calls).to.deep.equal([]);
  });

  it("code 6 for a JSON array", async () => {
    const out = await invoke(recordingPlugin(), "DEL", "[1]");
    expect(out.json?.code).to.equal(6);
  });

  it("code 6 for a cniVersion that is not a string", async () => {
    const out = await invoke(
      recordingPlugin(),
      "ADD",
      JSON.stringify({ cniVersion: 1, name: "n" }),
    );
    expect(out.json?.code).to.equal(6);
  });

  it("code 6 for a runtimeConfig that is not an object", async () => {
    const out = await invoke(recordingPlugin(), "ADD", conf("1.0.0", { runtimeConfig: [] }));
    expect(out.json?.code).to.equal(6);
  });

  for (const v of ["0.1.0", "0.2.0", "1.2.0", "2.0.0"]) {
    it(`code 1 for cniVersion ${v}, echoing it in the error`, async () => {
      const p = recordingPlugin();
      const out = await invoke(p, "ADD", conf(v));
      expect(out.json).to.include({ code: 1, msg: "incompatible CNI versions", cniVersion: v });
      expect(out.json?.details).to.contain(`config is "${v}"`);
      expect(p.calls).to.deep.equal([]);
    });
  }

  it("code 1 for a config without cniVersion (read as 0.1.0)", async () => {
    const out = await invoke(
      recordingPlugin(),
      "ADD",
      JSON.stringify({ name: "n", type: "waggle" }),
    );
    expect(out.json?.code).to.equal(1);
    expect(out.json?.details).to.contain('config is "0.1.0"');
  });

  for (const [command, v] of [
    ["CHECK", "0.3.1"],
    ["CHECK", "0.3.0"],
    ["GC", "1.0.0"],
    ["STATUS", "1.0.0"],
  ]) {
    it(`code 1 for ${command} in a ${v} config`, async () => {
      const p = recordingPlugin();
      const out = await invoke(p, command, conf(v), { ...ENV, CNI_PATH: "/x" });
      expect(out.json).to.include({ code: 1, msg: `config version does not allow ${command}` });
      expect(p.calls).to.deep.equal([]);
    });
  }

  it("code 7 for a missing network name", async () => {
    const out = await invoke(
      recordingPlugin(),
      "ADD",
      JSON.stringify({ cniVersion: "1.0.0", type: "waggle" }),
    );
    expect(out.json).to.include({ code: 7, msg: "missing network name" });
  });

  it("code 7 for a network name with invalid characters", async () => {
    const out = await invoke(
      recordingPlugin(),
      "ADD",
      JSON.stringify({ cniVersion: "1.0.0", name: "a b" }),
    );
    expect(out.json).to.include({ code: 7, msg: "invalid characters found in network name" });
  });

  it("code 8 for ADD and CHECK in the plugin's own netns", async () => {
    for (const command of ["ADD", "CHECK"]) {
      const p = recordingPlugin();
      const out = await invoke(p, command, conf("1.0.0", { prevResult: resultFor("1.0.0") }), {
        ...ENV,
        CNI_NETNS: "/proc/self/ns/net",
      });
      expect(out.json?.code, command).to.equal(8);
      expect(p.calls).to.deep.equal([]);
    }
  });

  it("the error JSON carries the config's cniVersion", async () => {
    const p = recordingPlugin({
      async del() {
        throw new CniError(ErrorCodes.DetachFailed, "could not unpin", "EIO");
      },
    });
    const out = await invoke(p, "DEL", conf("0.4.0"));
    expect(out.exitCode).to.equal(1);
    expect(out.json).to.deep.equal({
      cniVersion: "0.4.0",
      code: 106,
      msg: "could not unpin",
      details: "EIO",
    });
  });

  it("an unexpected exception becomes code 999 with its message", async () => {
    const p = recordingPlugin({
      async check() {
        throw new TypeError("boom");
      },
    });
    const out = await invoke(p, "CHECK", conf("1.0.0", { prevResult: resultFor("1.0.0") }));
    expect(out.json).to.include({ code: 999, msg: "boom" });
  });
});

describe("cni skel: prevResult", () => {
  for (const v of SUPPORTED_VERSIONS) {
    it(`ADD at ${v} prints prevResult as received, extra fields included`, async () => {
      const prev = {
        ...resultFor(v),
        routes: [{ dst: "0.0.0.0/0", gw: "169.254.1.1" }],
        "x-vendor": { a: 1 },
      };
      const out = await invoke(recordingPlugin(), "ADD", conf(v, { prevResult: prev }));
      expect(out.exitCode).to.equal(0);
      expect(out.json).to.deep.equal(prev);
    });
  }

  it("a prevResult without cniVersion is labelled with the config's", async () => {
    const { cniVersion: _, ...prev } = resultFor("0.3.1");
    const out = await invoke(recordingPlugin(), "ADD", conf("0.3.1", { prevResult: prev }));
    expect(out.json).to.deep.equal({ ...prev, cniVersion: "0.3.1" });
  });

  it("a 1.0.0 prevResult in a 1.1.0 config is printed as 1.1.0", async () => {
    const out = await invoke(
      recordingPlugin(),
      "ADD",
      conf("1.1.0", { prevResult: resultFor("1.0.0") }),
    );
    expect(out.json).to.deep.equal({ ...resultFor("1.0.0"), cniVersion: "1.1.0" });
  });

  it("a 0.3.1 prevResult in a 1.0.0 config is a decoding error", async () => {
    const out = await invoke(
      recordingPlugin(),
      "ADD",
      conf("1.0.0", { prevResult: resultFor("0.3.1") }),
    );
    expect(out.json?.code).to.equal(6);
    expect(out.json?.msg).to.contain("prevResult: cniVersion");
  });

  const broken: [string, unknown, string][] = [
    ["a string", "x", "invalid prevResult: is not a JSON object"],
    ["interfaces not an array", { interfaces: {} }, "interfaces is not an array"],
    ["an interface without name", { interfaces: [{}] }, "interfaces[0].name is not a string"],
    [
      "an address without prefix",
      { ips: [{ address: "10.0.0.1" }] },
      'ips[0].address "10.0.0.1" has no',
    ],
    ["a bad address", { ips: [{ address: "10.0.0.300/32" }] }, "ips[0].address"],
    ["a bad gateway", { ips: [{ address: "10.0.0.1/32", gateway: "x" }] }, "ips[0].gateway"],
    [
      "an interface index out of range",
      { interfaces: [], ips: [{ address: "10.0.0.1/32", interface: 0 }] },
      "not an index",
    ],
    [
      "a negative interface index",
      { ips: [{ address: "10.0.0.1/32", interface: -1 }] },
      "unsigned",
    ],
    ["a route without dst", { routes: [{ gw: "10.0.0.1" }] }, "routes[0].dst"],
    ["dns not an object", { dns: [] }, "dns is not an object"],
    ["dns nameservers with a number", { dns: { nameservers: [1] } }, "dns.nameservers"],
  ];
  for (const [what, prev, msg] of broken) {
    it(`code 6 for a prevResult with ${what}`, async () => {
      const p = recordingPlugin();
      const out = await invoke(p, "ADD", conf("1.0.0", { prevResult: prev }));
      expect(out.json?.code).to.equal(6);
      expect(out.json?.msg).to.contain(msg);
      expect(p.calls).to.deep.equal([]);
    });

    it(`DEL, which never reads prevResult, succeeds with a prevResult with ${what}`, async () => {
      const p = recordingPlugin();
      const out = await invoke(p, "DEL", conf("1.0.0", { prevResult: prev }));
      expect(out.exitCode, out.stdout).to.equal(0);
      expect(p.calls).to.deep.equal(["DEL"]);
    });
  }

  it("DEL succeeds with a prevResult of another version (0.4.0 inside a 1.0.0 config)", async () => {
    const p = recordingPlugin();
    const out = await invoke(p, "DEL", conf("1.0.0", { prevResult: resultFor("0.4.0") }));
    expect(out.exitCode, out.stdout).to.equal(0);
    expect(p.last?.conf.prevResult).to.equal(undefined);
  });

  it("an ADD result in another version of the same shape is relabelled to the config's", async () => {
    const p = recordingPlugin({ add: async () => resultFor("1.0.0") });
    const out = await invoke(p, "ADD", conf("1.1.0", { prevResult: resultFor("1.1.0") }));
    expect(out.json?.cniVersion).to.equal("1.1.0");
  });
});

describe("cni skel: GC and STATUS plumbing", () => {
  const gcEnv = { CNI_PATH: "/opt/cni/bin" };

  it("GC hands over cni.dev/valid-attachments and prints nothing", async () => {
    const p = recordingPlugin();
    const valid = [{ containerID: "a1", ifname: "eth0" }];
    const out = await invoke(p, "GC", conf("1.1.0", { "cni.dev/valid-attachments": valid }), gcEnv);
    expect(out).to.include({ exitCode: 0, stdout: "" });
    expect((p.last as GcRequest).validAttachments).to.deep.equal(valid);
  });

  it("GC accepts the older key cni.dev/attachments", async () => {
    const p = recordingPlugin();
    const valid = [{ containerID: "b2", ifname: "net1" }];
    await invoke(p, "GC", conf("1.1.0", { "cni.dev/attachments": valid }), gcEnv);
    expect((p.last as GcRequest).validAttachments).to.deep.equal(valid);
  });

  it("GC accepts an empty list (nothing is valid any more)", async () => {
    const p = recordingPlugin();
    await invoke(p, "GC", conf("1.1.0", { "cni.dev/valid-attachments": [] }), gcEnv);
    expect((p.last as GcRequest).validAttachments).to.deep.equal([]);
  });

  it("GC without a list of valid attachments is code 7 and collects nothing", async () => {
    const p = recordingPlugin();
    const out = await invoke(p, "GC", conf("1.1.0"), gcEnv);
    expect(out.json).to.include({ code: 7, msg: "GC needs cni.dev/valid-attachments" });
    expect(p.calls).to.deep.equal([]);
  });

  it("GC with a malformed attachment is code 6", async () => {
    const p = recordingPlugin();
    const out = await invoke(
      p,
      "GC",
      conf("1.1.0", { "cni.dev/valid-attachments": [{ containerID: 1 }] }),
      gcEnv,
    );
    expect(out.json?.code).to.equal(6);
    expect(p.calls).to.deep.equal([]);
  });

  it("STATUS failure codes pass through (50)", async () => {
    const p = recordingPlugin({
      async status() {
        throw new CniError(ErrorCodes.PluginNotAvailable, "cgroup v2 is not mounted");
      },
    });
    const out = await invoke(p, "STATUS", conf("1.1.0"), gcEnv);
    expect(out.exitCode).to.equal(1);
    expect(out.json).to.include({ code: 50, cniVersion: "1.1.0" });
  });
});

describe("cni skel: result conversion", () => {
  it("0.3.1 -> 1.0.0 drops ips[].version and keeps the rest", () => {
    const r = convertResult(CALICO_031, "1.0.0");
    expect(r).to.deep.equal({
      cniVersion: "1.0.0",
      interfaces: CALICO_031.interfaces,
      ips: [{ address: "10.244.9.10/32", interface: 1 }],
    });
  });

  it("1.1.0 -> 0.4.0 derives ips[].version and drops the 1.1.0-only fields", () => {
    const r = convertResult(
      {
        cniVersion: "1.1.0",
        interfaces: [
          {
            name: "eth0",
            mac: "aa:bb:cc:dd:ee:ff",
            mtu: 1500,
            sandbox: "/n",
            socketPath: "/s",
            pciID: "0000:01",
          },
        ],
        ips: [
          { address: "10.0.0.2/24", gateway: "10.0.0.1", interface: 0 },
          { address: "fd00::2/64", interface: 0 },
        ],
        routes: [
          {
            dst: "0.0.0.0/0",
            gw: "10.0.0.1",
            mtu: 1400,
            advmss: 1360,
            priority: 5,
            table: 100,
            scope: 0,
          },
        ],
        dns: { nameservers: ["10.0.0.10"] },
      },
      "0.4.0",
    );
    expect(r).to.deep.equal({
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0", mac: "aa:bb:cc:dd:ee:ff", sandbox: "/n" }],
      ips: [
        { version: "4", address: "10.0.0.2/24", gateway: "10.0.0.1", interface: 0 },
        { version: "6", address: "fd00::2/64", interface: 0 },
      ],
      routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }],
      dns: { nameservers: ["10.0.0.10"] },
    });
  });

  it("1.0.0 -> 1.1.0 and 0.3.0 -> 0.4.0 only relabel", () => {
    const r100 = resultFor("1.0.0");
    expect(convertResult(r100, "1.1.0")).to.deep.equal({ ...r100, cniVersion: "1.1.0" });
    const r030 = { ...CALICO_031, cniVersion: "0.3.0" };
    expect(convertResult(r030, "0.4.0")).to.deep.equal({ ...CALICO_031, cniVersion: "0.4.0" });
  });

  it("a round trip 0.3.1 -> 1.1.0 -> 0.3.1 is lossless for a Calico result", () => {
    const back = convertResult(convertResult(CALICO_031, "1.1.0"), "0.3.1");
    const { dns: _, ...expected } = CALICO_031;
    expect(back).to.deep.equal(expected);
  });

  it("does not modify its input", () => {
    const input = structuredClone(CALICO_031);
    convertResult(input, "1.1.0");
    expect(input).to.deep.equal(CALICO_031);
  });
});
