// The CNI network configuration, as text: which files a runtime would load (libcni's rules),
// and waggle's entry in the primary list: inserted last, exactly once, removed again without
// a trace. Every edit is a splice of the original text, so what other components wrote
// (key order, spacing, unknown keys, number spelling) stays byte for byte.
//
// Pure functions only; conf-dir.ts does the file system side.

import { PLUGIN_TYPE } from "../mesh/config";
import {
  indentJson,
  type JsonNode,
  memberOf,
  nodeValue,
  parseJsonText,
  unindentJson,
} from "./json-text";

/**
 * Top-level key of a list waggle made out of a single-plugin `.conf`/`.json` file: where the
 * original came from, so uninstall can put it back byte for byte. Runtimes ignore unknown
 * top-level keys of a list.
 */
export const CONVERTED_FROM_KEY = "waggleConvertedFrom";

/** Indentation of the plugins of a list converted from a `.conf`. */
const CONVERTED_ELEMENT_INDENT = "    ";

export type ConfFormat = "conflist" | "conf";

/** The extensions runtimes load, as containerd passes them to libcni.ConfFiles. */
export const CONF_EXTENSIONS: readonly string[] = [".conf", ".conflist", ".json"];

/** Go's filepath.Ext: from the last dot of the base name ("" when there is none). */
export function goExt(fileName: string): string {
  const dot = fileName.lastIndexOf(".");
  return dot < 0 ? "" : fileName.slice(dot);
}

/** The format libcni reads a file as, or null when runtimes ignore the file. */
export function confFormatOf(fileName: string): ConfFormat | null {
  const ext = goExt(fileName);
  if (ext === ".conflist") return "conflist";
  if (ext === ".conf" || ext === ".json") return "conf";
  return null;
}

/** Go's sort.Strings order: byte-wise over UTF-8. */
export function compareConfNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

export type ConfigCheck =
  | {
      valid: true;
      format: ConfFormat;
      /** The network name: the list's `name` (libcni appends plugins from `<dir>/<name>/`). */
      networkName: string;
      inlinePlugins: number;
      /** A list that libcni completes with `<dir>/<networkName>/*.conf` plugin files. */
      loadsPluginDir: boolean;
    }
  | { valid: false; reason: string };

/**
 * Whether libcni would load this file, and how. The rules follow libcni (conf.go,
 * NetworkConfFromBytes / NetworkPluginConfFromBytes / ConfListFromConf); the caller still
 * has to count plugins from the network's plugin directory when loadsPluginDir is set.
 */
export function checkConfig(fileName: string, text: string): ConfigCheck {
  const format = confFormatOf(fileName);
  if (format === null) return { valid: false, reason: "not a CNI config file name" };
  let root: JsonNode;
  let value: unknown;
  try {
    ({ root, value } = parseJsonText(text));
  } catch (err) {
    return { valid: false, reason: `not JSON: ${(err as Error).message}` };
  }
  if (!isObject(value) || root.kind !== "object") {
    return { valid: false, reason: "not a JSON object" };
  }
  if (format === "conf") {
    // A struct decode of the file itself: document order, Go's case-insensitive fields.
    const fields = root.members.map((m): [string, unknown] => [m.key, nodeValue(text, m.value)]);
    const problem = pluginProblem(fields);
    if (problem) return { valid: false, reason: problem };
    const name = structField(fields, "name");
    return {
      valid: true,
      format,
      networkName: typeof name === "string" ? name : "",
      inlinePlugins: 1,
      loadsPluginDir: false,
    };
  }
  return checkList(value);
}

function checkList(list: Record<string, unknown>): ConfigCheck {
  const invalid = (reason: string): ConfigCheck => ({ valid: false, reason });
  if (!("name" in list)) return invalid("list has no name");
  if (typeof list.name !== "string") return invalid("list name is not a string");
  if ("cniVersion" in list && typeof list.cniVersion !== "string") {
    return invalid("cniVersion is not a string");
  }
  if ("cniVersions" in list) {
    const versions = list.cniVersions;
    if (!Array.isArray(versions)) return invalid("cniVersions is not an array");
    for (const v of versions) {
      if (typeof v !== "string" || !isCniVersion(v)) return invalid(`bad cniVersions entry ${v}`);
    }
    if (typeof list.cniVersion === "string" && !isCniVersion(list.cniVersion)) {
      return invalid(`bad cniVersion ${list.cniVersion}`);
    }
  }
  let loadOnlyInlined = false;
  for (const key of ["disableCheck", "disableGC", "loadOnlyInlinedPlugins"]) {
    if (!(key in list)) continue;
    const flag = goBool(list[key]);
    if (flag === null) return invalid(`${key} is neither a boolean nor "true"/"false"`);
    if (key === "loadOnlyInlinedPlugins") loadOnlyInlined = flag;
  }
  if (!("plugins" in list)) {
    if (loadOnlyInlined)
      return invalid("loadOnlyInlinedPlugins is true and there is no plugins key");
    return {
      valid: true,
      format: "conflist",
      networkName: list.name,
      inlinePlugins: 0,
      loadsPluginDir: true,
    };
  }
  const plugins = list.plugins;
  if (!Array.isArray(plugins)) return invalid("plugins is not an array");
  if (plugins.length === 0) return invalid("no plugins in list");
  for (const [i, plugin] of plugins.entries()) {
    // libcni re-marshals each plugin (Go sorts map keys) and decodes it into a struct.
    if (!isObject(plugin)) return invalid(`plugin ${i} is not an object`);
    const fields = Object.keys(plugin)
      .sort(compareConfNames)
      .map((k): [string, unknown] => [k, plugin[k]]);
    const problem = pluginProblem(fields);
    if (problem) return invalid(`plugin ${i}: ${problem}`);
  }
  return {
    valid: true,
    format: "conflist",
    networkName: list.name,
    inlinePlugins: plugins.length,
    loadsPluginDir: !loadOnlyInlined,
  };
}

/**
 * Why Go's json.Unmarshal into libcni's types.PluginConf would fail or leave `type` empty,
 * or null when it succeeds. `fields` in decode order; Go matches field names ignoring case
 * and the last match wins.
 */
export function pluginProblem(fields: Array<[string, unknown]>): string | null {
  const field = (name: string) => structField(fields, name);
  for (const name of ["cniVersion", "name", "type"]) {
    const v = field(name);
    if (v !== undefined && v !== null && typeof v !== "string") return `${name} is not a string`;
  }
  const capabilities = field("capabilities");
  if (capabilities !== undefined && capabilities !== null) {
    if (!isObject(capabilities)) return "capabilities is not an object";
    for (const [k, v] of Object.entries(capabilities)) {
      if (v !== null && typeof v !== "boolean") return `capability ${k} is not a boolean`;
    }
  }
  const ipam = field("ipam");
  if (ipam !== undefined && ipam !== null) {
    if (!isObject(ipam)) return "ipam is not an object";
    const ipamType = structField(Object.entries(ipam), "type");
    if (ipamType !== undefined && ipamType !== null && typeof ipamType !== "string") {
      return "ipam type is not a string";
    }
  }
  const dns = field("dns");
  if (dns !== undefined && dns !== null) {
    if (!isObject(dns)) return "dns is not an object";
    const dnsFields = Object.entries(dns);
    const domain = structField(dnsFields, "domain");
    if (domain !== undefined && domain !== null && typeof domain !== "string") {
      return "dns domain is not a string";
    }
    for (const name of ["nameservers", "search", "options"]) {
      const list = structField(dnsFields, name);
      if (list === undefined || list === null) continue;
      if (!Array.isArray(list) || list.some((s) => s !== null && typeof s !== "string")) {
        return `dns ${name} is not a list of strings`;
      }
    }
  }
  const prevResult = field("prevResult");
  if (prevResult !== undefined && prevResult !== null && !isObject(prevResult)) {
    return "prevResult is not an object";
  }
  const type = field("type");
  if (typeof type !== "string" || type === "") return "missing 'type'";
  return null;
}

/** Go's struct field match: case-insensitive, the last matching key wins. */
function structField(fields: Array<[string, unknown]>, name: string): unknown {
  const lower = name.toLowerCase();
  let found: unknown;
  for (const [k, v] of fields) {
    if (k.toLowerCase() === lower) found = v;
  }
  return found;
}

function goBool(v: unknown): boolean | null {
  if (typeof v === "boolean") return v;
  if (typeof v !== "string") return null;
  const s = v.toLowerCase();
  return s === "true" ? true : s === "false" ? false : null;
}

/** CNI's version.ParseVersion: "" or up to three dot-separated integers. */
function isCniVersion(v: string): boolean {
  if (v === "") return true;
  const parts = v.split(".");
  return parts.length <= 3 && parts.every((p) => /^[+-]?\d+$/.test(p));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------- waggle's entry in a list

export type EntryState = "current" | "outdated" | "absent";

interface ListLayout {
  root: JsonNode & { kind: "object" };
  plugins: JsonNode & { kind: "array" };
  /** Indices of waggle entries in plugins.elements. */
  ours: number[];
}

function listLayout(text: string): ListLayout {
  const { root } = parseJsonText(text);
  if (root.kind !== "object") throw new Error("CNI config list is not a JSON object");
  const pluginsMember = memberOf(root, "plugins");
  if (pluginsMember?.value.kind !== "array") {
    throw new Error("CNI config list has no plugins array");
  }
  const plugins = pluginsMember.value;
  const ours: number[] = [];
  plugins.elements.forEach((element, i) => {
    if (isWaggleEntry(nodeValue(text, element))) ours.push(i);
  });
  return { root, plugins, ours };
}

/** True for a plugin object whose type is waggle's. */
export function isWaggleEntry(plugin: unknown): boolean {
  return isObject(plugin) && plugin.type === PLUGIN_TYPE;
}

/** "current": exactly one waggle entry, the last one, equal to `entry`. */
export function entryState(text: string, entry: Record<string, unknown>): EntryState {
  const { plugins, ours } = listLayout(text);
  if (ours.length === 0) return "absent";
  const last = plugins.elements.length - 1;
  if (ours.length === 1 && ours[0] === last) {
    const present = nodeValue(text, plugins.elements[last] as JsonNode);
    if (canonicalJson(present) === canonicalJson(entry)) return "current";
  }
  return "outdated";
}

/**
 * The list text with exactly one waggle entry, last, equal to `entry`. Returns `text` itself
 * when it already is so. Outdated or misplaced waggle entries are removed first.
 */
export function withEntry(text: string, entry: Record<string, unknown>): string {
  if (entryState(text, entry) === "current") return text;
  const cleaned = withoutEntry(text);
  const { plugins } = listLayout(cleaned);
  const elements = plugins.elements;
  const last = elements[elements.length - 1];
  if (!last) {
    // An empty plugins array: not a list a runtime would load, but keep it well-formed.
    const at = plugins.start + 1;
    return `${cleaned.slice(0, at)}${formatJson(entry, null)}${cleaned.slice(at)}`;
  }
  // Separate and indent like the list's own last element.
  const before = elements[elements.length - 2];
  const sepStart = before ? cleaned.indexOf(",", before.end) + 1 : plugins.start + 1;
  const separator = cleaned.slice(sepStart, last.start);
  const lastText = cleaned.slice(last.start, last.end);
  let entryText: string;
  if (separator.includes("\n") && lastText.includes("\n")) {
    const elementIndent = separator.slice(separator.lastIndexOf("\n") + 1);
    entryText = indentJson(formatJson(entry, innerIndentUnit(lastText)), elementIndent);
  } else {
    entryText = formatJson(entry, null);
  }
  return `${cleaned.slice(0, last.end)},${separator}${entryText}${cleaned.slice(last.end)}`;
}

/** The list text without any waggle entry; `text` itself when there is none. */
export function withoutEntry(text: string): string {
  let out = text;
  for (;;) {
    const { plugins, ours } = listLayout(out);
    const i = ours[ours.length - 1];
    if (i === undefined) return out;
    const elements = plugins.elements;
    const element = elements[i] as JsonNode;
    const previous = elements[i - 1];
    const next = elements[i + 1];
    if (previous) {
      // Drop ",<space>entry": exactly what withEntry() added after the previous element.
      out = out.slice(0, previous.end) + out.slice(element.end);
    } else if (next) {
      out = out.slice(0, element.start) + out.slice(next.start);
    } else {
      out = out.slice(0, element.start) + out.slice(element.end);
    }
  }
}

/** The indentation step inside a multi-line JSON value ("  " when it can't be told). */
function innerIndentUnit(valueText: string): string {
  const lines = valueText.split("\n");
  const closing = lines[lines.length - 1] ?? "";
  const base = /^[ \t]*/.exec(closing)?.[0] ?? "";
  for (const line of lines.slice(1)) {
    const indent = /^[ \t]*/.exec(line)?.[0] ?? "";
    if (line.trim() !== "" && indent.length > base.length && indent.startsWith(base)) {
      return indent.slice(base.length);
    }
  }
  return "  ";
}

/** JSON text of `value`: multi-line with `unit` indentation, or one line `{"a": 1, "b": 2}`. */
export function formatJson(value: unknown, unit: string | null): string {
  if (unit !== null) return JSON.stringify(value, null, unit);
  if (Array.isArray(value)) return `[${value.map((v) => formatJson(v, null)).join(", ")}]`;
  if (isObject(value)) {
    const members = Object.entries(value).map(
      ([k, v]) => `${JSON.stringify(k)}: ${formatJson(v, null)}`,
    );
    return `{${members.join(", ")}}`;
  }
  return JSON.stringify(value);
}

/** Key-order-independent JSON text, for comparing meanings. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

// --------------------------------------------------------- single-plugin files (.conf/.json)

export interface ConfFileText {
  fileName: string;
  text: string;
}

interface ConvertedFrom {
  file: string;
  /** Whitespace around the original object, so it comes back byte for byte. */
  before: string;
  after: string;
}

/** The `.conflist` name a `.conf`/`.json` file becomes ("10-x.conf" -> "10-x.conflist"). */
export function conflistNameFor(confFileName: string): string {
  return `${confFileName.slice(0, confFileName.length - goExt(confFileName).length)}.conflist`;
}

/**
 * The list a runtime would build from a valid single-plugin file (libcni ConfListFromConf:
 * the list's name and cniVersion are the plugin's), with waggle's entry appended and a
 * record of the original for conflistToConf().
 */
export function confToConflist(conf: ConfFileText, entry: Record<string, unknown>): ConfFileText {
  const check = checkConfig(conf.fileName, conf.text);
  if (!check.valid || check.format !== "conf") {
    throw new Error(`${conf.fileName} is not a valid single-plugin CNI config`);
  }
  const { root } = parseJsonText(conf.text);
  const pluginValue = conf.text.slice(root.start, root.end);
  const fields = (root as JsonNode & { kind: "object" }).members.map((m): [string, unknown] => [
    m.key,
    nodeValue(conf.text, m.value),
  ]);
  const version = structField(fields, "cniVersion");
  const from: ConvertedFrom = {
    file: conf.fileName,
    before: conf.text.slice(0, root.start),
    after: conf.text.slice(root.end),
  };
  const inner = CONVERTED_ELEMENT_INDENT.slice(2);
  const list =
    "{\n" +
    `${inner}"cniVersion": ${JSON.stringify(typeof version === "string" ? version : "")},\n` +
    `${inner}"name": ${JSON.stringify(check.networkName)},\n` +
    `${inner}"plugins": [\n` +
    `${CONVERTED_ELEMENT_INDENT}${indentJson(pluginValue, CONVERTED_ELEMENT_INDENT)}\n` +
    `${inner}],\n` +
    `${inner}${JSON.stringify(CONVERTED_FROM_KEY)}: ${formatJson(from, null)}\n` +
    "}\n";
  return { fileName: conflistNameFor(conf.fileName), text: withEntry(list, entry) };
}

/** For a list made by confToConflist(): the original single-plugin file. Else null. */
export function conflistToConf(text: string): ConfFileText | null {
  let root: JsonNode;
  let value: unknown;
  try {
    ({ root, value } = parseJsonText(text));
  } catch {
    return null;
  }
  if (!isObject(value)) return null;
  const from = value[CONVERTED_FROM_KEY];
  if (
    !isObject(from) ||
    typeof from.file !== "string" ||
    typeof from.before !== "string" ||
    typeof from.after !== "string" ||
    confFormatOf(from.file) !== "conf" ||
    from.file.includes("/")
  ) {
    return null;
  }
  const plugins = memberOf(root, "plugins")?.value;
  const original = plugins?.kind === "array" ? plugins.elements[0] : undefined;
  if (!original || isWaggleEntry(nodeValue(text, original))) return null;
  const pluginText = unindentJson(
    text.slice(original.start, original.end),
    CONVERTED_ELEMENT_INDENT,
  );
  return { fileName: from.file, text: from.before + pluginText + from.after };
}
