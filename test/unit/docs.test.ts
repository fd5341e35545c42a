// The documentation against the code's own lists: every CNI config key, annotation, istio-proxy
// setting, CNI argument, install flag, error code and kernel requirement the code reads or
// declares is documented, and nothing documented is unknown to the code. Links between the
// documents resolve, and the commands the README tells a new user to run exist.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { expect } from "chai";
import { commands } from "../../app/cli";
import { kernelFloor } from "../../app/prerequisites";
import { compareDotted } from "../../base/dotted-version";
import { K8S_ARGS } from "../../cni/plugin";
import { ErrorCodes } from "../../cni/skel/errors";
import { DATAPATH_REQUIREMENTS } from "../../datapath";
import { OPTION_SPECS } from "../../install/options";
import {
  CGROUP_PATH_CAPABILITY,
  DEFAULT_CONFIG,
  IGNORED_ISTIO_KEYS,
  IGNORED_ISTIO_KUBERNETES_KEYS,
  KNOWN_KEYS,
  KUBERNETES_KEYS,
  POD_ANNOTATIONS_CAPABILITY,
} from "../../mesh/config";
import {
  DISABLE_ENVOY_ENV,
  INJECT_KEY,
  ISTIO_INIT,
  ISTIO_PROXY,
  SIDECAR_STATUS_ANNOTATION,
} from "../../mesh/pod-selection";
import {
  ALWAYS_EXCLUDED_INBOUND_PORTS,
  DEFAULT_EXCLUDED_OUTBOUND_PORTS,
  PROXY_ENV,
  REFUSED_ANNOTATIONS,
  TRAFFIC_ANNOTATIONS,
  WAGGLE_ANNOTATIONS,
} from "../../mesh/redirect-settings";

const repo = join(__dirname, "..", "..", "..");
const read = (path: string) => readFileSync(join(repo, path), "utf8");
const readme = read("README.md");
const architecture = read("docs/architecture.md");
const confReadme = read("conf/README.md");

/** The part of a markdown document under a heading, up to the next heading of that level. */
function sectionOf(markdown: string, heading: string): string {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => l.replace(/^#+ /, "") === heading && l.startsWith("#"));
  expect(start, `heading "${heading}"`).to.be.at.least(0);
  const level = /^#+/.exec(lines[start])?.[0].length ?? 1;
  const end = lines.findIndex(
    (l, i) => i > start && /^#+ /.test(l) && (/^#+/.exec(l)?.[0].length ?? 0) <= level,
  );
  return lines.slice(start + 1, end < 0 ? undefined : end).join("\n");
}

/** The body rows (cells trimmed) of the first table in `markdown` whose header starts so. */
function tableRows(markdown: string, firstHeaderCell: string): string[][] {
  const lines = markdown.split("\n");
  const header = lines.findIndex(
    (l) => l.startsWith("|") && l.slice(1).split("|")[0].trim() === firstHeaderCell,
  );
  expect(header, `a table headed "${firstHeaderCell}"`).to.be.at.least(0);
  const rows: string[][] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(
      line
        .slice(1, -1)
        .split("|")
        .map((c) => c.trim()),
    );
  }
  return rows;
}

/** The text of a cell without its backticks: "`bpf_root`" -> "bpf_root". */
const unquote = (cell: string) => cell.replace(/^`|`$/g, "");

describe("docs: README.md, docs/architecture.md and conf/README.md against the code", () => {
  describe("the CNI config entry", () => {
    const rows = tableRows(sectionOf(readme, "The plugin entry in the CNI config"), "key");
    const documented = rows.map((r) => unquote(r[0]));
    const known = [...KNOWN_KEYS, ...[...KUBERNETES_KEYS].map((k) => `kubernetes.${k}`)];

    it("documents every key the plugin reads, with its default", () => {
      for (const key of known) expect(documented, key).to.include(key);
      const defaults: Record<string, unknown> = {
        bpf_root: DEFAULT_CONFIG.bpfRoot,
        log_level: DEFAULT_CONFIG.logLevel,
        log_file: DEFAULT_CONFIG.logFile,
        log_max_size_mb: DEFAULT_CONFIG.logMaxSizeMB,
        log_max_files: DEFAULT_CONFIG.logMaxFiles,
        api_attempts: DEFAULT_CONFIG.api.attempts,
        api_retry_interval_ms: DEFAULT_CONFIG.api.intervalMs,
        api_timeout_ms: DEFAULT_CONFIG.api.timeoutMs,
      };
      for (const [key, value] of Object.entries(defaults)) {
        const row = rows.find((r) => unquote(r[0]) === key) as string[];
        expect(row[1], `default of ${key}`).to.equal(`\`${value}\``);
      }
    });

    it("documents nothing the plugin does not read (besides type and capabilities)", () => {
      for (const key of documented) expect([...known, "type", "capabilities"], key).to.include(key);
    });

    it("names the istio-cni keys it accepts and ignores, and the runtime capabilities", () => {
      for (const key of IGNORED_ISTIO_KEYS) expect(readme, key).to.include(`\`${key}\``);
      for (const key of IGNORED_ISTIO_KUBERNETES_KEYS) expect(readme, key).to.include(`\`${key}\``);
      for (const cap of [POD_ANNOTATIONS_CAPABILITY, CGROUP_PATH_CAPABILITY])
        expect(readme, cap).to.include(`\`${cap}\``);
      for (const arg of K8S_ARGS) expect(readme, arg).to.include(`\`${arg}\``);
    });
  });

  describe("what waggle reads from pods", () => {
    const section = sectionOf(readme, "What waggle reads from pods");
    const rows = tableRows(section, "pod annotation");
    const documented = rows.map((r) => unquote(r[0]));
    const annotations = [
      ...Object.values(TRAFFIC_ANNOTATIONS),
      ...Object.values(REFUSED_ANNOTATIONS),
      INJECT_KEY,
      SIDECAR_STATUS_ANNOTATION,
      ...Object.values(WAGGLE_ANNOTATIONS),
    ];

    it("documents every annotation the plugin honours, and no other", () => {
      expect([...documented].sort()).to.deep.equal([...annotations].sort());
    });

    it("states the ports always or by default excluded", () => {
      const row = (a: string) => (rows.find((r) => unquote(r[0]) === a) as string[]).join(" ");
      for (const port of ALWAYS_EXCLUDED_INBOUND_PORTS)
        expect(row(TRAFFIC_ANNOTATIONS.excludeInboundPorts)).to.include(String(port));
      for (const port of DEFAULT_EXCLUDED_OUTBOUND_PORTS)
        expect(row(TRAFFIC_ANNOTATIONS.excludeOutboundPorts)).to.include(String(port));
    });

    it("names the istio-proxy settings and the containers that decide selection", () => {
      for (const name of [...Object.values(PROXY_ENV), DISABLE_ENVOY_ENV, ISTIO_INIT, ISTIO_PROXY])
        expect(section, name).to.include(`\`${name}\``);
      expect(section).to.include("`runAsUser`").and.include("`runAsGroup`");
    });
  });

  describe("the installer's settings", () => {
    const flags = OPTION_SPECS.map((s) => s.flag).sort();

    it("the README lists exactly the flags of waggle install", () => {
      const listed = [...sectionOf(readme, "The installer").matchAll(/`--([a-z][a-z0-9-]*)`/g)].map(
        (m) => m[1],
      );
      expect([...new Set(listed)].sort()).to.deep.equal(flags);
    });

    it("conf/README.md's settings table holds exactly the flags, each with its variable", () => {
      const rows = tableRows(confReadme, "flag");
      const documented = rows.map((r) => unquote(r[0]).replace(/^--/, ""));
      expect([...documented].sort()).to.deep.equal(flags);
      for (const spec of OPTION_SPECS) {
        const row = rows.find((r) => r[0] === `\`--${spec.flag}\``) as string[];
        expect(row[1], spec.flag).to.equal(`\`${spec.env}\``);
      }
      expect(readme).to.include("(conf/README.md)");
    });
  });

  it("the README documents every error code of the plugin, and no other", () => {
    const rows = tableRows(sectionOf(readme, "Troubleshooting"), "code");
    const documented = rows.map((r) => [Number(r[0]), r[1]]);
    expect(documented).to.deep.equal(
      Object.entries(ErrorCodes)
        .map(([name, code]) => [code, name])
        .sort((a, b) => Number(a[0]) - Number(b[0])),
    );
  });

  describe("kernel requirements", () => {
    const r = DATAPATH_REQUIREMENTS;
    const items: [string, string][] = [
      ...r.progTypes.map((n): [string, string] => [`program type \`${n.progType}\``, n.since]),
      ...r.attachTypes.map((n): [string, string] => [`attach type \`${n.attachType}\``, n.since]),
      ...r.mapTypes.map((n): [string, string] => [`map type \`${n.mapType}\``, n.since]),
      ...r.helpers.map((n): [string, string] => [
        `helper \`bpf_${n.helper}\` in \`${n.progType}\``,
        n.since,
      ]),
      ...r.versionOnly.map((n): [string, string] => [n.feature, n.since]),
    ];
    it("docs/architecture.md lists every datapath requirement with its kernel, and no other", () => {
      const rows = tableRows(sectionOf(architecture, "Kernel requirements"), "feature");
      expect(rows.map((row) => [row[0], row[1]])).to.have.deep.members(items);
      expect(rows).to.have.length(items.length);
    });

    it("the README states the floor waggle doctor enforces, and every feature that needs more", () => {
      const floor = kernelFloor().version;
      const compatibility = sectionOf(readme, "Compatibility");
      expect(compatibility).to.include(`**Linux ${floor} or newer**`);
      expect(sectionOf(architecture, "Kernel requirements")).to.include(`**Linux ${floor}**`);
      for (const [feature, since] of items) {
        if (compareDotted(since, floor) > 0)
          expect(compatibility, `${feature} needs ${since}`).to.include(`**${since}**`);
      }
    });
  });

  it("every relative link of the README and docs/architecture.md resolves", () => {
    for (const [doc, text] of [
      ["README.md", readme],
      ["docs/architecture.md", architecture],
    ]) {
      for (const m of text.matchAll(/\]\(([^)#\s]+)(#[^)\s]*)?\)/g)) {
        const target = m[1];
        if (/^[a-z]+:/.test(target)) continue;
        expect(existsSync(join(repo, dirname(doc), target)), `${doc} links ${target}`).to.equal(
          true,
        );
      }
    }
  });

  it("the commands the README gives exist", () => {
    const scripts = (JSON.parse(read("package.json")) as { scripts: Record<string, string> })
      .scripts;
    for (const m of readme.matchAll(/`npm run ([a-z-]+)/g))
      expect(scripts, `npm run ${m[1]}`).to.have.property(m[1]);
    expect(scripts).to.have.property("test");
    const cli = commands.map((c) => c.command.split(" ")[0]);
    // `waggle x`, dist/waggle x, /opt/cni/bin/waggle x, kubectl exec ... -- waggle x
    for (const m of readme.matchAll(/(?:`|\/|-- )waggle ([a-z]+)\b/g))
      expect(cli, `waggle ${m[1]}`).to.include(m[1]);
    for (const m of readme.matchAll(/kubectl apply -f ([\w./-]+)/g))
      expect(existsSync(join(repo, m[1])), m[1]).to.equal(true);
  });
});
