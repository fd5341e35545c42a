// Lazy loader for the native addon (ebpf_napi.node) and the shape of what it exports.
// Nothing here touches the addon until the first call that needs it, so commands that never use
// BPF (e.g. `waggle version`) never load libbpf.
import { constants } from "node:os";
import { join } from "node:path";
import { BpfError } from "./errors";
import type {
  CgroupAttachType,
  LinkInfo,
  MapInfo,
  MapType,
  ProgramInfo,
  ProgType,
  SockmapAttachType,
  TracingAttachType,
} from "./types";

/** A bpf_object handle living in the addon (see object.ts for the documented wrapper). */
export interface NativeObject {
  setMapMaxEntries(map: string, maxEntries: number): void;
  setAutoload(program: string, autoload: boolean): void;
  load(): void;
  programNames(): string[];
  mapNames(): string[];
  /** A new fd (dup) for the loaded program; the caller owns it. */
  programFd(name: string): number;
  /** A new fd (dup) for the loaded map; the caller owns it. */
  mapFd(name: string): number;
  close(): void;
}

export interface TcTarget {
  netns: string | null;
  ifname: string;
  direction: "ingress" | "egress";
  priority: number;
  handle: number;
}

/** Functions exported by ebpf_napi.node. Fds are plain numbers owned by the TS wrappers. */
export interface Native {
  /** Hands the addon the BpfError factory it throws through. */
  init(
    makeError: (
      op: string,
      errno: number,
      description: string,
      detail: string,
      log: string,
    ) => BpfError,
  ): void;
  libbpfVersion(): string;
  possibleCpus(): number;
  closeFd(fd: number): void;

  objectOpen(elf: Buffer, name: string | null, pinMaps: Record<string, string>): NativeObject;

  pin(fd: number, path: string): void;
  unpin(path: string): void;
  openPinned(path: string): number;
  progFdById(id: number): number;
  mapFdById(id: number): number;
  linkFdById(id: number): number;
  progInfo(fd: number): ProgramInfo;
  mapInfo(fd: number): MapInfo;
  linkInfo(fd: number): LinkInfo;

  mapCreate(
    type: MapType,
    name: string | null,
    keySize: number,
    valueSize: number,
    maxEntries: number,
    flags: number,
  ): number;
  mapLookup(fd: number, key: Buffer, keySize: number, valueLength: number): Buffer | null;
  mapUpdate(
    fd: number,
    key: Buffer,
    keySize: number,
    value: Buffer,
    valueLength: number,
    flags: number,
  ): void;
  mapDelete(fd: number, key: Buffer, keySize: number): boolean;
  mapsUpdatePinned(entries: readonly { pin: string; key: Buffer; value: Buffer }[]): void;
  mapNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | null;

  cgroupLinkCreate(progFd: number, cgroupDir: string, attachType: CgroupAttachType): number;
  cgroupQuery(cgroupDir: string, attachType: CgroupAttachType, effective: boolean): number[];
  sockmapLinkCreate(progFd: number, mapFd: number, attachType: SockmapAttachType): number;
  tracingLinkCreate(progFd: number, attachType: TracingAttachType): number;
  linkUpdate(linkFd: number, progFd: number, expectedProgFd: number): void;
  linkDetach(linkFd: number): void;

  tcAttach(
    target: TcTarget,
    progFd: number,
    replace: boolean,
  ): { priority: number; handle: number; progId: number };
  tcQuery(target: TcTarget): number | null;
  tcDetach(target: TcTarget): void;
  tcHookDestroy(netns: string | null, ifname: string): void;

  netnsCookie(netnsPath: string): bigint;
  cgroupId(cgroupDir: string): bigint;

  probeProgType(type: ProgType): boolean;
  probeMapType(type: MapType): boolean;
  probeHelper(progType: ProgType, helper: string): boolean;
  probeAttachType(attachType: CgroupAttachType): boolean;

  kernelBtfLoads(): { mapped: number; searched: number };
  mapKernelBtf(path: string): number;
  searchKernelBtf(): number;
  setKernelBtfPath(path: string | null): void;
}

// out/ebpf-napi/lib/native.js -> <repo>/ebpf-napi/build/Release/ebpf_napi.node
let addonPath = join(
  __dirname,
  "..",
  "..",
  "..",
  "ebpf-napi",
  "build",
  "Release",
  "ebpf_napi.node",
);
let loaded: Native | undefined;

/**
 * Where to load ebpf_napi.node from. The single binary extracts the addon (with its libbpf,
 * libelf and libz next to it) and calls this before first use. Throws once the addon is loaded.
 */
export function setAddonPath(path: string): void {
  if (loaded !== undefined && path !== addonPath) {
    throw new Error(`ebpf-napi: addon already loaded from ${addonPath}`);
  }
  addonPath = path;
}

/** The path the addon is (or will be) loaded from. */
export function addonLocation(): string {
  return addonPath;
}

/** The native module, loaded on first use. */
export function native(): Native {
  if (loaded === undefined) {
    const mod = { exports: {} as Native };
    process.dlopen(mod, addonPath, constants.dlopen.RTLD_NOW);
    mod.exports.init(
      (op, errno, description, detail, log) => new BpfError(op, errno, description, detail, log),
    );
    loaded = mod.exports;
  }
  return loaded;
}
