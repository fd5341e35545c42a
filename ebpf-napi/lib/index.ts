// ebpf-napi: waggle's typed API over libbpf (N-API addon ebpf_napi.node, loaded lazily).
//
//   BpfObject.open(elf, { name, pinMaps }) .setMapMaxEntries .setAutoload .load
//     .programNames .mapNames .program(name) -> Program .map(name) -> BpfMap .close
//   Program  .fd .name .info() .pin(path) .close()       Program.openPinned / fromId
//   BpfMap   .info .perCpu .valueLength .lookup .update .delete .keys() .entries() .pin .close
//            BpfMap.openPinned / fromId / create; updatePinnedMaps([{ pin, key, value }])
//   Link     .info() .pin .update(prog, { expected }) .detach() .close()  Link.openPinned / fromId
//   attachCgroup(prog, cgroupDir, attachType) -> Link; cgroupQuery(cgroupDir, attachType)
//   attachSockmap(prog, map, attachType) -> Link (sockmap/sockhash programs, Linux 6.10+)
//   attachTracing(prog, attachType) -> Link (fentry/fexit/tp_btf programs; not updatable)
//   unpin(path)
//   tcAttach / tcQuery / tcDetach / tcDestroyHook   (netns by path, native thread)
//   netnsCookie(netnsPath), cgroupId(cgroupDir)
//   attachNetns(prog, netnsPath) -> Link; netnsLinkInfo(link); netnsQuery; testRun(prog, data, { netns })
//   pinCgroupLinks([{ progPin, cgroupDir, attachType, linkPin }]) -> per item pinned/failed/skipped
//   netnsSnapshot(netnsPath) -> { cookie, interfaces } (one trip into the netns)
//   netnsInterfaces(netnsPath), netnsReplaceAddress(netnsPath, ifname, address, prefixLength)
//   NetnsWatcher (rtnetlink change notifications of other netns), lockPath(path) (flock)
//   probeProgType / probeMapType / probeHelper / probeAttachType, possibleCpus, libbpfVersion
//   kernelBtfLoads() (how libbpf got the kernel's BTF: mapped or searched), mapKernelBtf,
//   searchKernelBtf, setKernelBtfPath (tests)
//   setAddonPath(path) before first use; BpfError { op, errno, code, log? }

export {
  type CgroupLinkPin,
  type CgroupLinkPinResult,
  pinCgroupLinks,
} from "./cgroup-links";
export { BpfError } from "./errors";
export { FdHandle, unpin } from "./fd";
export { cgroupId, netnsCookie } from "./ids";
export {
  type KernelBtfLoads,
  kernelBtfLoads,
  mapKernelBtf,
  searchKernelBtf,
  setKernelBtfPath,
} from "./kernel-btf";
export { attachCgroup, attachSockmap, cgroupQuery, Link } from "./link";
export {
  BpfMap,
  type MapCreateOptions,
  type PinnedMapEntry,
  possibleCpus,
  type UpdateMode,
  updatePinnedMaps,
} from "./map";
export { addonLocation, setAddonPath } from "./native";
export {
  ADDRESS_SCOPE,
  attachNetns,
  type NetnsAddress,
  type NetnsAttachType,
  type NetnsInterface,
  type NetnsLinkInfo,
  type NetnsSnapshot,
  netnsInterfaces,
  netnsLinkInfo,
  netnsQuery,
  netnsReplaceAddress,
  netnsSnapshot,
  type TestRunResult,
  testRun,
} from "./netns";
export { lockPath, NetnsWatcher } from "./netns-watch";
export { BpfObject, type OpenOptions } from "./object";
export { libbpfVersion, probeAttachType, probeHelper, probeMapType, probeProgType } from "./probe";
export { Program } from "./program";
export {
  type TcAttachOptions,
  type TcDirection,
  type TcFilter,
  type TcFilterId,
  type TcInterface,
  tcAttach,
  tcDestroyHook,
  tcDetach,
  tcQuery,
} from "./tc";
export { attachTracing } from "./tracing";
export type {
  CgroupAttachType,
  LinkInfo,
  MapInfo,
  MapType,
  ProgramInfo,
  ProgType,
  SockmapAttachType,
  TracingAttachType,
} from "./types";
