// The plugin's decisions (cni/plugin.ts) through runCni, with an in-memory datapath fake and a
// memory logger. This tests the plugin logic only; test/kernel/cni-*.test.ts run the real
// datapath through the real binary.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { AddonUnavailableError } from "../../base/addon";
import { CgroupV2NotMountedError } from "../../base/cgroup2";
import {
  type Datapath,
  type DatapathOptions,
  defaultDeps,
  type Pins,
  type PluginDeps,
  type PodAttachRequest,
  runCni,
} from "../../cni/plugin";
import { DatapathError, type PodRecordData } from "../../datapath";
import { PodLookupError, podFactsFromPod, readPod } from "../../mesh/k8s-pod";
import type { PodFacts } from "../../mesh/pod-selection";
import { FakeKubeApi } from "../support/fake-kube-api";
import { recordOf } from "../support/pod-records";

const UID = "5f1f4e0c-1b2a-4c3d-8e9f-0a1b2c3d4e5f";
const CONTAINER = "c0ffee0123456789";
const NETNS = "/var/run/netns/cni-5f1f4e0c";
const STATUS = JSON.stringify({
  initContainers: ["istio-validation"],
  containers: ["istio-proxy"],
});

/** Calico's ADD result shape: host veth first, the pod's eth0 second, one /32. */
function calicoResult(version: string) {
  const ip: Record<string, unknown> = { address: "10.244.9.10/32", interface: 1 };
  if (!version.startsWith("1.")) ip.version = "4";
  return {
    cniVersion: version,
    interfaces: [
      { name: "cali12d4a061371" },
      { name: "eth0", mac: "3a:1e:9c:55:7d:02", sandbox: NETNS },
    ],
    ips: [ip],
    dns: {},
  };
}

class FakeDatapath implements Datapath {
  readonly pods = new Map<string, PodAttachRequest>();
  readonly calls: string[] = [];
  attachError?: Error;
  loadError?: Error;
  readonly detachErrors = new Map<string, Error>();
  readonly problems = new Map<string, string[]>();

  ensureSharedPrograms(opts: DatapathOptions): void {
    this.calls.push(`ensure ${opts.bpfRoot}`);
    if (this.loadError) throw this.loadError;
  }
  attachPod(req: PodAttachRequest, opts: DatapathOptions): PodRecordData {
    this.calls.push(`attach ${req.containerId} ${opts.bpfRoot}`);
    if (this.attachError) throw this.attachError;
    this.pods.set(req.containerId, req);
    return recordOf(req);
  }
  detachPod(containerId: string): boolean {
    this.calls.push(`detach ${containerId}`);
    const err = this.detachErrors.get(containerId);
    if (err) throw err;
    return this.pods.delete(containerId);
  }
  checkPod(containerId: string): string[] {
    return this.problems.get(containerId) ?? [];
  }
  /** The pins as datapath/pins reads them, over this fake's pods. */
  pins(bpffs: () => boolean): Pins {
    return {
      onBpffs: () => bpffs(),
      hasPodState: (_root, id) => this.pods.has(id),
      attachedContainerIds: () => [...this.pods.keys()],
      unlinkPodLinks: (_root, id) => {
        this.calls.push(`unlink ${id}`);
        return ["waggle_connect4"];
      },
    };
  }
}

interface LogLine {
  level: string;
  message: string;
  meta?: Record<string, unknown>;
  defaults: Record<string, unknown>;
}

describe("cni plugin (fake datapath)", () => {
  let cgroupRoot: string;
  let datapath: FakeDatapath;
  let lines: LogLine[];
  let podFacts: PodFacts | Error | undefined;
  let factReads: number;
  let bpffs: boolean;
  let cgroupMissing: boolean;
  let addonMissing: boolean;

  const deps = (): PluginDeps => ({
    loadDatapath: async () => {
      if (addonMissing) {
        throw new AddonUnavailableError(new Error("no usable runtime directory (EROFS)"));
      }
      return datapath;
    },
    pins: () => datapath.pins(() => bpffs),
    cgroupRoot: () => {
      if (cgroupMissing) throw new CgroupV2NotMountedError("/proc/self/mountinfo");
      return cgroupRoot;
    },
    readPodFacts: async () => {
      factReads++;
      if (podFacts instanceof Error) throw podFacts;
      if (!podFacts) throw new Error("test gave no pod facts");
      return podFacts;
    },
    openLog: (_config, defaults) => {
      const at =
        (level: string) =>
        (message: string, meta?: Record<string, unknown>): void => {
          lines.push({ level, message, meta, defaults });
        };
      return {
        log: { error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") },
        close: async () => {},
      };
    },
  });

  const env = (command: string, over: Record<string, string> = {}) => ({
    CNI_COMMAND: command,
    CNI_CONTAINERID: CONTAINER,
    CNI_NETNS: NETNS,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/cni/bin",
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=${CONTAINER};K8S_POD_UID=${UID}`,
    ...over,
  });

  const conf = (over: Record<string, unknown> = {}, version = "1.0.0") => ({
    cniVersion: version,
    name: "k8s-pod-network",
    type: "waggle",
    bpf_root: "/sys/fs/bpf/unit",
    prevResult: calicoResult(version),
    runtimeConfig: {
      cgroupPath: `/kubepods/burstable/pod${UID}`,
      "io.kubernetes.cri.pod-annotations": { "sidecar.istio.io/status": STATUS },
    },
    ...over,
  });

  async function cni(
    command: string,
    config: Record<string, unknown>,
    envOver: Record<string, string> = {},
  ) {
    const out = await runCni(env(command, envOver), JSON.stringify(config), deps());
    return {
      ...out,
      json: out.stdout ? (JSON.parse(out.stdout) as Record<string, unknown>) : undefined,
    };
  }

  /** Decision lines: what the plugin logged at info or above. */
  const decisions = () => lines.filter((l) => l.level !== "debug").map((l) => l.message);

  before(() => {
    cgroupRoot = mkdtempSync(join(tmpdir(), "waggle-plugin-"));
    mkdirSync(join(cgroupRoot, "kubepods/burstable", `pod${UID}`), { recursive: true });
  });
  after(() => rmSync(cgroupRoot, { recursive: true, force: true }));
  beforeEach(() => {
    datapath = new FakeDatapath();
    lines = [];
    podFacts = undefined;
    factReads = 0;
    bpffs = true;
    cgroupMissing = false;
    addonMissing = false;
  });

  describe("ADD", () => {
    it("attaches a meshed pod and prints prevResult unchanged", async () => {
      const out = await cni("ADD", conf());
      expect(out.exitCode, out.stdout).to.equal(0);
      expect(out.json).to.deep.equal(calicoResult("1.0.0"));
      expect(datapath.calls).to.deep.equal([
        "ensure /sys/fs/bpf/unit",
        `attach ${CONTAINER} /sys/fs/bpf/unit`,
      ]);
      const req = datapath.pods.get(CONTAINER);
      expect(req).to.deep.include({
        containerId: CONTAINER,
        netnsPath: NETNS,
        ifname: "eth0",
        cgroupPath: join(cgroupRoot, "kubepods/burstable", `pod${UID}`),
        podIPs: ["10.244.9.10"],
        pod: { namespace: "shop", name: "web-0", uid: UID },
      });
      expect(req?.settings.proxyUid).to.equal(1337);
      expect(decisions()).to.deep.equal(["attached"]);
      expect(lines[0].defaults).to.deep.equal({
        command: "ADD",
        containerId: CONTAINER,
        pod: "shop/web-0",
      });
    });

    for (const version of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
      it(`passes prevResult through at ${version}`, async () => {
        const out = await cni("ADD", conf({}, version));
        expect(out.json).to.deep.equal(calicoResult(version));
      });
    }

    it("uses the pod's annotations for the settings (excludeOutboundPorts)", async () => {
      const out = await cni(
        "ADD",
        conf({
          runtimeConfig: {
            cgroupPath: `/kubepods/burstable/pod${UID}`,
            "io.kubernetes.cri.pod-annotations": {
              "sidecar.istio.io/status": STATUS,
              "traffic.sidecar.istio.io/excludeOutboundPorts": "5432",
            },
          },
        }),
      );
      expect(out.exitCode).to.equal(0);
      expect(datapath.pods.get(CONTAINER)?.settings.outbound.excludePorts).to.deep.equal([5432]);
    });

    it("skipped by not-kubernetes: no K8S_POD_* in CNI_ARGS, so not a Kubernetes pod", async () => {
      const out = await cni("ADD", conf(), { CNI_ARGS: "" });
      expect(out.json).to.deep.equal(calicoResult("1.0.0"));
      expect(datapath.calls).to.deep.equal([]);
      expect(lines).to.have.length(1);
      expect(lines[0]).to.deep.include({ level: "info", message: "skipped" });
      expect(lines[0].meta?.rule).to.equal("not-kubernetes");
    });

    it("skipped by excluded-namespace: the pod's namespace is in exclude_namespaces", async () => {
      const out = await cni("ADD", conf({ exclude_namespaces: ["shop"] }));
      expect(out.exitCode).to.equal(0);
      expect(datapath.calls).to.deep.equal([]);
      expect(lines[0].meta).to.deep.include({ rule: "excluded-namespace" });
    });

    it("skipped by no-sidecar-status from the runtime's annotations, without reading the API", async () => {
      const out = await cni(
        "ADD",
        conf({
          kubernetes: { kubeconfig: "/etc/cni/net.d/waggle-kubeconfig" },
          runtimeConfig: {
            "io.kubernetes.cri.pod-annotations": { "prometheus.io/scrape": "true" },
          },
        }),
      );
      expect(out.exitCode).to.equal(0);
      expect(factReads).to.equal(0);
      expect(datapath.calls).to.deep.equal([]);
      expect(lines[0].meta).to.deep.include({ rule: "no-sidecar-status" });
    });

    const apiCases: [string, Partial<PodFacts>, string][] = [
      [
        "the pod has an istio-init container",
        { containerNames: ["istio-init", "web", "istio-proxy"] },
        "istio-init",
      ],
      [
        "istio-proxy has DISABLE_ENVOY=true",
        { proxy: { env: { DISABLE_ENVOY: "true" }, args: [] } },
        "envoy-disabled",
      ],
      [
        "no container is named istio-proxy",
        { containerNames: ["web"], proxy: undefined },
        "no-istio-proxy",
      ],
      [
        "istio-proxy runs as a gateway (proxy router)",
        { proxy: { env: {}, args: ["proxy", "router"] } },
        "not-a-sidecar",
      ],
      [
        "the label sidecar.istio.io/inject is false",
        { labels: { "sidecar.istio.io/inject": "false" } },
        "injection-disabled",
      ],
    ];
    for (const [what, over, rule] of apiCases) {
      it(`skipped by ${rule}: ${what} (pod read from the API)`, async () => {
        podFacts = {
          source: "api",
          labels: {},
          annotations: {},
          containerNames: ["web", "istio-proxy"],
          proxy: { env: {}, args: ["proxy", "sidecar"] },
          ...over,
        };
        const out = await cni("ADD", conf({ kubernetes: { kubeconfig: "/kc" } }));
        expect(out.exitCode).to.equal(0);
        expect(factReads).to.equal(1);
        expect(datapath.calls).to.deep.equal([]);
        expect(lines.map((l) => l.meta?.rule)).to.deep.equal([rule]);
      });
    }

    it("with a kubeconfig: istio-proxy's runAsUser/runAsGroup and env from the API, annotations from the runtime", async () => {
      podFacts = {
        source: "api",
        labels: {},
        annotations: { "traffic.sidecar.istio.io/excludeOutboundPorts": "1" },
        containerNames: ["web", "istio-proxy"],
        proxy: {
          runAsUser: 1500,
          runAsGroup: 1600,
          env: { ISTIO_META_DNS_CAPTURE: "true" },
          args: ["proxy", "sidecar"],
        },
      };
      const out = await cni("ADD", conf({ kubernetes: { kubeconfig: "/kc" } }));
      expect(out.exitCode, out.stdout).to.equal(0);
      const s = datapath.pods.get(CONTAINER)?.settings;
      expect([s?.proxyUid, s?.proxyGid, s?.dnsCapture]).to.deep.equal([1500, 1600, true]);
      expect(s?.outbound.excludePorts).to.deep.equal([15020]);
    });

    it("with a kubeconfig and no runtime annotations: everything from the API", async () => {
      podFacts = podFactsFromPod({
        metadata: { annotations: { "sidecar.istio.io/status": STATUS } },
        spec: { containers: [{ name: "istio-proxy", args: ["proxy", "sidecar"] }] },
      });
      const out = await cni("ADD", conf({ kubernetes: { kubeconfig: "/kc" }, runtimeConfig: {} }), {
        CNI_ARGS: `K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_UID=${UID};K8S_POD_INFRA_CONTAINER_ID=${CONTAINER}`,
      });
      expect(out.exitCode, out.stdout).to.equal(0);
      // no cgroupPath: found by K8S_POD_UID
      expect(datapath.pods.get(CONTAINER)?.cgroupPath).to.equal(
        join(cgroupRoot, "kubepods/burstable", `pod${UID}`),
      );
    });

    it("code 7 without prevResult (waggle is a chained plugin); nothing attached", async () => {
      const out = await cni("ADD", conf({ prevResult: undefined }));
      expect(out.json).to.include({
        code: 7,
        msg: "waggle is a chained plugin: ADD needs a prevResult",
      });
      expect(datapath.calls).to.deep.equal([]);
      expect(decisions()).to.deep.equal(["failed"]);
    });

    it("code 7 for an invalid entry, logged as the failure", async () => {
      const out = await cni("ADD", conf({ bpf_root: "relative/path" }));
      expect(out.json?.code).to.equal(7);
      expect(out.json?.msg).to.contain("bpf_root");
      expect(decisions()).to.deep.equal(["failed"]);
      expect(datapath.calls).to.deep.equal([]);
    });

    it("code 2 for an istio-cni mode waggle does not implement (ambient), saying so", async () => {
      const out = await cni("ADD", conf({ ambient_enabled: true }));
      expect(out.json?.code).to.equal(2);
      expect(out.json?.msg).to.contain("ambient_enabled");
      expect(out.json?.details).to.contain("ambient mode is not supported");
      expect(decisions()).to.deep.equal(["failed"]);
      expect(datapath.calls).to.deep.equal([]);
    });

    it("code 7 with neither runtime annotations nor a kubeconfig", async () => {
      const out = await cni("ADD", conf({ runtimeConfig: {} }));
      expect(out.json?.code).to.equal(7);
      expect(out.json?.msg).to.contain("cannot tell whether the pod is meshed");
    });

    it("code 6 for runtime annotations that are not a map of strings", async () => {
      const out = await cni(
        "ADD",
        conf({ runtimeConfig: { "io.kubernetes.cri.pod-annotations": { a: 1 } } }),
      );
      expect(out.json?.code).to.equal(6);
    });

    it("code 4 for unknown CNI_ARGS without IgnoreUnknown", async () => {
      const out = await cni("ADD", conf(), {
        CNI_ARGS: "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=a;FOO=bar",
      });
      expect(out.json?.code).to.equal(4);
    });

    it("code 11 when the API stays unreachable (fail closed), naming the cause", async () => {
      podFacts = new PodLookupError(
        "cannot read pod shop/web-0 from the API server after 30 attempts: HTTP 503",
        true,
        30,
      );
      const out = await cni("ADD", conf({ kubernetes: { kubeconfig: "/kc" } }));
      expect(out.json).to.include({
        code: 11,
        msg: "cannot read pod shop/web-0 from the API server after 30 attempts: HTTP 503",
      });
      expect(datapath.calls).to.deep.equal([]);
    });

    it("code 100 when the API refuses for good", async () => {
      podFacts = new PodLookupError(
        "cannot read pod shop/web-0 from the API server after 1 attempt: HTTP 403",
        false,
        1,
      );
      const out = await cni("ADD", conf({ kubernetes: { kubeconfig: "/kc" } }));
      expect(out.json?.code).to.equal(100);
    });

    it("code 101 for an invalid annotation, naming it; nothing attached", async () => {
      const out = await cni(
        "ADD",
        conf({
          runtimeConfig: {
            "io.kubernetes.cri.pod-annotations": {
              "sidecar.istio.io/status": STATUS,
              "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/33",
            },
          },
        }),
      );
      expect(out.json?.code).to.equal(101);
      expect(out.json?.msg).to.contain("traffic.sidecar.istio.io/includeOutboundIPRanges");
      expect(datapath.calls).to.deep.equal([]);
      expect(lines.at(-1)).to.deep.include({ level: "error", message: "failed" });
    });

    it("code 101 for a status annotation that is not the injector's JSON (no kubeconfig)", async () => {
      const out = await cni(
        "ADD",
        conf({
          runtimeConfig: {
            "io.kubernetes.cri.pod-annotations": { "sidecar.istio.io/status": "x" },
          },
        }),
      );
      expect(out.json?.code).to.equal(101);
      expect(out.json?.msg).to.contain("sidecar.istio.io/status");
    });

    it("code 102 when the cgroupPath does not exist", async () => {
      const out = await cni(
        "ADD",
        conf({
          runtimeConfig: {
            cgroupPath: "/kubepods/burstable/podmissing",
            "io.kubernetes.cri.pod-annotations": { "sidecar.istio.io/status": STATUS },
          },
        }),
      );
      expect(out.json?.code).to.equal(102);
      expect(out.json?.msg).to.contain("podmissing");
    });

    it("code 102 on a host without cgroup v2", async () => {
      cgroupMissing = true;
      const out = await cni("ADD", conf());
      expect(out.json?.code).to.equal(102);
      expect(out.json?.msg).to.contain("cgroup v2 is not mounted");
    });

    it("code 103 when prevResult has no address for the pod's interface", async () => {
      const prev = { ...calicoResult("1.0.0"), ips: [{ address: "10.0.0.1/32", interface: 0 }] };
      const out = await cni("ADD", conf({ prevResult: prev }));
      expect(out.json?.code).to.equal(103);
    });

    it("code 104 when the datapath fails, naming the cause", async () => {
      datapath.attachError = new Error("bpf_link_create: EPERM");
      const out = await cni("ADD", conf());
      expect(out.json).to.include({
        code: 104,
        msg: "attaching the pod failed: bpf_link_create: EPERM",
      });
      expect(datapath.pods.size).to.equal(0);
      expect(decisions()).to.deep.equal(["failed"]);
    });

    it("code 50 when the bpf root is not on a bpffs (the node's problem, not the pod's)", async () => {
      datapath.attachError = new DatapathError("BPFFS", "/sys/fs/bpf/unit is not on a bpffs");
      const out = await cni("ADD", conf());
      expect(out.json).to.include({ code: 50 });
      expect(out.json?.msg).to.contain("is not on a bpffs");
    });

    it("code 50 for a meshed pod when the eBPF addon cannot be used; nothing attached", async () => {
      addonMissing = true;
      const out = await cni("ADD", conf());
      expect(out.json).to.include({
        code: 50,
        msg: "the eBPF addon cannot be used: no usable runtime directory (EROFS)",
      });
      expect(datapath.calls).to.deep.equal([]);
    });

    it("an unmeshed pod is added without the eBPF addon", async () => {
      addonMissing = true;
      const out = await cni("ADD", conf({ exclude_namespaces: ["shop"] }));
      expect(out.exitCode, out.stdout).to.equal(0);
      expect(decisions()).to.deep.equal(["skipped"]);
    });
  });

  describe("DEL", () => {
    it("detaches by container ID and prints nothing", async () => {
      await cni("ADD", conf());
      const out = await cni("DEL", conf());
      expect(out).to.include({ exitCode: 0, stdout: "" });
      expect(datapath.pods.size).to.equal(0);
      expect(decisions().at(-1)).to.equal("detached");
    });

    it("succeeds with an empty netns, without prevResult, for a container never seen, and twice", async () => {
      for (let i = 0; i < 2; i++) {
        const out = await cni("DEL", conf({ prevResult: undefined }, "0.3.1"), { CNI_NETNS: "" });
        expect(out.exitCode, out.stdout).to.equal(0);
      }
      expect(datapath.calls).to.deep.equal([]);
    });

    it("a container with nothing pinned: succeeds without the addon, logs at debug only", async () => {
      addonMissing = true;
      const out = await cni("DEL", conf());
      expect(out).to.include({ exitCode: 0, stdout: "" });
      expect(decisions()).to.deep.equal([]);
      expect(lines.map((l) => `${l.level} ${l.message}`)).to.deep.equal(["debug nothing attached"]);
    });

    it("without the addon, unlinks an attached pod's links, warns that its map entries stay, succeeds", async () => {
      await cni("ADD", conf());
      addonMissing = true;
      const out = await cni("DEL", conf());
      expect(out).to.include({ exitCode: 0, stdout: "" });
      expect(datapath.calls.at(-1)).to.equal(`unlink ${CONTAINER}`);
      const warning = lines.find((l) => l.level === "warn");
      expect(warning?.message).to.contain("unlinked the pod's links, its map entries stay");
      expect(warning?.meta?.error).to.contain("EROFS");
      expect(decisions().at(-1)).to.equal("detached");
    });

    it("a DEL with nothing attached logs at debug, not 'detached' at info", async () => {
      await cni("ADD", conf());
      for (let i = 0; i < 2; i++) await cni("DEL", conf(), i === 1 ? { CNI_NETNS: "" } : {});
      expect(decisions().filter((d) => d === "detached")).to.have.length(1);
      const quiet = lines.filter((l) => l.message === "nothing attached");
      expect(quiet.map((l) => [l.level, l.meta?.netns])).to.deep.equal([["debug", undefined]]);
    });

    it("does not read the pod or need annotations", async () => {
      const out = await cni("DEL", conf({ runtimeConfig: {}, kubernetes: { kubeconfig: "/kc" } }), {
        CNI_ARGS: "",
      });
      expect(out.exitCode).to.equal(0);
      expect(factReads).to.equal(0);
    });

    it("goes on with bpf_root when the rest of the entry does not validate (and warns)", async () => {
      await cni("ADD", conf());
      const out = await cni("DEL", conf({ log_level: "loud", unknown_key: 1 }), {
        CNI_ARGS: "BOGUS=1",
      });
      expect(out.exitCode, out.stdout).to.equal(0);
      expect(datapath.calls.at(-1)).to.equal(`detach ${CONTAINER}`);
      expect(datapath.pods.size).to.equal(0);
      expect(lines.filter((l) => l.level === "warn").map((l) => l.meta?.bpfRoot)).to.deep.equal([
        "/sys/fs/bpf/unit",
      ]);
      expect(decisions().at(-1)).to.equal("detached");
    });

    it("code 106 when the state cannot be removed", async () => {
      await cni("ADD", conf());
      datapath.detachErrors.set(CONTAINER, new Error("unlink /sys/fs/bpf/unit/x: EBUSY"));
      const out = await cni("DEL", conf());
      expect(out.json).to.include({ code: 106 });
      expect(out.json?.msg).to.contain("EBUSY");
    });
  });

  describe("CHECK", () => {
    it("passes for an attached, healthy pod", async () => {
      await cni("ADD", conf());
      const out = await cni("CHECK", conf());
      expect(out).to.include({ exitCode: 0, stdout: "" });
    });

    it("code 105 listing what is missing", async () => {
      await cni("ADD", conf());
      datapath.problems.set(CONTAINER, [
        "cgroup link connect4 missing",
        "no policy entry for netns 4026532",
      ]);
      const out = await cni("CHECK", conf());
      expect(out.json).to.include({
        code: 105,
        msg: "the pod's redirection is incomplete: cgroup link connect4 missing; no policy entry for netns 4026532",
      });
    });

    it("passes for a pod ADD skipped", async () => {
      const out = await cni("CHECK", conf({ exclude_namespaces: ["shop"] }));
      expect(out.exitCode).to.equal(0);
    });

    it("code 105 for a meshed pod with no state at all", async () => {
      const out = await cni("CHECK", conf());
      expect(out.json?.code).to.equal(105);
      expect(out.json?.msg).to.contain(`no state for container ${CONTAINER}`);
    });

    it("code 7 without prevResult", async () => {
      const out = await cni("CHECK", conf({ prevResult: undefined }));
      expect(out.json?.code).to.equal(7);
    });
  });

  describe("GC", () => {
    const gcEnv = { CNI_CONTAINERID: "", CNI_IFNAME: "", CNI_NETNS: "" };
    const addPod = (id: string) => cni("ADD", conf(), { CNI_CONTAINERID: id });
    /** GC with these containers' attachments (on eth0) listed as valid. */
    const gc = (valid: string[]) =>
      cni(
        "GC",
        conf(
          {
            prevResult: undefined,
            "cni.dev/valid-attachments": valid.map((containerID) => ({
              containerID,
              ifname: "eth0",
            })),
          },
          "1.1.0",
        ),
        gcEnv,
      );

    it("removes every attachment not listed as valid and keeps the others", async () => {
      await addPod("keep1");
      await addPod("stale1");
      await addPod("stale2");
      const out = await gc(["keep1"]);
      expect(out).to.include({ exitCode: 0, stdout: "" });
      expect([...datapath.pods.keys()]).to.deep.equal(["keep1"]);
      expect(
        lines.filter((l) => l.message === "removed by GC").map((l) => l.meta?.containerId),
      ).to.deep.equal(["stale1", "stale2"]);
    });

    it("keeps going past a failure and reports it (code 107)", async () => {
      await addPod("stale1");
      await addPod("stale2");
      datapath.detachErrors.set("stale1", new Error("EIO"));
      const out = await gc([]);
      expect(out.json).to.include({
        code: 107,
        msg: "GC could not remove 1 stale attachment",
        details: "stale1: EIO",
      });
      expect([...datapath.pods.keys()]).to.deep.equal(["stale1"]);
    });

    it("without the addon, unlinks the stale pods' links", async () => {
      await addPod("keep1");
      await addPod("stale1");
      addonMissing = true;
      const out = await gc(["keep1"]);
      expect(out).to.include({ exitCode: 0, stdout: "" });
      expect(datapath.calls.at(-1)).to.equal("unlink stale1");
    });
  });

  describe("STATUS", () => {
    const statusConf = () => conf({ prevResult: undefined, runtimeConfig: undefined }, "1.1.0");

    it("ready: bpffs, cgroup v2 and the programs load", async () => {
      const out = await cni("STATUS", statusConf());
      expect(out).to.include({ exitCode: 0, stdout: "" });
      expect(datapath.calls).to.deep.equal(["ensure /sys/fs/bpf/unit"]);
    });

    it("code 51 without bpffs at bpf_root", async () => {
      bpffs = false;
      const out = await cni("STATUS", statusConf());
      expect(out.json?.code).to.equal(51);
      expect(out.json?.msg).to.contain("no bpffs at /sys/fs/bpf/unit");
    });

    it("code 50 without cgroup v2", async () => {
      cgroupMissing = true;
      const out = await cni("STATUS", statusConf());
      expect(out.json?.code).to.equal(50);
    });

    it("code 50 when the programs cannot be loaded", async () => {
      datapath.loadError = new Error("verifier rejected capture_connect4");
      const out = await cni("STATUS", statusConf());
      expect(out.json).to.include({
        code: 50,
        msg: "the BPF programs cannot be loaded: verifier rejected capture_connect4",
      });
    });
  });
});

describe("cni plugin with the fake API server (fail closed)", () => {
  let api: FakeKubeApi;
  let dir: string;
  before(async () => {
    api = new FakeKubeApi();
    await api.start();
    dir = mkdtempSync(join(tmpdir(), "waggle-plugin-api-"));
    api.writeKubeconfig(join(dir, "kubeconfig"));
  });
  after(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ADD fails with code 11 after the configured attempts, and the message names the cause", async () => {
    api.script.push(...Array(3).fill({ status: 503, message: "apiserver overloaded" }));
    const datapath = new FakeDatapath();
    const out = await runCni(
      {
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: CONTAINER,
        CNI_NETNS: NETNS,
        CNI_IFNAME: "eth0",
        CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0",
      },
      JSON.stringify({
        cniVersion: "0.3.1",
        name: "k8s-pod-network",
        type: "waggle",
        log_level: "none",
        kubernetes: { kubeconfig: join(dir, "kubeconfig") },
        api_attempts: 3,
        api_retry_interval_ms: 10,
        prevResult: calicoResult("0.3.1"),
        runtimeConfig: {
          "io.kubernetes.cri.pod-annotations": { "sidecar.istio.io/status": STATUS },
        },
      }),
      {
        loadDatapath: async () => datapath,
        cgroupRoot: () => "/nonexistent",
        readPodFacts: async (o) => podFactsFromPod(await readPod(o)),
        openLog: () => ({
          log: { error() {}, warn() {}, info() {}, debug() {} },
          close: async () => {},
        }),
        pins: () => datapath.pins(() => true),
      },
    );
    expect(JSON.parse(out.stdout)).to.deep.equal({
      cniVersion: "0.3.1",
      code: 11,
      msg: "cannot read pod shop/web-0 from the API server after 3 attempts: HTTP 503 (apiserver overloaded)",
    });
    expect(api.requests).to.have.length(3);
    expect(datapath.calls).to.deep.equal([]);
  });
});

describe("cni plugin log (the line log, as the binary opens it)", () => {
  it("writes JSON lines to a file in directories it creates, and flushes on close", async () => {
    const dir = mkdtempSync(join(tmpdir(), "waggle-log-"));
    try {
      const file = join(dir, "a", "b", "cni.log");
      const { log, close } = defaultDeps.openLog(
        { level: "debug", file, maxSizeMB: 1, maxFiles: 2 },
        { command: "ADD", containerId: "c1" },
      );
      log.debug("decided", { rule: "x" });
      await close();
      const [line] = readFileSync(file, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(line).to.include({
        level: "debug",
        message: "decided",
        rule: "x",
        command: "ADD",
        containerId: "c1",
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a log file that cannot be created neither fails nor hangs (e.g. under /proc)", async () => {
    const { log, close } = defaultDeps.openLog(
      { level: "error", file: "/proc/waggle-nope/cni.log", maxSizeMB: 1, maxFiles: 1 },
      {},
    );
    log.info("not written");
    const t0 = Date.now();
    await close();
    expect(Date.now() - t0).to.be.below(1500);
  });
});

describe("cni plugin cold path", () => {
  it("VERSION, and an unmeshed pod's ADD logging at info to a file, load no winston, addon, API client or ip-address", () => {
    const plugin = join(__dirname, "..", "..", "cni", "plugin.js");
    const dir = mkdtempSync(join(tmpdir(), "waggle-cold-"));
    const logFile = join(dir, "cni.log");
    const script = `
      const { runCni } = require(${JSON.stringify(plugin)});
      const heavy = () => Object.keys(require.cache).filter((k) => /node_modules\\/(ip-address|@kubernetes|winston)|ebpf-napi|datapath\\//.test(k));
      runCni({ CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}').then(async (v) => {
        const afterVersion = heavy().length;
        const add = await runCni(
          { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1", CNI_NETNS: "/var/run/netns/x", CNI_IFNAME: "eth0",
            CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b" },
          JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "waggle", log_level: "info",
            log_file: ${JSON.stringify(logFile)},
            runtimeConfig: { "io.kubernetes.cri.pod-annotations": {} },
            prevResult: { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/32" }] } }));
        console.log(JSON.stringify({ version: v.exitCode, afterVersion, add: add.exitCode, afterAdd: heavy() }));
      });`;
    try {
      const out = execFileSync(process.execPath, ["-e", script], { encoding: "utf8" });
      expect(JSON.parse(out)).to.deep.equal({ version: 0, afterVersion: 0, add: 0, afterAdd: [] });
      expect(JSON.parse(readFileSync(logFile, "utf8"))).to.include({ message: "skipped" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
