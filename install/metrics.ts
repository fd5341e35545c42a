// The installer's Prometheus metrics (prom-client, in a registry of its own).

import { Counter, Gauge, Registry } from "prom-client";

import type { AttachedPod } from "./datapath-port";

export class InstallMetrics {
  readonly registry = new Registry();
  readonly entryInPlace = new Gauge({
    name: "waggle_install_entry_in_place",
    help: "1 while waggle's entry is the last plugin of the primary CNI config",
    registers: [this.registry],
  });
  readonly programsLoaded = new Gauge({
    name: "waggle_install_programs_loaded",
    help: "1 once the shared eBPF programs are loaded and pinned",
    registers: [this.registry],
  });
  readonly configFile = new Gauge({
    name: "waggle_install_config_file_info",
    help: "1 for the CNI config file holding waggle's entry",
    labelNames: ["file"],
    registers: [this.registry],
  });
  readonly repairs = new Counter({
    name: "waggle_install_repairs_total",
    help: "Times the entry was put back after something removed or changed it",
    registers: [this.registry],
  });
  readonly lastRepair = new Gauge({
    name: "waggle_install_last_repair_timestamp_seconds",
    help: "Unix time of the last repair (0: none yet)",
    registers: [this.registry],
  });
  readonly flapping = new Gauge({
    name: "waggle_install_flapping",
    help: "1 while something keeps undoing the entry (repairs are backed off)",
    registers: [this.registry],
  });
  readonly kubeconfigWrites = new Counter({
    name: "waggle_install_kubeconfig_writes_total",
    help: "Times the plugin's kubeconfig was written (start and token rotations)",
    registers: [this.registry],
  });
  readonly earlyPodRepairs = new Counter({
    name: "waggle_install_early_pods_attached_total",
    help: "Meshed pods started before waggle was in the chain, attached in place",
    registers: [this.registry],
  });
  private readonly podCounters = new Gauge({
    name: "waggle_pod_events",
    help: "Per-pod datapath counters (connections redirected, captured, passed through, errors)",
    labelNames: ["namespace", "pod", "counter"],
    registers: [this.registry],
    collect: async () => {
      if (!this.podSource) return;
      this.podCounters.reset();
      for (const attached of await this.podSource()) {
        const namespace = attached.pod?.namespace ?? "";
        const pod = attached.pod?.name ?? attached.containerId;
        for (const [counter, value] of Object.entries(attached.counters ?? {})) {
          this.podCounters.set({ namespace, pod, counter }, value);
        }
      }
    },
  });
  private podSource?: () => Promise<AttachedPod[]>;

  constructor() {
    this.lastRepair.set(0);
  }

  /** Where per-pod counters come from (the datapath's pod listing). */
  setPodSource(source: () => Promise<AttachedPod[]>): void {
    this.podSource = source;
  }

  noteRepair(at: number): void {
    this.repairs.inc();
    this.lastRepair.set(at / 1000);
  }

  setConfigFile(file: string | undefined): void {
    this.configFile.reset();
    if (file) this.configFile.set({ file }, 1);
  }
}
