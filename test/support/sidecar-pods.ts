// Pods over a private containerd as the mesh runs them: an HAProxy sidecar (uid 1337, the
// proxy's 15001/15006 listeners) and a python3 http.server app (uid 1000) on 8080 serving
// "served by <pod>". The proofs the containerd suites read: the sidecars' JSON connection
// logs (SO_ORIGINAL_DST, sources) and the apps' access logs.
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import { MESHED_ANNOTATIONS } from "./cni-node";
import { runChecked } from "./command";
import {
  containerLog,
  type PodSpec,
  type PrivateContainerd,
  type RunningPod,
  startContainer,
  waitForLog,
} from "./containerd";
import { nodePod } from "./fake-kube-api";
import { type HaproxyLogLine, haproxySidecarConfig } from "./haproxy";
import { sandboxArgv } from "./sandbox";

export const APP_UID = 1000;
export const PROXY_UID = 1337;
export const SIDECAR = "istio-proxy";
export const APP = "app";

/** The one-shot HTTP client the apps run (stdout: the body; exit 1 with the error). */
const HTTP_GET = [
  "/usr/bin/python3",
  "-c",
  "import sys, urllib.request\n" +
    "try:\n  print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end='')\n" +
    "except Exception as e:\n  print(e, file=sys.stderr); sys.exit(1)",
];

export class SidecarPods {
  /** Config and content the containers mount read-only (uids 1000 and 1337 read them). */
  private readonly files: string;
  private readonly containers = new Map<string, string>();

  constructor(private readonly ctrd: PrivateContainerd) {
    this.files = join(ctrd.work, "files");
    mkdirSync(join(this.files, "proxy"), { recursive: true, mode: 0o755 });
    writeFileSync(
      join(this.files, "proxy", "haproxy.cfg"),
      haproxySidecarConfig({ outboundPort: 15001, inboundPort: 15006 }),
      { mode: 0o644 },
    );
  }

  /** The runtime's ID of one of a pod's containers. */
  containerId(pod: RunningPod, name: string): string {
    const id = this.containers.get(`${pod.sandboxId}/${name}`);
    if (!id) throw new Error(`no container ${name} in ${pod.config.hostname}`);
    return id;
  }

  /** A pod with an HAProxy sidecar (uid 1337) and an http.server app (uid 1000) on 8080. */
  async run(spec: PodSpec, opts: { podCgroup?: boolean } = {}): Promise<RunningPod> {
    const { ctrd } = this;
    const pod = await ctrd.kubelet.runPod(ctrd.cri, spec, ctrd.podLogs, opts);
    const www = join(this.files, spec.name);
    mkdirSync(www, { mode: 0o755 });
    writeFileSync(join(www, "index.html"), `served by ${spec.name}\n`, { mode: 0o644 });
    const sidecar = await startContainer(ctrd.cri, pod, {
      name: SIDECAR,
      command: ["/usr/sbin/haproxy", "-db", "-f", "/etc/proxy/haproxy.cfg"],
      runAs: PROXY_UID,
      mounts: [{ containerPath: "/etc/proxy", hostPath: join(this.files, "proxy") }],
    });
    const app = await startContainer(ctrd.cri, pod, {
      name: APP,
      command: ["/usr/bin/python3", "-u", "-m", "http.server", "8080"],
      runAs: APP_UID,
      workingDir: "/srv/www",
      mounts: [{ containerPath: "/srv/www", hostPath: www }],
    });
    this.containers.set(`${pod.sandboxId}/${SIDECAR}`, sidecar);
    this.containers.set(`${pod.sandboxId}/${APP}`, app);
    await waitForLog(pod, APP, (l) => l.startsWith("Serving HTTP"));
    await waitForLog(pod, SIDECAR, (l) => l.includes("Proxy") || l.includes("started"), 3000).catch(
      () => undefined,
    );
    return pod;
  }

  /** A running meshed pod as the API server returns it (its containers' runtime IDs too). */
  apiPod(pod: RunningPod, nodeName: string): V1Pod {
    return nodePod({
      name: pod.config.hostname as string,
      uid: pod.uid,
      ip: pod.ip,
      meshed: true,
      nodeName,
      containerIds: { app: this.containerId(pod, APP), proxy: this.containerId(pod, SIDECAR) },
    });
  }

  /**
   * Runs meshed pods named `<prefix>N` until one is attached (`isAttached`), removing the
   * others: containerd reloads its CNI config on the conf dir's change event, so a pod it
   * starts just after waggle was chained in may still get the old config. `announce` is told
   * each pod's name and UID before it starts (e.g. to serve it from an API stand-in).
   */
  async runUntilAttached(
    prefix: string,
    isAttached: (sandboxId: string) => boolean,
    announce: (name: string, uid: string) => void = () => {},
    timeoutMs = 30_000,
  ): Promise<{ pod: RunningPod; attempts: number }> {
    const started = Date.now();
    for (let attempts = 1; ; attempts++) {
      const name = `${prefix}${attempts}`;
      const uid = randomUUID();
      announce(name, uid);
      const pod = await this.run({ name, uid, annotations: MESHED_ANNOTATIONS });
      if (isAttached(pod.sandboxId)) return { pod, attempts };
      await this.ctrd.kubelet.removePod(this.ctrd.cri, pod);
      if (Date.now() - started > timeoutMs)
        throw new Error(`no ${prefix} pod attached in ${timeoutMs} ms: ${this.ctrd.logTail(2000)}`);
    }
  }

  /** The app container of `pod` fetches `url` (ExecSync: in the container, as uid 1000). */
  async appGet(pod: RunningPod, url: string): Promise<string> {
    const r = await this.ctrd.cri.execSync(this.containerId(pod, APP), [...HTTP_GET, url]);
    if (r.exitCode !== 0) throw new Error(`GET ${url} from ${pod.config.hostname}: ${r.stderr}`);
    return r.stdout;
  }

  /** The same fetch without the runtime: a process put into the app container's cgroup. */
  appGetWithoutRuntime(pod: RunningPod, url: string): Promise<string> {
    const cgroup = join(pod.cgroupDir, this.containerId(pod, APP));
    const argv = sandboxArgv(pod.netnsPath, cgroup, HTTP_GET[0], [...HTTP_GET.slice(1), url], {
      uid: APP_UID,
    });
    return runChecked("sh", argv);
  }

  /** The connections the pod's sidecar logged so far. */
  proxyLog(pod: RunningPod): HaproxyLogLine[] {
    return containerLog(pod, SIDECAR, "stdout")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as HaproxyLogLine);
  }

  /** Waits for a connection the sidecar logs that matches. */
  async waitForProxy(
    pod: RunningPod,
    match: (c: HaproxyLogLine) => boolean,
  ): Promise<HaproxyLogLine> {
    const line = await waitForLog(pod, SIDECAR, (l) => l.startsWith("{") && match(JSON.parse(l)));
    return JSON.parse(line) as HaproxyLogLine;
  }

  /** The clients the app's http.server logged ("10.250.0.2 - - [...] "GET / ..." 200"). */
  appClients(pod: RunningPod): string[] {
    return containerLog(pod, APP, "stderr")
      .map((l) => /^(\S+) - - .*"GET \//.exec(l)?.[1])
      .filter((c): c is string => c !== undefined);
  }
}
