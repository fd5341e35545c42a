// The reliability workloads, shared by the short suite (test/reliability/*.test.ts, in
// `npm test`) and the long one (`npm run soak`, test/reliability/soak.ts): fuzzed CNI calls,
// ADD/DEL churn (sequential and concurrent), and kill -9 at random points of ADD and DEL, all
// through dist/waggle against real pods (netns + cgroup) and the test's own bpf root. Every
// workload returns what it saw (outcomes, latencies, violations) instead of stopping at the
// first problem, so the soak can count; the tests assert the counts are zero.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import {
  type CniRun,
  type CniRunOptions,
  cgroupPathOf,
  describeRun,
  gc,
  MESHED_POD_ANNOTATIONS,
  type PodRequest,
  podAttachments,
  podCommand,
  podConf,
  podEnv,
  REPO_ROOT,
  type RootState,
  rootState,
  runWaggle,
} from "./cni-binary";
import { runSync } from "./command";
import { uniqueName } from "./names";
import { createNode, createPod, type Node, type Pod } from "./pod";
import { track } from "./resources";
import { BpfRoot } from "./waggle-mode";

/** A node with pods, a bpf root and a scratch dir (log files, FIFOs, non-bpffs roots). */
export class ReliabilityBench {
  readonly root = new BpfRoot();
  readonly scratch: string;
  readonly pods: Pod[] = [];
  private readonly scratchTracked;
  baseline: RootState = { podPins: [], mapEntries: {} };

  private constructor(readonly node: Node) {
    mkdirSync(join(REPO_ROOT, "build"), { recursive: true });
    this.scratch = mkdtempSync(join(REPO_ROOT, "build", "reliability-"));
    const scratch = this.scratch;
    this.scratchTracked = track(`reliability scratch ${scratch}`, () =>
      rmSync(scratch, { recursive: true, force: true }),
    );
    mkdirSync(join(scratch, "a-directory"));
    runSync("mkfifo", [join(scratch, "fifo-without-reader")]);
    writeFileSync(join(scratch, "a-file"), "not a netns\n");
  }

  /** A node with `pods` pods and the shared programs loaded into the root (by a real ADD). */
  static async create(pods = 1): Promise<ReliabilityBench> {
    const bench = new ReliabilityBench(await createNode({ label: "reliability node" }));
    try {
      for (let i = 0; i < pods; i++) bench.pods.push(await createPod({ node: bench.node }));
      const req = bench.request(bench.pods[0]);
      for (const command of ["ADD", "DEL"] as const) {
        // the first ADD loads the shared programs: the verifier takes long on a busy machine
        const r = await podCommand(command, req, { timeoutMs: 120_000 });
        if (r.outcome !== "ok") throw new Error(`priming ${command}: ${describeRun(r)}`);
      }
      bench.baseline = rootState(bench.root.path);
    } catch (e) {
      await bench.destroy();
      throw e;
    }
    return bench;
  }

  /** A meshed pod's request with a fresh container id. */
  request(pod: Pod, over: Partial<PodRequest> = {}): PodRequest {
    return { pod, containerId: uniqueName("k"), bpfRoot: this.root.path, ...over };
  }

  /** What differs from the baseline (pins, map entries) plus any program left on the pods. */
  leaks(pods: readonly Pod[] = this.pods): string[] {
    const now = rootState(this.root.path);
    const found: string[] = [];
    const before = new Set(this.baseline.podPins);
    for (const pin of now.podPins) if (!before.has(pin)) found.push(`pin ${pin}`);
    for (const [map, n] of Object.entries(now.mapEntries)) {
      if (n !== this.baseline.mapEntries[map])
        found.push(`map ${map}: ${n} entries, ${this.baseline.mapEntries[map]} before`);
    }
    for (const pod of pods) for (const a of podAttachments(pod)) found.push(`${pod.name}: ${a}`);
    return found;
  }

  async destroy(): Promise<void> {
    for (const pod of this.pods) await pod.destroy();
    await this.node.destroy();
    this.root.destroy();
    this.scratchTracked.release();
  }
}

// ---------------------------------------------------------------------------------------------
// Fuzzing

/** One fuzzed invocation: the environment and stdin, as a runtime (or an attacker) could send. */
export interface FuzzCase {
  env: Record<string, string>;
  stdin: string;
}

const ANNOTATION_KEYS = [
  "sidecar.istio.io/status",
  "sidecar.istio.io/inject",
  "sidecar.istio.io/interceptionMode",
  "traffic.sidecar.istio.io/includeOutboundIPRanges",
  "traffic.sidecar.istio.io/excludeOutboundIPRanges",
  "traffic.sidecar.istio.io/includeOutboundPorts",
  "traffic.sidecar.istio.io/excludeOutboundPorts",
  "traffic.sidecar.istio.io/includeInboundPorts",
  "traffic.sidecar.istio.io/excludeInboundPorts",
  "traffic.sidecar.istio.io/excludeInterfaces",
];

/** Strings a tenant or a broken node could put anywhere. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom(
    "",
    " ",
    "*",
    "0",
    "-1",
    "65535",
    "65536",
    "99999999999999999999999",
    "1,,2",
    "1-65535",
    "0.0.0.0/0",
    "::/0",
    "10.0.0.0/33",
    "1.2.3.4/-1",
    "256.1.1.1/8",
    "fe80::1%eth0/64",
    "a".repeat(300),
    "\u0000",
    "../../..",
    "true",
    "null",
    "{}",
    "[]",
    "🐝",
    "REDIRECT",
    "TPROXY",
    "false",
  ),
  fc.array(fc.integer({ min: -5, max: 70_000 }), { maxLength: 60 }).map((a) => a.join(",")),
  fc
    .array(
      fc.tuple(fc.ipV4(), fc.integer({ min: -1, max: 40 })).map(([ip, len]) => `${ip}/${len}`),
      { maxLength: 30 },
    )
    .map((a) => a.join(",")),
  fc.array(fc.ipV6(), { maxLength: 5 }).map((a) => a.join(",")),
);

/** Any JSON value, hostile strings included. */
const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.jsonValue({ maxDepth: 3 }),
  fc.constant(null),
);

/** Annotations: the meshed pod's, with some keys set to hostile values or other JSON types. */
const annotations: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .dictionary(
        fc.oneof(fc.constantFrom(...ANNOTATION_KEYS), fc.string({ maxLength: 20 })),
        fc.oneof({ weight: 4, arbitrary: hostileString }, { weight: 1, arbitrary: hostileJson }),
        { maxKeys: 6 },
      )
      .map((d) => ({ ...MESHED_POD_ANNOTATIONS, ...d })),
  },
  { weight: 1, arbitrary: hostileJson },
);

/** Mostly the valid value; otherwise a hostile one or (sometimes) none at all. */
function weighted<T>(
  valid: fc.Arbitrary<T>,
  hostile: fc.Arbitrary<T>,
): fc.Arbitrary<T | undefined> {
  return fc.oneof(
    { weight: 12, arbitrary: valid },
    { weight: 3, arbitrary: hostile },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

/** Mostly the valid value, otherwise a hostile one; never absent (keys whose default is the node's). */
function present<T>(valid: fc.Arbitrary<T>, hostile: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: hostile });
}

/**
 * The environment without its undefined values (a variable the case leaves out) and without
 * NUL characters (an environment string is a C string: no caller can pass one).
 */
function withoutAbsent<T extends Record<string, unknown>>(o: T): Record<string, string> {
  return Object.fromEntries(
    Object.entries(o)
      .filter((e): e is [string, string] => typeof e[1] === "string")
      .map(([k, v]) => [k, v.replaceAll("\0", "")]),
  );
}

/**
 * Fuzzed calls against one pod of the bench. Values that could reach beyond the test are
 * never generated: bpf_root is the test's root or a path that is not on a bpffs, log_file is
 * "" or in the scratch dir, cgroupPath is the pod's or a missing child of it, CNI_NETNS the
 * pod's or a path that is not a netns (or this host's, which must be refused), and there is
 * no kubeconfig (no API server is ever contacted).
 */
export function fuzzCases(bench: ReliabilityBench, pod: Pod): fc.Arbitrary<FuzzCase> {
  const scratch = bench.scratch;
  const base = podConf(bench.request(pod));
  const command = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom("ADD", "DEL") },
    { weight: 2, arbitrary: fc.constantFrom("CHECK", "GC", "STATUS", "VERSION") },
    { weight: 1, arbitrary: hostileString },
  );
  const containerIdArb = fc.stringMatching(/^[a-z0-9]{1,64}$/);
  const containerId = weighted(
    containerIdArb,
    fc.oneof(hostileString, fc.constant("c".repeat(256))),
  );
  const env = fc
    .record({
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: weighted(
        fc.constant(pod.netnsPath),
        fc.constantFrom(
          "",
          "/proc/self/ns/net",
          "/run/netns/does-not-exist",
          "/",
          join(scratch, "a-file"),
          join(scratch, "a-directory"),
          "relative/netns",
        ),
      ),
      CNI_IFNAME: weighted(fc.constant("eth0"), hostileString),
      CNI_PATH: weighted(fc.constant("/usr/lib/cni"), hostileString),
      CNI_ARGS: weighted(
        fc.constant(podEnv("ADD", bench.request(pod)).CNI_ARGS),
        fc.oneof(
          hostileString,
          fc
            .array(
              fc.tuple(
                fc.oneof(
                  fc.constantFrom(
                    "IgnoreUnknown",
                    "K8S_POD_NAMESPACE",
                    "K8S_POD_NAME",
                    "K8S_POD_UID",
                    "K8S_POD_INFRA_CONTAINER_ID",
                  ),
                  fc.string({ maxLength: 10 }),
                ),
                hostileString,
              ),
              { maxLength: 8 },
            )
            .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join(";")),
        ),
      ),
    })
    .map(withoutAbsent);
  const prevResult = weighted<unknown>(
    fc.constant(VALID_PREV_RESULT),
    fc.oneof(
      hostileJson,
      fc.record({
        cniVersion: weighted(fc.constantFrom("1.0.0", "0.4.0", "0.3.1"), hostileString),
        interfaces: weighted<unknown>(
          fc.constant([{ name: "eth0", sandbox: pod.netnsPath }]),
          fc.array(fc.record({ name: hostileString, sandbox: hostileJson }), { maxLength: 3 }),
        ),
        ips: fc.array(
          fc.record(
            {
              address: weighted(fc.constant(`${pod.ipv4}/32`), hostileString),
              interface: fc.oneof(fc.integer({ min: -2, max: 5 }), hostileJson),
              gateway: hostileString,
            },
            { requiredKeys: ["address"] },
          ),
          { maxLength: 4 },
        ),
        routes: hostileJson,
        dns: hostileJson,
      }),
    ),
  );
  const runtimeConfig = weighted(
    fc.record({
      "io.kubernetes.cri.pod-annotations": annotations,
      cgroupPath: weighted(
        fc.constant(cgroupPathOf(pod)),
        fc.oneof(
          fc.stringMatching(/^[a-z0-9]{1,12}$/).map((c) => `${cgroupPathOf(pod)}/${c}`),
          fc.constantFrom("../../../../etc", "/../../etc/passwd"),
        ),
      ),
      portMappings: fc.option(hostileJson, { nil: undefined, freq: 4 }),
    }),
    hostileJson,
  );
  const conf = fc
    .record({
      cniVersion: weighted(
        fc.constantFrom("1.1.0", "1.0.0", "0.4.0", "0.3.1", "0.3.0"),
        fc.oneof(hostileString, fc.constantFrom("0.2.0", "9.9.9", "1.0")),
      ),
      name: weighted(fc.constant("k8s-pod-network"), hostileJson),
      type: weighted(fc.constant("waggle"), hostileJson),
      bpf_root: present<unknown>(
        fc.constant(bench.root.path),
        fc.constantFrom(join(scratch, "not-bpffs", "waggle"), "/proc/waggle-fuzz/waggle", 42, [
          "x",
        ]) as fc.Arbitrary<unknown>,
      ),
      log_file: present<unknown>(
        fc.constant(""),
        fc.constantFrom(
          join(scratch, "cni.log"),
          join(scratch, "a-directory"),
          join(scratch, "missing", "deeper", "cni.log"),
          join(scratch, "fifo-without-reader"),
          17,
        ) as fc.Arbitrary<unknown>,
      ),
      log_level: weighted(fc.constantFrom("error", "none", "debug"), hostileJson),
      prevResult,
      runtimeConfig,
      // now and then a key with a bad value or one waggle does not know
      extras: fc.option(
        fc.record(
          {
            log_max_size_mb: hostileJson,
            exclude_namespaces: hostileJson,
            ambient_enabled: hostileJson,
            extra: hostileJson,
          },
          { requiredKeys: [] },
        ),
        { nil: undefined, freq: 6 },
      ),
    })
    .map(({ extras, bpf_root, log_file, ...c }) => ({
      bpf_root,
      log_file,
      ...c,
      // the pod's own prevResult, in the config's version
      prevResult:
        c.prevResult === VALID_PREV_RESULT
          ? { ...(base.prevResult as object), cniVersion: c.cniVersion }
          : c.prevResult,
      ...extras,
    }));
  // bpf_root and log_file come first, and a cut config keeps them whole: no cut can leave an
  // object that parses with the node's defaults (or half a path) in their place.
  const keptPrefix = (c: { bpf_root: unknown; log_file: unknown }) =>
    JSON.stringify({ bpf_root: c.bpf_root, log_file: c.log_file }).length - 1;
  const stdin = fc.oneof(
    { weight: 12, arbitrary: conf.map((c) => JSON.stringify(c)) },
    // the same, cut short or with garbage after it
    {
      weight: 1,
      arbitrary: fc.tuple(conf, fc.nat(), hostileString).map(([c, cut, tail]) => {
        const s = JSON.stringify(c);
        const keep = keptPrefix(c);
        return `${s.slice(0, keep + (cut % (s.length - keep + 1)))}${tail}`;
      }),
    },
    // nested deeper than any config is (the limit is 64)
    {
      weight: 1,
      arbitrary: fc.integer({ min: 60, max: 5_000 }).map((depth) => {
        const nested = `${"[".repeat(depth)}${"]".repeat(depth)}`;
        return `{"cniVersion":"1.0.0","name":"n","type":"waggle","bpf_root":${JSON.stringify(bench.root.path)},"log_file":"","prevResult":{"cniVersion":"1.0.0","ips":${nested}}}`;
      }),
    },
    // bytes that are not a JSON object (one would be read with the node's default bpf_root)
    {
      weight: 1,
      arbitrary: fc.string({ unit: "binary", maxLength: 200 }).filter((b) => !parsesAsObject(b)),
    },
  );
  // A tenant's attack: a runtime's call in good order, the pod's annotations hostile.
  const validEnv = fc.constantFrom("ADD", "ADD", "ADD", "DEL", "CHECK").chain((command) =>
    containerIdArb.map((id) => ({
      ...podEnv(command, bench.request(pod, { containerId: id })),
    })),
  );
  const tenantCase = fc
    .record({
      env: validEnv,
      cniVersion: fc.constantFrom("1.1.0", "1.0.0", "0.4.0", "0.3.1"),
      annotations,
    })
    .map(({ env, cniVersion, annotations: a }) => ({
      env,
      stdin: JSON.stringify(
        podConf({ ...bench.request(pod), cniVersion, annotations: a as Record<string, unknown> }),
      ),
    }));
  return fc.oneof(
    { weight: 2, arbitrary: tenantCase },
    { weight: 3, arbitrary: fc.record({ env, stdin }) },
  );
}

/**
 * The cases every fuzz run starts with, whatever the seed: the pod's ADD in good order (it
 * attaches), and ADDs refused for four different reasons (an annotation no pod may carry: 101;
 * stdin that is not JSON: 6; a cniVersion no one speaks: 1; no CNI_CONTAINERID: 4). The random
 * cases reach both sides and several codes only by chance; these make the coverage certain.
 * fast-check counts them among the run's numRuns.
 */
export function anchorCases(bench: ReliabilityBench, pod: Pod): FuzzCase[] {
  const add = (containerId: string, annotations: Record<string, unknown>): FuzzCase => {
    const req = { ...bench.request(pod, { containerId }), annotations };
    return { env: podEnv("ADD", req), stdin: JSON.stringify(podConf(req)) };
  };
  const good = add("anchorattach", MESHED_POD_ANNOTATIONS);
  const { CNI_CONTAINERID: _, ...withoutContainerId } = good.env;
  return [
    good,
    add("anchorrefuse", {
      ...MESHED_POD_ANNOTATIONS,
      "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/33",
    }),
    { env: good.env, stdin: "{not json" },
    { env: good.env, stdin: JSON.stringify({ ...JSON.parse(good.stdin), cniVersion: "9.9.9" }) },
    { env: withoutContainerId, stdin: good.stdin },
  ];
}

/** Stands for the pod's own prevResult in the generators (filled in with the config's version). */
const VALID_PREV_RESULT = "(the pod's prevResult)";

function parsesAsObject(text: string): boolean {
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** A config over the 4 MiB stdin bound (built once: it is large). */
export function oversizedStdin(bench: ReliabilityBench, pod: Pod): string {
  const conf = podConf(bench.request(pod)) as Record<string, unknown>;
  return JSON.stringify({ ...conf, padding: "x".repeat(4 * 1024 * 1024) });
}

/**
 * How long one call may take before it counts as a hang: 30 s (an idle machine answers in
 * 50-100 ms; a 2-core machine shared by several test runs has taken 20 s), or
 * $WAGGLE_CALL_BOUND_MS.
 */
export const CALL_BOUND_MS = Number(process.env.WAGGLE_CALL_BOUND_MS ?? 30_000);

export interface CaseReport {
  run: CniRun;
  /** What broke the contract: a crash, a hang, a slow answer, a leak (empty when none). */
  violations: string[];
  /** Whether a clean-up DEL or GC had to remove an attachment the case made. */
  cleaned: boolean;
}

/**
 * Runs one fuzzed case, then checks: it ended within the bound with exit 0 or a documented CNI
 * error; a failed ADD left nothing; and after a clean-up DEL of the case's container (what
 * kubelet does after any ADD) nothing is left in the root or on the pod.
 */
export async function runFuzzCase(
  bench: ReliabilityBench,
  pod: Pod,
  c: FuzzCase,
  opts: CniRunOptions & { boundMs?: number } = {},
): Promise<CaseReport> {
  const boundMs = opts.boundMs ?? CALL_BOUND_MS;
  const run = await runWaggle(c.env, c.stdin, { timeoutMs: boundMs, cwd: bench.scratch, ...opts });
  const violations: string[] = [];
  if (run.outcome === "crash" || run.outcome === "hang") violations.push(describeRun(run));
  const isAdd = c.env.CNI_COMMAND === "ADD";
  if (isAdd && run.outcome !== "ok") {
    for (const leak of bench.leaks([pod])) violations.push(`failed ADD left ${leak}`);
  }
  let cleaned = false;
  if (bench.leaks([pod]).length > 0) {
    cleaned = true;
    const id = c.env.CNI_CONTAINERID ?? "";
    const del = await podCommand("DEL", bench.request(pod, { containerId: id }));
    if (del.outcome !== "ok") violations.push(`clean-up DEL of ${id}: ${describeRun(del)}`);
    const left = bench.leaks([pod]);
    if (left.length > 0) {
      violations.push(...left.map((l) => `after DEL: ${l}`));
      await gc(bench.root.path); // so the next case starts clean
    }
  }
  return { run, violations, cleaned };
}

// ---------------------------------------------------------------------------------------------
// Churn and kills

export interface CycleStats {
  addMs: number[];
  delMs: number[];
  violations: string[];
}

function emptyStats(): CycleStats {
  return { addMs: [], delMs: [], violations: [] };
}

/**
 * How long one call of a churn lane may take before it counts as a hang: lanes share the
 * machine's CPUs, so a call waits for the others' (100 lanes on 2 cores: ADD p50 13.7 s,
 * p99 26 s, each call about 130 ms of CPU). 1.2 s per lane, and never under 20 s.
 */
export const churnBoundMs = (concurrency: number) => Math.max(20_000, concurrency * 1_200);

/** One ADD (checked attached) and DEL (checked gone) of a fresh container on a pod. */
async function addDelCycle(
  bench: ReliabilityBench,
  pod: Pod,
  stats: CycleStats,
  timeoutMs: number,
): Promise<void> {
  const req = bench.request(pod);
  const add = await podCommand("ADD", req, { timeoutMs });
  if (add.outcome !== "ok") stats.violations.push(`ADD: ${describeRun(add)}`);
  else {
    stats.addMs.push(add.ms);
    const attached = podAttachments(pod).length;
    if (attached !== 11) stats.violations.push(`ADD left ${attached} programs on the pod, not 11`);
  }
  const del = await podCommand("DEL", req, { timeoutMs });
  if (del.outcome !== "ok") stats.violations.push(`DEL: ${describeRun(del)}`);
  else stats.delMs.push(del.ms);
  const left = podAttachments(pod);
  if (left.length > 0) stats.violations.push(`after DEL ${pod.name} still has ${left.join(", ")}`);
}

/**
 * `cycles` ADD/DEL cycles spread over the bench's first `concurrency` pods, each pod running
 * its cycles one after the other and the pods at the same time. The root is checked against
 * the baseline at the end (entries of pods still mid-cycle would make it differ before).
 */
export async function churn(
  bench: ReliabilityBench,
  cycles: number,
  concurrency: number,
  onProgress?: (done: number) => void,
): Promise<CycleStats> {
  const pods = bench.pods.slice(0, concurrency);
  if (pods.length < concurrency) throw new Error(`churn: the bench has ${bench.pods.length} pods`);
  const stats = emptyStats();
  let next = 0;
  await Promise.all(
    pods.map(async (pod) => {
      while (next < cycles) {
        next++;
        await addDelCycle(bench, pod, stats, churnBoundMs(concurrency));
        onProgress?.(stats.delMs.length);
      }
    }),
  );
  stats.violations.push(...bench.leaks().map((l) => `after churn: ${l}`));
  return stats;
}

/**
 * kill -9 of an ADD or a DEL after a random delay (0 to `maxDelayMs`), then what kubelet or
 * the runtime does next: a DEL, or a GC with no valid attachments. Afterwards nothing is
 * left, and the pod can be added again (and deleted).
 */
export async function killCycle(
  bench: ReliabilityBench,
  pod: Pod,
  rand: () => number,
  maxDelayMs: number,
): Promise<{ killed: boolean; phase: "ADD" | "DEL"; violations: string[] }> {
  const violations: string[] = [];
  const req = bench.request(pod);
  const phase = rand() < 0.5 ? "ADD" : "DEL";
  if (phase === "DEL") {
    const add = await podCommand("ADD", req);
    if (add.outcome !== "ok") violations.push(`ADD before the killed DEL: ${describeRun(add)}`);
  }
  const delay = rand() * maxDelayMs;
  let timer: NodeJS.Timeout | undefined;
  const killed = await podCommand(phase, req, {
    onSpawn: (pid) => {
      timer = setTimeout(() => {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // it finished first
        }
      }, delay);
    },
  });
  clearTimeout(timer);
  const wasKilled = killed.signal === "SIGKILL";
  if (!wasKilled && killed.outcome !== "ok")
    violations.push(`${phase} (not killed in time): ${describeRun(killed)}`);
  const recover = rand() < 0.5 ? await podCommand("DEL", req) : await gc(bench.root.path);
  if (recover.outcome !== "ok") violations.push(`recovery: ${describeRun(recover)}`);
  violations.push(...bench.leaks([pod]).map((l) => `after the kill and recovery: ${l}`));
  const again = await podCommand("ADD", req);
  if (again.outcome !== "ok") violations.push(`ADD again: ${describeRun(again)}`);
  const del = await podCommand("DEL", req);
  if (del.outcome !== "ok") violations.push(`DEL after ADD again: ${describeRun(del)}`);
  violations.push(...bench.leaks([pod]).map((l) => `after ADD again and DEL: ${l}`));
  return { killed: wasKilled, phase, violations };
}

/** A seeded generator (mulberry32), so a run of random kills can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The bench one describe block shares: made in its before hook, destroyed in its after hook
 * (also when a test failed). Read it from the returned object inside tests.
 */
export function useReliabilityBench(pods = 1): { readonly bench: ReliabilityBench } {
  let made: ReliabilityBench | undefined;
  before(async () => {
    made = await ReliabilityBench.create(pods);
  });
  after(async () => {
    await made?.destroy();
  });
  return {
    get bench() {
      if (!made) throw new Error("the reliability bench is used before its before hook");
      return made;
    },
  };
}
