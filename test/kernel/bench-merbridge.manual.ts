// The bench's merbridge mode end to end, against a Merbridge checkout named by
// WAGGLE_MERBRIDGE_SRC (a work tree or a git directory). Not part of `npm test` (the file name
// does not end in .test.ts): CI holds no Merbridge checkout, and a kernel test there must run,
// not skip. `npm run test:merbridge` runs it and fails without a source: Merbridge's programs built with its own Makefile, loaded, attached to a client
// and a server pod's cgroups only, the path proved as the bench proves it (the priming
// request, 20 requests through both sidecars, its sockhash holding both ends of every hop of
// kept-alive connections, no TCP segment for a request on them), one second of keep-alive
// traffic through it, and nothing left behind.
import "../support/hooks";
import { expect } from "chai";
import { cgroupQuery } from "ebpf-napi";
import { cgroup2Root } from "../../base/cgroup2";
import { BenchCluster } from "../../bench/cluster";
import { MERBRIDGE_HELD_CONNECTIONS, Measurer } from "../../bench/measure";
import { MERBRIDGE_HOPS } from "../../bench/merbridge";
import { MERBRIDGE_SRC_ENV } from "../../bench/modes";
import { liveResources } from "../support/resources";

const CGROUP_ATTACH = [
  "cgroup_inet4_connect",
  "cgroup_sock_ops",
  "cgroup_getsockopt",
  "cgroup_inet4_bind",
  "cgroup_udp4_sendmsg",
  "cgroup_udp4_recvmsg",
] as const;

describe("bench mode merbridge: Merbridge's own programs, built from a checkout, carry the path", function () {
  this.timeout(240_000);

  it("builds them, attaches them to the two pods' cgroups only, proves the path and its bypass, runs keep-alive traffic, and leaves nothing behind", async () => {
    const source = process.env[MERBRIDGE_SRC_ENV];
    if (!source) {
      throw new Error(
        `no Merbridge source given: set ${MERBRIDGE_SRC_ENV} to a Merbridge checkout or its git directory`,
      );
    }
    const resourcesBefore = liveResources();
    const lines: string[] = [];
    const cluster = await BenchCluster.create({
      modes: ["merbridge"],
      tls: false,
      placement: {},
      bodyBytes: 1024,
      merbridgeSrc: source,
      log: (l) => lines.push(l),
    });
    try {
      const merbridge = cluster.merbridge;
      if (!merbridge) throw new Error("no Merbridge built");
      const info = merbridge.info;
      expect(info.compile, "one compiler line per object").to.have.length(7);
      for (const c of info.compile) {
        expect(c).to.match(/-DMESH=1 .*-DENABLE_CNI_MODE=0 -DENABLE_IPV4=1 -DENABLE_IPV6=0/);
        expect(c).to.contain("-DUSE_RECONNECT").and.not.contain("-DDEBUG");
      }
      expect(info.programs.map((p) => p.attach)).to.have.members([
        ...CGROUP_ATTACH,
        "sk_msg_verdict",
      ]);

      const d = cluster.deployment("merbridge");
      const ids = merbridge.programIds();
      for (const type of CGROUP_ATTACH) {
        for (const pod of [d.client, d.server])
          expect(cgroupQuery(pod.sandbox.cgroupDir, type), `${type} on a pod`).to.deep.equal([
            ids.get(type),
          ]);
        expect(cgroupQuery(cgroup2Root(), type), `${type} not on the root cgroup`).not.to.include(
          ids.get(type),
        );
      }

      const measurer = new Measurer(
        cluster,
        undefined,
        { maxS: 1, rateS: 1, warmupS: 0, pingpongS: 1 },
        4,
        4,
        null,
      );
      try {
        await measurer.prepare();
        await measurer.verifyPath("merbridge");
        const [check] = measurer.merbridgePaths;
        expect(check.learned.map((l) => l.ip)).to.deep.equal([d.client.ip, d.server.ip]);
        // the server sidecar's first upstream connection, sent to its own 15006, refused once
        expect(check.priming.loopsRefused).to.equal(1);
        for (const hop of MERBRIDGE_HOPS)
          expect(check.hops[hop], hop).to.be.at.least(MERBRIDGE_HELD_CONNECTIONS);
        expect(check.segments).to.be.below(MERBRIDGE_HELD_CONNECTIONS);

        const r = await measurer.run(
          "merbridge",
          { kind: "max", connection: "keepalive" },
          { level: "0", round: 0 },
        );
        expect(r?.errorCount).to.equal(0);
        expect(r?.requests).to.be.above(100);
        expect(r?.sidecars?.sessions, "the sessions of wrk's 4 connections").to.be.at.least(4);
      } finally {
        measurer.close();
      }
    } finally {
      await cluster.destroy();
    }
    expect(cluster.merbridge).to.equal(undefined);
    expect(liveResources(), "no tracked resource left").to.deep.equal(resourcesBefore);
  });
});
