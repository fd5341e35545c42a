// waggle's plugin config (mesh/config.ts): defaults, istio-cni's field names (current and
// legacy), and validation errors (code 7 naming the key, code 2 for unsupported istio-cni modes,
// as the plugin answers them: test/unit/cni-plugin.test.ts).
import { expect } from "chai";
import { ErrorCodes } from "../../cni/skel";
import {
  DEFAULT_CONFIG,
  MAX_API_BUDGET_MS,
  parseWaggleConfig,
  WaggleConfigError,
} from "../../mesh/config";

const base = { cniVersion: "0.3.1", name: "k8s-pod-network", type: "waggle" };

function parse(extra: Record<string, unknown>) {
  return parseWaggleConfig({ ...base, ...extra });
}

function expectError(extra: Record<string, unknown>, code: number, text: string) {
  expect(() => parse(extra))
    .to.throw(WaggleConfigError, text)
    .with.property("unsupported", code === ErrorCodes.UnsupportedField);
}

describe("cni config: defaults and waggle's keys", () => {
  it("a bare entry gets the defaults", () => {
    expect(parse({})).to.deep.equal({ ...DEFAULT_CONFIG, excludeNamespaces: [] });
  });

  it("protocol keys, runtime-injected keys and cni.dev/ keys are accepted", () => {
    const c = parse({
      capabilities: { cgroupPath: true },
      runtimeConfig: { cgroupPath: "/x" },
      prevResult: { cniVersion: "0.3.1" },
      args: { cni: {} },
      "cni.dev/valid-attachments": [],
    });
    expect(c.bpfRoot).to.equal(DEFAULT_CONFIG.bpfRoot);
  });

  it("reads every waggle key", () => {
    const c = parse({
      bpf_root: "/sys/fs/bpf/t1",
      log_level: "debug",
      log_file: "/tmp/w.log",
      log_max_size_mb: 2,
      log_max_files: 3,
      kubernetes: { kubeconfig: "/etc/cni/net.d/waggle-kubeconfig" },
      exclude_namespaces: ["kube-system", "waggle"],
      api_attempts: 5,
      api_retry_interval_ms: 200,
      api_timeout_ms: 500,
    });
    expect(c).to.deep.equal({
      bpfRoot: "/sys/fs/bpf/t1",
      logLevel: "debug",
      logFile: "/tmp/w.log",
      logMaxSizeMB: 2,
      logMaxFiles: 3,
      kubeconfig: "/etc/cni/net.d/waggle-kubeconfig",
      excludeNamespaces: ["kube-system", "waggle"],
      api: { attempts: 5, intervalMs: 200, timeoutMs: 500 },
    });
  });

  it('log_file "" turns the file off', () => {
    expect(parse({ log_file: "" }).logFile).to.equal("");
  });
});

describe("cni config: istio-cni's field names", () => {
  it("plugin_log_level (istio-cni) sets the level", () => {
    expect(parse({ plugin_log_level: "debug" }).logLevel).to.equal("debug");
  });

  it("log_level (istio-cni legacy) sets the level", () => {
    expect(parse({ log_level: "warn" }).logLevel).to.equal("warn");
  });

  it("istio-cni's level names map onto waggle's (warning, fatal, none, upper case)", () => {
    expect(parse({ log_level: "warning" }).logLevel).to.equal("warn");
    expect(parse({ log_level: "fatal" }).logLevel).to.equal("error");
    expect(parse({ log_level: "none" }).logLevel).to.equal("none");
    expect(parse({ plugin_log_level: "DEBUG" }).logLevel).to.equal("debug");
  });

  it("exclude_namespaces (istio-cni) excludes namespaces", () => {
    expect(parse({ exclude_namespaces: ["istio-system"] }).excludeNamespaces).to.deep.equal([
      "istio-system",
    ]);
  });

  it("kubernetes.exclude_namespaces (istio-cni legacy) excludes namespaces", () => {
    expect(
      parse({ kubernetes: { exclude_namespaces: ["kube-system"] } }).excludeNamespaces,
    ).to.deep.equal(["kube-system"]);
  });

  it("a comma-separated namespace string is accepted", () => {
    expect(parse({ exclude_namespaces: "a, b,c" }).excludeNamespaces).to.deep.equal([
      "a",
      "b",
      "c",
    ]);
  });

  it("kubernetes.kubeconfig (istio-cni legacy) sets the kubeconfig", () => {
    expect(
      parse({ kubernetes: { kubeconfig: "/etc/cni/net.d/ZZZ-istio-cni-kubeconfig" } }).kubeconfig,
    ).to.equal("/etc/cni/net.d/ZZZ-istio-cni-kubeconfig");
  });

  it("the same value under two names is fine", () => {
    const c = parse({ exclude_namespaces: ["a"], kubernetes: { exclude_namespaces: ["a"] } });
    expect(c.excludeNamespaces).to.deep.equal(["a"]);
  });

  it("two names with different values are code 7 naming both", () => {
    expectError(
      { log_level: "info", plugin_log_level: "debug" },
      7,
      "log_level: conflicts with plugin_log_level",
    );
    expectError(
      { exclude_namespaces: ["a"], kubernetes: { exclude_namespaces: ["b"] } },
      7,
      "exclude_namespaces: conflicts with kubernetes.exclude_namespaces",
    );
  });

  it("istio-cni keys with no meaning for waggle are ignored", () => {
    const c = parse({
      cni_agent_run_dir: "/var/run/istio-cni",
      pod_namespace: "istio-system",
      log_uds_address: "/x.sock",
      native_nftables: false,
      kubernetes: {
        k8s_api_root: "https://10.96.0.1:443",
        node_name: "n1",
        cni_bin_dir: "/opt/cni/bin",
      },
    });
    expect(c.kubeconfig).to.equal(undefined);
  });

  it("ambient_enabled: true is code 2 naming the field and value", () => {
    expectError({ ambient_enabled: true }, 2, "unsupported field ambient_enabled=true");
  });

  it("ambient_enabled: false is accepted", () => {
    expect(() => parse({ ambient_enabled: false })).not.to.throw();
  });
});

describe("cni config: validation (code 7 naming the key)", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ["an unknown key", { bpfroot: "/x" }, "bpfroot: unknown key"],
    [
      "an unknown key in kubernetes",
      { kubernetes: { kubeconfg: "/x" } },
      "kubernetes.kubeconfg: unknown key",
    ],
    ["kubernetes not an object", { kubernetes: "x" }, "kubernetes: must be an object"],
    ["a relative bpf_root", { bpf_root: "sys/fs/bpf" }, "bpf_root: must be an absolute path"],
    ["a non-string log_file", { log_file: 3 }, "log_file: must be an absolute path"],
    ["an unknown log level", { log_level: "loud" }, "log_level: must be one of"],
    [
      "a relative kubeconfig",
      { kubernetes: { kubeconfig: "kc" } },
      "kubernetes.kubeconfig: must be an absolute path",
    ],
    [
      "exclude_namespaces with a number",
      { exclude_namespaces: ["a", 1] },
      "exclude_namespaces: must be a list",
    ],
    ["log_max_size_mb 0", { log_max_size_mb: 0 }, "log_max_size_mb: must be an integer 1-1024"],
    ["log_max_files 1.5", { log_max_files: 1.5 }, "log_max_files: must be an integer"],
    ["api_attempts 0", { api_attempts: 0 }, "api_attempts: must be an integer 1-120"],
    ["api_timeout_ms 10", { api_timeout_ms: 10 }, "api_timeout_ms: must be an integer 100-60000"],
    [
      "api_retry_interval_ms negative",
      { api_retry_interval_ms: -1 },
      "api_retry_interval_ms: must be an integer",
    ],
  ];
  for (const [what, extra, text] of cases) {
    it(`${what}`, () => expectError(extra, 7, text));
  }

  it(`a retry budget over ${MAX_API_BUDGET_MS} ms (kubelet's timeout) is refused`, () => {
    expectError(
      { api_attempts: 60, api_timeout_ms: 2000, api_retry_interval_ms: 1000 },
      7,
      "keep it under",
    );
  });
});
