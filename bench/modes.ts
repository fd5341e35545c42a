// The modes the bench compares (what each one does: bench/cluster.ts, docs/benchmarks.md).

export const MODES = ["none", "explicit", "iptables", "waggle"] as const;
export type ModeName = (typeof MODES)[number];

export const MODE_DESCRIPTIONS: Record<ModeName, string> = {
  none: "no sidecars: the client app calls the server app",
  explicit:
    "sidecars without interception: the app calls its sidecar's 15001, statically routed to the peer's 15006, which calls the app (the floor)",
  iptables: "sidecars with istio-iptables' REDIRECT rules in both pods",
  waggle: "sidecars with waggle's eBPF redirection, attached by the CNI chain",
};
