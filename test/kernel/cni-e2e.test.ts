// End to end: pods wired by the Calico-shaped chain (0.3.1, as Calico writes it) with waggle
// attaching the meshed ones. A client app's HTTP request reaches the server's nginx only
// through both HAProxy sidecars (uid 1337), whose logs show the original destinations; an
// unmeshed pod next to them stays untouched; and the istio-validation probe passes. All of it
// with the node's socket bypass off and on (plugin config socket_bypass); on, the request's
// hops (app to sidecar, sidecar to sidecar, sidecar to nginx) are bypassed, as the pods'
// counters show; off, nothing is.
import "../support/hooks";
import { expect } from "chai";
import { netnsQuery } from "ebpf-napi";
import { listPods } from "../../datapath";
import { CniNode, type CniPod, MESHED_ANNOTATIONS } from "../support/cni-node";
import { runChecked } from "../support/command";
import { type HaproxySidecar, startHaproxySidecar } from "../support/haproxy";
import { type NginxServer, startNginx } from "../support/nginx";
import type { Pod } from "../support/pod";
import { httpGet, probe, startListeners } from "../support/sockprobe";

const APP = { uid: 1000, gid: 1000 };
const PROXY = { uid: 1337, gid: 1337 };

for (const bypass of [false, true]) {
  describe(`cni end to end: HAProxy sidecars through waggle, attached by the CNI chain (socket_bypass ${bypass})`, function () {
    endToEnd.call(this, bypass);
  });
}

function endToEnd(this: Mocha.Suite, bypass: boolean): void {
  this.timeout(180_000);
  let cni: CniNode;
  const pods: Record<"client" | "server" | "plain", { pod: CniPod; ip: string }> = {} as never;
  let clientProxy: HaproxySidecar;
  let serverProxy: HaproxySidecar;
  let serverNginx: NginxServer;
  let plainNginx: NginxServer;
  const list = () => cni.chain("0.3.1", { socket_bypass: bypass });

  // The HAProxy and nginx fixtures take a test Pod; a CNI-wired sandbox offers what they use
  // (spawn/exec in its netns and cgroup, label, no IPv6).
  const asPod = (p: CniPod) => p.sandbox as unknown as Pod;

  before(async () => {
    cni = await CniNode.create();
    for (const [name, annotations] of [
      ["client", MESHED_ANNOTATIONS],
      ["server", MESHED_ANNOTATIONS],
      ["plain", { "prometheus.io/scrape": "true" }],
    ] as const) {
      const pod = await cni.pod(annotations);
      const result = await cni.runtime.addNetworkList(list(), pod.rt);
      const ip = result.ips?.[0].address.split("/")[0] ?? "";
      pods[name] = { pod, ip };
    }
    serverNginx = await startNginx(asPod(pods.server.pod), {
      port: 8080,
      body: "served by nginx\n",
    });
    plainNginx = await startNginx(asPod(pods.plain.pod), { port: 8080, body: "plain nginx\n" });
    clientProxy = await startHaproxySidecar(asPod(pods.client.pod), PROXY);
    serverProxy = await startHaproxySidecar(asPod(pods.server.pod), PROXY);
  });
  after(async () => {
    for (const p of Object.values(pods)) {
      await cni.runtime.delNetworkList(list(), p.pod.rt).catch(() => undefined);
      await p.pod.sandbox.destroy();
    }
    await cni?.destroy();
  });

  it("only the meshed pods are attached", () => {
    const attached = listPods(cni.bpf.opts).map((r) => r.containerId);
    expect(attached).to.have.members([
      pods.client.pod.rt.containerId,
      pods.server.pod.rt.containerId,
    ]);
  });

  /** Messages bypassed so far, per meshed pod. */
  const bypassedMsgs = () =>
    Object.fromEntries(
      listPods(cni.bpf.opts).map((r) => [
        r.containerId === pods.client.pod.rt.containerId ? "client" : "server",
        r.counters?.bypass_msgs ?? -1,
      ]),
    );

  it("client app -> client sidecar -> server sidecar -> nginx, with the original destinations", async () => {
    const server = pods.server.ip;
    const before = bypassedMsgs();
    const res = await httpGet(pods.client.pod.sandbox, `http://${server}:8080/`, APP);
    const after = bypassedMsgs();
    for (const side of ["client", "server"]) {
      const more = after[side] - before[side];
      if (bypass) expect(more, `${side} pod: messages bypassed`).to.be.greaterThan(0);
      else expect(more, `${side} pod: nothing bypassed`).to.equal(0);
    }
    expect(res).to.deep.include({ result: "ok", status: 200, body: "served by nginx\n" });

    const out = await clientProxy.waitForConnection((c) => c.frontend === "outbound");
    expect(out.accepted).to.equal(`${server}:8080`); // SO_ORIGINAL_DST on the client side
    expect(out.server).to.equal(`${server}:8080`);
    const inb = await serverProxy.waitForConnection((c) => c.frontend === "inbound");
    expect(inb.accepted).to.equal(`${server}:8080`); // TC ingress kept the destination
    expect(inb.client.split(":")[0]).to.equal(pods.client.ip); // from the client sidecar
    expect(inb.source.split(":")[0]).to.equal("127.0.0.6"); // inbound passthrough (O2)
    const req = await serverNginx.waitForRequest(() => true);
    expect(req.client.split(":")[0]).to.equal("127.0.0.6");
    expect(req.server).to.equal(`${server}:8080`);
  });

  it("an unmeshed pod next to them stays untouched", async () => {
    const plain = pods.plain;
    expect(
      (await runChecked("bpftool", ["cgroup", "show", plain.pod.sandbox.cgroupDir])).trim(),
    ).to.equal("");
    expect(netnsQuery(plain.pod.sandbox.netnsPath, "sk_lookup")).to.deep.equal([]);
    // the plain pod's app reaches the meshed server (captured only on the server's side) ...
    const before = clientProxy.connections().length;
    const res = await httpGet(plain.pod.sandbox, `http://${pods.server.ip}:8080/`, APP);
    expect(res).to.deep.include({ status: 200, body: "served by nginx\n" });
    await serverProxy.waitForConnection(
      (c) => c.frontend === "inbound" && c.client.startsWith(`${plain.ip}:`),
    );
    // ... and a request to the plain pod's nginx arrives from the client sidecar, not 127.0.0.6
    const direct = await httpGet(pods.client.pod.sandbox, `http://${plain.ip}:8080/`, APP);
    expect(direct).to.deep.include({ status: 200, body: "plain nginx\n" });
    const seen = await plainNginx.waitForRequest(() => true);
    expect(seen.client.split(":")[0]).to.equal(pods.client.ip);
    expect(clientProxy.connections().length).to.equal(before + 1);
  });

  it("the istio-validation probe (uid 1337, 127.0.0.1 -> 127.0.0.6:15002) lands on 15006 with original port 15002", async () => {
    // As the init container does: its own listeners before the proxy exists (a fresh meshed pod).
    const pod = await cni.pod();
    try {
      await cni.runtime.addNetworkList(list(), pod.rt);
      const listeners = await startListeners(
        pod.sandbox,
        [
          { name: "outbound", proto: "tcp", addr: "127.0.0.1:15001" },
          { name: "inbound", proto: "tcp", addr: "127.0.0.1:15006" },
        ],
        PROXY,
      );
      try {
        const [r] = await probe(pod.sandbox, [{ to: "127.0.0.6:15002", bind: "127.0.0.1" }], PROXY);
        expect(r.result).to.equal("connected");
        expect(r.reply).to.deep.include({ listener: "inbound", originalDst: "127.0.0.6:15002" });
      } finally {
        await listeners.stop();
      }
      await cni.runtime.delNetworkList(list(), pod.rt);
    } finally {
      await pod.sandbox.destroy();
    }
  });
}
