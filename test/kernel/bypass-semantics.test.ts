// The socket bypass must be indistinguishable from TCP. Every case runs twice on the same two
// meshed pods of one node: once with the node's bypass switch off (plain TCP) and once with
// it on; each side of the connection reports what an application sees (bytes and their
// SHA-256, return values, errno names, epoll masks; test/support/bypassprobe.py) and the two
// runs must report exactly the same. The pods' counters prove which path carried the bytes:
// messages bypassed > 0 in the bypass run, none in the TCP run. Flow control (the bound on a
// receiver's unread bytes) has cases of its own: there the two runs differ by design in how
// much the sender wrote before it was stopped, and the cases measure it.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { Program } from "ebpf-napi";
import {
  applyNodeBypass,
  attachPod,
  BYPASS_OPEN_DIFFERENCES,
  BYPASS_PROGRAM,
  BYPASS_RECV_PROGRAM,
  type BypassCounterName,
  detachPod,
  ensureSharedPrograms,
  linkProgId,
  listPods,
  MAP_NAMES,
  mapEntryCounts,
  nodeBypassSettings,
  paths,
  removeDatapath,
  upgradePrograms,
} from "../../datapath";
import { SOCKET_BYPASS_BACKLOG } from "../../mesh/config";
import { defaultRedirectSettings, type RedirectSettings } from "../../mesh/redirect-settings";
import "../support/hooks";
import { uniqueName } from "../support/names";
import { createNode, createPod, type Node, type Pod } from "../support/pod";
import { hostPort, PYTHON } from "../support/sockprobe";
import { BpfRoot } from "../support/waggle-mode";

const PROBE = join(__dirname, "..", "..", "..", "test", "support", "bypassprobe.py");
const MiB = 1 << 20;

/** Meshed, nothing captured: the connections go where the probes send them. */
function uncaptured(): RedirectSettings {
  const s = defaultRedirectSettings();
  s.outbound.includeIPRanges = [];
  s.inbound.includePorts = [];
  return s;
}

type Counters = Record<BypassCounterName, number>;

interface Hop {
  name: string;
  /** Where the server listens and the client connects; which pods they run in. */
  server: () => Pod;
  client: () => Pod;
  addr: () => string;
  bind?: string;
}

interface Run {
  server: Record<string, unknown>;
  client: Record<string, unknown>;
  counters: Counters;
}

describe("socket bypass: each case observes the same over TCP and over the bypass", function () {
  this.timeout(240_000);
  let root: BpfRoot;
  let node: Node;
  let a: Pod;
  let b: Pod;
  const ids = { a: uniqueName("k"), b: uniqueName("k") };

  before(async () => {
    root = new BpfRoot();
    ensureSharedPrograms(root.opts);
    node = await createNode();
    a = await createPod({ node, ipv6: true, label: "pod a" });
    b = await createPod({ node, ipv6: true, label: "pod b" });
    attachBoth();
  });

  function attachBoth(): void {
    for (const [id, pod] of [
      [ids.a, a],
      [ids.b, b],
    ] as const) {
      attachPod(
        {
          containerId: id,
          netnsPath: pod.netnsPath,
          ifname: "eth0",
          cgroupPath: pod.cgroupDir,
          podIPs: [pod.ipv4, pod.ipv6].filter((ip): ip is string => ip !== undefined),
          settings: uncaptured(),
        },
        root.opts,
      );
    }
  }

  after(async () => {
    await a?.destroy();
    await b?.destroy();
    await node?.destroy();
    root?.destroy();
  });

  /** The bypass counters of both pods, summed. */
  function bypassCounters(): Counters {
    const sum: Counters = {
      bypass_sockets: 0,
      bypass_msgs: 0,
      bypass_bytes: 0,
      bypass_fallbacks: 0,
      bypass_backpressure_fallbacks: 0,
      bypass_backpressure_bytes: 0,
    };
    for (const p of listPods(root.opts)) {
      for (const k of Object.keys(sum) as BypassCounterName[]) sum[k] += p.counters?.[k] ?? 0;
    }
    return sum;
  }

  function delta(after: Counters, before: Counters): Counters {
    return Object.fromEntries(
      Object.entries(after).map(([k, v]) => [k, v - before[k as BypassCounterName]]),
    ) as Counters;
  }

  /** The program a node link runs, or null when no link is pinned under that name. */
  function linkProgOf(name: string): number | null {
    return linkProgId(paths.link(root.path, name));
  }

  function resultOf(lines: string[], who: string): Record<string, unknown> {
    const line = lines.find((l) => l.includes('"event": "result"'));
    if (!line) throw new Error(`${who} printed no result: ${lines.join("\n")}`);
    const { event: _e, ...rest } = JSON.parse(line) as Record<string, unknown>;
    return rest;
  }

  /**
   * One connection of `hop` running `kase` with the node switch as given; `during` runs once
   * the client is under way (DEL, upgrade).
   */
  async function run(
    hop: Hop,
    kase: string,
    arg: string,
    bypass: boolean,
    during?: () => Promise<void>,
    backlog?: number,
  ): Promise<Run> {
    const state = applyNodeBypass(root.path, bypass, backlog);
    expect(state.enabled, `node switch ${bypass}: ${state.support.reason}`).to.equal(bypass);
    const before = bypassCounters();
    const server = hop.server().spawn(PYTHON, [PROBE, "serve", hop.addr(), kase, arg]);
    try {
      await server.waitForLine((l) => l.includes('"ready"'), 10_000);
      const running = hop.client().exec(PYTHON, [PROBE, "connect", hop.addr(), kase, arg], {
        env: { ...process.env, ...(hop.bind ? { BYPASSPROBE_BIND: hop.bind } : {}) },
        timeoutMs: 120_000,
      });
      await during?.();
      const client = await running;
      await server.exited;
      if (client.code !== 0)
        throw new Error(
          `${kase} client failed (bypass ${bypass}): ${client.stderr}\nserver: ${server.stderrLines.join("\n")}`,
        );
      const clientOut = client.stdout;
      return {
        server: resultOf(server.stdoutLines, `server ${server.stderrLines.join("\n")}`),
        client: resultOf(clientOut.split("\n"), "client"),
        counters: delta(bypassCounters(), before),
      };
    } finally {
      await server.kill();
    }
  }

  /** Runs over TCP, then over the bypass; counters must tell the path each took. */
  async function both(
    hop: Hop,
    kase: string,
    arg: string,
    during?: () => Promise<void>,
  ): Promise<{ tcp: Run; bypassed: Run }> {
    const tcp = await run(hop, kase, arg, false, during);
    const bypassed = await run(hop, kase, arg, true, during);
    expect(tcp.counters.bypass_sockets, "TCP run: no socket joined").to.equal(0);
    expect(tcp.counters.bypass_msgs, "TCP run: nothing bypassed").to.equal(0);
    expect(bypassed.counters.bypass_sockets, "bypass run: both ends joined").to.equal(2);
    expect(bypassed.counters.bypass_msgs, "bypass run: messages bypassed").to.be.greaterThan(0);
    return { tcp, bypassed };
  }

  /** Both runs must observe exactly the same. */
  async function compare(
    hop: Hop,
    kase: string,
    arg = "",
    during?: () => Promise<void>,
  ): Promise<Run> {
    const { tcp, bypassed } = await both(hop, kase, arg, during);
    expect(bypassed.server, `${kase} server side`).to.deep.equal(tcp.server);
    expect(bypassed.client, `${kase} client side`).to.deep.equal(tcp.client);
    return bypassed;
  }

  /**
   * A difference requirements.ts lists as open (the reason the bypass is off by default):
   * the runs must still differ as described. When a kernel removes it, this fails: set that
   * difference's fixedIn and turn the case into a compare().
   */
  async function stillDiffers(kase: string, difference: string, arg = ""): Promise<Run[]> {
    const listed = BYPASS_OPEN_DIFFERENCES.find((d) => d.difference.startsWith(difference));
    expect(listed, `requirements.ts lists "${difference}"`).to.not.equal(undefined);
    const { tcp, bypassed } = await both(podToPod4, kase, arg);
    expect(
      { server: bypassed.server, client: bypassed.client },
      `${kase} no longer differs: ${JSON.stringify({ tcp, bypassed })}`,
    ).to.not.deep.equal({
      server: tcp.server,
      client: tcp.client,
    });
    return [tcp, bypassed];
  }

  /**
   * The bypass carried all `total` bytes, or (a reader that fell the bound behind) it carried
   * bytes until a back-pressure hold moved the rest of that burst to TCP; never a fallback.
   */
  function expectCarried(r: Run, total: number): void {
    expect(r.counters.bypass_fallbacks, "no fallback for good").to.equal(0);
    if (r.counters.bypass_backpressure_fallbacks === 0)
      expect(r.counters.bypass_bytes, "no hold: every byte bypassed").to.equal(total);
    else {
      expect(r.counters.bypass_bytes, "bypassed until the hold").to.be.greaterThan(0);
      expect(r.counters.bypass_backpressure_bytes, "TCP bytes while held").to.be.greaterThan(0);
    }
  }

  const podToPod4: Hop = {
    name: "pod to pod (IPv4)",
    server: () => b,
    client: () => a,
    addr: () => hostPort(b.address(4), 8080),
  };
  const podToPod6: Hop = {
    name: "pod to pod (IPv6)",
    server: () => b,
    client: () => a,
    addr: () => hostPort(b.address(6), 8080),
  };
  const appToSidecar: Hop = {
    name: "app to its sidecar (127.0.0.1:15001)",
    server: () => a,
    client: () => a,
    addr: () => "127.0.0.1:15001",
  };
  const sidecarToApp: Hop = {
    name: "sidecar to app (from 127.0.0.6)",
    server: () => a,
    client: () => a,
    addr: () => hostPort(a.address(4), 8080),
    bind: "127.0.0.6",
  };
  const appToSidecar6: Hop = {
    name: "app to its sidecar ([::1]:15001)",
    server: () => a,
    client: () => a,
    addr: () => "[::1]:15001",
  };

  for (const hop of [podToPod4, podToPod6, appToSidecar, sidecarToApp, appToSidecar6]) {
    it(`${hop.name}: 1 MiB up and 1 MiB down arrive intact, bypassed both ways`, async () => {
      const r = await compare(hop, "stream", `${MiB}:${MiB}`);
      expect(r.server.receivedSha).to.equal(r.client.sentSha);
      expect(r.client.receivedSha).to.equal(r.server.sentSha);
      expect(r.counters.bypass_bytes).to.equal(2 * MiB);
      expect(r.counters.bypass_fallbacks).to.equal(0);
    });
  }

  for (const [up, down] of [
    [1, 0],
    [1, 1],
    [1000, 70_000],
    [16 * MiB, 1],
    [64 * MiB, 64 * MiB],
  ]) {
    it(`transfers ${up} B up and ${down} B down byte for byte`, async () => {
      const r = await compare(podToPod4, "stream", `${up}:${down}`);
      expect(r.server.receivedBytes).to.equal(up);
      expect(r.client.receivedBytes).to.equal(down);
      expectCarried(r, up + down);
    });
  }

  it("64 MiB both ways at the same time arrive intact", async () => {
    const r = await compare(podToPod4, "duplex", String(64 * MiB));
    expect(r.server.receivedSha).to.equal(r.client.sentSha);
    expect(r.client.receivedSha).to.equal(r.server.sentSha);
    expectCarried(r, 128 * MiB);
  });

  it("half-close: data before the FIN is read first, then EOF; the other way stays open", async () => {
    const r = await compare(podToPod4, "halfclose");
    expect(r.server).to.include({ receivedBytes: 7000, eofSeen: true });
    expect(r.client).to.include({
      sendAfterShutdown: "EPIPE",
      received: "response after your FIN",
    });
  });

  it("FIN ordering: bytes queued with the FIN are all read before EOF", async () => {
    const r = await compare(podToPod4, "finorder", "777");
    expect(r.server.receivedSha).to.equal(r.client.sentSha);
    expect(r.server.lastReadEmpty).to.equal(true);
  });

  it("close with unread data: open difference, the sender reads EOF where TCP gives ECONNRESET", async () => {
    const [tcp, bypassed] = await stillDiffers(
      "unread-close",
      "closing with bypassed bytes unread",
    );
    expect(tcp.client).to.deep.include({ recv: "ECONNRESET", send: "EPIPE" });
    expect(bypassed.client).to.deep.include({ recv: 0, send: "EPIPE" });
  });

  it("the peer's process dies mid-transfer: the sender gets a reset or broken pipe, as over TCP", async () => {
    const r = await compare(podToPod4, "peer-exit");
    expect(r.client.outcome).to.equal("reset or broken pipe");
    // the sender left the bypass once: for good when it found the peer gone, or held on TCP
    // by back-pressure if the peer had stopped reading a bound's worth before it died
    expect(
      r.counters.bypass_fallbacks + r.counters.bypass_backpressure_fallbacks,
      "the sender left the bypass once",
    ).to.equal(1);
  });

  it("MSG_PEEK leaves the bytes in place", async () => {
    const r = await compare(podToPod4, "peek");
    expect(r.server).to.deep.include({ peek1: "hello", peek2: "hello" });
  });

  it("MSG_WAITALL: open difference, the bypass returns a short read where TCP waits", async () => {
    const [tcp, bypassed] = await stillDiffers("waitall", "recv with MSG_WAITALL");
    expect(tcp.server.waitallBytes).to.equal(3000);
    expect(bypassed.server.waitallBytes).to.be.lessThan(3000);
  });

  it("epoll level-triggered readiness: ready while bytes remain, not after draining, on FIN", async () => {
    const r = await compare(podToPod4, "epoll-level");
    expect(r.server.afterDrain).to.deep.equal([]);
  });

  it("epoll edge-triggered readiness: one edge per arrival", async () => {
    const r = await compare(podToPod4, "epoll-edge");
    expect(r.server.noNewData).to.deep.equal([]);
  });

  /**
   * A sender writing up to 64 MiB without blocking to a peer that reads nothing for 2.5 s
   * (then `more` bytes, paced, once the peer reads): over TCP and over the bypass (bound
   * `backlog`, absent: the default). Both senders must meet EAGAIN; over the bypass after at
   * most the bound, one message (the 64 KiB write that found the queue full goes through
   * TCP) and what TCP itself buffered in the TCP run (the direction is held on TCP); then the
   * peer reads every byte, in order.
   */
  async function stoppedSender(backlog?: number, more = 0): Promise<{ tcp: Run; bypassed: Run }> {
    const bound = backlog ?? SOCKET_BYPASS_BACKLOG.default;
    const arg = `${64 * MiB}:${more}`;
    const tcp = await run(podToPod4, "backpressure", arg, false);
    const bypassed = await run(podToPod4, "backpressure", arg, true, undefined, backlog);
    expect(nodeBypassSettings(root.path), "the bound the programs read").to.deep.equal({
      enabled: true,
      backlogMax: bound,
    });
    for (const [name, r] of [
      ["TCP", tcp],
      ["bypass", bypassed],
    ] as const) {
      expect(r.client, `${name}: the sender met EAGAIN`).to.include({
        blocked: true,
        sentBelowLimit: true,
      });
      expect(r.server.receivedSha, `${name}: every byte arrived, in order`).to.equal(
        r.client.sentSha,
      );
    }
    const stopped = bypassed.client.stoppedAt as number;
    const tcpStopped = tcp.client.stoppedAt as number;
    console.log(
      `      queued before the sender stopped: TCP ${tcpStopped} B, bypass ${stopped} B (bound ${bound} B)`,
    );
    expect(stopped, "stopped after the bound, one message and TCP's own buffers").to.be.at.most(
      bound + 65536 + 2 * tcpStopped,
    );
    expect(stopped, "the bypass carried bytes up to the bound").to.be.greaterThan(bound - 65536);
    expect(bypassed.counters).to.include({
      bypass_sockets: 2,
      bypass_fallbacks: 0,
      bypass_backpressure_fallbacks: 1,
    });
    expect(tcp.counters.bypass_msgs).to.equal(0);
    return { tcp, bypassed };
  }

  it("flow control: a sender to a peer that does not read is stopped (EAGAIN) after the bound; then every byte arrives in order", async () => {
    const { bypassed } = await stoppedSender();
    // until the sender stopped, the bypass carried at most the bound
    expect(bypassed.counters.bypass_bytes).to.be.at.most(SOCKET_BYPASS_BACKLOG.default);
  });

  it("flow control: the node's bound (socket_bypass_backlog) sets where the sender is stopped", async () => {
    const { bypassed } = await stoppedSender(1 * MiB);
    expect(bypassed.counters.bypass_bytes).to.be.at.most(1 * MiB);
  });

  it("flow control: a held direction returns to the bypass once the peer has read every byte sent through TCP", async () => {
    const { bypassed } = await stoppedSender(1 * MiB, 1 * MiB);
    // the bypass carried at most 1 MiB before the hold: more than that came after it
    expect(bypassed.counters.bypass_bytes).to.be.greaterThan(1 * MiB);
    expect(bypassed.counters.bypass_backpressure_fallbacks).to.equal(1);
  });

  it("flow control: a direction that sends less than half the bound never makes a backlog entry (short connections cost no map churn); past half, its receiver is tracked while it lags", async () => {
    const entries = () => mapEntryCounts(root.opts)[MAP_NAMES.bypassBacklog];
    const bound = 1 * MiB;
    const before = entries();
    const small = await run(
      podToPod4,
      "stream",
      `${bound / 2 - 4096}:${bound / 4}`,
      true,
      undefined,
      bound,
    );
    expect(small.counters.bypass_bytes, "all bypassed").to.equal(bound / 2 - 4096 + bound / 4);
    expect(entries(), "no entry for either end").to.equal(before);
    // a peer that reads nothing for a while: the sender tracks it, and its entry stays (no
    // message of the sender found it caught up afterwards)
    const lagging = await run(podToPod4, "backpressure", `${2 * bound}:0`, true, undefined, bound);
    expect(lagging.server.receivedSha).to.equal(lagging.client.sentSha);
    expect(entries(), "one entry: the lagging receiver's").to.equal(before + 1);
  });

  it("flow control: a tracked direction whose peer has read every byte is untracked again, its entry deleted (kept-alive connections stop paying the bookkeeping)", async () => {
    const entries = () => mapEntryCounts(root.opts)[MAP_NAMES.bypassBacklog];
    const bound = 1 * MiB;
    const before = entries();
    // past half the bound (tracked), then, once the peer has read it all and answered, more:
    // the first later message finds the peer caught up (too little follows to track again)
    const up = bound / 2 + 64 * 1024;
    const tail = 4096;
    const r = await run(podToPod4, "caught-up", `${up}:${tail}`, true, undefined, bound);
    expect(r.client.answer, "the peer read everything first").to.equal("k");
    expect(r.server.receivedSha, "every byte, in order").to.equal(r.client.sentSha);
    expect(r.counters.bypass_bytes, "all bypassed, the answer too").to.equal(up + tail + 1);
    expect(r.counters.bypass_backpressure_fallbacks).to.equal(0);
    expect(entries(), "the entry made past half is gone").to.equal(before);
  });

  it("flow control: 64 MiB to a reading peer arrive in order, over the bypass while the reader keeps within the bound", async () => {
    const r = await compare(podToPod4, "stream", `${64 * MiB}:0`);
    expect(r.server.receivedSha).to.equal(r.client.sentSha);
    expectCarried(r, 64 * MiB);
    console.log(
      `      64 MiB to a reading peer: ${r.counters.bypass_bytes} B bypassed, ${r.counters.bypass_backpressure_bytes} B held on TCP in ${r.counters.bypass_backpressure_fallbacks} holds`,
    );
  });

  it("FIONREAD counts the bytes waiting", async () => {
    await compare(podToPod4, "fionread");
  });

  it("sendfile: 8 MiB from a file arrive intact", async () => {
    const r = await compare(podToPod4, "sendfile", String(8 * MiB));
    expect(r.server.receivedSha).to.equal(r.client.sentSha);
  });

  it("splice from the receiving socket: open difference, it sees none of the bypassed bytes", async () => {
    const [tcp, bypassed] = await stillDiffers(
      "splice",
      "splice(2) from a receiving socket",
      String(4 * MiB),
    );
    expect(tcp.server.receivedSha).to.equal(tcp.client.sentSha);
    expect(bypassed.server.receivedBytes).to.equal(0);
  });

  it("zero-length writes return 0 and deliver nothing (no early EOF)", async () => {
    const r = await compare(podToPod4, "zero");
    expect(r.server).to.deep.include({ received: "xy", emptyReads: 1 });
  });

  it("TCP_CORK and TCP_NODELAY writes arrive in order", async () => {
    await compare(podToPod4, "cork");
  });

  it("a socket handed to another process keeps its stream", async () => {
    const r = await compare(podToPod4, "handoff", String(4 * MiB));
    expect(r.server.receivedSha).to.equal(r.client.sentSha);
  });

  it("a direction that used TCP once stays on TCP, in order, after the peer joins again", async () => {
    const pin = paths.map(root.path, MAP_NAMES.bypass);
    const r = await compare(podToPod4, "sticky", pin);
    expect(r.server.receivedSha).to.equal(r.client.sentSha);
    // the server's second byte was bypassed; the client's 100 000 all went through TCP
    expect(r.counters.bypass_fallbacks).to.equal(1);
    expect(r.counters.bypass_bytes).to.equal(1);
  });

  it("TCP Fast Open: data in the SYN crossed TCP, so nothing is redirected; the stream is intact", async () => {
    // client and server Fast Open without cookies (0x1 | 0x2 | 0x4 | 0x200 | 0x400)
    for (const pod of [a, b]) await pod.sysctl({ "net.ipv4.tcp_fastopen": 0x607 });
    try {
      const addr = hostPort(b.address(4), 8080);
      const tcp = await run(podToPod4, "tfo", addr, false);
      const bypassed = await run(podToPod4, "tfo", addr, true);
      expect(tcp.client.synData, "the first bytes really went in the SYN").to.equal(true);
      expect(bypassed.server).to.deep.equal(tcp.server);
      expect(bypassed.client).to.deep.equal(tcp.client);
      expect(bypassed.server.receivedSha).to.equal(bypassed.client.sentSha);
      // The client, whose first bytes crossed TCP, never joins. The server's socket may (its
      // established callback runs before the SYN's data is queued); then its first send finds
      // no peer and falls back for good. Nothing is redirected either way.
      expect(bypassed.counters).to.include({ bypass_msgs: 0, bypass_bytes: 0 });
      expect(bypassed.counters.bypass_sockets).to.be.at.most(1);
      expect(bypassed.counters.bypass_fallbacks).to.equal(bypassed.counters.bypass_sockets);
      // control: the same pods without Fast Open join at once
      for (const pod of [a, b]) await pod.sysctl({ "net.ipv4.tcp_fastopen": 1 });
      const plain = await run(podToPod4, "stream", "1000:1000", true);
      expect(plain.counters.bypass_sockets).to.equal(2);
    } finally {
      for (const pod of [a, b]) await pod.sysctl({ "net.ipv4.tcp_fastopen": 1 });
    }
  });

  it("DEL of both pods with a live bypassed connection: it keeps flowing, intact", async () => {
    let joined = -1;
    const delBoth = async () => {
      // mid-transfer: once both ends joined (bypass run), after 3 s at most (TCP run)
      for (let i = 0; i < 30 && mapEntryCounts(root.opts)[MAP_NAMES.bypass] < 2; i++)
        await new Promise((r) => setTimeout(r, 100));
      joined = mapEntryCounts(root.opts)[MAP_NAMES.bypass];
      detachPod(ids.a, root.opts);
      detachPod(ids.b, root.opts);
    };
    try {
      const tcp = await run(podToPod4, "paced", "100", false, delBoth);
      expect(joined, "over TCP no socket is in the sockhash").to.equal(0);
      attachBoth();
      const bypassed = await run(podToPod4, "paced", "100", true, delBoth);
      expect(joined, "both ends were in the sockhash at the DEL").to.equal(2);
      expect(bypassed.server).to.deep.equal(tcp.server);
      expect(bypassed.server.receivedSha).to.equal(bypassed.client.sentSha);
    } finally {
      attachBoth();
    }
  });

  it("with the switch off no program runs on the node's socket reads: the flow control's tracepoint link exists only while the bypass is on", () => {
    expect(applyNodeBypass(root.path, true).enabled).to.equal(true);
    const on = linkProgOf(BYPASS_RECV_PROGRAM.name);
    expect(on, "tracepoint link while on").to.not.equal(null);
    expect(applyNodeBypass(root.path, true).enabled).to.equal(true);
    expect(linkProgOf(BYPASS_RECV_PROGRAM.name), "the same link, not a new one").to.equal(on);
    expect(applyNodeBypass(root.path, false).enabled).to.equal(false);
    expect(linkProgOf(BYPASS_RECV_PROGRAM.name), "no tracepoint link while off").to.equal(null);
    // the program stays loaded (the next switch-on links it again); the sk_msg link stays
    expect(existsSync(paths.prog(root.path, BYPASS_RECV_PROGRAM.name))).to.equal(true);
    expect(linkProgOf(BYPASS_PROGRAM.name)).to.not.equal(null);
  });

  it("upgradePrograms under a live bypassed connection: the node link gets the new program, bytes stay intact", async () => {
    const both = () => [linkProgOf(BYPASS_PROGRAM.name), linkProgOf(BYPASS_RECV_PROGRAM.name)];
    const seen: (number | null)[][] = [];
    const upgrade = async () => {
      await new Promise((r) => setTimeout(r, 500));
      seen.push(both());
      const report = upgradePrograms(root.opts);
      expect(report.bypassLinkUpdated).to.equal(true);
      seen.push(both());
    };
    const r = await compare(podToPod4, "paced", "40", upgrade);
    expect(r.server.receivedSha).to.equal(r.client.sentSha);
    // each upgrade (TCP run, bypass run) put a new program into the sk_msg link, in place;
    // the flow control's tracepoint link exists only in the bypass run, where the upgrade
    // replaced it by a new pin
    expect(seen[1][0]).to.not.equal(seen[0][0]);
    expect([seen[0][1], seen[1][1]], "no tracepoint link with the switch off").to.deep.equal([
      null,
      null,
    ]);
    expect(seen[3][0]).to.not.equal(seen[2][0]);
    expect(seen[2][1]).to.not.equal(null);
    expect(seen[3][1]).to.not.equal(seen[2][1]);
    const pinned = Program.openPinned(paths.prog(root.path, BYPASS_RECV_PROGRAM.name));
    try {
      expect(seen[3][1], "the new link runs the pinned program").to.equal(pinned.info().id);
    } finally {
      pinned.close();
    }
  });

  it("uninstall (removeDatapath) with a live bypassed connection: it keeps flowing, intact", async () => {
    let joined = -1;
    let gone = false;
    const uninstall = async () => {
      for (let i = 0; i < 30 && mapEntryCounts(root.opts)[MAP_NAMES.bypass] < 2; i++)
        await new Promise((r) => setTimeout(r, 100));
      joined = mapEntryCounts(root.opts)[MAP_NAMES.bypass];
      removeDatapath(root.opts);
      gone = !existsSync(paths.datapath(root.path));
    };
    try {
      const tcp = await run(podToPod4, "paced", "60", false, uninstall);
      ensureSharedPrograms(root.opts);
      attachBoth();
      const bypassed = await run(podToPod4, "paced", "60", true, uninstall);
      expect(joined, "both ends were in the sockhash at the uninstall").to.equal(2);
      expect(gone, "every pin was removed").to.equal(true);
      expect(bypassed.server).to.deep.equal(tcp.server);
      expect(bypassed.server.receivedSha).to.equal(bypassed.client.sentSha);
    } finally {
      ensureSharedPrograms(root.opts);
      attachBoth();
    }
  });
});
