// The merbridge mode's kernel side: Merbridge's programs built from a checkout the operator
// names, with its own Makefile, loaded, their maps pinned under a bpffs root of this run, its
// maps filled as its controller does, and the programs attached to the pods' cgroups (never
// the root cgroup, where Merbridge's own loader puts them).
//
// libbpf (1.0 on) no longer reads Merbridge's map declarations (iproute2's legacy "maps"
// section), so the bench builds the programs twice with the Makefile: once as they are, and
// once from a copy whose map declarations are rewritten as BTF-defined maps
// (convertLegacyMaps). It loads the second only after checking that every program section of
// the two builds holds the same instructions, byte for byte.

import {
  cpSync,
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import {
  attachCgroup,
  attachSockmap,
  BpfMap,
  BpfObject,
  type CgroupAttachType,
  type Link,
  type Program,
} from "ebpf-napi";
import { elfCodeSections } from "../test/support/bpf-elf";
import { COMMAND_PATH, run, runChecked } from "../test/support/command";
import { BpfRoot } from "../test/support/waggle-mode";
import {
  convertLegacyMaps,
  decodeProcessIp,
  decodeSockPair,
  ipv4MappedKey,
  MERBRIDGE_ATTACH,
  MERBRIDGE_MAKE_VARS,
  MERBRIDGE_MAPS,
  MERBRIDGE_OBJECTS,
  type MerbridgeInfo,
  POD_CONFIG_BYTES,
  podConfigValue,
  SOCK_PAIR_BYTES,
  type SockPair,
} from "./merbridge";
import { processDir } from "./sidecars";

type Log = (line: string) => void;

/** A git command's output, or null when it fails (safe.directory: the checkout may be anyone's). */
async function git(args: string[]): Promise<string | null> {
  const r = await run("git", ["-c", "safe.directory=*", ...args]);
  return r.code === 0 ? r.stdout.trim() : null;
}

/**
 * Where Merbridge's bpf/ directory is, and which commit it is: a checkout (a work tree with
 * bpf/Makefile, or a copy of one without git), or a git directory (a bare repository, such as
 * a mirror), whose HEAD is exported into `exportDir` with git archive.
 */
export async function resolveMerbridgeSource(
  source: string,
  exportDir: string,
): Promise<{ tree: string; commit: string | null; dirty: boolean | null }> {
  if (!existsSync(source)) throw new Error(`Merbridge source ${source} does not exist`);
  if (existsSync(join(source, "bpf", "Makefile"))) {
    const top = await git(["-C", source, "rev-parse", "--show-toplevel"]);
    // a copy without git inside another repository would report that repository's HEAD
    if (top === null || realpathSync(top) !== realpathSync(source))
      return { tree: source, commit: null, dirty: null };
    const commit = await git(["-C", source, "rev-parse", "--verify", "HEAD"]);
    const status = await git(["-C", source, "status", "--porcelain", "--", "bpf"]);
    return { tree: source, commit, dirty: status === null ? null : status !== "" };
  }
  const commit = await git(["--git-dir", source, "rev-parse", "--verify", "HEAD^{commit}"]);
  if (commit === null)
    throw new Error(
      `${source} is not a Merbridge checkout: it has no bpf/Makefile and is not a git directory`,
    );
  const tar = join(exportDir, "bpf.tar");
  await runChecked("git", [
    "-c",
    "safe.directory=*",
    "--git-dir",
    source,
    "archive",
    "-o",
    tar,
    commit,
    "bpf",
  ]);
  await runChecked("tar", ["-xf", tar, "-C", exportDir]);
  if (!existsSync(join(exportDir, "bpf", "Makefile")))
    throw new Error(`commit ${commit} of ${source} has no bpf/Makefile`);
  return { tree: exportDir, commit, dirty: false };
}

/** Runs Merbridge's Makefile in dir for the objects; returns the compiler lines it ran. */
async function make(dir: string): Promise<string[]> {
  const vars = Object.entries(MERBRIDGE_MAKE_VARS).map(([k, v]) => `${k}=${v}`);
  const out = await runChecked(
    "make",
    ["-B", "--no-print-directory", "-C", dir, ...vars, ...MERBRIDGE_OBJECTS.map((o) => `${o}.o`)],
    // nothing of the caller's environment (DEBUG, CNI_MODE...) reaches the Makefile
    { env: { PATH: COMMAND_PATH, HOME: process.env.HOME ?? "/root" } },
  );
  return out.split("\n").filter((l) => / -c \S+\.c -o \S+\.o/.test(l));
}

/** C files under dir (recursively). */
function sourcesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => /\.[ch]$/.test(f))
    .map((f) => join(dir, f));
}

/**
 * Builds the objects: Merbridge's Makefile on a copy of bpf/ as it is, and on a copy whose
 * legacy map declarations are converted; throws unless every program section of the two is
 * the same. Returns the loadable objects and what was built.
 */
export async function buildMerbridge(
  source: string,
  workDir: string,
  log: Log,
): Promise<{ objects: Map<string, Buffer>; info: Omit<MerbridgeInfo, "programs"> }> {
  const src = await resolveMerbridgeSource(source, workDir);
  const asIs = join(workDir, "as-is");
  const loadable = join(workDir, "loadable");
  for (const dir of [asIs, loadable]) cpSync(join(src.tree, "bpf"), dir, { recursive: true });
  const converted: string[] = [];
  for (const file of sourcesUnder(loadable)) {
    const text = readFileSync(file, "utf8");
    if (!/bpf_elf_map\s+__section\(\s*"maps"\s*\)/.test(text)) continue;
    const c = convertLegacyMaps(text);
    writeFileSync(file, c.text);
    converted.push(`${relative(loadable, file)} (${c.maps.join(", ")})`);
  }
  log(
    `merbridge: building ${MERBRIDGE_OBJECTS.join(", ")} from ${source} (commit ${src.commit ?? "unknown"}) with its Makefile`,
  );
  const compile = await make(asIs);
  if (converted.length > 0) {
    await make(loadable);
    log(`merbridge: map declarations converted for libbpf in ${converted.join("; ")}`);
  }
  const objects = new Map<string, Buffer>();
  for (const name of MERBRIDGE_OBJECTS) {
    const built = readFileSync(join(asIs, `${name}.o`));
    const elf = converted.length > 0 ? readFileSync(join(loadable, `${name}.o`)) : built;
    const a = elfCodeSections(built);
    const b = elfCodeSections(elf);
    const same =
      a.length === b.length &&
      a.every((s, i) => s.name === b[i].name && s.bytes.equals(b[i].bytes));
    if (!same)
      throw new Error(
        `merbridge: ${name}.o built with converted map declarations differs from its Makefile's build in its program sections; not loading it`,
      );
    objects.set(name, elf);
  }
  return { objects, info: { source, commit: src.commit, dirty: src.dirty, compile } };
}

/** A loaded program and where it attaches. */
interface LoadedProgram {
  object: string;
  section: string;
  program: Program;
  attach: string;
}

/**
 * Merbridge on the bench's node: its programs loaded (maps pinned under a bpffs root of this
 * run), the sk_msg program on its sockhash, the cgroup programs attached pod by pod.
 */
export class MerbridgeDatapath {
  private readonly links: Link[] = [];
  private readonly maps = new Map<string, BpfMap>();

  private constructor(
    private readonly root: BpfRoot,
    private readonly dir: { path: string; remove(): void },
    private readonly programs: LoadedProgram[],
    readonly info: MerbridgeInfo,
  ) {}

  /** Builds and loads Merbridge from a checkout; nothing is attached to a pod yet. */
  static async create(source: string, log: Log): Promise<MerbridgeDatapath> {
    const dir = processDir("merbridge");
    const root = new BpfRoot();
    const programs: LoadedProgram[] = [];
    let datapath: MerbridgeDatapath | undefined;
    try {
      const { objects, info } = await buildMerbridge(source, dir.path, log);
      for (const [name, elf] of objects) programs.push(loadObject(name, elf, root.path));
      datapath = new MerbridgeDatapath(root, dir, programs, {
        ...info,
        programs: programs.map(({ object, section, attach }) => ({ object, section, attach })),
      });
      datapath.checkMaps();
      for (const p of programs)
        if (p.attach === "sk_msg_verdict")
          datapath.links.push(attachSockmap(p.program, datapath.map("sockhash"), "sk_msg_verdict"));
      return datapath;
    } catch (e) {
      if (datapath) datapath.destroy();
      else {
        for (const p of programs) p.program.close();
        root.destroy();
        dir.remove();
      }
      throw e;
    }
  }

  private map(which: keyof typeof MERBRIDGE_MAPS): BpfMap {
    const name = MERBRIDGE_MAPS[which];
    let m = this.maps.get(name);
    if (!m) {
      m = BpfMap.openPinned(join(this.root.path, name));
      this.maps.set(name, m);
    }
    return m;
  }

  /** The maps the bench writes and reads must have the layout it encodes. */
  private checkMaps(): void {
    const expect = (which: keyof typeof MERBRIDGE_MAPS, key: number, value: number) => {
      const { keySize, valueSize } = this.map(which).info;
      if (keySize !== key || valueSize !== value)
        throw new Error(
          `merbridge: map ${MERBRIDGE_MAPS[which]} has key/value ${keySize}/${valueSize} bytes, the bench encodes ${key}/${value}: this Merbridge's layout is not the one the bench knows`,
        );
    };
    expect("podIps", 16, POD_CONFIG_BYTES);
    expect("processIps", 4, 4);
    expect("sockhash", SOCK_PAIR_BYTES, 4);
  }

  /**
   * What Merbridge's controller does for a pod with an injected sidecar on its node: the
   * pod's address into local_pod_ips with its settings (Istio's defaults: the bench's pods
   * carry no traffic.sidecar.istio.io annotations).
   */
  registerPod(ip: string): void {
    this.map("podIps").update(ipv4MappedKey(ip), podConfigValue(), "any");
  }

  /** Every cgroup program (connect4, sockops, getsockopt, bind4, sendmsg4, recvmsg4) on a pod's cgroup. */
  attachPod(cgroupDir: string): void {
    for (const p of this.programs)
      if (p.attach !== "sk_msg_verdict")
        this.links.push(attachCgroup(p.program, cgroupDir, p.attach as CgroupAttachType));
  }

  /** The kernel id of each loaded program, by attach type. */
  programIds(): Map<string, number> {
    return new Map(this.programs.map((p) => [p.attach, p.program.info().id]));
  }

  /** The addresses Merbridge learned for processes (its sockops writes them). */
  processIps(): { pid: number; ip: string }[] {
    return [...this.map("processIps").entries()].map(([k, v]) => decodeProcessIp(k, v));
  }

  /** The sockets in its sockhash, as their keys name them. */
  sockPairs(): SockPair[] {
    return [...this.map("sockhash").keys()].map(decodeSockPair);
  }

  /** Detaches everything and removes the pins and the build directory. Idempotent. */
  destroy(): void {
    for (const l of this.links.splice(0)) l.close();
    for (const m of this.maps.values()) m.close();
    this.maps.clear();
    for (const p of this.programs) p.program.close();
    this.root.destroy();
    this.dir.remove();
  }
}

/** Loads one object, its maps reusing the pins under root (made by the first object). */
function loadObject(name: string, elf: Buffer, root: string): LoadedProgram {
  const sections = elfCodeSections(elf);
  if (sections.length !== 1)
    throw new Error(`merbridge: ${name}.o has ${sections.length} program sections, expected 1`);
  const section = sections[0].name;
  const attach = MERBRIDGE_ATTACH[section];
  if (!attach) throw new Error(`merbridge: ${name}.o: no attach type known for section ${section}`);
  const probe = BpfObject.open(elf, { name });
  const maps = probe.mapNames().filter((m) => !m.includes("."));
  probe.close();
  const obj = BpfObject.open(elf, {
    name,
    pinMaps: Object.fromEntries(maps.map((m) => [m, join(root, m)])),
  });
  try {
    obj.load();
    const [program] = obj.programNames();
    return { object: name, section, program: obj.program(program), attach };
  } finally {
    obj.close();
  }
}
