// X1 outbound: traffic leaving through an excluded interface is never captured. The cgroup
// hooks run before routing, so at attach time the destinations the pod routes through each
// excluded interface are read from its netns and excluded like excludeOutboundIPRanges.
// Routes added to the pod later are not followed (documented in docs/datapath.md).
import { execFileSync } from "node:child_process";

interface IpRoute {
  dst: string;
  type?: string;
}

/** Unicast destinations routed via `ifname` in the netns, as CIDRs of both families. */
export function routedCidrs(netnsPath: string, ifname: string): string[] {
  const out: string[] = [];
  for (const family of ["-4", "-6"] as const) {
    let text: string;
    try {
      text = execFileSync(
        "nsenter",
        [`--net=${netnsPath}`, "ip", "-j", family, "route", "show", "table", "all", "dev", ifname],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
      );
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? "");
      if (/Cannot find device|does not exist/i.test(stderr)) return []; // no such interface
      throw new Error(`reading routes via ${ifname} in ${netnsPath} failed: ${stderr.trim()}`);
    }
    const routes = JSON.parse(text || "[]") as IpRoute[];
    for (const r of routes) {
      if (r.type !== undefined && r.type !== "unicast") continue; // local, broadcast, multicast...
      out.push(routeCidr(r.dst, family === "-4" ? 4 : 6));
    }
  }
  return [...new Set(out)];
}

/** An `ip route` destination ("default", "10.0.0.0/24", "10.0.0.5") as a CIDR. */
export function routeCidr(dst: string, family: 4 | 6): string {
  if (dst === "default") return family === 4 ? "0.0.0.0/0" : "::/0";
  if (dst.includes("/")) return dst;
  return `${dst}/${family === 4 ? 32 : 128}`;
}

/**
 * Puts ::6/128 on the pod's lo, as istio-iptables does when it enables IPv6: the proxy binds
 * it as the source of inbound passthrough (O2). Idempotent.
 */
export function addPassthroughV6(netnsPath: string): void {
  try {
    execFileSync(
      "nsenter",
      [`--net=${netnsPath}`, "ip", "-6", "addr", "replace", "::6/128", "dev", "lo"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? "").trim();
    throw new Error(`adding ::6/128 to lo in ${netnsPath} failed: ${stderr}`);
  }
}

export interface PodInterface {
  ifname: string;
  /** Global-scope addresses (no prefix length). */
  addresses: string[];
}

interface IpAddrJson {
  ifname: string;
  addr_info?: { family: string; local: string; scope: string }[];
}

/** The interfaces of the pod's netns and their global addresses (loopback included). */
export function podInterfaces(netnsPath: string): PodInterface[] {
  let text: string;
  try {
    text = execFileSync("nsenter", [`--net=${netnsPath}`, "ip", "-j", "addr", "show"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? "").trim();
    throw new Error(`listing interfaces in ${netnsPath} failed: ${stderr}`);
  }
  return (JSON.parse(text || "[]") as IpAddrJson[]).map((i) => ({
    ifname: i.ifname,
    addresses: (i.addr_info ?? [])
      .filter((a) => a.scope === "global" && (a.family === "inet" || a.family === "inet6"))
      .map((a) => a.local),
  }));
}
