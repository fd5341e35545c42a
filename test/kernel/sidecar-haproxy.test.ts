// Issue 3's sidecar end to end: a HAProxy sidecar (uid 1337; 15001 and 15006 forwarding to
// the original destination, inbound from source 127.0.0.6) carries a real HTTP request from
// one pod's app to another pod's nginx. The same scenario runs under the istio-iptables
// baseline and under waggle; each mode meshes both pods the way its CNI ADD would, before any
// process starts in them.

import { expect } from "chai";
import type { CaptureMode } from "../support/capture-lab";
import { type HaproxySidecar, startHaproxySidecar } from "../support/haproxy";
import "../support/hooks";
import { defaultRedirectSettings } from "../../mesh/redirect-settings";
import { IptablesCaptureMode } from "../support/istio-iptables";
import { startNginx } from "../support/nginx";
import { createNode, createPod, type Node, type Pod } from "../support/pod";
import { httpGet } from "../support/sockprobe";
import { BpfRoot, WaggleMode } from "../support/waggle-mode";

/** A capture mode for a node: one CaptureMode per meshed pod, sharing the node's state. */
interface NodeCapture {
  name: string;
  /** Meshes a new pod (one CNI ADD); teardown() of the result is its DEL. */
  forPod(): CaptureMode;
  /** Removes what the node-wide part holds (waggle: the shared programs and maps). */
  destroy(): void;
}

const MODES: { name: string; start: () => NodeCapture }[] = [
  {
    name: "iptables",
    start: () => ({ name: "iptables", forPod: () => new IptablesCaptureMode(), destroy() {} }),
  },
  {
    name: "waggle",
    start: () => {
      const root = new BpfRoot(); // one datapath for the node, as the installer loads it
      return {
        name: "waggle",
        forPod: () => new WaggleMode(root),
        destroy: () => root.destroy(),
      };
    },
  },
];

interface MeshedPod {
  pod: Pod;
  capture: CaptureMode;
  sidecar: HaproxySidecar;
}

/** app (uid 1000) in one pod -> its sidecar -> the other pod's sidecar -> nginx (uid 1000). */
async function carryHttpRequest(node: Node, capture: NodeCapture): Promise<void> {
  const meshed: MeshedPod[] = [];
  const pods: Pod[] = [];
  const meshedPod = async (label: string): Promise<MeshedPod> => {
    const pod = await createPod({ node, label: `${label} (${capture.name})` });
    pods.push(pod);
    const mode = capture.forPod();
    await mode.setup(pod, defaultRedirectSettings());
    const m: MeshedPod = { pod, capture: mode, sidecar: await startHaproxySidecar(pod) };
    meshed.push(m);
    return m;
  };
  try {
    const client = await meshedPod("client");
    const server = await meshedPod("server");
    const body = `hello through two sidecars under ${capture.name}\n`;
    const nginx = await startNginx(server.pod, { body });
    const target = `${server.pod.address(4)}:${nginx.port}`;

    const response = await httpGet(client.pod, `http://${target}/`, { uid: 1000, gid: 1000 });
    expect(response).to.deep.equal({ result: "ok", status: 200, body });

    // Hop 1: the client's sidecar accepted the app's connection on 15001, read the original
    // destination (SO_ORIGINAL_DST) and dialled it as uid 1337 (not captured again, O5).
    const outbound = await client.sidecar.waitForConnection((c) => c.frontend === "outbound");
    expect(outbound, "client sidecar").to.include({ accepted: target, server: target });
    expect(outbound.client, "the app's address").to.match(
      new RegExp(`^${client.pod.address(4).replaceAll(".", "\\.")}:\\d+$`),
    );
    expect(outbound.source.startsWith(`${client.pod.address(4)}:`), "dialled from the pod IP").to.be
      .true;
    // Hop 2: the server's sidecar accepted exactly that connection on 15006, read the original
    // destination and passed it to the app from 127.0.0.6 (O2: not captured again).
    const inbound = await server.sidecar.waitForConnection((c) => c.frontend === "inbound");
    expect(inbound, "server sidecar").to.include({
      client: outbound.source,
      accepted: target,
      server: target,
    });
    expect(inbound.source).to.match(/^127\.0\.0\.6:\d+$/);
    // Hop 3: nginx saw the request from the sidecar's passthrough socket, and only that: the
    // app never reached nginx directly.
    const request = await nginx.waitForRequest((r) => r.request === "GET / HTTP/1.1");
    expect(request).to.include({ client: inbound.source, server: target, status: 200 });
    expect(nginx.requests(), "every request nginx saw").to.have.length(1);
    expect(client.sidecar.connections(), "client sidecar connections").to.have.length(1);
    expect(server.sidecar.connections(), "server sidecar connections").to.have.length(1);
  } finally {
    for (const m of meshed.reverse()) {
      await m.sidecar.stop();
      await m.capture.teardown();
    }
    for (const pod of pods) await pod.destroy();
  }
}

describe("kernel: a HAProxy sidecar carries HTTP between two meshed pods", function () {
  this.timeout(60_000);
  let node: Node;

  before(async () => {
    node = await createNode({ label: "sidecar node" });
  });
  after(async () => {
    await node?.destroy();
  });

  for (const mode of MODES) {
    it(`app -> sidecar 15001 -> sidecar 15006 -> nginx from 127.0.0.6, under ${mode.name}`, async () => {
      const capture = mode.start();
      try {
        await carryHttpRequest(node, capture);
      } finally {
        capture.destroy();
      }
    });
  }
});
