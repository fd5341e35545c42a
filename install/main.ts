// `waggle install`: the install container's main loop, and `waggle uninstall`.
//
// install: serve health; copy the binary; write the kubeconfig; load and pin the shared
// programs (swapping them into running pods' links on upgrade); put the entry in the primary
// CNI config; once it is in place, attach meshed pods that started before it (repair.ts);
// keep the entry and the kubeconfig in place until SIGTERM, and leave everything in place on
// exit (an upgrade's new pod takes over without a moment in which new pods start unmeshed).
//
// uninstall: the entry (other plugins' entries exactly as they were), the binary, the
// kubeconfig, and through the datapath every pod's links, filters and the pins.

import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { cgroup2Root } from "../base/cgroup2";
import type { CliArgs, CliIo } from "../base/cli-io";
import { closeLogger, createLogger, type Logger, type LogLevel } from "../base/log";
import { removeFile } from "./atomic-file";
import { BinaryKeeper, pluginBinaryPath, runningWaggleBinary } from "./binary-copy";
import { type RemovedFrom, removeEntries } from "./conf-dir";
import type { InstallDatapath } from "./datapath-port";
import { EntryKeeper } from "./entry-keeper";
import { type HealthServer, startHealthServer } from "./health";
import { KubeconfigKeeper, readCredentials, writeKubeconfig } from "./kubeconfig";
import { InstallMetrics } from "./metrics";
import {
  type InstallOptions,
  OptionError,
  resolveInstallOptions,
  resolveUninstallOptions,
  type UninstallOptions,
} from "./options";
import { pluginEntry } from "./plugin-entry";
import { PodFollower, type PodFollowerOptions, type PodFollowPort } from "./pod-follower";
import { EarlyPodRepairer, listNodePods } from "./repair";
import type { DirWatcherOptions } from "./watch";

/** Logged at start when --netns-dir does not exist (the runtime's directory is not mounted). */
export const NETNS_DIR_MISSING =
  "the runtime's netns directory is not mounted: early-pod repair records pods by /proc/<pid>/ns/net, good only while that process lives (conf/README.md)";

/** Per-request timeout of the node's pod listing. */
const LIST_TIMEOUT_MS = 5000;

export interface InstallerDeps {
  log: Logger;
  datapath: InstallDatapath;
  /** Following pods' interfaces after ADD (pod-follower.ts); absent: not followed. */
  follow?: PodFollowPort;
  followTiming?: Pick<PodFollowerOptions, "scanMs" | "resyncMs">;
  /** Watcher timings (tests shorten them). */
  timing?: Pick<DirWatcherOptions, "debounceMs" | "maxDelayMs" | "resyncMs" | "retryMs">;
  settleMs?: number;
}

export class Installer {
  readonly metrics = new InstallMetrics();
  private health?: HealthServer;
  private entry?: EntryKeeper;
  private kubeconfig?: KubeconfigKeeper;
  private programsLoaded = false;
  private repairer?: EarlyPodRepairer;
  private follower?: PodFollower;
  private binaryKeeper?: BinaryKeeper;
  private stopping = false;
  private starting?: Promise<void>;

  constructor(
    readonly options: InstallOptions,
    private readonly deps: InstallerDeps,
  ) {}

  /** The port the health server listens on (once started). */
  get healthPort(): number | undefined {
    return this.health?.port;
  }

  get entryInPlace(): boolean {
    return this.entry?.inPlace ?? false;
  }

  /** Starts everything; a stop() meanwhile makes it return early. */
  start(): Promise<void> {
    this.starting ??= this.startSteps();
    return this.starting;
  }

  private async startSteps(): Promise<void> {
    const { options, deps, metrics } = this;
    const log = deps.log;
    this.health = await startHealthServer({
      port: options.healthPort,
      address: options.healthAddress,
      metrics,
      log,
      checks: {
        entryInPlace: () => this.entryInPlace,
        programsLoaded: () => this.programsLoaded,
      },
      warnings: {
        // only where early pods are repaired (the directory is read for them alone)
        netnsDir: () =>
          options.nodeName && !existsSync(options.netnsDir)
            ? `${NETNS_DIR_MISSING}: ${options.netnsDir}`
            : null,
      },
    });

    const binary = options.binary ?? runningWaggleBinary();
    if (!binary) {
      throw new OptionError(
        "--binary (WAGGLE_BINARY) is required when not running as the waggle single executable",
      );
    }
    const kubeconfigPath = join(options.cniNetDir, options.kubeconfigName);
    const source = {
      tokenFile: options.tokenFile,
      caFile: options.caFile,
      serviceHost: options.kubernetesServiceHost,
      servicePort: options.kubernetesServicePort,
    };
    // Inputs first: a missing token or CA, or a bpf root that is no bpffs, fails here, before
    // anything on the host changes.
    await readCredentials(source);
    await deps.datapath.requireBpffs(options.bpfRoot);

    if (this.stopping) return;
    this.binaryKeeper = new BinaryKeeper({
      source: binary,
      binDir: options.cniBinDir,
      log,
      timing: deps.timing,
    });
    const copied = await this.binaryKeeper.install();
    log.info(copied === "installed" ? "binary installed" : "binary already current", {
      path: pluginBinaryPath(options.cniBinDir),
    });
    await this.binaryKeeper.start();

    // The first write must succeed (a clear exit beats a plugin that can't reach the API);
    // later token rotations are retried by the keeper.
    if (this.stopping) return;
    await mkdir(options.cniNetDir, { recursive: true, mode: 0o755 });
    if (await writeKubeconfig(kubeconfigPath, source)) {
      metrics.kubeconfigWrites.inc();
      log.info("kubeconfig written", { path: kubeconfigPath });
    }
    this.kubeconfig = new KubeconfigKeeper({
      path: kubeconfigPath,
      source,
      log,
      metrics,
      timing: deps.timing,
    });
    await this.kubeconfig.start();

    if (this.stopping) return;
    const report = await deps.datapath.upgradePrograms({ bpfRoot: options.bpfRoot });
    this.programsLoaded = true;
    metrics.programsLoaded.set(1);
    metrics.setPodSource(async () => deps.datapath.listPods({ bpfRoot: options.bpfRoot }));
    log.info("shared programs loaded", { bpfRoot: options.bpfRoot, ...report });

    // Interfaces, addresses and routes that change in meshed pods after their ADD (a Multus
    // network, say): every pod is refreshed now (covering changes made while we were down)
    // and whenever its netns reports a change.
    if (this.stopping) return;
    if (deps.follow) {
      this.follower = new PodFollower({
        bpfRoot: options.bpfRoot,
        port: deps.follow,
        log,
        ...deps.followTiming,
      });
      this.follower.start();
    }

    if (this.stopping) return;
    if (options.nodeName) {
      const nodeName = options.nodeName;
      if (!existsSync(options.netnsDir)) {
        log.warn(NETNS_DIR_MISSING, { netnsDir: options.netnsDir });
      }
      this.repairer = new EarlyPodRepairer({
        bpfRoot: options.bpfRoot,
        excludeNamespaces: options.plugin.excludeNamespaces,
        cgroupRoot: options.cgroupRoot ?? cgroup2Root(),
        procRoot: options.procRoot,
        netnsDir: options.netnsDir,
        datapath: deps.datapath,
        log,
        metrics,
        listNodePods: () => listNodePods(kubeconfigPath, nodeName, LIST_TIMEOUT_MS),
      });
    } else {
      log.warn(
        "--node-name (WAGGLE_NODE_NAME) not set: pods started before waggle are not repaired",
      );
    }
    const repairer = this.repairer;
    this.entry = new EntryKeeper({
      onInPlace: () => repairer?.trigger(),
      netDir: options.cniNetDir,
      entry: pluginEntry(options),
      confName: options.confName,
      log,
      metrics,
      settleMs: deps.settleMs,
      flap: { count: options.repairWarn.count, windowMs: options.repairWarn.windowSeconds * 1000 },
      timing: deps.timing,
    });
    await this.entry.start();
  }

  /** Stops watching and serving; the entry, binary, kubeconfig and pins stay in place. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.starting?.catch(() => {});
    await this.entry?.stop();
    this.follower?.stop();
    await this.repairer?.stop();
    await this.kubeconfig?.stop();
    await this.binaryKeeper?.stop();
    await this.health?.close();
  }

  /** Resolves when no watcher pass is running or imminent (tests). */
  async settled(): Promise<void> {
    await this.entry?.settled();
    await this.repairer?.settled();
    await this.binaryKeeper?.settled();
    await this.kubeconfig?.settled();
  }
}

export interface UninstallReport {
  configs: RemovedFrom[];
  binaryRemoved: boolean;
  kubeconfigRemoved: boolean;
  /** Pods detached. */
  pods: number;
}

/** Removes everything install put in place. Idempotent. */
export async function uninstall(
  options: UninstallOptions,
  deps: Pick<InstallerDeps, "log" | "datapath">,
): Promise<UninstallReport> {
  const { log } = deps;
  // The entry first: from then on no new pod is handed to the plugin.
  const configs = await removeEntries(options.cniNetDir);
  for (const c of configs) log.info("config restored", { ...c });
  const binaryRemoved = await removeFile(pluginBinaryPath(options.cniBinDir));
  const kubeconfigRemoved = await removeFile(join(options.cniNetDir, options.kubeconfigName));
  const { pods } = await deps.datapath.removeDatapath({ bpfRoot: options.bpfRoot });
  const report: UninstallReport = { configs, binaryRemoved, kubeconfigRemoved, pods };
  log.info("uninstalled", { ...report });
  return report;
}

/** The real datapath, loaded (with the addon) only when a command runs. */
function boundDatapath(): InstallDatapath {
  return require("../datapath") as typeof import("../datapath");
}

/** The real pod follower's port over the datapath, loaded like boundDatapath. */
export function boundFollowPort(): PodFollowPort {
  const datapath = require("../datapath") as typeof import("../datapath");
  const { NetnsWatcher } = require("ebpf-napi") as typeof import("ebpf-napi");
  return {
    podsDir: (bpfRoot) => datapath.paths.pods(bpfRoot),
    podIds: (bpfRoot) => datapath.attachedContainerIds({ bpfRoot }),
    podNetns: (bpfRoot, containerId) =>
      datapath.readRecord(bpfRoot, containerId)?.netnsPath ?? null,
    refreshPod: (bpfRoot, containerId) => datapath.refreshPod(containerId, { bpfRoot }),
    watcher: (onChange) => new NetnsWatcher(onChange),
  };
}

const USAGE_EXIT_CODE = 2;

/**
 * Runs a command body with its resolved options and a stderr logger: a bad setting is a
 * usage error (exit 2, the message names flag and variable), a thrown error exit 1.
 */
async function command<O extends { logLevel: LogLevel }>(
  component: string,
  resolve: () => O,
  io: CliIo,
  body: (options: O, log: Logger) => Promise<number>,
): Promise<number> {
  let options: O;
  try {
    options = resolve();
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    io.err(`waggle: ${err.message}\n`);
    return USAGE_EXIT_CODE;
  }
  const log = createLogger({ level: options.logLevel, stderr: true, defaultMeta: { component } });
  try {
    return await body(options, log);
  } catch (err) {
    log.error(`${component} failed`, { error: (err as Error).message });
    if (err instanceof OptionError) io.err(`waggle: ${err.message}\n`);
    return err instanceof OptionError ? USAGE_EXIT_CODE : 1;
  } finally {
    await closeLogger(log);
  }
}

/** `waggle install`: runs until SIGTERM/SIGINT, then exits 0 leaving everything in place. */
export function runInstallCommand(args: CliArgs, io: CliIo): Promise<number> {
  return command(
    "install",
    () => resolveInstallOptions(args, process.env),
    io,
    async (options, log) => {
      const installer = new Installer(options, {
        log,
        datapath: boundDatapath(),
        follow: boundFollowPort(),
      });
      const stopRequested = new Promise<string>((resolve) => {
        for (const signal of ["SIGTERM", "SIGINT"] as const)
          process.once(signal, () => resolve(signal));
      });
      try {
        await Promise.race([installer.start(), stopRequested]);
        const signal = await stopRequested;
        log.info("stopping; entry, binary, kubeconfig and pins stay in place", { signal });
      } finally {
        await installer.stop();
      }
      return 0;
    },
  );
}

/** `waggle uninstall`. */
export function runUninstallCommand(args: CliArgs, io: CliIo): Promise<number> {
  return command(
    "uninstall",
    () => resolveUninstallOptions(args, process.env),
    io,
    async (options, log) => {
      await uninstall(options, { log, datapath: boundDatapath() });
      return 0;
    },
  );
}
