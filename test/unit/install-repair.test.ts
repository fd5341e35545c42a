import type { V1Pod } from "@kubernetes/client-node";
import { expect } from "chai";
import type { InstallDatapath } from "../../install/datapath-port";
import { InstallMetrics } from "../../install/metrics";
import {
  EarlyPodRepairer,
  podIPs,
  repairDecision,
  repairEarlyPods,
  sandboxIdOf,
} from "../../install/repair";
import { attachedPod, FRESH_LOAD, recordOf } from "../support/pod-records";
import { capturingLogger, waitFor } from "./install-fixtures";

const SANDBOX = "a".repeat(64);
const APP = "b".repeat(64);
const PROXY = "c".repeat(64);

/** A meshed pod as the injector leaves it, running on this node. */
function meshedPod(
  over: { annotations?: Record<string, string>; containers?: string[] } = {},
): V1Pod {
  return {
    metadata: {
      namespace: "shop",
      name: "cart-1",
      uid: "0f6b1c2e-1d0e-4a7b-9c55-6c1f0e2d3a4b",
      annotations: {
        "sidecar.istio.io/status": '{"containers":["istio-proxy"]}',
        ...over.annotations,
      },
    },
    spec: {
      nodeName: "node-1",
      containers: (over.containers ?? ["cart", "istio-proxy"]).map((name) =>
        name === "istio-proxy"
          ? {
              name,
              securityContext: { runAsUser: 1500, runAsGroup: 1500 },
              env: [{ name: "ISTIO_META_DNS_CAPTURE", value: "true" }],
            }
          : { name },
      ),
    },
    status: {
      phase: "Running",
      podIP: "10.244.1.7",
      podIPs: [{ ip: "10.244.1.7" }, { ip: "fd00::7" }],
      containerStatuses: [
        {
          name: "cart",
          containerID: `containerd://${APP}`,
          image: "",
          imageID: "",
          ready: true,
          restartCount: 0,
        },
        {
          name: "istio-proxy",
          containerID: `containerd://${PROXY}`,
          image: "",
          imageID: "",
          ready: true,
          restartCount: 0,
        },
      ],
    },
  };
}

describe("install: early-pod repair (decisions)", () => {
  it("meshes a running injected pod with the settings the plugin would use", async () => {
    const d = await repairDecision(meshedPod(), ["kube-system"]);
    expect(d).to.have.property("settings");
    const { settings } = d as {
      settings: { proxyUid: number; proxyGid: number; dnsCapture: boolean };
    };
    expect(settings).to.include({ proxyUid: 1500, proxyGid: 1500, dnsCapture: true });
  });

  const skips: Array<[string, (p: V1Pod) => void, RegExp]> = [
    [
      "a host-network pod",
      (p) => ((p.spec as { hostNetwork?: boolean }).hostNetwork = true),
      /host network/,
    ],
    [
      "a terminating pod",
      (p) => ((p.metadata as { deletionTimestamp?: Date }).deletionTimestamp = new Date()),
      /terminating/,
    ],
    [
      "a pod not running yet",
      (p) => ((p.status as { phase?: string }).phase = "Pending"),
      /phase Pending/,
    ],
    [
      "a pod decideMesh leaves alone, with its reason (an excluded namespace)",
      (p) => ((p.metadata as { namespace?: string }).namespace = "kube-system"),
      /namespace kube-system is in exclude_namespaces/,
    ],
    [
      "an invalid traffic annotation (named), where the plugin's ADD would fail",
      (p) =>
        ((p.metadata?.annotations as Record<string, string>)[
          "traffic.sidecar.istio.io/excludeOutboundPorts"
        ] = "http"),
      /excludeOutboundPorts/,
    ],
  ];
  for (const [what, change, reason] of skips) {
    it(`leaves alone ${what}`, async () => {
      const pod = meshedPod();
      change(pod);
      const d = await repairDecision(pod, ["kube-system"]);
      expect(d).to.have.property("skip").that.matches(reason);
    });
  }

  it("finds the sandbox among the pod cgroup's children (cgroupfs and systemd names)", () => {
    const pod = meshedPod();
    expect(sandboxIdOf([APP, PROXY, SANDBOX], pod)).to.equal(SANDBOX);
    expect(
      sandboxIdOf(
        [
          `cri-containerd-${APP}.scope`,
          `cri-containerd-${SANDBOX}.scope`,
          `cri-containerd-${PROXY}.scope`,
        ],
        pod,
      ),
    ).to.equal(SANDBOX);
    expect(sandboxIdOf([`crio-${SANDBOX}.scope`, "cpu.stat"], pod)).to.equal(SANDBOX);
  });

  it("no sandbox ID when it can't be told apart", () => {
    const pod = meshedPod();
    expect(sandboxIdOf([APP, PROXY], pod)).to.equal(undefined);
    expect(sandboxIdOf([SANDBOX, "d".repeat(64)], pod)).to.equal(undefined);
  });

  it("pod IPs from status.podIPs, else status.podIP", () => {
    expect(podIPs(meshedPod())).to.deep.equal(["10.244.1.7", "fd00::7"]);
    const single = meshedPod();
    delete single.status?.podIPs;
    expect(podIPs(single)).to.deep.equal(["10.244.1.7"]);
  });
});

function datapath(
  records: Awaited<ReturnType<InstallDatapath["listPods"]>> = [],
): InstallDatapath & { attached: string[] } {
  const attached: string[] = [];
  return {
    attached,
    requireBpffs: () => {},
    upgradePrograms: async () => FRESH_LOAD,
    listPods: async () => records,
    attachPod: async (req) => {
      attached.push(req.containerId);
      return recordOf(req);
    },
    netnsCookieOf: () => "1",
    removeDatapath: async () => ({ pods: 0 }),
  };
}

describe("install: early-pod repair (passes)", () => {
  const base = {
    bpfRoot: "/nonexistent",
    excludeNamespaces: [],
    procRoot: "/proc",
    netnsDir: "/run/netns",
  };

  it("skips pods the datapath already has (by pod UID) without touching the host", async () => {
    const pod = meshedPod();
    const dp = datapath([
      attachedPod({
        containerId: SANDBOX,
        netnsCookie: "9",
        podIPs: ["10.244.1.7"],
        pod: { namespace: "shop", name: "cart-1", uid: pod.metadata?.uid },
        counters: null,
      }),
    ]);
    const report = await repairEarlyPods({
      ...base,
      cgroupRoot: "/nonexistent",
      datapath: dp,
      log: capturingLogger().log,
      listNodePods: async () => [
        pod,
        {
          ...meshedPod({ annotations: {} }),
          metadata: { namespace: "x", name: "plain", uid: "u" },
        },
      ],
    });
    expect(report.alreadyAttached).to.deep.equal(["shop/cart-1"]);
    expect(report.skipped.map((s) => s.pod)).to.deep.equal(["x/plain"]);
    expect(dp.attached).to.deep.equal([]);
  });

  it("a pod whose cgroup can't be found fails alone, with the reason", async () => {
    const { log, lines } = capturingLogger();
    const report = await repairEarlyPods({
      ...base,
      cgroupRoot: "/nonexistent",
      datapath: datapath(),
      log,
      listNodePods: async () => [meshedPod()],
    });
    expect(report.failed).to.have.length(1);
    expect(report.failed[0]?.error).to.match(/no cgroup for pod UID 0f6b1c2e/);
    expect(lines.some((l) => l.message === "early pod not attached")).to.equal(true);
  });

  it("the repairer retries the listing with a growing delay until the API answers", async () => {
    let calls = 0;
    const { log, lines } = capturingLogger();
    const metrics = new InstallMetrics();
    const repairer = new EarlyPodRepairer({
      ...base,
      cgroupRoot: "/nonexistent",
      datapath: datapath(),
      log,
      metrics,
      listRetry: { minMs: 20, maxMs: 80 },
      listNodePods: async () => {
        calls++;
        if (calls < 4) throw new Error("connect ECONNREFUSED 10.96.0.1:443");
        return [];
      },
    });
    repairer.trigger();
    repairer.trigger(); // once only
    await waitFor("the repair done", () => repairer.done, 3000);
    expect(calls).to.equal(4);
    expect(
      lines.filter((l) => /cannot list this node's pods/.test(l.message)),
      "said once",
    ).to.have.length(1);
    expect(repairer.report).to.deep.equal({
      attached: [],
      alreadyAttached: [],
      skipped: [],
      failed: [],
    });
    await repairer.stop();
  });
});
