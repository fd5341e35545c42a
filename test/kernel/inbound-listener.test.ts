// Inbound capture and the proxy's listener on 15006: which listening socket takes a captured
// connection, and what happens when there is none. The sk_lookup program hands captured
// connections to the socket in waggle_listeners, which sockops fills when the proxy listens
// and the attach fills for a proxy that listened before its pod was meshed.

import { expect } from "chai";
import { attachNetns, Link, netnsLinkInfo, Program, unpin } from "ebpf-napi";
import {
  checkPod,
  listPods,
  MAP_NAMES,
  mapEntryCounts,
  NETNS_PROGRAM,
  paths,
} from "../../datapath";
import { type CaptureLab, type CaptureMode, labAddress } from "../support/capture-lab";
import type { Family } from "../support/capture-scenarios";
import "../support/hooks";
import { APP_PORT, INBOUND_PORT, PROXY, withInboundPod } from "../support/inbound-pod";
import { IptablesCaptureMode } from "../support/istio-iptables";
import { createPod, type Pod } from "../support/pod";
import type { SandboxProcess } from "../support/sandbox";
import { hostPort, type ProbeResult, PYTHON, probe } from "../support/sockprobe";
import { useWaggleLab } from "../support/waggle-mode";

/**
 * A proxy listener on 15006 with the socket options under test. argv: name host reuseport
 * v6only. Prints {"event":"ready"}, then per connection the sockprobe accept record (listener,
 * local, peer, originalDst), which it also sends to the client before closing.
 */
const LISTENER = `
import json, socket, struct, sys
name, host, reuseport, v6only = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if reuseport: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
if family == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
s.bind((host, ${INBOUND_PORT})); s.listen(64)
print(json.dumps({"event": "ready"}), flush=True)
def fmt(a):
    h = a[0][7:] if a[0].startswith("::ffff:") else a[0]
    return ("[%s]:%d" if ":" in h else "%s:%d") % (h, a[1])
while True:
    c, peer = s.accept()
    try:
        if c.family == socket.AF_INET6 and not c.getsockname()[0].startswith("::ffff:"):
            raw = c.getsockopt(socket.IPPROTO_IPV6, 80, 28)
            dst = fmt((socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack("!H", raw[2:4])[0]))
        else:
            raw = c.getsockopt(socket.SOL_IP, 80, 16)
            dst = fmt((socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack("!H", raw[2:4])[0]))
    except OSError as e:
        dst = "errno %d" % e.errno
    rec = {"event": "accept", "listener": name, "proto": "tcp", "local": fmt(c.getsockname()),
           "peer": fmt(peer), "originalDst": dst, "originalDstError": None}
    print(json.dumps(rec), flush=True)
    c.sendall((json.dumps(rec) + "\\n").encode()); c.close()
`;

async function startProxy(
  pod: Pod,
  name: string,
  host: string,
  opts: { reuseport?: boolean; v6only?: boolean } = {},
): Promise<SandboxProcess> {
  const proc = pod.spawn(
    PYTHON,
    ["-c", LISTENER, name, host, opts.reuseport ? "1" : "0", opts.v6only ? "1" : "0"],
    PROXY,
  );
  await proc.waitForLine((l) => l.includes('"ready"'));
  return proc;
}

/** Connects from the peer pod to the captured pod's app port, `n` times. */
function connect(lab: CaptureLab, family: Family, n = 1): Promise<ProbeResult[]> {
  const to = hostPort(labAddress("pod", family), APP_PORT);
  return probe(
    lab.peer,
    Array.from({ length: n }, () => ({ to, timeout: 1 })),
    { uid: 1000, gid: 1000 },
  );
}

/** A result that landed on a proxy listener with the right original destination. */
function expectCaptured(r: ProbeResult, family: Family, listener?: string): void {
  expect(r.result, JSON.stringify(r)).to.equal("connected");
  const original = hostPort(labAddress("pod", family), APP_PORT);
  expect(r.reply).to.include({ originalDst: original });
  if (listener) expect(r.reply).to.include({ listener });
}

describe("inbound capture: the proxy's listener on 15006", function () {
  this.timeout(60_000);
  const fx = useWaggleLab();

  /** A fresh meshed pod with the app on 8080 and no sockprobe proxy (the tests start theirs). */
  const withPod = (
    mode: CaptureMode,
    family: Family,
    fn: (pod: Pod, appRecords: () => unknown[]) => Promise<void>,
    beforeSetup?: (pod: Pod) => Promise<void>,
  ) =>
    withInboundPod(fx.lab, mode, family, { proxy: false, beforeSetup }, ({ pod, app }) =>
      fn(pod, () => app.records()),
    );

  for (const { name, mode } of [
    { name: "iptables", mode: () => new IptablesCaptureMode() as CaptureMode },
    { name: "waggle", mode: () => fx.waggle as CaptureMode },
  ]) {
    for (const family of [4, 6] as const) {
      it(`${name} (IPv${family}): no proxy listening on 15006: a captured connection is refused at once, never delivered to the app`, async () => {
        await withPod(mode(), family, async (_pod, appRecords) => {
          // "at once": the probe's connect gives up after 1 s, before the SYN's first
          // retransmission, so "refused" means the first SYN was answered with a reset (a
          // dropped SYN would read "timeout"); the wall clock around the probe's process is
          // not the measure (a loaded machine takes longer than that to start one)
          const [r] = await connect(fx.lab, family);
          expect(r.result).to.equal("refused");
          expect(appRecords()).to.deep.equal([]);
        });
      });
    }
  }

  for (const family of [4, 6] as const) {
    it(`(IPv${family}) the proxy listening before its pod is attached (meshed in place) takes the captured connections`, async () => {
      let proxy: SandboxProcess | undefined;
      await withPod(
        fx.waggle,
        family,
        async (_pod, appRecords) => {
          for (const r of await connect(fx.lab, family, 3)) expectCaptured(r, family, "early");
          expect(appRecords()).to.deep.equal([]);
        },
        async (pod) => {
          proxy = await startProxy(pod, "early", family === 4 ? "0.0.0.0" : "::", { v6only: true });
        },
      );
      await proxy?.kill("SIGKILL");
    });
  }

  it("a restarted proxy: while none listens connections are refused, then the new listener takes them; detach forgets it", async () => {
    await withPod(fx.waggle, 4, async (pod, appRecords) => {
      const first = await startProxy(pod, "first", "0.0.0.0");
      expectCaptured((await connect(fx.lab, 4))[0], 4, "first");
      expect(mapEntryCounts(fx.waggle.root.opts)[MAP_NAMES.listeners]).to.equal(1);
      await first.kill("SIGKILL");
      expect(mapEntryCounts(fx.waggle.root.opts)[MAP_NAMES.listeners], "closed: gone").to.equal(0);
      expect((await connect(fx.lab, 4))[0].result).to.equal("refused");
      const second = await startProxy(pod, "second", "0.0.0.0");
      expectCaptured((await connect(fx.lab, 4))[0], 4, "second");
      expect(appRecords()).to.deep.equal([]);
      const counters = listPods(fx.waggle.root.opts)[0]?.counters;
      expect(counters).to.include({ inbound_captured: 2, inbound_no_listener: 1, errors: 0 });
      const open = mapEntryCounts(fx.waggle.root.opts)[MAP_NAMES.listeners];
      await fx.waggle.teardown(); // detach with the proxy still listening
      expect(open).to.equal(1);
      expect(mapEntryCounts(fx.waggle.root.opts)[MAP_NAMES.listeners]).to.equal(0);
      await second.kill("SIGKILL");
    });
  });

  it("SO_REUSEPORT listeners (Envoy's default: one per worker) share the captured connections", async () => {
    await withPod(fx.waggle, 4, async (pod) => {
      const workers = [
        await startProxy(pod, "worker0", "0.0.0.0", { reuseport: true }),
        await startProxy(pod, "worker1", "0.0.0.0", { reuseport: true }),
      ];
      const results = await connect(fx.lab, 4, 40);
      for (const r of results) expectCaptured(r, 4);
      const by = new Set(results.map((r) => (r.reply as { listener: string }).listener));
      expect([...by].sort(), "the kernel spreads them over the group").to.deep.equal([
        "worker0",
        "worker1",
      ]);
      for (const w of workers) await w.kill("SIGKILL");
    });
  });

  it("an IPv4 connection goes to a dual-stack IPv6 listener ([::]:15006 without IPV6_V6ONLY)", async () => {
    await withPod(fx.waggle, 4, async (pod) => {
      const proxy = await startProxy(pod, "dual", "::", { v6only: false });
      expectCaptured((await connect(fx.lab, 4))[0], 4, "dual");
      await proxy.kill("SIGKILL");
    });
  });

  it("a listener on 127.0.0.1:15006 only (istio-validation's) is never an inbound target", async () => {
    await withPod(fx.waggle, 4, async (pod, appRecords) => {
      const validation = await startProxy(pod, "validation", "127.0.0.1");
      expect((await connect(fx.lab, 4))[0].result).to.equal("refused");
      expect(appRecords()).to.deep.equal([]);
      await validation.kill("SIGKILL");
    });
  });

  it("checkPod names a missing netns link and one attached elsewhere", async () => {
    await withPod(fx.waggle, 4, async () => {
      const rec = fx.waggle.current;
      if (!rec) throw new Error("no record");
      const pin = paths.podLink(fx.waggle.root.path, rec.containerId, NETNS_PROGRAM.name);
      expect(checkPod(rec.containerId, fx.waggle.root.opts)).to.deep.equal([]);
      const other = await createPod({ label: "another pod" });
      try {
        const link = Link.openPinned(pin);
        const progId = link.info().progId;
        expect(netnsLinkInfo(link).attachType).to.equal("sk_lookup");
        link.close();
        unpin(pin);
        expect(checkPod(rec.containerId, fx.waggle.root.opts)).to.deep.equal([
          `link ${NETNS_PROGRAM.name} is missing`,
        ]);
        const prog = Program.fromId(progId);
        const elsewhere = attachNetns(prog, other.netnsPath);
        prog.close();
        elsewhere.pin(pin);
        elsewhere.close();
        expect(checkPod(rec.containerId, fx.waggle.root.opts)).to.deep.equal([
          `link ${NETNS_PROGRAM.name} is not on ${rec.netnsPath}`,
        ]);
        await other.destroy();
        // the kernel destroys a netns asynchronously once its last reference is gone
        let problems: string[] = [];
        for (let i = 0; i < 100; i++) {
          problems = checkPod(rec.containerId, fx.waggle.root.opts);
          if (problems[0]?.includes("detached")) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        expect(problems).to.deep.equal([
          `link ${NETNS_PROGRAM.name} is detached from its network namespace`,
        ]);
      } finally {
        await other.destroy();
      }
    });
  });
});
