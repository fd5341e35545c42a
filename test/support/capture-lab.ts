// Runs capture scenarios (capture-scenarios.ts) under a capture mode and reports, probe by
// probe, where each connection landed against where it should have.
//
// The lab: one node netns, two unmeshed pods ("peer", "peer2") with app listeners, app
// listeners on the node (reached through the meshed pod's second interface net1), and for
// each scenario a fresh meshed pod ("pod", dual stack, fixed addresses from LAB_ADDRESSES).
// Per scenario: create the pod, `mode.setup(pod, settings)` (like a CNI ADD: before any
// process runs), start the pod's proxy listeners (as the proxy uid/gid) and app listeners,
// run the probes, then `mode.teardown()` and destroy the pod. Scenarios in one lab run one
// at a time.

import type { RedirectSettings } from "../../mesh/redirect-settings";
import {
  type CaptureScenario,
  type ClientRef,
  type Endpoint,
  type Family,
  type HostRef,
  LAB_ADDRESSES,
  type ListenerRef,
  NET1_PREFIX,
  type Role,
  type ScenarioProbe,
} from "./capture-scenarios";
import { createNode, createPod, type Node, type Pod } from "./pod";
import type { RunAs, Sandbox } from "./sandbox";
import {
  hostPort,
  type ListenerSpec,
  type ProbeListeners,
  type ProbeResult,
  probe,
  startListeners,
} from "./sockprobe";

/** A way of capturing a pod's traffic: the iptables baseline, waggle, ... */
export interface CaptureMode {
  readonly name: string;
  /** Installs capture for a freshly created pod, before any process runs in it (CNI ADD). */
  setup(pod: Pod, settings: RedirectSettings): Promise<void>;
  /** Removes what setup installed (CNI DEL); the pod still exists. */
  teardown(): Promise<void>;
  /**
   * What SO_ORIGINAL_DST gives for connections the mode did not redirect, where the scenario
   * expects "connection-dst" (the iptables answer). Default "connection-dst"; a mode that
   * deliberately answers ENOENT there (the contract's wording) says so here.
   */
  readonly untouchedOriginalDst?: "connection-dst" | "ENOENT";
}

export const APP_UID = 1000;

/** Resolves a symbolic address for a family. */
export function labAddress(host: HostRef, family: Family): string {
  const address = LAB_ADDRESSES[host][family];
  if (address === undefined) throw new Error(`${host} has no IPv${family} address in the lab`);
  return address;
}

function endpoint(e: Endpoint, family: Family): string {
  return hostPort(labAddress(e.host, family), e.port);
}

/** The uid/gid/groups a client reference means for a pod with these settings. */
export function clientIdentity(client: ClientRef, settings: RedirectSettings): Required<RunAs> {
  switch (client) {
    case "app":
      return { uid: APP_UID, gid: APP_UID, groups: [] };
    case "root":
      return { uid: 0, gid: 0, groups: [] };
    case "proxy":
      return { uid: settings.proxyUid, gid: settings.proxyGid, groups: [] };
    case "proxyGid":
      return { uid: APP_UID, gid: settings.proxyGid, groups: [] };
    case "proxyGroup":
      return { uid: APP_UID, gid: APP_UID, groups: [settings.proxyGid] };
    case "istioDefault":
      return { uid: 1337, gid: 1337, groups: [] };
  }
}

type Binding = [kind: "tcp" | "udp", ports: number[]];

/** Listeners of a sandbox: name -> protocol and ports, bound on both families' wildcard or given hosts. */
function listenerSpecs(
  name: ListenerRef,
  bindings: Binding[],
  hosts: Record<Family, string>,
): ListenerSpec[] {
  return bindings.flatMap(([proto, ports]) =>
    ports.flatMap((port) =>
      ([4, 6] as const).map((f) => ({ name, proto, addr: hostPort(hosts[f], port) })),
    ),
  );
}

const ANY: Record<Family, string> = { 4: "0.0.0.0", 6: "::" };
const LOOPBACK: Record<Family, string> = { 4: "127.0.0.1", 6: "::1" };

/** Remote app listeners (peer, peer2, node) answer on these. */
const REMOTE_APP: Binding[] = [
  ["tcp", [80, 53, 8080, 15008, 15020]],
  ["udp", [53, 9999]],
];

/** The meshed pod's proxy listeners, as the proxy uid/gid, like Envoy and pilot-agent bind them. */
const PROXY_LISTENERS: ListenerSpec[] = [
  ...listenerSpecs("pod:outbound", [["tcp", [15001]]], LOOPBACK),
  ...listenerSpecs("pod:inbound", [["tcp", [15006]]], ANY),
  ...listenerSpecs(
    "pod:dns",
    [
      ["tcp", [15053]],
      ["udp", [15053]],
    ],
    LOOPBACK,
  ),
  ...listenerSpecs("pod:tunnel", [["tcp", [15008]]], ANY),
  ...listenerSpecs("pod:agent", [["tcp", [15020, 15021, 15090]]], ANY),
];

/** The meshed pod's app listeners (root, so port 53 binds). */
const APP_LISTENERS: ListenerSpec[] = listenerSpecs(
  "pod:app",
  [
    ["tcp", [8080, 9090, 53]],
    ["udp", [53, 9999]],
  ],
  ANY,
);

const REMOTE_LISTENERS: ListenerSpec[] = (["peer", "peer2", "node"] as const).flatMap((role) =>
  listenerSpecs(`${role}:app`, REMOTE_APP, ANY),
);

/** Every listener of the lab (meshed pod and remotes), for checking scenario data. */
export const LAB_LISTENERS: readonly ListenerSpec[] = [
  ...PROXY_LISTENERS,
  ...APP_LISTENERS,
  ...REMOTE_LISTENERS,
];

/**
 * Checks a scenario against the lab before running it: addresses resolve in its family,
 * expected listeners exist, an untouched probe's listener really binds the destination
 * port, UDP probes say where the reply comes from. Throws naming the first problem.
 */
export function validateScenario(scenario: CaptureScenario): void {
  for (const p of scenario.probes) {
    const where = `${scenario.name}: ${p.as}@${p.from} ${p.proto} -> ${p.to.host}:${p.to.port}`;
    labAddress(p.to.host, scenario.family);
    if (p.bind) labAddress(p.bind, scenario.family);
    const e = p.expect;
    if (e.lands === "refused" || e.lands === "timeout") continue;
    const bound = LAB_LISTENERS.filter((l) => l.name === e.lands && l.proto === p.proto);
    if (bound.length === 0)
      throw new Error(`${where}: no ${p.proto} listener ${e.lands} in the lab`);
    const untouched =
      p.proto === "udp" ? e.lands.endsWith(":app") : typeof e.originalDst !== "object";
    if (untouched && !bound.some((l) => l.addr.endsWith(`:${p.to.port}`))) {
      throw new Error(`${where}: ${e.lands} does not listen on port ${p.to.port}`);
    }
    if (p.proto === "udp" && !e.replyFrom) throw new Error(`${where}: a UDP probe needs replyFrom`);
    if (p.proto === "tcp" && !e.originalDst)
      throw new Error(`${where}: a TCP probe needs originalDst`);
  }
}

/** The node, the unmeshed pods and their listeners; shared by the scenarios of a test file. */
export class CaptureLab {
  private constructor(
    readonly node: Node,
    readonly peer: Pod,
    readonly peer2: Pod,
    private readonly listeners: ProbeListeners[],
  ) {}

  static async create(): Promise<CaptureLab> {
    const node = await createNode({ label: "capture lab node" });
    try {
      const peer = await createPod({
        node,
        label: "peer",
        ipv4: labAddress("peer", 4),
        ipv6: labAddress("peer", 6),
      });
      const peer2 = await createPod({
        node,
        label: "peer2",
        ipv4: labAddress("peer2", 4),
        ipv6: labAddress("peer2", 6),
      });
      const listeners = await Promise.all([
        startListeners(
          peer,
          REMOTE_LISTENERS.filter((l) => l.name === "peer:app"),
        ),
        startListeners(
          peer2,
          REMOTE_LISTENERS.filter((l) => l.name === "peer2:app"),
        ),
        startListeners(
          node,
          REMOTE_LISTENERS.filter((l) => l.name === "node:app"),
        ),
      ]);
      return new CaptureLab(node, peer, peer2, listeners);
    } catch (e) {
      await node.destroy();
      throw e;
    }
  }

  /** Creates the meshed pod of a scenario: fixed lab addresses, plus net1 to the node. */
  createMeshedPod(): Promise<Pod> {
    const net1 = (f: Family) => ({
      pod: `${labAddress("net1Pod", f)}/${NET1_PREFIX[f]}`,
      node: `${labAddress("net1Node", f)}/${NET1_PREFIX[f]}`,
    });
    return createPod({
      node: this.node,
      label: "meshed pod",
      ipv4: labAddress("pod", 4),
      ipv6: labAddress("pod", 6),
      extraInterfaces: [{ name: "net1", ipv4: net1(4), ipv6: net1(6) }],
    });
  }

  /** Stops the listeners and removes the pods and the node. */
  async destroy(): Promise<void> {
    await Promise.all(this.listeners.map((l) => l.stop()));
    await this.peer.destroy();
    await this.peer2.destroy();
    await this.node.destroy();
  }
}

/** One probe's verdict. */
export interface ProbeOutcome {
  probe: ScenarioProbe;
  result: ProbeResult;
  /** Empty when the probe behaved as expected. */
  problems: string[];
}

export interface ScenarioResult {
  scenario: CaptureScenario;
  mode: string;
  outcomes: ProbeOutcome[];
  ok: boolean;
  /** mode.setup wall time, ms. */
  setupMs: number;
}

/** Compares one probe result with its expectation; returns the differences. */
export function judgeProbe(
  p: ScenarioProbe,
  r: ProbeResult,
  family: Family,
  mode: CaptureMode,
): string[] {
  const problems: string[] = [];
  const e = p.expect;
  if (e.lands === "refused" || e.lands === "timeout") {
    if (r.result !== e.lands)
      problems.push(`expected ${e.lands}, got ${r.result}${r.errno ? ` ${r.errno}` : ""}`);
    return problems;
  }
  const okResult = p.proto === "tcp" ? "connected" : "replied";
  if (r.result !== okResult || !r.reply) {
    problems.push(`expected to land on ${e.lands}, got ${r.result}${r.errno ? ` ${r.errno}` : ""}`);
    return problems;
  }
  const reply = r.reply;
  if (reply.listener !== e.lands)
    problems.push(`expected to land on ${e.lands}, landed on ${reply.listener} (${reply.local})`);
  if (e.replyFrom && r.replyFrom !== endpoint(e.replyFrom, family)) {
    problems.push(
      `expected the reply from ${endpoint(e.replyFrom, family)}, got it from ${r.replyFrom}`,
    );
  }
  if (e.originalDst && reply.event === "accept") {
    const got = reply.originalDst ?? reply.originalDstError;
    let want: string;
    if (e.originalDst === "ENOENT") want = "ENOENT";
    else if (e.originalDst === "connection-dst") {
      want = (mode.untouchedOriginalDst ?? "connection-dst") === "ENOENT" ? "ENOENT" : reply.local;
    } else want = endpoint(e.originalDst, family);
    if (got !== want) problems.push(`expected SO_ORIGINAL_DST ${want}, got ${got}`);
  }
  return problems;
}

function sandboxOf(role: Role, pod: Pod, lab: CaptureLab): Sandbox {
  return { pod, peer: lab.peer, peer2: lab.peer2, node: lab.node }[role];
}

/** Runs a scenario's probes; probes from one place as one identity share one client process. */
async function runProbes(
  scenario: CaptureScenario,
  pod: Pod,
  lab: CaptureLab,
): Promise<ProbeResult[]> {
  const groups = new Map<string, number[]>();
  scenario.probes.forEach((p, i) => {
    const key = `${p.from}/${p.as}`;
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  const results: ProbeResult[] = new Array(scenario.probes.length);
  for (const indexes of groups.values()) {
    const first = scenario.probes[indexes[0]];
    const specs = indexes.map((i) => {
      const p = scenario.probes[i];
      return {
        proto: p.proto,
        to: endpoint(p.to, scenario.family),
        ...(p.bind ? { bind: labAddress(p.bind, scenario.family) } : {}),
      };
    });
    const got = await probe(
      sandboxOf(first.from, pod, lab),
      specs,
      clientIdentity(first.as, scenario.settings),
    );
    indexes.forEach((probeIndex, k) => {
      results[probeIndex] = got[k];
    });
  }
  return results;
}

/**
 * Runs one scenario under a mode in a lab (a temporary lab when none is given) and returns
 * the verdict of every probe. Always tears the mode and the pod down.
 */
export async function runScenario(
  mode: CaptureMode,
  scenario: CaptureScenario,
  lab?: CaptureLab,
): Promise<ScenarioResult> {
  if (!lab) {
    const ownLab = await CaptureLab.create();
    try {
      return await runScenario(mode, scenario, ownLab);
    } finally {
      await ownLab.destroy();
    }
  }
  validateScenario(scenario);
  const pod = await lab.createMeshedPod();
  try {
    const start = process.hrtime.bigint();
    await mode.setup(pod, scenario.settings);
    const setupMs = Number(process.hrtime.bigint() - start) / 1e6;
    try {
      const proxy = clientIdentity("proxy", scenario.settings);
      const listeners = await Promise.all([
        startListeners(pod, PROXY_LISTENERS, proxy),
        startListeners(pod, APP_LISTENERS),
      ]);
      const results = await runProbes(scenario, pod, lab);
      await Promise.all(listeners.map((l) => l.stop()));
      const outcomes = scenario.probes.map((p, i) => ({
        probe: p,
        result: results[i],
        problems: judgeProbe(p, results[i], scenario.family, mode),
      }));
      return {
        scenario,
        mode: mode.name,
        outcomes,
        ok: outcomes.every((o) => o.problems.length === 0),
        setupMs,
      };
    } finally {
      await mode.teardown();
    }
  } finally {
    await pod.destroy();
  }
}

/** A readable description of a probe: "app(1000/1000) tcp pod -> peer:80 bind 127.0.0.6". */
export function describeProbe(p: ScenarioProbe, family: Family): string {
  const bind = p.bind ? ` bind ${labAddress(p.bind, family)}` : "";
  return `${p.as}@${p.from} ${p.proto} -> ${p.to.host} ${endpoint(p.to, family)}${bind}`;
}

/** The failures of a scenario result, one line per failing probe (empty when it passed). */
export function describeFailures(result: ScenarioResult): string {
  return result.outcomes
    .filter((o) => o.problems.length > 0)
    .map((o) => `${describeProbe(o.probe, result.scenario.family)}: ${o.problems.join("; ")}`)
    .join("\n");
}
