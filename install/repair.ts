// Early-pod repair: meshed pods on this node that started before waggle was in the CNI chain
// (no waggle state for them) are attached in place, without a restart. The pods come from the
// API (this node's only: fieldSelector spec.nodeName); whether one is meshed and how it is
// redirected is the plugin's own decision (mesh/mesh-decision.ts). Its cgroup is found by UID
// under the cgroup2 mount, its netns through a process in that cgroup (/proc/<pid>/ns/net,
// then the runtime's bind mount of the same namespace), its sandbox ID from the cgroup's
// children, so the runtime's DEL for the pod later finds and removes exactly what is
// attached here.

import { promises as fs, type Stats } from "node:fs";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import type { Logger } from "../base/log";
import { podFactsFromPod } from "../mesh/k8s-pod";
import { decideMesh } from "../mesh/mesh-decision";
import { resolvePodCgroup } from "../mesh/pod-cgroup";
import type { RedirectSettings } from "../mesh/redirect-settings";
import type { InstallDatapath } from "./datapath-port";
import type { InstallMetrics } from "./metrics";

/** The pod's interface in its netns: Kubernetes runtimes always name it eth0. */
export const POD_IFNAME = "eth0";

export type RepairDecision = { skip: string } | { settings: RedirectSettings };

/**
 * Whether a running pod gets repaired, and with which settings: decideMesh, as the plugin's ADD
 * decides, on a pod that is running, not terminating and not on the host's network. An
 * invalid annotation skips the pod (the plugin would fail its ADD with code 101).
 */
export async function repairDecision(
  pod: V1Pod,
  excludeNamespaces: readonly string[],
  warn: (message: string) => void = () => {},
): Promise<RepairDecision> {
  const meta = pod.metadata ?? {};
  if (pod.spec?.hostNetwork) return { skip: "host network" };
  if (meta.deletionTimestamp) return { skip: "terminating" };
  if (pod.status?.phase !== "Running") return { skip: `phase ${pod.status?.phase ?? "unknown"}` };
  try {
    const decision = await decideMesh({
      pod: { namespace: meta.namespace, name: meta.name, uid: meta.uid },
      excludeNamespaces,
      readFacts: () => podFactsFromPod(pod),
      warn,
    });
    return "skip" in decision ? { skip: decision.skip.reason } : { settings: decision.settings };
  } catch (err) {
    return { skip: (err as Error).message };
  }
}

/** The pod's addresses (status.podIPs, else status.podIP). */
export function podIPs(pod: V1Pod): string[] {
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => !!ip);
  if (ips.length > 0) return ips;
  return pod.status?.podIP ? [pod.status.podIP] : [];
}

const CONTAINER_ID = /([0-9a-f]{64})/;

/**
 * The sandbox container's ID: the one child cgroup of the pod cgroup named after a container
 * ID (cgroupfs "<id>", systemd "cri-containerd-<id>.scope", "crio-<id>.scope") that is not
 * one of the pod's containers. undefined when that is not exactly one.
 */
export function sandboxIdOf(childCgroups: readonly string[], pod: V1Pod): string | undefined {
  const known = new Set(
    [
      ...(pod.status?.containerStatuses ?? []),
      ...(pod.status?.initContainerStatuses ?? []),
      ...(pod.status?.ephemeralContainerStatuses ?? []),
    ]
      .map((s) => s.containerID?.replace(/^[a-z-]+:\/\//, ""))
      .filter((id): id is string => !!id),
  );
  const candidates = childCgroups
    .map((name) => CONTAINER_ID.exec(name)?.[1])
    .filter((id): id is string => id !== undefined && !known.has(id));
  const unique = [...new Set(candidates)];
  return unique.length === 1 ? unique[0] : undefined;
}

async function childDirs(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory()).map((e) => e.name);
}

/** PIDs in a cgroup and its descendants (PIDs of other PID namespaces read as 0: skipped). */
async function cgroupPids(dir: string, depth = 3): Promise<number[]> {
  const pids: number[] = [];
  try {
    const text = await fs.readFile(join(dir, "cgroup.procs"), "utf8");
    for (const line of text.split("\n")) {
      const pid = Number(line);
      if (Number.isInteger(pid) && pid > 0) pids.push(pid);
    }
  } catch {
    return pids;
  }
  if (depth > 0) {
    for (const child of await childDirs(dir).catch(() => [])) {
      pids.push(...(await cgroupPids(join(dir, child), depth - 1)));
    }
  }
  return pids;
}

const sameFile = (a: Stats, b: Stats) => a.dev === b.dev && a.ino === b.ino;

/**
 * The pod's network namespace: through a process in its cgroup (sandbox first), as the
 * runtime's bind mount in `netnsDir` when there is one (a path that stays valid for the
 * pod's lifetime and that the runtime's DEL names too), else the /proc path.
 */
export async function findPodNetns(
  podCgroup: string,
  sandboxId: string | undefined,
  procRoot: string,
  netnsDir: string,
): Promise<string> {
  const children = await childDirs(podCgroup);
  const sandboxDir = sandboxId ? children.find((c) => c.includes(sandboxId)) : undefined;
  const pids = [
    ...(sandboxDir ? await cgroupPids(join(podCgroup, sandboxDir), 0) : []),
    ...(await cgroupPids(podCgroup)),
  ];
  // The installer runs in the host's network namespace (hostNetwork): a process sharing it
  // belongs to no pod network.
  const hostNetns = await fs.stat("/proc/self/ns/net");
  for (const pid of pids) {
    const path = join(procRoot, String(pid), "ns", "net");
    let ns: Stats;
    try {
      ns = await fs.stat(path);
    } catch {
      continue; // exited meanwhile
    }
    if (sameFile(ns, hostNetns)) continue;
    for (const name of await fs.readdir(netnsDir).catch(() => [] as string[])) {
      const mounted = await fs.stat(join(netnsDir, name)).catch(() => undefined);
      if (mounted && sameFile(mounted, ns)) return join(netnsDir, name);
    }
    return path;
  }
  throw new Error(`no process of ${podCgroup} is in a network namespace of its own`);
}

export interface RepairOptions {
  bpfRoot: string;
  excludeNamespaces: readonly string[];
  cgroupRoot: string;
  procRoot: string;
  netnsDir: string;
  datapath: InstallDatapath;
  log: Logger;
  /** This node's pods from the API server. */
  listNodePods: () => Promise<V1Pod[]>;
}

export interface RepairReport {
  attached: string[];
  alreadyAttached: string[];
  skipped: Array<{ pod: string; reason: string }>;
  failed: Array<{ pod: string; error: string }>;
}

/** One pass over this node's pods. Throws only when the pods can't be listed. */
export async function repairEarlyPods(opts: RepairOptions): Promise<RepairReport> {
  const report: RepairReport = { attached: [], alreadyAttached: [], skipped: [], failed: [] };
  const pods = await opts.listNodePods();
  const records = await opts.datapath.listPods({ bpfRoot: opts.bpfRoot });
  const attachedUids = new Set(records.map((r) => r.pod?.uid).filter((u) => u !== undefined));
  const attachedNetns = new Set(records.map((r) => r.netnsCookie));
  for (const pod of pods) {
    const meta = pod.metadata ?? {};
    const name = `${meta.namespace}/${meta.name}`;
    const decision = await repairDecision(pod, opts.excludeNamespaces, (m) =>
      opts.log.warn(m, { pod: name }),
    );
    if ("skip" in decision) {
      report.skipped.push({ pod: name, reason: decision.skip });
      continue;
    }
    if (meta.uid && attachedUids.has(meta.uid)) {
      report.alreadyAttached.push(name);
      continue;
    }
    try {
      const cgroupPath = resolvePodCgroup({ podUid: meta.uid, cgroupRoot: opts.cgroupRoot });
      const sandboxId = sandboxIdOf(await childDirs(cgroupPath), pod);
      const netnsPath = await findPodNetns(cgroupPath, sandboxId, opts.procRoot, opts.netnsDir);
      if (attachedNetns.has(await opts.datapath.netnsCookieOf(netnsPath))) {
        report.alreadyAttached.push(name);
        continue;
      }
      // Without the sandbox ID the runtime's DEL won't match this attachment; CNI GC and
      // the datapath's cleanup of vanished pods remove it then.
      const containerId = sandboxId ?? `waggle-early-${meta.uid}`;
      if (!sandboxId)
        opts.log.warn("sandbox container ID not found; attaching under a made-up ID", {
          pod: name,
          containerId,
        });
      await opts.datapath.attachPod(
        {
          containerId,
          netnsPath,
          ifname: POD_IFNAME,
          cgroupPath,
          podIPs: podIPs(pod),
          settings: decision.settings,
          pod: { namespace: meta.namespace ?? "", name: meta.name ?? "", uid: meta.uid },
        },
        { bpfRoot: opts.bpfRoot },
      );
      report.attached.push(name);
      opts.log.info("early pod attached", { pod: name, containerId, netnsPath, cgroupPath });
    } catch (err) {
      report.failed.push({ pod: name, error: (err as Error).message });
      opts.log.error("early pod not attached", { pod: name, error: (err as Error).message });
    }
  }
  return report;
}

/** The pods of one node, through the kubeconfig the installer wrote (one request). */
export async function listNodePods(
  kubeconfigPath: string,
  nodeName: string,
  timeoutMs: number,
): Promise<V1Pod[]> {
  const k8s = require("@kubernetes/client-node") as typeof import("@kubernetes/client-node");
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const api = kc.makeApiClient(k8s.CoreV1Api);
  const list = await api.listPodForAllNamespaces(
    { fieldSelector: `spec.nodeName=${nodeName}` },
    {
      middleware: [
        {
          pre: (ctx) => {
            ctx.setSignal(AbortSignal.timeout(timeoutMs));
            return new k8s.Observable(Promise.resolve(ctx));
          },
          post: (ctx) => new k8s.Observable(Promise.resolve(ctx)),
        },
      ],
      middlewareMergeStrategy: "append",
    },
  );
  return list.items;
}

export interface EarlyPodRepairerOptions extends RepairOptions {
  metrics: InstallMetrics;
  /** Delay after a failed listing: doubles from `minMs` up to `maxMs`. */
  listRetry?: { minMs: number; maxMs: number };
  /** Passes again after this long while some pod failed, at most `times` more. */
  podRetry?: { afterMs: number; times: number };
}

/**
 * Runs the repair once the entry is in place (trigger()): from then on every new pod goes
 * through the plugin, so the pods listed are all there is to repair. Retries the listing
 * until the API answers, and pods that failed a few more times (a pod still starting).
 */
export class EarlyPodRepairer {
  private started = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private listDelayMs = 0;
  private podRetriesLeft: number;
  private lastListError?: string;
  /** The last completed pass (tests, logs). */
  report?: RepairReport;
  /** True once a pass listed the pods and nothing is left to retry. */
  done = false;

  constructor(private readonly opts: EarlyPodRepairerOptions) {
    this.podRetriesLeft = opts.podRetry?.times ?? 3;
  }

  trigger(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Resolves once the repair is done (or stopped). */
  async settled(): Promise<void> {
    while (!this.done && !this.stopped) {
      await (this.running ?? new Promise((r) => setTimeout(r, 20)));
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pass().finally(() => {
        this.running = undefined;
      });
    }, ms);
  }

  private async pass(): Promise<void> {
    const { log } = this.opts;
    let report: RepairReport;
    try {
      report = await repairEarlyPods(this.opts);
    } catch (err) {
      const { minMs, maxMs } = this.opts.listRetry ?? { minMs: 2000, maxMs: 60_000 };
      this.listDelayMs = Math.min(maxMs, this.listDelayMs * 2 || minMs);
      const message = (err as Error).message;
      if (message !== this.lastListError) {
        this.lastListError = message;
        log.warn("cannot list this node's pods; early-pod repair retries", {
          error: message,
          retryInMs: this.listDelayMs,
        });
      }
      this.schedule(this.listDelayMs);
      return;
    }
    this.report = report;
    this.opts.metrics.earlyPodRepairs.inc(report.attached.length);
    log.info("early-pod repair pass", {
      attached: report.attached,
      alreadyAttached: report.alreadyAttached.length,
      skipped: report.skipped.length,
      failed: report.failed,
    });
    if (report.failed.length > 0 && this.podRetriesLeft > 0) {
      this.podRetriesLeft--;
      this.schedule(this.opts.podRetry?.afterMs ?? 5000);
      return;
    }
    this.done = true;
  }
}
