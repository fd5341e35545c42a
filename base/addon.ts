// Making the ebpf-napi addon loadable. In a checkout ebpf-napi finds it in ebpf-napi/build/Release.
// The single executable carries it (and libbpf, libelf, libz) as SEA assets; the loader cannot map
// a library from memory, so they are extracted to a runtime directory first (runtime-dir.ts).
import { join } from "node:path";
import { addonLocation, libbpfVersion, setAddonPath } from "ebpf-napi";
import { assetKey, buildInfo, isBundled } from "./build-info";
import { ensureRuntimeDir, runtimeDirCandidates } from "./runtime-dir";

let preparedPath: string | undefined;

/**
 * Makes sure ebpf-napi will load the right addon file and returns its path. In the single
 * executable this extracts the embedded files (once per content id and host) and points
 * ebpf-napi at them. Does not load the addon. Throws when no runtime directory is usable.
 */
export function prepareAddon(): string {
  if (preparedPath !== undefined) return preparedPath;
  if (isBundled()) {
    const info = buildInfo();
    const [addonFile] = info.addonFiles;
    if (info.runtimeId === null || addonFile === undefined) {
      throw new Error("this build of waggle carries no eBPF addon");
    }
    const sea = require("node:sea") as typeof import("node:sea");
    const { dir } = ensureRuntimeDir({
      id: info.runtimeId,
      files: info.addonFiles.map((name) => ({
        name,
        bytes: () => new Uint8Array(sea.getRawAsset(assetKey.addon(name))),
      })),
      candidates: runtimeDirCandidates(process.env, process.execPath),
      executable: addonFile,
    });
    setAddonPath(join(dir, addonFile));
  }
  preparedPath = addonLocation();
  return preparedPath;
}

/** The addon cannot be made loadable (no usable runtime directory, or none in this build). */
export class AddonUnavailableError extends Error {
  constructor(cause: Error) {
    super(`the eBPF addon cannot be used: ${cause.message}`);
    this.name = "AddonUnavailableError";
  }
}

/**
 * In the single executable, extracts the addon before ebpf-napi's first use (cheap once done:
 * a few stats); in a checkout does nothing. Throws AddonUnavailableError when it cannot.
 */
export function prepareBundledAddon(): void {
  if (!isBundled()) return;
  try {
    prepareAddon();
  } catch (err) {
    throw new AddonUnavailableError(err as Error);
  }
}

export interface LoadedAddon {
  /** The file the addon was loaded from. */
  path: string;
  /** The libbpf it runs on ("v1.1"). */
  libbpfVersion: string;
}

/** Prepares and loads the addon (dlopen of it and its libbpf). */
export function loadAddon(): LoadedAddon {
  const path = prepareAddon();
  return { path, libbpfVersion: libbpfVersion() };
}
