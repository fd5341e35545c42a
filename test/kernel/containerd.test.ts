// waggle under a real container runtime: Debian's containerd 1.6 with its CRI plugin and runc,
// driven over the CRI as kubelet drives it (test/support/containerd.ts), running the
// Calico-shaped chain (ptp + host-local + portmap + waggle, 0.3.1 as Calico writes it) from
// its own CNI dirs. Pods run HAProxy sidecars as uid 1337 and python3 http.server apps as uid
// 1000 in containers; the proofs are the sidecars' and apps' own logs (SO_ORIGINAL_DST,
// sources) and what is left on the node afterwards.
//
// containerd 1.6 passes the pod annotations (io.kubernetes.cri.pod-annotations) but no
// cgroupPath, so waggle finds every pod cgroup here by the pod UID in CNI_ARGS.
import "../support/hooks";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { netnsQuery } from "ebpf-napi";
import { listPods } from "../../datapath";
import { calicoShapedChain, MESHED_ANNOTATIONS } from "../support/cni-node";
import { runChecked } from "../support/command";
import { type KubeletStandIn, PrivateContainerd, type RunningPod } from "../support/containerd";
import { CriError } from "../support/cri-client";
import { SidecarPods } from "../support/sidecar-pods";
import { BpfRoot } from "../support/waggle-mode";

/**
 * Which of a pod's calls (ADD, DEL at stop, DEL at remove) carry prevResult in a 0.3.1 list:
 * the ADD its predecessors' result, no DEL any (libcni adds the cached one from 0.4.0 on).
 */
const PREV_RESULT_031 = [true, false, false];

describe("containerd 1.6 over the CRI: the Calico-shaped chain with waggle (real runtime)", function () {
  this.timeout(240_000);
  let ctrd: PrivateContainerd;
  let kubelet: KubeletStandIn;
  const bpf = new BpfRoot();
  let waggleLog: string;
  let pods: SidecarPods;

  before(async () => {
    const started = Date.now();
    ctrd = await PrivateContainerd.start({
      conflist: ({ work }) => {
        waggleLog = join(work, "waggle.log");
        return calicoShapedChain("0.3.1", join(work, "host-local"), {
          type: "waggle",
          bpf_root: bpf.path,
          log_level: "debug",
          log_file: waggleLog,
          capabilities: { cgroupPath: true, "io.kubernetes.cri.pod-annotations": true },
        });
      },
    });
    kubelet = ctrd.kubelet;
    pods = new SidecarPods(ctrd);
    const version = await ctrd.cri.version();
    console.log(
      `      ${version.runtimeName} ${version.runtimeVersion} up with both images in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });
  after(async () => {
    await ctrd?.destroy();
    bpf.destroy();
  });

  /** waggle's JSON log lines so far. */
  const waggleLines = (): Record<string, unknown>[] => {
    try {
      return readFileSync(waggleLog, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    } catch {
      return [];
    }
  };
  const attachedIds = () => listPods(bpf.opts).map((p) => p.containerId);

  const runPod = (
    name: string,
    annotations: Record<string, string>,
    opts: { podCgroup?: boolean } = {},
  ): Promise<RunningPod> => pods.run({ name, annotations }, opts);
  const appGet = (pod: RunningPod, url: string) => pods.appGet(pod, url);
  const waitForProxy = (pod: RunningPod, match: Parameters<SidecarPods["waitForProxy"]>[1]) =>
    pods.waitForProxy(pod, match);

  /** waggle's decisions for one sandbox: [level, message]. */
  const decisionsFor = (sandboxId: string) =>
    waggleLines()
      .filter((l) => l.containerId === sandboxId)
      .map((l) => [l.level, l.message]);
  const cgroupPrograms = async (dir: string) =>
    (await runChecked("bpftool", ["cgroup", "show", dir])).trim();

  describe("meshed and unmeshed pods with HAProxy sidecars", () => {
    let client: RunningPod;
    let server: RunningPod;
    let plain: RunningPod;
    before(async () => {
      client = await runPod("client", MESHED_ANNOTATIONS);
      server = await runPod("server", MESHED_ANNOTATIONS);
      plain = await runPod("plain", { "prometheus.io/scrape": "true" });
    });
    after(async () => {
      for (const pod of [client, server, plain])
        if (pod) await kubelet.removePod(ctrd.cri, pod).catch(() => undefined);
    });

    it("containerd 1.6 passes the pod annotations and K8S_POD_UID but no cgroupPath: waggle finds the pod cgroup by UID", () => {
      const [add] = ctrd.callsFor(client.sandboxId);
      expect(add.env.CNI_COMMAND).to.equal("ADD");
      expect(add.env.CNI_NETNS).to.equal(client.netnsPath);
      expect(add.env.CNI_ARGS.split(";")).to.include(`K8S_POD_UID=${client.uid}`);
      const rc = add.conf.runtimeConfig ?? {};
      expect(rc).to.not.have.property("cgroupPath");
      expect(rc["io.kubernetes.cri.pod-annotations"]).to.deep.equal(client.config.annotations);
      expect(add.cwd).to.equal("/");
      const attached = waggleLines().find(
        (l) => l.containerId === client.sandboxId && l.message === "attached",
      );
      expect(attached?.cgroup).to.equal(client.cgroupDir);
      expect(attachedIds()).to.have.members([client.sandboxId, server.sandboxId]);
    });

    it("client app -> client sidecar (15001) -> server sidecar (15006) -> server app, with the original destinations", async () => {
      const url = `http://${server.ip}:8080/`;
      expect(await appGet(client, url)).to.equal("served by server\n");
      const out = await waitForProxy(client, (c) => c.frontend === "outbound");
      expect(out.accepted).to.equal(`${server.ip}:8080`); // SO_ORIGINAL_DST in the client pod
      expect(out.server).to.equal(`${server.ip}:8080`);
      const inb = await waitForProxy(server, (c) => c.frontend === "inbound");
      expect(inb.accepted).to.equal(`${server.ip}:8080`); // inbound: the destination unchanged
      expect(inb.client.split(":")[0]).to.equal(client.ip); // from the client's sidecar
      expect(inb.source.split(":")[0]).to.equal("127.0.0.6");
      expect(pods.appClients(server)).to.deep.equal(["127.0.0.6"]);
    });

    it("the unmeshed pod is untouched: no programs, its sidecar sees nothing, its app talks directly", async () => {
      expect(await cgroupPrograms(plain.cgroupDir)).to.equal("");
      expect(netnsQuery(plain.netnsPath, "sk_lookup")).to.deep.equal([]);
      expect(await cgroupPrograms(client.cgroupDir)).to.not.equal("");
      expect(netnsQuery(client.netnsPath, "sk_lookup")).to.have.length(1);
      // plain -> meshed server: captured on the server's side only
      expect(await appGet(plain, `http://${server.ip}:8080/`)).to.equal("served by server\n");
      await waitForProxy(
        server,
        (c) => c.frontend === "inbound" && c.client.startsWith(`${plain.ip}:`),
      );
      // meshed client -> plain: leaves through the client's sidecar, arrives at plain's app directly
      expect(await appGet(client, `http://${plain.ip}:8080/`)).to.equal("served by plain\n");
      await waitForProxy(
        client,
        (c) => c.frontend === "outbound" && c.accepted === `${plain.ip}:8080`,
      );
      expect(pods.appClients(plain)).to.deep.equal([client.ip]);
      expect(pods.proxyLog(plain)).to.deep.equal([]);
      expect(decisionsFor(plain.sandboxId)).to.deep.equal([["info", "skipped"]]);
    });

    it("survives a containerd restart: capture works while it is down and after, and the later DELs still clean up", async () => {
      await ctrd.stopDaemon();
      const before = pods.proxyLog(client).length;
      expect(await pods.appGetWithoutRuntime(client, `http://${server.ip}:8080/`)).to.equal(
        "served by server\n",
      );
      await ctrd.startDaemon();
      const states = (await ctrd.cri.listPodSandbox()).map((p) => [p.id, p.state]);
      expect(states).to.deep.include.members([
        [client.sandboxId, "SANDBOX_READY"],
        [server.sandboxId, "SANDBOX_READY"],
      ]);
      expect(await appGet(client, `http://${server.ip}:8080/`)).to.equal("served by server\n");
      const outbound = pods
        .proxyLog(client)
        .slice(before)
        .filter((c) => c.frontend === "outbound");
      expect(outbound.map((c) => c.accepted)).to.deep.equal([
        `${server.ip}:8080`,
        `${server.ip}:8080`,
      ]);
      await kubelet.removePod(ctrd.cri, client);
      expect(attachedIds()).to.not.include(client.sandboxId);
      expect(decisionsFor(client.sandboxId).filter(([, m]) => m === "detached")).to.have.length(1);
    });
  });

  describe("the two DELs of a pod", () => {
    it("StopPodSandbox's DEL detaches the pod; RemovePodSandbox's DEL comes with CNI_NETNS=\"\" and finds nothing (logged at debug)", async () => {
      const pod = await runPod("leaver", MESHED_ANNOTATIONS);
      expect(attachedIds()).to.include(pod.sandboxId);
      await ctrd.cri.stopPodSandbox(pod.sandboxId);
      const afterStop = ctrd
        .callsFor(pod.sandboxId)
        .map((c) => [c.env.CNI_COMMAND, c.env.CNI_NETNS]);
      expect(afterStop).to.deep.equal([
        ["ADD", pod.netnsPath],
        ["DEL", pod.netnsPath],
      ]);
      expect(attachedIds()).to.not.include(pod.sandboxId);
      expect(await cgroupPrograms(pod.cgroupDir)).to.equal("");
      await ctrd.cri.removePodSandbox(pod.sandboxId);
      const calls = ctrd.callsFor(pod.sandboxId);
      expect(calls.map((c) => [c.env.CNI_COMMAND, c.env.CNI_NETNS])).to.deep.equal([
        ["ADD", pod.netnsPath],
        ["DEL", pod.netnsPath],
        ["DEL", ""],
      ]);
      expect(calls.map((c) => "prevResult" in c.conf)).to.deep.equal(PREV_RESULT_031);
      expect(decisionsFor(pod.sandboxId)).to.deep.equal([
        ["info", "attached"],
        ["info", "detached"],
        ["debug", "nothing attached"],
      ]);
      kubelet.removePodCgroup(pod);
    });
  });

  describe("a failed ADD is rolled back", () => {
    const failedRun = async (
      name: string,
      annotations: Record<string, string>,
      opts: { podCgroup?: boolean },
      message: RegExp,
    ) => {
      const leases = () => readdirSync(join(ctrd.work, "host-local", "k8s-pod-network"));
      const links = async () =>
        (await runChecked("ip", ["-n", ctrd.node.name, "-o", "link"])).split("\n").length;
      const [leasesBefore, linksBefore] = [leases(), await links()];
      const err = await runPod(name, annotations, opts).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(CriError);
      expect((err as CriError).details).to.match(message);
      const calls = ctrd
        .calls()
        .filter(
          (c) =>
            c.env.CNI_ARGS.includes(`K8S_POD_NAME=${name};`) ||
            c.env.CNI_ARGS.endsWith(`K8S_POD_NAME=${name}`),
        );
      expect(calls.map((c) => c.env.CNI_COMMAND)).to.deep.equal(["ADD", "DEL"]);
      const sandboxId = calls[0].env.CNI_CONTAINERID;
      expect(calls[1].env.CNI_CONTAINERID).to.equal(sandboxId);
      expect(attachedIds()).to.not.include(sandboxId);
      expect((await ctrd.cri.listPodSandbox()).map((p) => p.id)).to.not.include(sandboxId);
      expect(leases()).to.deep.equal(leasesBefore);
      expect(await links()).to.equal(linksBefore);
      return decisionsFor(sandboxId);
    };

    it("an invalid annotation: RunPodSandbox fails with waggle's code 101, the DEL leaves nothing", async () => {
      const decisions = await failedRun(
        "badannotation",
        { ...MESHED_ANNOTATIONS, "traffic.sidecar.istio.io/excludeOutboundPorts": "http" },
        {},
        /plugin type="waggle" failed \(add\).*excludeOutboundPorts/,
      );
      expect(decisions).to.deep.equal([
        ["error", "failed"],
        ["debug", "nothing attached"],
      ]);
    });

    it("no pod cgroup (kubelet made none): ADD fails with 'no cgroup for pod UID', the DEL leaves nothing", async () => {
      const decisions = await failedRun(
        "nocgroup",
        MESHED_ANNOTATIONS,
        { podCgroup: false },
        /plugin type="waggle" failed \(add\).*no cgroup for pod UID/,
      );
      expect(decisions).to.deep.equal([
        ["error", "failed"],
        ["debug", "nothing attached"],
      ]);
    });
  });

  describe("afterwards", () => {
    it("nothing is left once the pods are gone: no pod state, programs, links, veths or netns", async () => {
      for (const p of await ctrd.cri.listPodSandbox()) {
        await ctrd.cri.stopPodSandbox(p.id);
        await ctrd.cri.removePodSandbox(p.id);
      }
      expect(attachedIds()).to.deep.equal([]);
      const podsDir = join(bpf.path, "pods");
      expect(existsSync(podsDir) ? readdirSync(podsDir) : []).to.deep.equal([]);
      const tree = await runChecked("bpftool", ["cgroup", "tree", kubelet.cgroupTreeDir()]);
      expect(tree.split("\n").filter((l) => /^\s*\d+\s/.test(l))).to.deep.equal([]);
      const links = await runChecked("ip", ["-n", ctrd.node.name, "-o", "link"]);
      expect(
        links
          .trim()
          .split("\n")
          .map((l) => l.split(": ")[1]),
      ).to.deep.equal(["lo"]);
      expect(readdirSync(ctrd.netnsDir)).to.deep.equal([]);
    });
  });
});
