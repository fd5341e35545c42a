// kube-proxy-shaped iptables rules for the host rule flood: what kube-proxy (iptables mode)
// writes for S ClusterIP services with E endpoints each, as one iptables-restore input.
//
// Per service kube-proxy writes, in the nat table:
//   KUBE-SERVICES   -d <cluster IP> -p tcp --dport P -j KUBE-SVC-<hash>          (1 rule)
//   KUBE-SVC-<hash> ! -s <cluster CIDR> -d <cluster IP> ... -j KUBE-MARK-MASQ     (1 rule)
//                   -m statistic --mode random --probability 1/(E-i) -j KUBE-SEP-<hash>
//                   ... the last endpoint without probability                    (E rules)
//   KUBE-SEP-<hash> -s <endpoint> -j KUBE-MARK-MASQ; -p tcp -j DNAT --to <endpoint>  (2 rules)
// i.e. 2 + 3E rules and 1 + E chains per service, plus a fixed skeleton (the jumps from the
// built-in chains, masquerade marking, the filter-table chains). The thesis's flood, 500
// services x 50 endpoints, is 76,000 rules in 25,500 chains: 101,500 iptables-save lines,
// its "101,806 rules" with the rest of the host's rules. Levels are therefore given as
// services x endpoints and reported both as rules and as iptables-save lines.
//
// Pod traffic crossing the node walks nat PREROUTING -> KUBE-SERVICES (S rules, none
// matching a pod IP) on every new connection; the SVC/SEP chains are only entered for
// cluster IPs. That is the real cost shape of a large kube-proxy rule set for mesh traffic.

import { createHash } from "node:crypto";

/** A flood level: services x endpoints per service (0 services: no rules at all). */
export interface FloodLevel {
  services: number;
  endpointsPerService: number;
}

export interface KubeRules {
  /** iptables-restore input (nat and filter tables); "" for zero services. */
  restoreInput: string;
  /** Rules (-A lines). */
  rules: number;
  /** User chains created. */
  chains: number;
  /** Lines iptables-save prints for these tables (table headers, chains, rules, COMMITs). */
  saveLines: number;
}

/** The service and cluster CIDRs the generated rules use (never a pod address of the bench). */
export const SERVICE_CIDR_BASE = [10, 96]; // 10.96.0.0/12
export const CLUSTER_CIDR = "10.244.0.0/16";
const MAX_SERVICES = 65_000;
const MAX_ENDPOINTS = 4_000;

/** The named levels the bench uses ("10k" is the thesis's shape scaled down 10x). */
export const NAMED_LEVELS: Record<string, FloodLevel> = {
  "0": { services: 0, endpointsPerService: 0 },
  "10k": { services: 50, endpointsPerService: 50 },
  "100k": { services: 500, endpointsPerService: 50 },
};

/** Parses "0", "10k", "100k" or "SxE" (e.g. "500x50"). */
export function parseFloodLevel(spec: string): FloodLevel {
  const named = NAMED_LEVELS[spec];
  if (named) return { ...named };
  const m = /^(\d+)x(\d+)$/.exec(spec);
  if (!m)
    throw new Error(
      `invalid rule level ${JSON.stringify(spec)}: use ${Object.keys(NAMED_LEVELS).join(", ")} or SERVICESxENDPOINTS (e.g. 500x50)`,
    );
  const level = { services: Number(m[1]), endpointsPerService: Number(m[2]) };
  checkLevel(level);
  return level;
}

function checkLevel(level: FloodLevel): void {
  const { services, endpointsPerService } = level;
  if (!Number.isInteger(services) || services < 0 || services > MAX_SERVICES)
    throw new Error(`services must be an integer in 0..${MAX_SERVICES}, got ${services}`);
  if (services === 0) return;
  if (
    !Number.isInteger(endpointsPerService) ||
    endpointsPerService < 1 ||
    endpointsPerService > MAX_ENDPOINTS
  )
    throw new Error(
      `endpoints per service must be an integer in 1..${MAX_ENDPOINTS}, got ${endpointsPerService}`,
    );
}

/** A level's label: its name when it has one, else SxE. */
export function floodLevelLabel(level: FloodLevel): string {
  for (const [name, l] of Object.entries(NAMED_LEVELS)) {
    if (
      l.services === level.services &&
      (l.services === 0 || l.endpointsPerService === level.endpointsPerService)
    )
      return name;
  }
  return `${level.services}x${level.endpointsPerService}`;
}

/** kube-proxy's chain name: prefix + the first 16 characters of base32(sha256(key)). */
export function kubeChainName(prefix: "KUBE-SVC-" | "KUBE-SEP-", key: string): string {
  const digest = createHash("sha256").update(key).digest();
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 16) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length >= 16) break;
  }
  return prefix + out;
}

/** The i-th address of a /16-or-larger range starting at a.b.0.0 (i from 0), skipping .0/.255. */
function nthAddress(base: number[], i: number): string {
  const perBlock = 254;
  const block = Math.floor(i / perBlock);
  const host = (i % perBlock) + 1;
  const second = base[1] + Math.floor(block / 256);
  if (second > 255) throw new Error("address range exhausted");
  return `${base[0]}.${second}.${block % 256}.${host}`;
}

/** kube-proxy writes probabilities with 10 decimals: 1/(E-i) for endpoint i of E. */
export function endpointProbability(index: number, endpoints: number): string {
  return (1 / (endpoints - index)).toFixed(10);
}

const NAT_SKELETON_CHAINS = [
  "KUBE-SERVICES",
  "KUBE-POSTROUTING",
  "KUBE-NODEPORTS",
  "KUBE-MARK-MASQ",
];
const NAT_SKELETON_RULES = [
  '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
  "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
  "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
  "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
  '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
];
const NAT_LAST_RULE =
  '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS';

const FILTER_CHAINS = [
  "KUBE-FIREWALL",
  "KUBE-FORWARD",
  "KUBE-SERVICES",
  "KUBE-EXTERNAL-SERVICES",
  "KUBE-NODEPORTS",
  "KUBE-PROXY-FIREWALL",
];
const FILTER_RULES = [
  '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
  '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
  '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
  '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
  '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
  '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
  '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
  '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
  '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
  '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
];

/** Renders kube-proxy's rules for a level. Zero services renders nothing (no tables touched). */
export function renderKubeRules(level: FloodLevel): KubeRules {
  checkLevel(level);
  if (level.services === 0) return { restoreInput: "", rules: 0, chains: 0, saveLines: 0 };
  const E = level.endpointsPerService;
  const chainDecls: string[] = NAT_SKELETON_CHAINS.map((c) => `:${c} - [0:0]`);
  const services: string[] = [];
  const serviceChains: string[] = [];
  let endpointIndex = 0;
  for (let s = 0; s < level.services; s++) {
    const name = `bench-ns${s % 50}/svc-${s}:http`;
    const clusterIP = nthAddress(SERVICE_CIDR_BASE, s);
    const port = 80 + (s % 8000);
    const svc = kubeChainName("KUBE-SVC-", `${name}tcp`);
    chainDecls.push(`:${svc} - [0:0]`);
    const match = `-p tcp -m comment --comment "${name} cluster IP" -m tcp --dport ${port}`;
    services.push(`-A KUBE-SERVICES -d ${clusterIP}/32 ${match} -j ${svc}`);
    serviceChains.push(
      `-A ${svc} ! -s ${CLUSTER_CIDR} -d ${clusterIP}/32 ${match} -j KUBE-MARK-MASQ`,
    );
    const endpointRules: string[] = [];
    for (let e = 0; e < E; e++) {
      const ep = nthAddress([10, 244], endpointIndex++ % (254 * 256));
      const target = `${ep}:8080`;
      const sep = kubeChainName("KUBE-SEP-", `${name}tcp${target}`);
      chainDecls.push(`:${sep} - [0:0]`);
      const comment = `-m comment --comment "${name} -> ${target}"`;
      const statistic =
        e < E - 1 ? ` -m statistic --mode random --probability ${endpointProbability(e, E)}` : "";
      serviceChains.push(`-A ${svc} ${comment}${statistic} -j ${sep}`);
      endpointRules.push(
        `-A ${sep} -s ${ep}/32 -m comment --comment "${name}" -j KUBE-MARK-MASQ`,
        `-A ${sep} -p tcp -m comment --comment "${name}" -m tcp -j DNAT --to-destination ${target}`,
      );
    }
    serviceChains.push(...endpointRules);
  }
  const nat = [
    "*nat",
    ...chainDecls,
    ...NAT_SKELETON_RULES,
    ...services,
    NAT_LAST_RULE,
    ...serviceChains,
    "COMMIT",
  ];
  const filter = [
    "*filter",
    ...FILTER_CHAINS.map((c) => `:${c} - [0:0]`),
    ...FILTER_RULES,
    "COMMIT",
  ];
  const lines = [...nat, ...filter];
  const rules = lines.filter((l) => l.startsWith("-A ")).length;
  const chains = lines.filter((l) => l.startsWith(":")).length;
  // iptables-save also prints the built-in chains of each table (nat 4, filter 3) and a
  // header/footer comment per table.
  const saveLines = lines.length + 4 + 3 + 2 * 2;
  return { restoreInput: `${lines.join("\n")}\n`, rules, chains, saveLines };
}

const BUILTIN_CHAINS = new Set(["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]);

/**
 * The iptables-restore --noflush input that takes a restore input's rules out again: its
 * rules in built-in chains deleted (-D), its own chains flushed (-F) and then deleted (-X),
 * table by table. Anything else in those tables (another plugin's chains) stays.
 */
export function renderRemoval(restoreInput: string): string {
  const out: string[] = [];
  let chains: string[] = [];
  let deletes: string[] = [];
  for (const line of restoreInput.split("\n")) {
    if (line.startsWith("*")) {
      out.push(line);
      chains = [];
      deletes = [];
    } else if (line.startsWith(":")) {
      chains.push(line.slice(1).split(" ")[0]);
    } else if (line.startsWith("-A ")) {
      const chain = line.split(" ")[1];
      if (BUILTIN_CHAINS.has(chain)) deletes.push(`-D ${line.slice(3)}`);
    } else if (line === "COMMIT") {
      out.push(
        ...deletes,
        ...chains.map((c) => `-F ${c}`),
        ...chains.map((c) => `-X ${c}`),
        "COMMIT",
      );
    }
  }
  return out.length > 0 ? `${out.join("\n")}\n` : "";
}
