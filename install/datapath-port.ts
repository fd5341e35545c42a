// What the installer calls of the datapath: datapath/'s own functions (the shared programs,
// the attached pods, attaching an early pod, removing everything on uninstall). The installer
// takes them as a dependency, so its loop is testable without BPF (fakes may answer async).
import type { DatapathView } from "../datapath";

export type { AttachedPod } from "../datapath";

export type InstallDatapath = DatapathView<
  "requireBpffs" | "upgradePrograms" | "listPods" | "attachPod" | "netnsCookieOf" | "removeDatapath"
>;
