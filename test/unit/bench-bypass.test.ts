import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { BYPASS_OPT_OUT, deploymentKey, podAnnotations, waggleEntry } from "../../bench/cluster";
import { bypassDelta } from "../../bench/measure";
import { type MemorySample, parseMeminfo, summarizeMemory } from "../../bench/memory";
import { type BypassReading, bypassPathProblem, MODES, presetModes } from "../../bench/modes";
import {
  applyOverrides,
  estimateSeconds,
  fullPlan,
  parseWorkload,
  planMeasuresMemory,
  planUsesTls,
  quickPlan,
  workloadId,
  workloadModes,
} from "../../bench/plan";
import { bypassGainRows, bypassSection } from "../../bench/report";
import type { BenchResults } from "../../bench/runner";
import { generateMeshCerts, haproxyBenchConfig, PROXY_UID } from "../../bench/sidecars";
import { shortLabel } from "../../bench/svg";
import { MESHED_ANNOTATIONS } from "../support/cni-node";
import { run } from "../support/command";

const counts = (sockets: number, msgs: number) => ({
  sockets,
  msgs,
  bytes: msgs * 100,
  fallbacks: 0,
});
const reading = (client: [number, number], server: [number, number]): BypassReading => ({
  client: counts(...client),
  server: counts(...server),
});

/** A run of the bench's results with the figures the bypass section reads. */
function benchRun(
  mode: string,
  workload: string,
  round: number,
  thr: number,
  p50: number,
  cpu: number,
) {
  return {
    level: "0",
    workload,
    mode,
    round,
    throughputRps: thr,
    latencyUs: { p50 },
    cpuPer1000: { node: cpu },
  };
}

function sample(
  mode: "waggle" | "waggle-redirect",
  round: number,
  slabKb: [number, number],
): MemorySample {
  const info = (slab: number) => ({ Slab: slab, SUnreclaim: slab / 2, MemAvailable: 1e6 });
  return {
    mode,
    round,
    connections: 1000,
    before: info(slabKb[0]),
    open: info(slabKb[1]),
    bypassMsgs: 0,
  };
}

describe("bench socket bypass modes, TLS workloads and memory (bench/modes.ts, plan.ts, cluster.ts, memory.ts, report.ts)", () => {
  describe("modes", () => {
    it("both waggle modes sit beside none, explicit and iptables in every preset", () => {
      expect(MODES).to.include.members([
        "none",
        "explicit",
        "iptables",
        "waggle-redirect",
        "waggle",
      ]);
      for (const p of [quickPlan(), fullPlan()]) expect(p.modes).to.deep.equal(presetModes(false));
    });

    it("waggle-redirect's pods are meshed and opt out of the bypass; waggle's are meshed; the others are plain", () => {
      expect(podAnnotations("waggle")).to.deep.equal(MESHED_ANNOTATIONS);
      expect(podAnnotations("waggle-redirect")).to.deep.equal({
        ...MESHED_ANNOTATIONS,
        ...BYPASS_OPT_OUT,
      });
      expect(BYPASS_OPT_OUT).to.deep.equal({ "waggle.io/socket-bypass": "false" });
      for (const m of ["none", "explicit", "iptables"] as const)
        expect(podAnnotations(m)).to.deep.equal({});
    });

    it("the chain's waggle entry turns the node's bypass on only when mode waggle is deployed", () => {
      expect(waggleEntry(["iptables", "waggle"])).to.include({ socket_bypass: true });
      expect(waggleEntry(["waggle-redirect", "waggle"])).to.include({ socket_bypass: true });
      expect(waggleEntry(["waggle-redirect"])).to.include({ socket_bypass: false });
      expect(deploymentKey("waggle", true)).to.not.equal(deploymentKey("waggle", false));
    });
  });

  describe("path check of the bypass", () => {
    it("waggle passes when both pods' messages bypassed grew, and names the pod that did not", () => {
      expect(
        bypassPathProblem("waggle", reading([0, 0], [0, 0]), reading([6, 40], [6, 40])),
      ).to.equal(null);
      expect(
        bypassPathProblem("waggle", reading([6, 40], [6, 40]), reading([6, 80], [6, 40])),
      ).to.match(/waggle does not bypass: .* server pod/);
      expect(
        bypassPathProblem("waggle", reading([0, 0], [0, 0]), reading([0, 0], [0, 0])),
      ).to.match(/client and server pod/);
    });

    it("waggle-redirect fails as soon as any socket joined or any message was bypassed", () => {
      expect(
        bypassPathProblem("waggle-redirect", reading([0, 0], [0, 0]), reading([0, 0], [0, 0])),
      ).to.equal(null);
      expect(
        bypassPathProblem("waggle-redirect", reading([0, 0], [0, 0]), reading([0, 0], [2, 0])),
      ).to.match(/waggle-redirect bypasses: the server pod has 2 sockets joined/);
      // earlier bypassed messages count too, not only those of the check
      expect(
        bypassPathProblem("waggle-redirect", reading([0, 5], [0, 0]), reading([0, 5], [0, 0])),
      ).to.match(/client pod/);
    });

    it("unreadable counters fail the waggle modes; modes without waggle pods have nothing to check", () => {
      expect(bypassPathProblem("waggle", null, reading([0, 1], [0, 1]))).to.match(
        /could not be read/,
      );
      expect(bypassPathProblem("waggle-redirect", reading([0, 0], [0, 0]), null)).to.match(
        /could not be read/,
      );
      for (const m of ["none", "explicit", "iptables"] as const)
        expect(bypassPathProblem(m, null, null)).to.equal(null);
    });

    it("a run's bypass figures sum both pods' counters over the run", () => {
      expect(bypassDelta(reading([2, 10], [2, 20]), reading([4, 15], [4, 40]))).to.deep.equal({
        msgs: 25,
        bytes: 2500,
        fallbacks: 0,
      });
    });
  });

  describe("plan: TLS workloads and memory", () => {
    it("TLS workload ids round-trip with -tls and are described as such", () => {
      for (const id of ["max-keepalive-tls", "max-new-tls", "rate1000-new-tls", "pingpong-tls"]) {
        const w = parseWorkload(id);
        expect(w.tls, id).to.equal(true);
        expect(workloadId(w)).to.equal(id);
      }
      expect(parseWorkload("pingpong").tls).to.equal(undefined);
      for (const bad of ["tls", "-tls", "pingpong-tls-tls", "max-tls"])
        expect(() => parseWorkload(bad), bad).to.throw(/unknown workload/);
    });

    it("a TLS workload runs in every mode with sidecars, never in none", () => {
      expect(workloadModes(parseWorkload("max-keepalive-tls"), MODES)).to.deep.equal([
        "explicit",
        "iptables",
        "waggle-redirect",
        "waggle",
        "merbridge",
      ]);
      expect(workloadModes(parseWorkload("max-keepalive"), MODES)).to.deep.equal([...MODES]);
    });

    it("both presets run keep-alive, new-connection and ping-pong with TLS at rules 0 and measure memory", () => {
      for (const p of [quickPlan(), fullPlan()]) {
        expect(planUsesTls(p)).to.equal(true);
        expect(planMeasuresMemory(p)).to.equal(true);
        expect(p.levels.find((l) => l.level === "0")?.workloads.map(workloadId)).to.include.members(
          [
            "max-keepalive",
            "max-new",
            "pingpong",
            "max-keepalive-tls",
            "max-new-tls",
            "pingpong-tls",
          ],
        );
      }
      expect(estimateSeconds(quickPlan())).to.be.below(480);
    });

    it("memory needs both waggle modes and connections; --memory-connections is checked", () => {
      expect(
        planMeasuresMemory(applyOverrides(quickPlan(), { modes: ["waggle", "iptables"] })),
      ).to.equal(false);
      expect(planMeasuresMemory(applyOverrides(quickPlan(), { memoryConnections: 0 }))).to.equal(
        false,
      );
      expect(applyOverrides(quickPlan(), { memoryConnections: 50 }).memoryConnections).to.equal(50);
      for (const bad of [-1, 1.5, 3001])
        expect(() => applyOverrides(quickPlan(), { memoryConnections: bad }), String(bad)).to.throw(
          /memory-connections/,
        );
      expect(planUsesTls(applyOverrides(quickPlan(), { workloads: ["max-new"] }))).to.equal(false);
    });
  });

  describe("memory per connection", () => {
    it("reads Slab, SUnreclaim and MemAvailable from /proc/meminfo, and refuses a text without them", () => {
      const text =
        "MemTotal:        8000000 kB\nMemAvailable:    5000000 kB\nSlab:             300000 kB\nSReclaimable:     100000 kB\nSUnreclaim:       200000 kB\n";
      expect(parseMeminfo(text)).to.deep.equal({
        Slab: 300000,
        SUnreclaim: 200000,
        MemAvailable: 5000000,
      });
      expect(() => parseMeminfo("MemTotal: 1 kB\n")).to.throw(/no Slab/);
      expect(parseMeminfo(readFileSync("/proc/meminfo", "utf8")).Slab).to.be.greaterThan(0);
    });

    it("per connection by mode, and the bypass's extra paired by round", () => {
      const m = summarizeMemory([
        sample("waggle-redirect", 0, [100000, 120000]), // 20 MB / 1000 = 20480 B
        sample("waggle", 0, [100000, 125000]), // 25600 B
        sample("waggle", 1, [101000, 127000]), // 26624 B
        sample("waggle-redirect", 1, [101000, 122000]), // 21504 B
      ]);
      expect(m?.connections).to.equal(1000);
      expect(m?.rounds).to.equal(2);
      expect(m?.perConnection.waggle?.median).to.equal((25600 + 26624) / 2);
      expect(m?.perConnection["waggle-redirect"]?.median).to.equal((20480 + 21504) / 2);
      expect(m?.bypassExtra?.min).to.equal(5120);
      expect(m?.bypassExtra?.max).to.equal(5120);
      expect(m?.bypassRatio?.median).to.be.closeTo((25600 / 20480 + 26624 / 21504) / 2, 1e-9);
      expect(summarizeMemory([])).to.equal(null);
      expect(summarizeMemory([sample("waggle", 0, [1, 2])])?.bypassExtra).to.equal(null);
    });
  });

  describe("report", () => {
    const runs = [0, 1].flatMap((r) => [
      benchRun("iptables", "max-keepalive", r, 20000, 300, 0.05),
      benchRun("explicit", "max-keepalive", r, 25000, 280, 0.045),
      benchRun("waggle-redirect", "max-keepalive", r, 24000, 290, 0.046),
      benchRun("waggle", "max-keepalive", r, 30000, 200, 0.04),
      benchRun("iptables", "max-keepalive-tls", r, 10000, 600, 0.1),
      benchRun("waggle", "max-keepalive-tls", r, 11000, 550, 0.09),
      benchRun("iptables", "pingpong", r, 0, 100, 0.1),
      benchRun("waggle", "pingpong", r, 0, 70, 0.1),
    ]) as unknown as BenchResults["runs"];

    it("the bypass table: waggle against each baseline, plain and TLS, '–' where a baseline did not run", () => {
      const rows = bypassGainRows(runs, "0");
      expect(rows).to.deep.equal([
        ["max-keepalive", "throughput", "1.500", "1.200", "1.250", "0.800", "0.870"],
        ["max-keepalive-tls", "throughput", "1.100", "–", "–", "0.900", "–"],
        ["pingpong", "p50 latency", "0.700", "–", "–", "–", "–"],
      ]);
    });

    it("the bypass section states the memory per connection and per bypassed socket", () => {
      const results = {
        runs,
        memory: [
          sample("waggle-redirect", 0, [100000, 120000]),
          sample("waggle", 0, [100000, 126000]),
        ],
      } as unknown as BenchResults;
      const md = bypassSection(results).join("\n");
      expect(md).to.contain("## Socket bypass: the gain with and without TLS");
      expect(md).to.contain("| waggle | 1 | 26.00 | 26.00 | 26.00 |");
      expect(md).to.contain("median 6.00 KiB (6.00..6.00), i.e. 1.00 KiB per bypassed socket");
      expect(bypassSection({ runs: [] } as unknown as BenchResults)).to.deep.equal([]);
    });

    const withMerbridge = [
      ...runs,
      ...[0, 1].flatMap((r) => [
        benchRun("merbridge", "max-keepalive", r, 40000, 150, 0.03),
        benchRun("merbridge", "pingpong", r, 0, 64, 0.1),
      ]),
    ] as unknown as BenchResults["runs"];

    it("merbridge's ratios beside waggle's, with the commit it was built at; none without its runs", () => {
      const results = {
        runs: withMerbridge,
        merbridge: { commit: "561fc00e", dirty: false },
      } as unknown as BenchResults;
      const md = bypassSection(results).join("\n");
      expect(md).to.contain("## Merbridge's bypass beside waggle's");
      expect(md).to.contain("built at commit `561fc00e`");
      expect(md).to.contain(
        "| max-keepalive | throughput | 2.000 | 1.600 | 0.600 | 0.750 | 1.333 |",
      );
      expect(md).to.contain("| pingpong | p50 latency | 0.640 | – | – | 1.094 | – |");
      expect(bypassSection({ runs } as unknown as BenchResults).join("\n")).not.to.contain(
        "Merbridge",
      );
    });

    it("the two waggle modes get different labels under the bars", () => {
      const labels = MODES.map(shortLabel);
      expect(new Set(labels).size).to.equal(MODES.length);
      expect(shortLabel("waggle")).to.equal("wagg");
      expect(shortLabel("iptables")).to.equal("ipta");
    });
  });

  describe("mesh certificates", function () {
    this.timeout(60_000);
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), "waggle-bench-tls-test-"));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("a CA and a sidecar identity it signed, keys gone but the proxy user's, and a TLS config HAProxy accepts", async () => {
      const certs = await generateMeshCerts(dir);
      const verify = await run("openssl", [
        "verify",
        "-CAfile",
        certs.caFile,
        join(dir, "sidecar.crt"),
      ]);
      expect(verify.code, verify.stderr).to.equal(0);
      const identity = statSync(certs.identityFile);
      expect(identity.uid).to.equal(PROXY_UID);
      expect(identity.mode & 0o777).to.equal(0o600);
      expect(readFileSync(certs.identityFile, "utf8")).to.match(
        /BEGIN CERTIFICATE[\s\S]*BEGIN PRIVATE KEY/,
      );
      for (const gone of ["ca.key", "sidecar.key"])
        expect(() => statSync(join(dir, gone)), gone).to.throw(/ENOENT/);
      for (const routing of [
        { kind: "intercept" } as const,
        { kind: "explicit", peerIp: "10.250.0.3", selfIp: "10.250.0.2" } as const,
      ]) {
        const cfg = haproxyBenchConfig(routing, join(dir, "stats.sock"), certs);
        const tls = `ssl crt ${certs.identityFile} ca-file ${certs.caFile} verify required`;
        expect(cfg).to.contain(`bind 0.0.0.0:15006 ${tls} backlog 4096`);
        expect(cfg).to.not.contain(`bind 127.0.0.1:15001 ${tls}`); // the app's hop stays plain
        expect(cfg.match(/ssl crt/g)?.length).to.equal(routing.kind === "intercept" ? 2 : 4);
        const file = join(dir, `${routing.kind}.cfg`);
        writeFileSync(file, cfg);
        const check = await run("haproxy", ["-c", "-f", file]);
        expect(check.code, `${check.stdout}${check.stderr}`).to.equal(0);
      }
    });
  });
});
