import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import {
  counterDelta,
  countSsLines,
  ephemeralTimeWaitArgs,
  judgePortPressure,
  machineCpuDelta,
  parseCgroupCpuStat,
  parseNetCounters,
  parseProcStat,
  parseSockstatTimeWait,
} from "../../bench/accounting";
import { benchTmpPrefix, cleanupByTag } from "../../bench/cleanup";
import {
  haproxyBenchConfig,
  nginxBenchConfig,
  parseHaproxyStat,
  sidecarErrors,
} from "../../bench/sidecars";
import {
  buildLoadgen,
  loadgenArgv,
  loadgenErrorCount,
  parseLoadgenOutput,
} from "../../bench/tools/loadgen";
import { parseSockperfOutput, sockperfClientArgv } from "../../bench/tools/sockperf";
import { parseWrkOutput, WRK_LUA, wrkArgv, wrkErrorCount } from "../../bench/tools/wrk";
import { run } from "../support/command";

const ESC = String.fromCharCode(27);

// sockperf 3.7 ping-pong --tcp --full-rtt, as printed (colour codes included)
const SOCKPERF_OUTPUT = `sockperf: == version #3.7-no.git ==
sockperf: [Total Run] RunTime=1.001 sec; Warm up time=400 msec; SentMessages=48064; ReceivedMessages=48063
sockperf: ========= Printing statistics for Server No: 0
sockperf: [Valid Duration] RunTime=0.551 sec; SentMessages=24776; ReceivedMessages=24775
sockperf: ${ESC}[2;35m====> avg-rtt=22.157 (std-dev=197.973)${ESC}[0m
sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
sockperf: Summary: Round trip is 22.157 usec
sockperf: ${ESC}[2;35mTotal 24776 observations${ESC}[0m; each percentile contains 247.76 observations
sockperf: ---> <MAX> observation = 12848.233
sockperf: ---> percentile 99.999 = 12848.233
sockperf: ---> percentile 99.990 = 5335.768
sockperf: ---> percentile 99.900 = 3222.470
sockperf: ---> percentile 99.000 =   31.627
sockperf: ---> percentile 90.000 =   12.039
sockperf: ---> percentile 75.000 =   11.442
sockperf: ---> percentile 50.000 =    7.767
sockperf: ---> percentile 25.000 =    7.466
sockperf: ---> <MIN> observation =    6.918
`;

describe("bench tools: argv and output parsing (bench/tools, bench/accounting, bench/sidecars)", () => {
  describe("wrk", () => {
    it("one thread, the connection count, whole seconds, our Lua hook, Connection: close for new connections", () => {
      const argv = wrkArgv({
        url: "http://10.0.0.2:8080/",
        connections: 32,
        durationS: 3,
        newConnection: true,
        scriptPath: "/tmp/x.lua",
      });
      expect(argv).to.deep.equal([
        "-t1",
        "-c32",
        "-d3s",
        "--timeout",
        "2s",
        "-s",
        "/tmp/x.lua",
        "-H",
        "Connection: close",
        "http://10.0.0.2:8080/",
      ]);
      const ka = wrkArgv({
        url: "http://x/",
        connections: 1,
        durationS: 1,
        newConnection: false,
        scriptPath: "s",
      });
      expect(ka).to.not.include("Connection: close");
      expect(() =>
        wrkArgv({ url: "u", connections: 0, durationS: 1, newConnection: false, scriptPath: "s" }),
      ).to.throw(/connections/);
      expect(() =>
        wrkArgv({
          url: "u",
          connections: 1,
          durationS: 0.5,
          newConnection: false,
          scriptPath: "s",
        }),
      ).to.throw(/duration/);
    });

    it("the done() hook dumps every latency bucket and wrk's error counters", () => {
      expect(WRK_LUA).to.contain("latency(i)");
      expect(WRK_LUA).to.contain("summary.errors");
      const out = `Running 1s test @ http://x/
  706 requests in 1.01s, 858.37KB read
WAGGLE-WRK {"requests":706,"durationUs":1007944,"bytes":878971,"errors":{"connect":0,"read":2,"write":0,"status":1,"timeout":0},"latencyUs":[[680,1],[722,3],[680,1]]}
`;
      const r = parseWrkOutput(out);
      expect(r.requests).to.equal(706);
      expect(r.latencyUs).to.deep.equal([
        [680, 2],
        [722, 3],
      ]);
      expect(wrkErrorCount(r)).to.equal(3);
    });

    it("refuses output without a result line or with a zero duration", () => {
      expect(() => parseWrkOutput("unable to connect to x:80 Connection refused")).to.throw(
        /no result line/,
      );
      expect(() =>
        parseWrkOutput(
          'WAGGLE-WRK {"requests":0,"durationUs":0,"bytes":0,"errors":{},"latencyUs":[]}',
        ),
      ).to.throw(/zero duration/);
    });
  });

  describe("sockperf", () => {
    it("TCP ping-pong with round-trip times", () => {
      expect(
        sockperfClientArgv({ host: "10.0.0.3", port: 11111, durationS: 2, messageBytes: 64 }),
      ).to.deep.equal([
        "ping-pong",
        "--tcp",
        "-i",
        "10.0.0.3",
        "-p",
        "11111",
        "-t",
        "2",
        "-m",
        "64",
        "--full-rtt",
      ]);
      expect(() =>
        sockperfClientArgv({ host: "h", port: 1, durationS: 1, messageBytes: 8 }),
      ).to.throw(/message size/);
    });

    it("parses the valid-duration counts and the percentiles, colour codes and all", () => {
      const r = parseSockperfOutput(SOCKPERF_OUTPUT);
      expect(r).to.include({ observations: 24776, validS: 0.551, sent: 24776, received: 24775 });
      expect(r.rttUs).to.include({
        min: 6.918,
        p25: 7.466,
        p50: 7.767,
        p75: 11.442,
        p90: 12.039,
        p99: 31.627,
        p999: 3222.47,
        max: 12848.233,
        mean: 22.157,
      });
    });

    it("refuses a run that printed no statistics (e.g. the server was unreachable)", () => {
      expect(() => parseSockperfOutput("sockperf: ERROR: Failed to connect")).to.throw(
        /valid-duration/,
      );
    });
  });

  describe("waggle-loadgen output", () => {
    const ok = {
      tool: "waggle-loadgen",
      rate: 1000,
      durationS: 1,
      warmupS: 0,
      newConnection: true,
      connections: 64,
      scheduled: 10,
      sent: 10,
      completed: 10,
      recorded: 10,
      unsent: 0,
      inFlightAtEnd: 0,
      late: 0,
      maxQueue: 1,
      elapsedUs: 1000,
      interrupted: false,
      errors: {
        connect_eaddrnotavail: 1,
        connect_refused: 0,
        connect_timeout: 0,
        connect_other: 0,
        reset: 0,
        read_other: 0,
        write_other: 0,
        closed_early: 0,
        timeout: 2,
        bad_response: 0,
        status_non_2xx: 0,
        socket: 0,
      },
      status: { "200": 10 },
      latencyUs: [[100, 10]],
      serviceUs: [[90, 10]],
    };

    it("parses the JSON line and counts every error kind", () => {
      const r = parseLoadgenOutput(`noise\n${JSON.stringify(ok)}\n`);
      expect(r.recorded).to.equal(10);
      expect(r.latencyUs).to.deep.equal([[100, 10]]);
      expect(loadgenErrorCount(r)).to.equal(3);
      expect(r).to.not.have.property("tool");
    });

    it("refuses output without the line or with an error kind missing", () => {
      expect(() => parseLoadgenOutput("loadgen: --rate must be in (0, 1000000]")).to.throw(
        /no result/,
      );
      const bad = { ...ok, errors: { ...ok.errors, timeout: undefined } };
      expect(() => parseLoadgenOutput(JSON.stringify(bad))).to.throw(/lacks error timeout/);
    });

    it("argv: rate, durations, in-flight limit, timeout, --new-connection only when asked", () => {
      const argv = loadgenArgv({
        target: "10.0.0.3:8080",
        rate: 1000,
        durationS: 3,
        warmupS: 0.5,
        connections: 256,
        newConnection: false,
        timeoutMs: 2000,
      });
      expect(argv).to.deep.equal([
        "--target",
        "10.0.0.3:8080",
        "--rate",
        "1000",
        "--duration",
        "3",
        "--warmup",
        "0.5",
        "--connections",
        "256",
        "--timeout-ms",
        "2000",
      ]);
      expect(() =>
        loadgenArgv({
          target: "x:1",
          rate: 0,
          durationS: 1,
          warmupS: 0,
          connections: 1,
          newConnection: true,
          timeoutMs: 1,
        }),
      ).to.throw(/rate/);
    });
  });

  describe("waggle-loadgen against a real server on loopback", function () {
    this.timeout(60_000);
    let server: Server;
    let port: number;
    let binary: string;
    let dir: string;
    let requests = 0;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "waggle-loadgen-test-"));
      binary = await buildLoadgen(undefined, dir);
      server = createServer((req, res) => {
        requests++;
        if (req.url === "/fail") {
          res.writeHead(503, { "Content-Length": "4" });
          res.end("fail");
          return;
        }
        res.writeHead(200, { "Content-Length": "5" });
        res.end("hello");
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as AddressInfo).port;
    });
    after(() => {
      server?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    async function loadgen(args: string[]) {
      const r = await run(binary, args, { timeoutMs: 30_000 });
      expect(r.code, r.stderr).to.equal(0);
      return parseLoadgenOutput(r.stdout);
    }

    it("sends rate x (warm-up + duration) requests at a fixed rate and records those after the warm-up", async () => {
      requests = 0;
      const r = await loadgen([
        "--target",
        `127.0.0.1:${port}`,
        "--rate",
        "200",
        "--duration",
        "1",
        "--warmup",
        "0.25",
      ]);
      expect(r.scheduled).to.equal(250);
      expect(r.completed).to.equal(250);
      expect(requests).to.equal(250);
      expect(r.recorded).to.be.within(195, 205);
      expect(loadgenErrorCount(r)).to.equal(0);
      // open loop: the run takes the schedule's time, not less
      expect(r.elapsedUs).to.be.at.least(1_200_000);
    });

    it("opens one connection per request with --new-connection", async () => {
      let connections = 0;
      const onConnection = () => connections++;
      server.on("connection", onConnection);
      try {
        const r = await loadgen([
          "--target",
          `127.0.0.1:${port}`,
          "--rate",
          "100",
          "--duration",
          "0.5",
          "--new-connection",
        ]);
        expect(r.completed).to.equal(50);
        expect(connections).to.equal(50);
      } finally {
        server.off("connection", onConnection);
      }
    });

    it("counts refused connections and non-2xx answers as errors, never as latencies", async () => {
      const refused = await loadgen([
        "--target",
        "127.0.0.1:1",
        "--rate",
        "100",
        "--duration",
        "0.2",
        "--new-connection",
      ]);
      expect(refused.errors.connect_refused).to.equal(20);
      expect(refused.recorded).to.equal(0);
      const failing = await loadgen([
        "--target",
        `127.0.0.1:${port}`,
        "--rate",
        "100",
        "--duration",
        "0.2",
        "--path",
        "/fail",
      ]);
      expect(failing.errors.status_non_2xx).to.equal(20);
      expect(failing.status).to.deep.equal({ "503": 20 });
      expect(failing.latencyUs).to.deep.equal([]);
    });

    it("refuses bad arguments with exit code 2", async () => {
      for (const args of [
        ["--rate", "10"],
        ["--target", "127.0.0.1:1", "--rate", "0", "--duration", "1"],
        ["--target", "nohost", "--rate", "1", "--duration", "1"],
      ]) {
        const r = await run(binary, args);
        expect(r.code, args.join(" ")).to.equal(2);
      }
    });
  });

  describe("accounting", () => {
    it("cgroup cpu.stat in microseconds", () => {
      expect(
        parseCgroupCpuStat(
          "usage_usec 54562090\nuser_usec 45609644\nsystem_usec 8952446\nnice_usec 0\n",
        ),
      ).to.deep.equal({ usageUs: 54562090, userUs: 45609644, systemUs: 8952446 });
      expect(() => parseCgroupCpuStat("user_usec 1\n")).to.throw(/usage_usec/);
    });

    it("/proc/stat's aggregate line in ticks, and deltas in seconds", () => {
      const a = parseProcStat("cpu  100 0 50 1000 5 1 9 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n");
      const b = parseProcStat("cpu  200 10 70 1100 5 2 19 0 0 0\n");
      expect(a).to.include({ user: 100, softirq: 9, irq: 1 });
      const d = machineCpuDelta(b, a);
      expect(d.userS).to.be.closeTo(1.1, 1e-9);
      expect(d.systemS).to.be.closeTo(0.2, 1e-9);
      expect(d.softirqS).to.be.closeTo(0.1, 1e-9);
      expect(d.busyS).to.be.closeTo(1.41, 1e-9);
      expect(d.idleS).to.be.closeTo(1, 1e-9);
      expect(() => parseProcStat("intr 1 2\n")).to.throw(/no aggregate cpu line/);
    });

    it("TCP counters from /proc/net/snmp and /proc/net/netstat, and their deltas", () => {
      const text =
        "Tcp: RtoAlgorithm ActiveOpens AttemptFails RetransSegs\nTcp: 1 10 0 3\nTcpExt: TW TWRecycled ListenOverflows\nTcpExt: 7 1 0\n";
      const c = parseNetCounters(text);
      expect(c).to.include({ "Tcp.ActiveOpens": 10, "TcpExt.TW": 7 });
      const later = parseNetCounters(
        text.replace("1 10 0 3", "1 25 1 3").replace("7 1 0", "9 1 4"),
      );
      const d = counterDelta(later, c);
      expect(d).to.include({
        "Tcp.ActiveOpens": 15,
        "Tcp.AttemptFails": 1,
        "TcpExt.TW": 2,
        "TcpExt.ListenOverflows": 4,
      });
      expect(() => parseNetCounters("Tcp: A B\nUdp: 1 2\n")).to.throw(/unpaired/);
    });

    it("TIME_WAIT sockets from /proc/net/sockstat", () => {
      expect(
        parseSockstatTimeWait(
          "sockets: used 44\nTCP: inuse 3 orphan 0 tw 12 alloc 3 mem 249\nUDP: inuse 0 mem 0\n",
        ),
      ).to.equal(12);
      expect(() => parseSockstatTimeWait("sockets: used 1\n")).to.throw(/tw count/);
      expect(countSsLines("a\nb\n\n")).to.equal(2);
    });

    it("ss lists only TIME_WAIT sockets holding an ephemeral port: not the listeners' side", () => {
      expect(ephemeralTimeWaitArgs([8080, 15001])).to.deep.equal([
        "-Htan",
        "state",
        "time-wait",
        "not",
        "(",
        "sport",
        "=",
        ":8080",
        "or",
        "sport",
        "=",
        ":15001",
        ")",
      ]);
    });

    it("port exhaustion is judged from EADDRNOTAVAIL and from TIME_WAIT filling the range while connects fail", () => {
      const base = {
        portRange: 64512,
        maxEphemeralTimeWait: 1000,
        addrNotAvail: 0,
        timeWaitOverflow: 0,
        attemptFails: 0,
      };
      expect(judgePortPressure(base).exhausted).to.equal(false);
      expect(judgePortPressure({ ...base, addrNotAvail: 3 })).to.include({ exhausted: true });
      expect(
        judgePortPressure({ ...base, maxEphemeralTimeWait: 40000, attemptFails: 0 }).exhausted,
      ).to.equal(false);
      const full = judgePortPressure({ ...base, maxEphemeralTimeWait: 40000, attemptFails: 5 });
      expect(full.exhausted).to.equal(true);
      expect(full.reason).to.match(/TIME_WAIT/);
    });
  });

  describe("sidecar and app configuration", () => {
    it("intercepting sidecars forward to the original destination; inbound from 127.0.0.6", () => {
      const cfg = haproxyBenchConfig({ kind: "intercept" }, "/run/x/stats.sock");
      expect(cfg).to.contain("bind 127.0.0.1:15001");
      expect(cfg).to.contain("bind 0.0.0.0:15006");
      expect(cfg).to.contain("server upstream 0.0.0.0:0\n");
      expect(cfg).to.contain("server upstream 0.0.0.0:0 source 127.0.0.6");
      expect(cfg).to.contain("mode tcp");
      expect(cfg).to.not.match(/\blog\b/);
      expect(cfg).to.contain("stats socket /run/x/stats.sock");
    });

    it("explicit sidecars route statically: 15001 -> peer:15006 -> own app, and 15002 -> peer:15007 -> sockperf", () => {
      const cfg = haproxyBenchConfig(
        { kind: "explicit", peerIp: "10.250.0.3", selfIp: "10.250.0.2" },
        "/s",
      );
      expect(cfg).to.contain(
        "bind 127.0.0.1:15001 backlog 4096\n  default_backend outbound\nbackend outbound\n  server upstream 10.250.0.3:15006",
      );
      expect(cfg).to.contain("server upstream 10.250.0.3:15007");
      expect(cfg).to.contain("server upstream 10.250.0.2:8080 source 127.0.0.6");
      expect(cfg).to.contain("server upstream 10.250.0.2:11111 source 127.0.0.6");
      expect(cfg).to.not.contain("0.0.0.0:0");
    });

    it("nginx: no access log, one worker, a body of the asked size", () => {
      const cfg = nginxBenchConfig("/d", 8080, 1024);
      expect(cfg).to.contain("access_log off;");
      expect(cfg).to.contain("listen 8080 backlog=4096;");
      const body = /return 200 "(x*)\\n";/.exec(cfg)?.[1] ?? "";
      expect(body.length + 1).to.equal(1024);
      expect(() => nginxBenchConfig("/d", 8080, 0)).to.throw(/body/);
    });

    it("HAProxy's show stat: connection errors and sessions summed over backends", () => {
      const stat =
        "# pxname,svname,stot,econ,eresp,cli_abrt,srv_abrt,\noutbound,FRONTEND,10,,,,,\noutbound,upstream,10,1,0,0,0,\noutbound,BACKEND,10,1,0,2,0,\ninbound,BACKEND,5,0,3,0,1,\n";
      expect(sidecarErrors(parseHaproxyStat(stat))).to.deep.equal({
        sessions: 15,
        connectErrors: 1,
        responseErrors: 3,
        clientAborts: 2,
        serverAborts: 1,
      });
      expect(() => parseHaproxyStat("Unknown command")).to.throw(/no header/);
    });
  });

  describe("cleanup after a dead worker (bench/cleanup.ts)", () => {
    it("removes only what carries the worker's run tag", () => {
      const tag = `wg${Date.now().toString(36)}`;
      const mine = join(tmpdir(), `${benchTmpPrefix(tag)}haproxy-abc`);
      const other = join(tmpdir(), `${benchTmpPrefix("wgzzzzzzz")}nginx-abc`);
      mkdirSync(mine, { recursive: true });
      mkdirSync(other, { recursive: true });
      try {
        const { removed, failed } = cleanupByTag(tag);
        expect(failed).to.deep.equal([]);
        expect(removed).to.deep.equal([`dir ${benchTmpPrefix(tag)}haproxy-abc`]);
        expect(existsSync(mine)).to.equal(false);
        expect(existsSync(other)).to.equal(true);
      } finally {
        rmSync(mine, { recursive: true, force: true });
        rmSync(other, { recursive: true, force: true });
      }
    });

    it("refuses a tag that could match other runs' names", () => {
      for (const bad of ["", "wg", "w", "wg*", "../x", "wgAB"])
        expect(() => cleanupByTag(bad), bad).to.throw(/refusing/);
    });
  });
});
