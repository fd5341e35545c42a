// conf/waggle.yaml against what the code uses: mounts where the options' defaults point,
// the health port and probes, RBAC, the ConfigMap's keys, the security context.

import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { loadAllYaml } from "@kubernetes/client-node";
import { expect } from "chai";
import { runtimeDirCandidates } from "../../base/runtime-dir";
import { withEntry } from "../../install/conflist";
import {
  OPTION_SPECS,
  optionDefault,
  resolveInstallOptions,
  SERVICE_ACCOUNT_DIR,
} from "../../install/options";
import { pluginEntry } from "../../install/plugin-entry";
import { CALICO_SHAPES } from "./install-fixtures";

const repo = join(__dirname, "..", "..", "..");

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML documents
type Doc = any;

function load(file: string): Doc[] {
  return loadAllYaml(readFileSync(join(repo, "conf", file), "utf8"));
}

const docs = load("waggle.yaml");
const byKind = (kind: string): Doc[] => docs.filter((d) => d.kind === kind);
const one = (kind: string): Doc => {
  const found = byKind(kind);
  expect(found, kind).to.have.length(1);
  return found[0];
};

const ds = one("DaemonSet");
const pod = ds.spec.template.spec;
const container = pod.containers[0];

interface Mount {
  mountPath: string;
  hostPath?: string;
  emptyDir: boolean;
  readOnly: boolean;
}

/** A container's mounts with the volumes behind them. */
function mountsOf(podSpec: Doc, c: Doc): Mount[] {
  return c.volumeMounts.map((m: Doc) => {
    const volume = podSpec.volumes.find((v: Doc) => v.name === m.name);
    expect(volume, `volume ${m.name}`).to.not.equal(undefined);
    return {
      mountPath: m.mountPath,
      hostPath: volume.hostPath?.path,
      emptyDir: volume.emptyDir !== undefined,
      readOnly: m.readOnly === true,
    };
  });
}

/** The mount a container path falls under (the longest mountPath that contains it). */
function mountIn(list: Mount[], path: string): Mount | undefined {
  return list
    .filter((m) => path === m.mountPath || !relative(m.mountPath, path).startsWith(".."))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}

const mounts = mountsOf(pod, container);
const mountFor = (path: string) => mountIn(mounts, path);

const str = (flag: string) => String(optionDefault(flag));

describe("conf/waggle.yaml (the manifest against the code)", () => {
  it("holds exactly one of each object, all in one namespace", () => {
    for (const kind of [
      "Namespace",
      "ServiceAccount",
      "ClusterRole",
      "ClusterRoleBinding",
      "ConfigMap",
      "DaemonSet",
    ])
      one(kind);
    const ns = one("Namespace").metadata.name;
    for (const d of docs.filter(
      (d) => !["Namespace", "ClusterRole", "ClusterRoleBinding"].includes(d.kind),
    )) {
      expect(d.metadata.namespace, d.kind).to.equal(ns);
    }
  });

  it("RBAC: get/list/watch pods only, bound to the DaemonSet's service account", () => {
    expect(one("ClusterRole").rules).to.deep.equal([
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
    ]);
    const sa = one("ServiceAccount");
    const binding = one("ClusterRoleBinding");
    expect(binding.roleRef).to.deep.equal({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: one("ClusterRole").metadata.name,
    });
    expect(binding.subjects).to.deep.equal([
      { kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace },
    ]);
    expect(pod.serviceAccountName).to.equal(sa.metadata.name);
    expect(pod.automountServiceAccountToken).to.not.equal(false);
    expect(sa.automountServiceAccountToken).to.not.equal(false);
  });

  it("mounts the host's CNI dirs where the defaults point", () => {
    expect(mountFor(str("cni-bin-dir"))).to.deep.include({
      mountPath: str("cni-bin-dir"),
      hostPath: "/opt/cni/bin",
      readOnly: false,
    });
    expect(mountFor(str("cni-net-dir"))).to.deep.include({
      mountPath: str("cni-net-dir"),
      hostPath: str("host-cni-net-dir"),
      readOnly: false,
    });
  });

  it("mounts bpffs, the cgroup tree and pod netns at their host paths (paths recorded in pins mean the same)", () => {
    for (const path of [str("bpf-root"), "/sys/fs/cgroup", "/var/run/netns"]) {
      const m = mountFor(path);
      expect(m?.hostPath, path).to.equal(m?.mountPath);
      expect(m?.readOnly, path).to.equal(false);
    }
    expect(mountFor(str("bpf-root"))?.hostPath).to.equal("/sys/fs/bpf");
    expect(mountFor(str("netns-dir"))).to.deep.include({
      mountPath: str("netns-dir"),
      hostPath: str("netns-dir"),
    });
    expect(mountFor(str("proc-root"))).to.deep.include({
      mountPath: str("proc-root"),
      hostPath: "/proc",
      readOnly: true,
    });
    // cgroup-root "auto" finds the cgroup2 mount, which the host's tree covers at its own path.
    expect(str("cgroup-root")).to.equal("auto");
  });

  it("a writable runtime dir for the binary's addon under a read-only root fs", () => {
    expect(container.securityContext.readOnlyRootFilesystem).to.equal(true);
    const runtime = runtimeDirCandidates({}, "/usr/local/bin/waggle")[0] as string;
    expect(mountFor(runtime)?.emptyDir, runtime).to.equal(true);
  });

  it("the service account token and CA come from the default mount", () => {
    expect(str("token-file").startsWith(`${SERVICE_ACCOUNT_DIR}/`)).to.equal(true);
    expect(str("ca-file").startsWith(`${SERVICE_ACCOUNT_DIR}/`)).to.equal(true);
    expect(
      mounts.some((m) => m.mountPath === SERVICE_ACCOUNT_DIR),
      "no volume hides the token",
    ).to.equal(false);
  });

  it("the health port and probes match the installer's endpoints", () => {
    const port = container.ports.find((p: Doc) => p.name === "health");
    const env = Object.fromEntries(
      container.env.filter((e: Doc) => e.value !== undefined).map((e: Doc) => [e.name, e.value]),
    );
    const healthPort = Number(env.WAGGLE_HEALTH_PORT ?? optionDefault("health-port"));
    expect(port.containerPort).to.equal(healthPort);
    expect(healthPort).to.equal(optionDefault("health-port"));
    expect(container.readinessProbe.httpGet).to.deep.equal({ path: "/readyz", port: "health" });
    expect(container.livenessProbe.httpGet).to.deep.equal({ path: "/healthz", port: "health" });
    expect(pod.hostNetwork).to.equal(true);
  });

  it("every environment variable and ConfigMap key is an option's twin; the node name comes from the downward API", () => {
    const twins = new Set(OPTION_SPECS.map((s) => s.env));
    for (const e of container.env) expect(twins.has(e.name), e.name).to.equal(true);
    const cm = one("ConfigMap");
    expect(container.envFrom).to.deep.equal([{ configMapRef: { name: cm.metadata.name } }]);
    for (const key of Object.keys(cm.data)) expect(twins.has(key), key).to.equal(true);
    const node = container.env.find((e: Doc) => e.name === "WAGGLE_NODE_NAME");
    expect(node.valueFrom).to.deep.equal({ fieldRef: { fieldPath: "spec.nodeName" } });
    const namespace = container.env.find((e: Doc) => e.name === "POD_NAMESPACE");
    expect(namespace.valueFrom).to.deep.equal({ fieldRef: { fieldPath: "metadata.namespace" } });
    // The ConfigMap's values are valid settings.
    expect(() =>
      resolveInstallOptions(
        {},
        { ...cm.data, KUBERNETES_SERVICE_HOST: "h", KUBERNETES_SERVICE_PORT: "443" },
      ),
    ).to.not.throw();
  });

  it("the plugin entry excludes waggle's own namespace (the default is the manifest's, too)", () => {
    expect(optionDefault("pod-namespace")).to.equal(ds.metadata.namespace);
    const cm = one("ConfigMap");
    // What the installer resolves in the DaemonSet's pod: the ConfigMap, plus the downward API.
    const options = resolveInstallOptions(
      {},
      {
        ...cm.data,
        POD_NAMESPACE: ds.metadata.namespace,
        KUBERNETES_SERVICE_HOST: "h",
        KUBERNETES_SERVICE_PORT: "443",
      },
    );
    expect(pluginEntry(options).exclude_namespaces).to.include(ds.metadata.namespace);
    expect(cm.data.WAGGLE_EXCLUDE_NAMESPACES.split(",")).to.not.include(ds.metadata.namespace);
  });

  it("capabilities instead of privileged; node-critical; tolerates every taint", () => {
    const sc = container.securityContext;
    expect(sc.privileged).to.not.equal(true);
    expect(sc.capabilities.drop).to.deep.equal(["ALL"]);
    expect(sc.capabilities.add).to.include.members(["BPF", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]);
    expect(sc.capabilities.add).to.not.include("ALL");
    expect(pod.priorityClassName).to.equal("system-node-critical");
    expect(pod.tolerations).to.deep.equal([{ operator: "Exists" }]);
    expect(pod.hostPID).to.equal(true);
  });

  it("conf/README.md documents every flag, its variable and default, and every entry key", () => {
    const readme = readFileSync(join(repo, "conf", "README.md"), "utf8");
    const cells = (line: string) => line.split("|").map((c) => c.trim());
    const rows = readme
      .split("\n")
      .filter((l) => l.startsWith("|"))
      .map(cells);
    for (const spec of OPTION_SPECS) {
      const row = rows
        .find((r) => r[1] === `\`--${spec.flag}\`` && r[2] === `\`${spec.env}\``)
        ?.join("|");
      expect(row, spec.flag).to.not.equal(undefined);
      if (
        typeof spec.default === "number" ||
        (typeof spec.default === "string" && spec.default !== "")
      ) {
        expect(row, spec.flag).to.include(`\`${spec.default}\``);
      }
    }
    const options = resolveInstallOptions(
      {},
      { KUBERNETES_SERVICE_HOST: "h", KUBERNETES_SERVICE_PORT: "443" },
    );
    for (const key of Object.keys(pluginEntry(options))) {
      expect(
        rows.some((r) => r[1]?.startsWith(`\`${key}`)),
        key,
      ).to.equal(true);
    }
  });

  it("conf/10-calico.conflist.sample is what install makes of Calico's manifest list with the defaults", () => {
    const options = resolveInstallOptions(
      {},
      { KUBERNETES_SERVICE_HOST: "h", KUBERNETES_SERVICE_PORT: "443" },
    );
    const sample = readFileSync(join(repo, "conf", "10-calico.conflist.sample"), "utf8");
    expect(sample).to.equal(withEntry(CALICO_SHAPES.manifest, pluginEntry(options)));
  });
});

describe("conf/waggle-uninstall.yaml (the uninstall DaemonSet against the code)", () => {
  const uninstall = load("waggle-uninstall.yaml");
  const spec = uninstall.find((d) => d.kind === "DaemonSet").spec.template.spec;
  const init = spec.initContainers[0];
  const list = mountsOf(spec, init);

  it("runs `waggle uninstall` from the install image, then idles", () => {
    expect(uninstall.map((d) => d.kind)).to.deep.equal(["DaemonSet"]);
    expect(init.command).to.deep.equal(["/usr/local/bin/waggle", "uninstall"]);
    expect(init.image).to.equal(container.image);
    expect(spec.containers[0].command).to.deep.equal(["/bin/sleep", "infinity"]);
    expect(spec.tolerations).to.deep.equal([{ operator: "Exists" }]);
    expect(spec.automountServiceAccountToken).to.equal(false);
  });

  it("mounts what uninstall's defaults point at, like the installer does", () => {
    for (const flag of OPTION_SPECS.filter(
      (o) => o.uninstall && typeof o.default === "string" && o.default.startsWith("/"),
    )) {
      const path = String(flag.default);
      expect(mountIn(list, path), flag.flag).to.deep.equal(mountFor(path));
    }
    for (const path of [
      str("netns-dir"),
      str("proc-root"),
      runtimeDirCandidates({}, "/x")[0] as string,
    ]) {
      expect(mountIn(list, path), path).to.deep.equal(mountFor(path));
    }
    expect(init.securityContext.capabilities.add).to.include.members([
      "BPF",
      "NET_ADMIN",
      "SYS_ADMIN",
    ]);
  });
});
