// The CNI plugin skeleton: spec details shared by every command. See skel.ts for the entry.

export { type Cidr, normalizeCidr, parseCidr, parseIp } from "../../base/ip";
export { decodeJsonObject, type NetConf, parseNetConf } from "./conf";
export {
  type CniCommand,
  type CniEnv,
  hasCniVariables,
  parseCniArgs,
  parseCniEnv,
} from "./env";
export { CniError, type ErrorCode, ErrorCodes, errorCodeName } from "./errors";
export {
  type CniResult,
  convertResult,
  parseResult,
  type ResultInterface,
  type ResultIp,
  type ResultRoute,
} from "./result";
export {
  type CniOutcome,
  type CniPlugin,
  type CniRequest,
  failureOutcome,
  type GcAttachment,
  type GcRequest,
  passThrough,
  runSkel,
  type SkelOptions,
} from "./skel";
export {
  compareVersions,
  isSupportedVersion,
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  type SupportedVersion,
  versionAtLeast,
} from "./versions";
