// The "pod" fixture: network namespaces wired like Calico wires pods, plus a pod cgroup.
//
// Topology (decided here, used by every kernel test):
//
//   pod netns                     node netns (plays the host)                 pod netns
//   eth0 10.0.0.2/32  <-veth->  wg..h1 ─┐  routes 10.0.0.2/32 dev wg..h1  ┌─ wg..h2 <-veth-> eth0 10.0.0.3/32
//   default via 169.254.1.1             └─ lo: 10.0.0.1, 169.254.1.1,     ┘   default via 169.254.1.1
//                                            fd00::1; forwarding on
//
// A dedicated "node" netns stands in for the host instead of the real host netns: pods on
// one node reach each other through it (a real veth crossing, routed like pod-to-pod traffic
// through a Calico host), and nothing host-wide changes: forwarding is switched on inside
// the node netns only, and no interface, route or sysctl of the real host is touched. Every
// node has its own address space, so tests running at the same time never collide.
//
// Pod side, as Calico does it: one /32 (and /128) on eth0, `169.254.1.1 dev eth0 scope link`
// and `default via 169.254.1.1`; for IPv6 `default via fe80::ecee:eeff:feee:eeee`, the
// link-local address of the host-side veth whose MAC is ee:ee:ee:ee:ee:ee. The node answers
// ARP for 169.254.1.1 because it holds that address on its lo (Calico uses proxy ARP on a
// host with a default route; a node netns has none). DAD is off so addresses are usable at
// once. Each pod also gets a cgroup under the detected cgroup2 root
// (<root>/waggle-test/<netns name>) and runs processes in both (see sandbox.ts).

import { CommandError, runSync } from "./command";
import { uniqueName } from "./names";
import { Sandbox } from "./sandbox";

/** The host-side veth MAC Calico uses; its EUI-64 link-local is the pods' IPv6 gateway. */
export const HOST_VETH_MAC = "ee:ee:ee:ee:ee:ee";
export const POD_GATEWAY_V4 = "169.254.1.1";
export const POD_GATEWAY_V6 = "fe80::ecee:eeff:feee:eeee";
/** The node's own addresses (on its lo): the source of node-to-pod traffic. */
export const NODE_IPV4 = "10.0.0.1";
export const NODE_IPV6 = "fd00::1";

const NO_DAD = {
  "net.ipv6.conf.all.accept_dad": 0,
  "net.ipv6.conf.default.accept_dad": 0,
};

export interface NodeOptions {
  /** Used in messages only (the netns name is always generated). */
  label?: string;
}

/** A netns playing the Kubernetes node: pods' host-side veths end here. */
export class Node extends Sandbox {
  private nextHost = 2;

  /** Creates a node netns with forwarding on and its addresses on lo. */
  static async create(opts: NodeOptions = {}): Promise<Node> {
    const node = new Node(uniqueName("n"), opts.label ?? "node");
    await node.materialize(async () => {
      await node.sysctl({ ...NO_DAD, "net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1 });
      await node.ipBatch([
        `addr add ${NODE_IPV4}/32 dev lo`,
        `addr add ${POD_GATEWAY_V4}/32 dev lo`,
        `addr add ${NODE_IPV6}/128 dev lo`,
      ]);
    });
    return node;
  }

  /** The next unused pod address of this node: 10.0.0.N or fd00::N (N from 2). */
  allocateHost(): number {
    const n = this.nextHost++;
    if (n > 254) throw new Error(`${this.label}: out of pod addresses`);
    return n;
  }
}

/** A secondary interface of a pod: a veth to the node on a small shared subnet (e.g. X1). */
export interface ExtraInterface {
  /** The name inside the pod, e.g. "net1". */
  name: string;
  /** Pod-side and node-side addresses with prefix length, e.g. "10.200.0.2/24" / "10.200.0.1/24". */
  ipv4?: { pod: string; node: string };
  ipv6?: { pod: string; node: string };
}

export interface PodOptions {
  /** Used in messages only (the netns and cgroup names are always generated). */
  label?: string;
  /** The node to attach to; default: a private node created and destroyed with the pod. */
  node?: Node;
  /** The pod IPv4 address; default: allocated from the node; false: no IPv4. */
  ipv4?: string | false;
  /** The pod IPv6 address; true: allocated from the node; default: no IPv6. */
  ipv6?: string | boolean;
  extraInterfaces?: ExtraInterface[];
}

/** A pod: netns with eth0 (and extras) wired to a node, plus a cgroup. */
export class Pod extends Sandbox {
  readonly node: Node;
  readonly ipv4: string | undefined;
  readonly ipv6: string | undefined;
  /** The host-side veth of eth0, in the node netns. */
  readonly hostVeth: string;
  readonly extraInterfaces: readonly ExtraInterface[];
  private readonly extraHostVeths: string[] = [];

  private constructor(
    opts: PodOptions,
    node: Node,
    private readonly ownsNode: boolean,
  ) {
    super(uniqueName("p"), opts.label ?? "pod");
    this.node = node;
    const host = opts.ipv4 === false && opts.ipv6 === undefined ? 0 : node.allocateHost();
    this.ipv4 = opts.ipv4 === false ? undefined : (opts.ipv4 ?? `10.0.0.${host}`);
    this.ipv6 = opts.ipv6 === true ? `fd00::${host.toString(16)}` : opts.ipv6 || undefined;
    if (!this.ipv4 && !this.ipv6)
      throw new Error("createPod: a pod needs an IPv4 or an IPv6 address");
    this.hostVeth = uniqueName("h");
    this.extraInterfaces = opts.extraInterfaces ?? [];
  }

  static async create(opts: PodOptions = {}): Promise<Pod> {
    const ownsNode = opts.node === undefined;
    const node = opts.node ?? (await Node.create({ label: `node of ${opts.label ?? "pod"}` }));
    let pod: Pod;
    try {
      pod = new Pod(opts, node, ownsNode);
    } catch (e) {
      if (ownsNode) node.destroySync();
      throw e;
    }
    await pod.materialize(() => pod.wire());
    return pod;
  }

  /** The pod address of a family; throws when the pod has none. */
  address(family: 4 | 6): string {
    const a = family === 4 ? this.ipv4 : this.ipv6;
    if (!a) throw new Error(`${this.label} has no IPv${family} address`);
    return a;
  }

  private async wire(): Promise<void> {
    await this.sysctl(NO_DAD);
    const podSide = uniqueName("t");
    const nodeLines = [
      `link add ${this.hostVeth} address ${HOST_VETH_MAC} type veth peer name ${podSide} netns ${this.name}`,
      `link set ${this.hostVeth} up`,
    ];
    const podLines = [`link set ${podSide} name eth0`, "link set eth0 up"];
    const nodeRoutes: string[] = [];
    if (this.ipv4) {
      podLines.push(
        `addr add ${this.ipv4}/32 dev eth0`,
        `route add ${POD_GATEWAY_V4} dev eth0 scope link`,
        `route add default via ${POD_GATEWAY_V4} dev eth0`,
      );
      nodeRoutes.push(`route add ${this.ipv4}/32 dev ${this.hostVeth}`);
    }
    if (this.ipv6) {
      podLines.push(
        `addr add ${this.ipv6}/128 dev eth0 nodad`,
        `route add default via ${POD_GATEWAY_V6} dev eth0`,
      );
      nodeRoutes.push(`route add ${this.ipv6}/128 dev ${this.hostVeth}`);
    }
    for (const extra of this.extraInterfaces) {
      const hostSide = uniqueName("h");
      const tmp = uniqueName("t");
      this.extraHostVeths.push(hostSide);
      nodeLines.push(
        `link add ${hostSide} type veth peer name ${tmp} netns ${this.name}`,
        `link set ${hostSide} up`,
      );
      podLines.push(`link set ${tmp} name ${extra.name}`, `link set ${extra.name} up`);
      if (extra.ipv4) {
        nodeRoutes.push(`addr add ${extra.ipv4.node} dev ${hostSide}`);
        podLines.push(`addr add ${extra.ipv4.pod} dev ${extra.name}`);
      }
      if (extra.ipv6) {
        nodeRoutes.push(`addr add ${extra.ipv6.node} dev ${hostSide} nodad`);
        podLines.push(`addr add ${extra.ipv6.pod} dev ${extra.name} nodad`);
      }
    }
    await this.node.ipBatch(nodeLines);
    await this.ipBatch(podLines);
    await this.node.ipBatch(nodeRoutes);
  }

  protected override teardownSync(): void {
    // Deleting the host side removes the pair at once (deleting the netns would only
    // schedule it), so the node never shows a stale veth.
    for (const veth of [this.hostVeth, ...this.extraHostVeths])
      deleteLinkIfPresentSync(this.node.name, veth);
    super.teardownSync();
    if (this.ownsNode) this.node.destroySync();
  }
}

/** Deletes an interface in a netns; no error when the interface or the netns is gone. */
function deleteLinkIfPresentSync(netns: string, ifname: string): void {
  try {
    runSync("ip", ["-n", netns, "link", "del", ifname]);
  } catch (e) {
    if (
      e instanceof CommandError &&
      /Cannot find device|No such file|does not exist/.test(e.message)
    )
      return;
    throw e;
  }
}

/** Creates a node netns (see Node.create). */
export function createNode(opts: NodeOptions = {}): Promise<Node> {
  return Node.create(opts);
}

/** Creates a pod (see Pod.create and the topology above). */
export function createPod(opts: PodOptions = {}): Promise<Pod> {
  return Pod.create(opts);
}
