// `npm run demo` (after scripts/demo has prepared the machine and built dist/waggle): one
// simulated Kubernetes node running the real CNI chain (ptp + host-local standing in for
// Calico, portmap, then waggle as dist/waggle), two meshed pods with HAProxy sidecars and a
// plain pod, some traffic, and the story of what waggle did, told from the evidence: the
// plugin's log, the proxies' connection logs, `waggle status`, bpftool and tc.
//
// Everything is built from the kernel tests' fixtures (test/support): the libcni-faithful
// runtime harness, pods, sidecars, nginx, sockprobe. Everything it creates is registered in
// their teardown registry and removed at the end, on failure, and on SIGINT/SIGTERM.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { styleText } from "node:util";
import { CniNode, type CniPod, MESHED_ANNOTATIONS } from "../test/support/cni-node";
import { run, runChecked } from "../test/support/command";
import {
  type HaproxyLogLine,
  type HaproxySidecar,
  startHaproxySidecar,
} from "../test/support/haproxy";
import { diffLeaks, type LeakSnapshot, snapshotLeaks } from "../test/support/leaks";
import {
  type Invocation,
  k8sArgs,
  type Libcni,
  REPO,
  SYSTEM_CNI_DIR,
} from "../test/support/libcni";
import { RUN_TAG } from "../test/support/names";
import { type NginxAccessLine, type NginxServer, startNginx } from "../test/support/nginx";
import { teardownAll } from "../test/support/resources";
import { httpGet, probe, startListeners } from "../test/support/sockprobe";

const WAGGLE = join(REPO, "dist", "waggle");
const NAMESPACE = "shop";
const LIST_VERSION = "0.3.1"; // what released Calico writes
const APP = { uid: 1000, gid: 1000 };
const PROXY = { uid: 1337, gid: 1337 };
const APP_PORT = 8080;

type PodName = "frontend" | "backend" | "plain";

interface DemoPod {
  name: PodName;
  meshed: boolean;
  cni: CniPod;
  ip: string;
  sidecar?: HaproxySidecar;
  nginx?: NginxServer;
}

// ---------------------------------------------------------------------------------------------
// Terminal output: short sections, indented evidence, no stack traces.

const out = (text = "") => process.stdout.write(`${text}\n`);
const style = (format: Parameters<typeof styleText>[0], text: string) =>
  styleText(format, text, { stream: process.stdout });
let sectionNumber = 0;
function section(title: string): void {
  sectionNumber += 1;
  out();
  out(style("bold", `${sectionNumber}. ${title}`));
}
const say = (text: string) => out(`   ${text}`);
const detail = (text: string) => out(`      ${text}`);
const ms = (n: number) => `${Math.round(n)} ms`;
const hostOf = (addrPort: string) => addrPort.slice(0, addrPort.lastIndexOf(":"));

/** A failure of the demo's story (a check that did not hold): printed without a stack. */
class DemoError extends Error {}

function expectThat(ok: boolean, message: string): void {
  if (!ok) throw new DemoError(message);
}

// ---------------------------------------------------------------------------------------------
// The steps.

async function checkMachine(): Promise<void> {
  section("This machine (waggle doctor)");
  if (!existsSync(WAGGLE)) throw new DemoError(`${WAGGLE} is missing: run npm run build`);
  const r = await run(WAGGLE, ["doctor", "--json"]);
  const report = JSON.parse(r.stdout) as {
    ok: boolean;
    checks: { id: string; ok: boolean; what: string; found: string; remedy?: string }[];
  };
  const found = (id: string) => report.checks.find((c) => c.id === id)?.found ?? "?";
  if (!report.ok) {
    for (const c of report.checks.filter((c) => !c.ok))
      say(`missing: ${c.what}: ${c.found}${c.remedy ? ` -> ${c.remedy}` : ""}`);
    throw new DemoError("this machine cannot run waggle (see above)");
  }
  say(`all ${report.checks.length} prerequisites met: kernel ${found("kernel")},`);
  say(`cgroup v2 at ${found("cgroup2")}, ${found("bpffs")}`);
}

interface DemoNode {
  cni: CniNode;
  /** The runtime the demo drives: reference plugins as installed, then waggle's directory. */
  runtime: Libcni;
  /** Milliseconds of each plugin's ADD and DEL, by container ID and plugin type. */
  timings: Map<string, Record<string, number>>;
}

async function createNode(): Promise<DemoNode> {
  section("A simulated node and its CNI chain");
  process.env.WAGGLE_TEST_PLUGIN = "dist"; // the plugin is the shipped binary, nothing else
  const cni = await CniNode.create();
  const timings = new Map<string, Record<string, number>>();
  const runtime = cni.libcni({
    // /usr/lib/cni first: a 0.3.1 list needs no version shims for ptp and portmap.
    path: [SYSTEM_CNI_DIR, cni.plugins.dir],
    timeoutMs: 30_000,
    onInvocation: (inv: Invocation) => {
      const id = inv.env.CNI_CONTAINERID;
      timings.set(id, { ...timings.get(id), [`${inv.command} ${inv.type}`]: inv.ms });
    },
  });
  say(`node: network namespace ${cni.node.name}, standing in for the host`);
  say(`(your host's interfaces, routes and iptables are not touched)`);
  say(`CNI config list "k8s-pod-network", cniVersion ${LIST_VERSION} as Calico writes it:`);
  detail(`1. ptp + host-local   in Calico's place: a veth and a /32 route per pod`);
  detail(`2. portmap            as in Calico's list`);
  detail(`3. waggle             ${WAGGLE}, pinning under ${cni.bpf.path}`);
  say(`everything this demo creates is named ${RUN_TAG}...; all of it goes away at the end`);
  say(`(Ctrl-C included)`);
  return { cni, runtime, timings };
}

async function addPods({ cni, runtime, timings }: DemoNode): Promise<Record<PodName, DemoPod>> {
  section("Three pods join the node through the chain (CNI ADD)");
  const specs: [PodName, boolean][] = [
    ["frontend", true],
    ["backend", true],
    ["plain", false],
  ];
  const pods = {} as Record<PodName, DemoPod>;
  for (const [name, meshed] of specs) {
    // A meshed pod carries the injector's status annotation; the runtime passes the pod's
    // annotations to the chain (capability io.kubernetes.cri.pod-annotations).
    const p = await cni.pod(meshed ? MESHED_ANNOTATIONS : {}, NAMESPACE);
    p.rt.args = k8sArgs({
      namespace: NAMESPACE,
      name,
      uid: "",
      infraContainerId: p.rt.containerId,
    });
    const result = await runtime.addNetworkList(cni.chain(LIST_VERSION), p.rt);
    const ip = result.ips?.[0]?.address.split("/")[0] ?? "";
    expectThat(ip !== "", `the chain gave ${name} no address`);
    pods[name] = { name, meshed, cni: p, ip };
    const annotation = meshed ? "sidecar.istio.io/status set" : "no sidecar.istio.io/status";
    const took = timings.get(p.rt.containerId) ?? {};
    const timing = ["ptp", "portmap", "waggle"]
      .map((t) => `${t} ${ms(took[`ADD ${t}`] ?? Number.NaN)}`)
      .join(", ");
    say(`${NAMESPACE}/${name.padEnd(9)} ${ip.padEnd(12)} ${annotation.padEnd(28)} ADD: ${timing}`);
  }
  say("waggle's decisions, from its log:");
  const lines = cni.logLines();
  for (const pod of Object.values(pods)) {
    const decision = lines.find(
      (l) =>
        l.containerId === pod.cni.rt.containerId &&
        ["attached", "skipped", "failed"].includes(String(l.message)),
    );
    expectThat(decision !== undefined, `waggle logged no decision for ${pod.name}`);
    const d = decision as Record<string, unknown>;
    const why =
      d.message === "attached"
        ? `${(d.podIPs as string[]).join(", ")} on ${d.ifname}, proxy uid ${d.proxyUid} gid ${d.proxyGid}, ${d.interceptionMode}`
        : String(d.reason ?? d.error);
    detail(`${NAMESPACE}/${pod.name.padEnd(9)} ${d.message}: ${why}`);
    expectThat(
      (d.message === "attached") === pod.meshed,
      `waggle ${d.message} ${pod.name}, expected it to be ${pod.meshed ? "attached" : "skipped"}`,
    );
  }
  return pods;
}

async function validationProbe(pod: DemoPod): Promise<void> {
  section("Istio's validation probe, before the sidecar starts");
  say(`in ${pod.name}, as uid 1337: listeners on 127.0.0.1:15001 and 127.0.0.1:15006, then a`);
  say(
    "connection from 127.0.0.1 to 127.0.0.6:15002 (what the istio-validation init container does)",
  );
  const listeners = await startListeners(
    pod.cni.sandbox,
    [
      { name: "15001", proto: "tcp", addr: "127.0.0.1:15001" },
      { name: "15006", proto: "tcp", addr: "127.0.0.1:15006" },
    ],
    PROXY,
  );
  try {
    const [r] = await probe(pod.cni.sandbox, [{ to: "127.0.0.6:15002", bind: "127.0.0.1" }], PROXY);
    const reply = r.reply?.event === "accept" ? r.reply : undefined;
    expectThat(
      reply !== undefined,
      `the probe's connection was not accepted: ${JSON.stringify(r)}`,
    );
    const accepted = reply as NonNullable<typeof reply>;
    say(
      `-> accepted by the ${accepted.listener} listener; SO_ORIGINAL_DST there: ${accepted.originalDst}`,
    );
    const passes = accepted.listener === "15006" && accepted.originalDst === "127.0.0.6:15002";
    expectThat(passes, "the validation probe would fail (exit 126): the pod would crash-loop");
    say("-> the init container would pass: the pod starts");
  } finally {
    await listeners.stop();
  }
}

async function startWorkloads(pods: Record<PodName, DemoPod>): Promise<void> {
  section("Sidecars and apps");
  for (const pod of [pods.frontend, pods.backend]) {
    pod.sidecar = await startHaproxySidecar(pod.cni.sandbox, PROXY);
  }
  for (const pod of [pods.backend, pods.plain]) {
    pod.nginx = await startNginx(pod.cni.sandbox, {
      port: APP_PORT,
      body: `hello from ${pod.name}\n`,
      ...APP,
    });
  }
  say("frontend  HAProxy sidecar as uid 1337 (outbound 127.0.0.1:15001, inbound :15006)");
  say(`backend   HAProxy sidecar as uid 1337, nginx on :${APP_PORT} as uid 1000`);
  say(`plain     nginx on :${APP_PORT} as uid 1000, no sidecar`);
  say("The sidecars forward each connection to its original destination, which they read");
  say("with getsockopt(SO_ORIGINAL_DST) as Envoy does, and log every connection.");
}

/** Waits until `read()` holds more than `before` entries and returns the first new one. */
async function nextEntry<T>(what: string, read: () => T[], before: number): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const all = read();
    if (all.length > before) return all[before];
    if (Date.now() > deadline) throw new DemoError(`${what} logged nothing within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Mark {
  frontend: number;
  backend: number;
  backendNginx: number;
  plainNginx: number;
}

function mark(pods: Record<PodName, DemoPod>): Mark {
  return {
    frontend: pods.frontend.sidecar?.connections().length ?? 0,
    backend: pods.backend.sidecar?.connections().length ?? 0,
    backendNginx: pods.backend.nginx?.requests().length ?? 0,
    plainNginx: pods.plain.nginx?.requests().length ?? 0,
  };
}

async function request(from: DemoPod, to: DemoPod, label: string): Promise<void> {
  const url = `http://${to.ip}:${APP_PORT}/`;
  const r = await httpGet(from.cni.sandbox, url, APP);
  expectThat(r.result === "ok", `${from.name} -> ${url} failed: ${r.error}`);
  say(
    `${label}) ${from.name}'s app (uid 1000): GET ${url} -> ${r.status} ${JSON.stringify(r.body?.trim())}`,
  );
  expectThat(r.body === `hello from ${to.name}\n`, `unexpected answer from ${to.name}`);
}

async function sendTraffic(pods: Record<PodName, DemoPod>): Promise<void> {
  section("Traffic, and what each proxy saw");
  const { frontend, backend, plain } = pods;
  const fSidecar = frontend.sidecar as HaproxySidecar;
  const bSidecar = backend.sidecar as HaproxySidecar;
  const bNginx = backend.nginx as NginxServer;
  const pNginx = plain.nginx as NginxServer;
  const sidecarLog = (s: HaproxySidecar, name: string, before: number) =>
    nextEntry<HaproxyLogLine>(`${name}'s sidecar`, () => s.connections(), before);
  const nginxLog = (n: NginxServer, name: string, before: number) =>
    nextEntry<NginxAccessLine>(`${name}'s nginx`, () => n.requests(), before);

  // a) meshed -> meshed
  let m = mark(pods);
  await request(frontend, backend, "a");
  const aOut = await sidecarLog(fSidecar, "frontend", m.frontend);
  const aIn = await sidecarLog(bSidecar, "backend", m.backend);
  const aReq = await nginxLog(bNginx, "backend", m.backendNginx);
  detail(`frontend, outbound: captured. The app's connection went to the sidecar's 15001;`);
  detail(`  SO_ORIGINAL_DST said ${aOut.accepted}; the sidecar dialled it from ${aOut.source}`);
  detail(`backend, inbound: captured. The connection from ${aIn.client} reached the sidecar's`);
  detail(`  15006 listener still addressed to ${aIn.accepted} (no NAT); it passed it on`);
  detail(`  from ${aIn.source}`);
  detail(`backend's nginx logged the request from ${aReq.client}`);
  expectThat(
    aOut.frontend === "outbound" && aOut.accepted === `${backend.ip}:${APP_PORT}`,
    "a: frontend's sidecar did not see the original destination",
  );
  expectThat(
    aIn.frontend === "inbound" && aIn.client === aOut.source,
    "a: backend's sidecar did not get frontend's sidecar connection",
  );
  expectThat(hostOf(aReq.client) === "127.0.0.6", "a: nginx was reached behind the sidecar's back");

  // b) plain -> meshed
  m = mark(pods);
  await request(plain, backend, "b");
  const bIn = await sidecarLog(bSidecar, "backend", m.backend);
  const bReq = await nginxLog(bNginx, "backend", m.backendNginx);
  detail(`plain: nothing captured. It has no sidecar: a captured connection would have gone`);
  detail(`  to 127.0.0.1:15001, where nothing listens, and failed`);
  detail(`backend, inbound: captured. Its sidecar saw the client ${bIn.client} (plain itself),`);
  detail(`  original destination ${bIn.accepted}; nginx logged the request from ${bReq.client}`);
  expectThat(hostOf(bIn.client) === plain.ip, "b: backend's sidecar did not see plain's address");
  expectThat(mark(pods).frontend === m.frontend, "b: frontend's sidecar saw plain's traffic");

  // c) meshed -> plain
  m = mark(pods);
  await request(frontend, plain, "c");
  const cOut = await sidecarLog(fSidecar, "frontend", m.frontend);
  const cReq = await nginxLog(pNginx, "plain", m.plainNginx);
  detail(`frontend, outbound: captured; SO_ORIGINAL_DST said ${cOut.accepted}`);
  detail(`plain, inbound: nothing captured. Its nginx saw frontend's sidecar directly:`);
  detail(`  the client ${cReq.client}, not 127.0.0.6`);
  expectThat(
    cOut.accepted === `${plain.ip}:${APP_PORT}`,
    "c: frontend's sidecar did not see plain's address",
  );
  expectThat(cReq.client === cOut.source, "c: plain's nginx was not called by frontend's sidecar");
  expectThat(mark(pods).backend === m.backend, "c: backend's sidecar saw traffic for plain");
}

/**
 * Runs `waggle status` on the demo's pins and prints its output as it is, then `legend`
 * (what to compare it with) when it ran. `verbose`: each pod's policy and every counter
 * after the table. Returns whether it ran.
 */
async function waggleStatus(
  { cni }: DemoNode,
  heading: string,
  { legend = [], verbose = false }: { legend?: string[]; verbose?: boolean } = {},
): Promise<boolean> {
  section(heading);
  const args = ["status", "--bpf-root", cni.bpf.path, ...(verbose ? ["--verbose"] : [])];
  say(`$ dist/waggle ${args.join(" ")}`);
  const r = await run(WAGGLE, args);
  if (r.code === 2 && /Unknown (argument|command)|Did you mean/i.test(r.stderr)) {
    say("`waggle status` is not in this build of waggle yet (the command line rejects it):");
    for (const line of r.stderr.trim().split("\n").slice(-1)) detail(line);
    return false;
  }
  for (const line of `${r.stdout}${r.stderr}`.trimEnd().split("\n")) detail(line);
  expectThat(r.code === 0, `waggle status exited with ${r.code}`);
  for (const line of legend) say(line);
  return true;
}

/** What `waggle status` should show after the traffic above. */
const COUNTERS_LEGEND = [
  "Compare with the traffic above: frontend's outbound_redirected should be 2 (requests a",
  "and c: to its 15001) and local_redirected 1 (the validation probe: to 15006, row O3);",
  "backend's inbound_captured 2 (requests a and b); orig_dst_answered counts the proxies'",
  "SO_ORIGINAL_DST calls; passthrough, what the policy let through (e.g. the sidecars'",
  "own). plain is not listed: waggle has nothing for it.",
];

async function plainUntouched(pods: Record<PodName, DemoPod>): Promise<void> {
  section("The plain pod was untouched");
  for (const pod of Object.values(pods)) {
    const programs = (await runChecked("bpftool", ["cgroup", "show", pod.cni.sandbox.cgroupDir]))
      .split("\n")
      .filter((l) => /^\s*\d+\s/.test(l)).length;
    const netnsIno = statSync(pod.cni.sandbox.netnsPath).ino;
    const links = JSON.parse(await runChecked("bpftool", ["link", "show", "--json"])) as {
      netns_ino?: number;
      attach_type?: string;
    }[];
    const inbound = links.some((l) => l.netns_ino === netnsIno && l.attach_type === "sk_lookup");
    const netns = inbound
      ? "the sk_lookup inbound program on its netns"
      : "no sk_lookup program on its netns";
    say(
      `${pod.name.padEnd(9)} ${String(programs).padStart(2)} BPF programs on its cgroup, ${netns}`,
    );
    expectThat(programs > 0 === pod.meshed, `${pod.name}: unexpected cgroup programs`);
    expectThat(inbound === pod.meshed, `${pod.name}: unexpected sk_lookup link`);
  }
  say("(bpftool cgroup show <pod cgroup>; bpftool link show: netns_ino of the pod's netns)");
  say("plain: skipped at ADD, nothing attached; its connections went out as they were (b)");
  say("and came in as they were (c)");
}

async function deletePods(
  { cni, runtime, timings }: DemoNode,
  pods: Record<PodName, DemoPod>,
): Promise<void> {
  section("Pods leave the node (CNI DEL, plugins in reverse order)");
  for (const pod of Object.values(pods)) {
    await runtime.delNetworkList(cni.chain(LIST_VERSION), pod.cni.rt);
    const took = timings.get(pod.cni.rt.containerId) ?? {};
    const timing = ["waggle", "portmap", "ptp"]
      .map((t) => `${t} ${ms(took[`DEL ${t}`] ?? Number.NaN)}`)
      .join(", ");
    say(`${NAMESPACE}/${pod.name.padEnd(9)} DEL: ${timing}`);
  }
  const left = readdirSync(join(cni.bpf.path, "pods"));
  say(
    `per-pod pins left under ${cni.bpf.path}/pods: ${left.length === 0 ? "none" : left.join(", ")}`,
  );
  expectThat(left.length === 0, "DEL left per-pod pins behind");
}

/**
 * What this run left after cleaning up, as the kernel tests' leak check sees it: network
 * namespaces, host links, cgroups and processes of this run, and the demo's bpffs root.
 */
function leftovers(before: LeakSnapshot, bpfRoot: string | undefined): string[] {
  const roots = bpfRoot ? [bpfRoot] : [];
  const left = Object.entries(diffLeaks(before, snapshotLeaks({ bpffsRoots: roots }))).flatMap(
    ([kind, items]) => items.map((item) => `${kind} ${item}`),
  );
  return [...left, ...roots.filter((r) => existsSync(r)).map((r) => `bpffs ${r}`)];
}

function cleanUp(): string[] {
  return teardownAll();
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = Date.now();
  out(
    style(
      "bold",
      "waggle demo: a Kubernetes node in network namespaces, two meshed pods and a plain one",
    ),
  );
  const before = snapshotLeaks();
  let bpfRoot: string | undefined;
  try {
    await checkMachine();
    const node = await createNode();
    bpfRoot = node.cni.bpf.path;
    const pods = await addPods(node);
    await validationProbe(pods.frontend);
    await startWorkloads(pods);
    await sendTraffic(pods);
    await waggleStatus(node, "Counters and policy (waggle status)", {
      legend: COUNTERS_LEGEND,
      verbose: true,
    });
    await plainUntouched(pods);
    await deletePods(node, pods);
    await waggleStatus(node, "After DEL (waggle status)");
  } catch (e) {
    out();
    out(style("red", `demo failed: ${(e as Error).message}`));
    if (!(e instanceof DemoError) && process.env.WAGGLE_DEMO_DEBUG) out(String((e as Error).stack));
    section("Cleaning up");
    for (const f of cleanUp()) say(`cleanup failed: ${f}`);
    return 1;
  }
  section("Cleaning up");
  const failures = cleanUp();
  for (const f of failures) say(`cleanup failed: ${f}`);
  const left = leftovers(before, bpfRoot);
  say(
    left.length === 0
      ? `nothing named ${RUN_TAG}... is left (netns, interfaces, cgroups, processes, pins)`
      : `left: ${left.join(", ")}`,
  );
  out();
  out(
    `Done in ${((Date.now() - started) / 1000).toFixed(1)} s. Next: npm test runs the test suite;`,
  );
  out("README.md and docs/architecture.md explain what you just saw.");
  return failures.length === 0 && left.length === 0 ? 0 : 1;
}

// Ctrl-C (and a SIGTERM) end the story early; everything made so far is removed first.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    out();
    out(`${signal === "SIGINT" ? "interrupted" : "terminated"}: cleaning up`);
    const failures = cleanUp();
    for (const f of failures) out(`   cleanup failed: ${f}`);
    out(failures.length === 0 ? "   done: nothing left behind" : "   some things are left (above)");
    process.exit(signal === "SIGINT" ? 130 : 143);
  });
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    out(`demo failed: ${(e as Error).message}`);
    cleanUp();
    process.exit(1);
  },
);
