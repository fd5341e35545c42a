import { expect } from "chai";
import yargs from "yargs";
import {
  declareInstallOptions,
  declareUninstallOptions,
  OPTION_SPECS,
  OptionError,
  resolveInstallOptions,
  resolveUninstallOptions,
} from "../../install/options";
import { pluginEntry } from "../../install/plugin-entry";
import { parseWaggleConfig } from "../../mesh/config";

const apiEnv = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };

function parse(argv: string[]): Record<string, unknown> {
  return declareInstallOptions(yargs(argv).exitProcess(false).strict()).parseSync() as Record<
    string,
    unknown
  >;
}

describe("install: options (flags, environment twins, defaults)", () => {
  it("defaults: host mounts under /host, auto config name, bpffs root", () => {
    const o = resolveInstallOptions({}, apiEnv);
    expect(o).to.deep.include({
      cniBinDir: "/host/opt/cni/bin",
      cniNetDir: "/host/etc/cni/net.d",
      hostCniNetDir: "/etc/cni/net.d",
      confName: undefined,
      bpfRoot: "/sys/fs/bpf/waggle",
      binary: undefined,
      kubeconfigName: "waggle-kubeconfig",
      tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
      caFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
      kubernetesServiceHost: "10.96.0.1",
      kubernetesServicePort: 443,
      healthPort: 9821,
      logLevel: "info",
    });
    expect(o.podNamespace).to.equal("waggle-system");
    expect(o.plugin).to.deep.equal({
      logLevel: "info",
      logFile: "/var/log/waggle/cni.log",
      excludeNamespaces: ["kube-system", "waggle-system"],
    });
  });

  it("every option has its environment twin, and a flag beats the variable", () => {
    const env = {
      ...apiEnv,
      WAGGLE_CNI_BIN_DIR: "/e/bin",
      WAGGLE_CNI_NET_DIR: "/e/net",
      WAGGLE_CNI_CONF_NAME: "10-calico.conflist",
      WAGGLE_BPF_ROOT: "/e/bpf",
      WAGGLE_HEALTH_PORT: "8080",
      WAGGLE_EXCLUDE_NAMESPACES: " a, b ,,c",
    };
    const fromEnv = resolveInstallOptions({}, env);
    expect(fromEnv).to.deep.include({
      cniBinDir: "/e/bin",
      cniNetDir: "/e/net",
      confName: "10-calico.conflist",
      bpfRoot: "/e/bpf",
      healthPort: 8080,
    });
    expect(fromEnv.plugin.excludeNamespaces).to.deep.equal(["a", "b", "c", "waggle-system"]);
    const args = parse(["--cni-bin-dir", "/f/bin", "--conf-name", "auto", "--health-port", "0"]);
    const both = resolveInstallOptions(args, env);
    expect(both).to.deep.include({
      cniBinDir: "/f/bin",
      cniNetDir: "/e/net",
      confName: undefined,
      healthPort: 0,
    });
    for (const spec of OPTION_SPECS) expect(spec.env, spec.flag).to.match(/^[A-Z_]+$/);
    expect(new Set(OPTION_SPECS.map((s) => s.env)).size).to.equal(OPTION_SPECS.length);
  });

  const bad: Array<[string, Record<string, unknown>, NodeJS.ProcessEnv, RegExp]> = [
    [
      "a relative directory",
      { "cni-net-dir": "etc/cni" },
      apiEnv,
      /--cni-net-dir \(WAGGLE_CNI_NET_DIR\) must be an absolute path/,
    ],
    [
      "a conf name with a slash",
      {},
      { ...apiEnv, WAGGLE_CNI_CONF_NAME: "../x.conf" },
      /must be a file name/,
    ],
    ["a port out of range", { "health-port": 70000 }, apiEnv, /--health-port .* must be 0..65535/],
    ["a non-numeric port", {}, { ...apiEnv, WAGGLE_HEALTH_PORT: "http" }, /must be an integer/],
    [
      "an unknown log level",
      { "log-level": "verbose" },
      apiEnv,
      /must be one of error, warn, info, debug/,
    ],
    [
      "no API server host",
      {},
      { KUBERNETES_SERVICE_PORT: "443" },
      /KUBERNETES_SERVICE_HOST\) is required/,
    ],
  ];
  for (const [what, args, env, message] of bad) {
    it(`rejects ${what} with a message naming flag and variable`, () => {
      expect(() => resolveInstallOptions(args, env)).to.throw(OptionError, message);
    });
  }

  it("uninstall accepts every install flag (its DaemonSet may share install's arguments) and reads its own", async () => {
    const special: Record<string, string> = { "log-level": "debug", "kubeconfig-name": "kc" };
    const argv = OPTION_SPECS.flatMap((s) => [
      `--${s.flag}`,
      special[s.flag] ?? (s.type === "number" ? "1" : `/x/${s.flag}`),
    ]);
    const args = await declareUninstallOptions(yargs().strict().exitProcess(false)).parseAsync(
      argv,
    );
    expect(resolveUninstallOptions(args, {})).to.include({
      cniBinDir: "/x/cni-bin-dir",
      cniNetDir: "/x/cni-net-dir",
      bpfRoot: "/x/bpf-root",
      kubeconfigName: "kc",
      logLevel: "debug",
    });
  });

  it("uninstall needs no API server settings", () => {
    expect(resolveUninstallOptions({}, {})).to.deep.equal({
      cniBinDir: "/host/opt/cni/bin",
      cniNetDir: "/host/etc/cni/net.d",
      bpfRoot: "/sys/fs/bpf/waggle",
      kubeconfigName: "waggle-kubeconfig",
      logLevel: "info",
    });
  });

  it("the plugin entry: the keys the plugin reads, host paths, the capabilities it needs", () => {
    const o = resolveInstallOptions(
      {},
      { ...apiEnv, WAGGLE_EXCLUDE_NAMESPACES: "kube-system,infra" },
    );
    const entry = pluginEntry(o);
    expect(entry).to.deep.equal({
      type: "waggle",
      log_level: "info",
      log_file: "/var/log/waggle/cni.log",
      bpf_root: "/sys/fs/bpf/waggle",
      exclude_namespaces: ["kube-system", "infra", "waggle-system"],
      kubernetes: { kubeconfig: "/etc/cni/net.d/waggle-kubeconfig" },
      capabilities: { "io.kubernetes.cri.pod-annotations": true, cgroupPath: true },
    });
    // The plugin's own parser reads back exactly what the installer meant.
    const parsed = parseWaggleConfig(entry);
    expect(parsed).to.deep.include({
      bpfRoot: o.bpfRoot,
      logLevel: o.plugin.logLevel,
      logFile: o.plugin.logFile,
      excludeNamespaces: ["kube-system", "infra", "waggle-system"],
      kubeconfig: "/etc/cni/net.d/waggle-kubeconfig",
    });
  });

  it("--socket-bypass: auto leaves socket_bypass out; true and false are written and read back", () => {
    const entryOf = (env: NodeJS.ProcessEnv, args: Record<string, unknown> = {}) =>
      pluginEntry(resolveInstallOptions(args, { ...apiEnv, ...env }));
    expect(entryOf({})).to.not.have.property("socket_bypass");
    expect(entryOf({ WAGGLE_SOCKET_BYPASS: "auto" })).to.not.have.property("socket_bypass");
    for (const on of [true, false]) {
      const entry = entryOf({}, { "socket-bypass": String(on) });
      expect(entry.socket_bypass).to.equal(on);
      expect(parseWaggleConfig(entry).socketBypass).to.equal(on);
    }
    expect(entryOf({ WAGGLE_SOCKET_BYPASS: "true" }).socket_bypass).to.equal(true);
    expect(() => resolveInstallOptions({}, { ...apiEnv, WAGGLE_SOCKET_BYPASS: "yes" }))
      .to.throw(OptionError, "WAGGLE_SOCKET_BYPASS")
      .and.to.match(/must be true, false or auto/);
  });

  it("--socket-bypass-backlog: auto leaves socket_bypass_backlog out; bytes are written and read back; out of range is refused", () => {
    const entryOf = (env: NodeJS.ProcessEnv, args: Record<string, unknown> = {}) =>
      pluginEntry(resolveInstallOptions(args, { ...apiEnv, ...env }));
    expect(entryOf({})).to.not.have.property("socket_bypass_backlog");
    const entry = entryOf({}, { "socket-bypass-backlog": "1048576" });
    expect(entry.socket_bypass_backlog).to.equal(1048576);
    expect(parseWaggleConfig(entry).socketBypassBacklog).to.equal(1048576);
    expect(entryOf({ WAGGLE_SOCKET_BYPASS_BACKLOG: "8388608" }).socket_bypass_backlog).to.equal(
      8388608,
    );
    for (const bad of ["1000", "4MiB", "1e6", "4294967296", "-1"]) {
      expect(() => resolveInstallOptions({}, { ...apiEnv, WAGGLE_SOCKET_BYPASS_BACKLOG: bad }), bad)
        .to.throw(OptionError, "WAGGLE_SOCKET_BYPASS_BACKLOG")
        .and.to.match(/must be auto or bytes from 262144 to 4294967295/);
    }
  });

  it("waggle's own namespace (POD_NAMESPACE) is always excluded, once, even with an empty list", () => {
    const own = (env: NodeJS.ProcessEnv, args: Record<string, unknown> = {}) =>
      pluginEntry(resolveInstallOptions(args, { ...apiEnv, ...env })).exclude_namespaces;
    expect(own({ POD_NAMESPACE: "mesh-infra" })).to.deep.equal(["kube-system", "mesh-infra"]);
    expect(
      own({ POD_NAMESPACE: "mesh-infra", WAGGLE_EXCLUDE_NAMESPACES: "mesh-infra,a" }),
    ).to.deep.equal(["mesh-infra", "a"]);
    // "," is an explicitly empty list: waggle's own namespace is still excluded.
    expect(own({ WAGGLE_EXCLUDE_NAMESPACES: "," })).to.deep.equal(["waggle-system"]);
    expect(own({ POD_NAMESPACE: "x" }, { "pod-namespace": "y" })).to.deep.equal([
      "kube-system",
      "y",
    ]);
  });

  for (const bad of ["Waggle", "-x", "a_b", "a".repeat(64), "a/b"]) {
    it(`rejects the namespace ${JSON.stringify(bad.length > 20 ? `${bad.slice(0, 8)}...` : bad)} naming flag and variable`, () => {
      expect(() => resolveInstallOptions({}, { ...apiEnv, POD_NAMESPACE: bad })).to.throw(
        OptionError,
        /--pod-namespace \(POD_NAMESPACE\) must be a namespace name/,
      );
    });
  }
});
