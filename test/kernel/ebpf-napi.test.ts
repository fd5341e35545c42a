// Kernel tests of the ebpf-napi addon: real BPF objects, maps, cgroup links, TC filters,
// namespaces and probes on this machine (root). Every test creates uniquely named netns,
// cgroups and bpffs pin dirs and removes them in afterEach, also when it fails.
import { execFile, execFileSync, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { expect } from "chai";
import {
  addonLocation,
  attachCgroup,
  attachSockmap,
  attachTracing,
  BpfError,
  BpfMap,
  BpfObject,
  cgroupId,
  cgroupQuery,
  kernelBtfLoads,
  Link,
  libbpfVersion,
  mapKernelBtf,
  netnsCookie,
  Program,
  pinCgroupLinks,
  possibleCpus,
  probeAttachType,
  probeHelper,
  probeMapType,
  probeProgType,
  searchKernelBtf,
  setKernelBtfPath,
  tcAttach,
  tcDestroyHook,
  tcDetach,
  tcQuery,
  unpin,
  updatePinnedMaps,
} from "ebpf-napi";
import { bpfObject, repoRoot } from "../../base/assets";
import { cgroup2Root } from "../../base/cgroup2";

const execFileAsync = promisify(execFile);
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NODE = process.execPath;
const INDEX_JS = join(repoRoot(), "out", "ebpf-napi", "lib", "index.js");

// ---- fixtures: unique names, cleanup that always runs --------------------------------------

let sequence = 0;
/** A name unique to this process and call: "en" + pid + kind letter + counter (<= 15 chars). */
function uniqueName(kind: string): string {
  sequence += 1;
  return `en${process.pid.toString(36)}${kind}${sequence.toString(36)}`;
}

/** Teardown steps registered as resources are created; run newest first, all of them. */
const teardown: Array<{ what: string; undo: () => void }> = [];
function onTeardown(what: string, undo: () => void): void {
  teardown.push({ what, undo });
}
function runTeardown(): void {
  const failures: string[] = [];
  for (let step = teardown.pop(); step !== undefined; step = teardown.pop()) {
    try {
      step.undo();
    } catch (err) {
      failures.push(`${step.what}: ${(err as Error).message}`);
    }
  }
  if (failures.length > 0) throw new Error(`teardown failed:\n${failures.join("\n")}`);
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    env: { ...process.env, PATH },
    stdio: "pipe",
  });
}

/** A handle closed at teardown (close() is idempotent, so tests may close it earlier). */
function owned<T extends { close(): void }>(handle: T): T {
  onTeardown("close handle", () => handle.close());
  return handle;
}

function loadSelftest(opts: { pinMaps?: Record<string, string> } = {}): BpfObject {
  const obj = owned(BpfObject.open(bpfObject("selftest"), { name: "selftest", ...opts }));
  obj.load();
  return obj;
}

function makeNetns(): string {
  const name = uniqueName("n");
  sh("ip", ["netns", "add", name]);
  onTeardown(`netns ${name}`, () => sh("ip", ["netns", "del", name]));
  return name;
}

function makeCgroup(): string {
  const dir = join(cgroup2Root(), uniqueName("c"));
  mkdirSync(dir);
  onTeardown(`cgroup ${dir}`, () => rmdirSync(dir));
  return dir;
}

function makePinDir(): string {
  const dir = join("/sys/fs/bpf", uniqueName("b"));
  mkdirSync(dir);
  onTeardown(`pin dir ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function expectBpfError(fn: () => unknown, op: string, code: string): BpfError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(BpfError);
    const e = err as BpfError;
    expect(e.op, e.message).to.equal(op);
    expect(e.code, e.message).to.equal(code);
    expect(e.errno).to.be.a("number").greaterThan(0);
    expect(e.message).to.contain(`${op}: `).and.contain(`(${code})`);
    return e;
  }
  throw new Error(`expected ${op} to fail with ${code}`);
}

function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const u64 = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};

afterEach(() => {
  runTeardown();
});

// ---- objects ------------------------------------------------------------------------------

describe("ebpf-napi: BPF objects", () => {
  it("opens an ELF from a Buffer, names its programs and maps, and loads it", () => {
    const obj = owned(BpfObject.open(bpfObject("selftest"), { name: "selftest" }));
    expect(obj.programNames()).to.include.members([
      "selftest_connect4",
      "selftest_connect4_v2",
      "selftest_count_packets",
      "selftest_rejected",
    ]);
    expect(obj.mapNames()).to.include.members([
      "selftest_hash",
      "selftest_lpm",
      "selftest_packets",
    ]);
    expect(obj.loaded).to.equal(false);
    obj.load();
    expect(obj.loaded).to.equal(true);
    const prog = owned(obj.program("selftest_connect4"));
    const info = prog.info();
    expect(info.type).to.equal("cgroup_sock_addr");
    expect(info.name).to.equal("selftest_connec"); // the kernel keeps 15 characters
    expect(info.tag).to.match(/^[0-9a-f]{16}$/);
    expect(info.id).to.be.greaterThan(0);
    expect(prog.name).to.equal("selftest_connect4");
  });

  it("hands out program and map handles that outlive the object", () => {
    const obj = loadSelftest();
    const prog = owned(obj.program("selftest_count_packets"));
    const map = owned(obj.map("selftest_hash"));
    obj.close();
    expect(prog.info().type).to.equal("sched_cls");
    map.update(u32(1), u64(5n));
    expect(map.lookup(u32(1))).to.deep.equal(u64(5n));
    expect(() => obj.programNames()).to.throw(BpfError, /used after close/);
  });

  it("reports a verifier rejection with the verifier log", () => {
    const obj = owned(BpfObject.open(bpfObject("selftest"), { name: "selftest" }));
    obj.setAutoload("selftest_rejected", true);
    const err = expectBpfError(() => obj.load(), "bpf_object__load", "EACCES");
    expect(err.log).to.contain("invalid mem access");
    expect(err.message).to.contain("invalid mem access"); // the tail of the log
  });

  it("rejects bytes that are not an ELF object", () => {
    const err = expectBpfError(
      () => BpfObject.open(Buffer.from("not an elf")),
      "bpf_object__open_mem",
      "LIBBPF_ERRNO__FORMAT",
    );
    expect(err.log).to.contain("ELF");
  });

  it("names a missing program or map with ENOENT", () => {
    const obj = loadSelftest();
    expectBpfError(() => obj.program("nope"), "bpf_object__find_program_by_name", "ENOENT");
    expectBpfError(() => obj.map("nope"), "bpf_object__find_map_by_name", "ENOENT");
  });

  it("sets a map's max_entries before load, and refuses after", () => {
    const obj = owned(BpfObject.open(bpfObject("selftest"), { name: "selftest" }));
    obj.setMapMaxEntries("selftest_hash", 4096);
    obj.load();
    expect(owned(obj.map("selftest_hash")).info.maxEntries).to.equal(4096);
    expectBpfError(
      () => obj.setMapMaxEntries("selftest_hash", 8),
      "bpf_map__set_max_entries",
      "EBUSY",
    );
  });

  it("pinMaps pins a map on first load and reuses the pinned map on the next", () => {
    const pins = makePinDir();
    const path = join(pins, "deeper", "hash"); // parent directories are created
    const first = loadSelftest({ pinMaps: { selftest_hash: path } });
    const firstMap = owned(first.map("selftest_hash"));
    firstMap.update(u32(7), u64(77n));
    first.close();
    expect(existsSync(path)).to.equal(true);

    const second = loadSelftest({ pinMaps: { selftest_hash: path } });
    const secondMap = owned(second.map("selftest_hash"));
    expect(secondMap.info.id).to.equal(firstMap.info.id);
    expect(secondMap.lookup(u32(7))).to.deep.equal(u64(77n));
  });

  it("pinMaps fails the load when the pinned map is incompatible", () => {
    const path = join(makePinDir(), "hash");
    loadSelftest({ pinMaps: { selftest_hash: path } }).close();
    const obj = owned(
      BpfObject.open(bpfObject("selftest"), { name: "selftest", pinMaps: { selftest_hash: path } }),
    );
    obj.setMapMaxEntries("selftest_hash", 128); // the pin has 64
    const err = expectBpfError(() => obj.load(), "bpf_object__load", "EINVAL");
    expect(err.log).to.contain("selftest_hash");
  });

  it("pinMaps naming a map the object lacks fails at open", () => {
    expectBpfError(
      () => BpfObject.open(bpfObject("selftest"), { pinMaps: { nope: "/sys/fs/bpf/x" } }),
      "bpf_object__find_map_by_name",
      "ENOENT",
    );
  });
});

// ---- maps ---------------------------------------------------------------------------------

describe("ebpf-napi: maps", () => {
  it("hash: update, lookup, update modes, delete, iteration", () => {
    const map = owned(loadSelftest().map("selftest_hash"));
    expect(map.info).to.include({ type: "hash", keySize: 4, valueSize: 8, maxEntries: 64 });
    expect(map.lookup(u32(1))).to.equal(null);
    for (let i = 1; i <= 5; i++) map.update(u32(i), u64(BigInt(i * 100)));
    expect(map.lookup(u32(3))).to.deep.equal(u64(300n));
    expectBpfError(() => map.update(u32(3), u64(1n), "noexist"), "bpf_map_update_elem", "EEXIST");
    expectBpfError(() => map.update(u32(9), u64(1n), "exist"), "bpf_map_update_elem", "ENOENT");
    map.update(u32(3), u64(333n), "exist");
    expect(map.lookup(u32(3))).to.deep.equal(u64(333n));

    const keys = [...map.keys()].map((k) => k.readUInt32LE()).sort();
    expect(keys).to.deep.equal([1, 2, 3, 4, 5]);
    const entries = new Map(
      [...map.entries()].map(([k, v]) => [k.readUInt32LE(), v.readBigUInt64LE()]),
    );
    expect(entries.get(3)).to.equal(333n);
    expect(entries.size).to.equal(5);

    expect(map.delete(u32(3))).to.equal(true);
    expect(map.delete(u32(3))).to.equal(false);
    expect(map.lookup(u32(3))).to.equal(null);
    expect([...map.keys()]).to.have.length(4);
  });

  it("array: every index exists zeroed, and elements cannot be deleted", () => {
    const map = owned(BpfMap.create({ type: "array", keySize: 4, valueSize: 8, maxEntries: 3 }));
    expect([...map.keys()].map((k) => k.readUInt32LE())).to.deep.equal([0, 1, 2]);
    expect(map.lookup(u32(2))).to.deep.equal(Buffer.alloc(8));
    map.update(u32(1), u64(42n));
    expect(map.lookup(u32(1))).to.deep.equal(u64(42n));
    expect(map.lookup(u32(3))).to.equal(null);
    expectBpfError(() => map.update(u32(3), u64(1n)), "bpf_map_update_elem", "E2BIG");
    expectBpfError(() => map.delete(u32(1)), "bpf_map_delete_elem", "EINVAL");
  });

  it("per-CPU: values carry one 8-byte-aligned slot per possible CPU", () => {
    const cpus = possibleCpus();
    expect(cpus).to.be.greaterThan(0);
    const map = owned(loadSelftest().map("selftest_percpu_hash")); // 4-byte values
    expect(map.perCpu).to.equal(true);
    expect(map.valueLength).to.equal(cpus * 8);
    const value = Buffer.alloc(map.valueLength);
    for (let cpu = 0; cpu < cpus; cpu++) value.writeUInt32LE(1000 + cpu, cpu * 8);
    map.update(u32(1), value);
    const back = map.lookup(u32(1));
    expect(back).to.have.length(cpus * 8);
    for (let cpu = 0; cpu < cpus; cpu++) expect(back?.readUInt32LE(cpu * 8)).to.equal(1000 + cpu);
    expectBpfError(() => map.update(u32(2), Buffer.alloc(4)), "bpf_map_update_elem", "EINVAL");
  });

  /** selftest's hash and per-CPU hash maps and one of its programs, pinned in a fresh dir. */
  function pinnedSelftest() {
    const dir = makePinDir();
    const obj = loadSelftest();
    const pins = { hash: join(dir, "hash"), percpu: join(dir, "percpu"), prog: join(dir, "prog") };
    owned(obj.map("selftest_hash")).pin(pins.hash);
    owned(obj.map("selftest_percpu_hash")).pin(pins.percpu);
    owned(obj.program("selftest_connect4")).pin(pins.prog);
    return { pins, hash: owned(BpfMap.openPinned(pins.hash)) };
  }

  it("updatePinnedMaps stores each entry in its pinned map in one call (per-CPU values too), holding no fd after", () => {
    const { pins, hash } = pinnedSelftest();
    const percpu = owned(BpfMap.openPinned(pins.percpu));
    const perCpuValue = Buffer.alloc(percpu.valueLength);
    for (let cpu = 0; cpu < possibleCpus(); cpu++) perCpuValue.writeUInt32LE(7 + cpu, cpu * 8);
    const before = fdCount();
    updatePinnedMaps([
      { pin: pins.hash, key: u32(1), value: u64(10n) },
      { pin: pins.percpu, key: u32(1), value: perCpuValue },
      { pin: pins.hash, key: u32(2), value: u64(20n) },
      { pin: pins.hash, key: u32(1), value: u64(11n) }, // in order: the later one stays
    ]);
    updatePinnedMaps([]);
    expect(fdCount(), "fds left open").to.equal(before);
    expect(hash.lookup(u32(1))).to.deep.equal(u64(11n));
    expect(hash.lookup(u32(2))).to.deep.equal(u64(20n));
    expect(percpu.lookup(u32(1))).to.deep.equal(perCpuValue);
  });

  it("updatePinnedMaps stops at the first entry that fails, naming its pin; the entries before it stay", () => {
    const { pins, hash } = pinnedSelftest();
    const before = fdCount();
    const fails = (entry: { pin: string; key: Buffer; value: Buffer }, op: string, code: string) =>
      expectBpfError(
        () => updatePinnedMaps([{ pin: pins.hash, key: u32(3), value: u64(30n) }, entry]),
        op,
        code,
      );
    expect(
      fails(
        { pin: join(pins.hash, "..", "none"), key: u32(1), value: u64(1n) },
        "bpf_obj_get",
        "ENOENT",
      ).message,
    ).to.contain("none");
    expect(
      fails({ pin: pins.prog, key: u32(1), value: u64(1n) }, "bpf_obj_get", "EINVAL").message,
    ).to.contain(`${pins.prog} holds a prog, not a map`);
    expect(
      fails({ pin: pins.hash, key: u32(1), value: u32(1) }, "bpf_map_update_elem", "EINVAL")
        .message,
    ).to.contain(`${pins.hash}: value is 4 bytes, the map wants 8`);
    expect(
      fails({ pin: pins.hash, key: u64(1n), value: u64(1n) }, "bpf_map_update_elem", "EINVAL")
        .message,
    ).to.contain(`${pins.hash}: key is 8 bytes, the map wants 4`);
    expect(
      fails(
        { pin: pins.percpu, key: u32(1), value: Buffer.alloc(4) },
        "bpf_map_update_elem",
        "EINVAL",
      ).message,
    ).to.contain(`value is 4 bytes, the map wants ${possibleCpus() * 8}`);
    expect(fdCount(), "fds left open").to.equal(before);
    expect(hash.lookup(u32(3)), "the entry before the failure").to.deep.equal(u64(30n));
    expect(() => updatePinnedMaps("x" as unknown as [])).to.throw(TypeError, /an array of entries/);
    expect(() => updatePinnedMaps([{ pin: pins.hash, key: "k" } as unknown as never])).to.throw(
      TypeError,
      /pin: string, key: Buffer, value: Buffer/,
    );
  });

  it("lpm_trie: longest prefix match over prefixlen-tagged keys", () => {
    const map = owned(loadSelftest().map("selftest_lpm"));
    const key = (prefixlen: number, ip: string) => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(prefixlen, 0);
      ip.split(".").forEach((octet, i) => {
        b[4 + i] = Number(octet);
      });
      return b;
    };
    map.update(key(8, "10.0.0.0"), u32(1));
    map.update(key(16, "10.1.0.0"), u32(2));
    expect(map.lookup(key(32, "10.1.2.3"))?.readUInt32LE()).to.equal(2);
    expect(map.lookup(key(32, "10.2.0.1"))?.readUInt32LE()).to.equal(1);
    expect(map.lookup(key(32, "11.0.0.1"))).to.equal(null);
    expect([...map.keys()]).to.have.length(2);
    expect(map.delete(key(16, "10.1.0.0"))).to.equal(true);
    expect(map.lookup(key(32, "10.1.2.3"))?.readUInt32LE()).to.equal(1);
  });

  it("pins a map, reopens it by path and by id, and unpins it", () => {
    const path = join(makePinDir(), "map");
    const map = owned(
      BpfMap.create({ type: "hash", name: "enpin", keySize: 4, valueSize: 8, maxEntries: 4 }),
    );
    map.update(u32(1), u64(11n));
    map.pin(path);
    const reopened = owned(BpfMap.openPinned(path));
    expect(reopened.info.id).to.equal(map.info.id);
    expect(reopened.name).to.equal("enpin");
    expect(reopened.lookup(u32(1))).to.deep.equal(u64(11n));
    const byId = owned(BpfMap.fromId(map.info.id));
    expect(byId.lookup(u32(1))).to.deep.equal(u64(11n));
    unpin(path);
    expectBpfError(() => BpfMap.openPinned(path), "bpf_obj_get", "ENOENT");
    expectBpfError(() => unpin(path), "unpin", "ENOENT");
  });

  it("checks key and value sizes before the kernel sees the buffers", () => {
    const map = owned(BpfMap.create({ type: "hash", keySize: 4, valueSize: 8, maxEntries: 4 }));
    const e = expectBpfError(() => map.lookup(Buffer.alloc(3)), "bpf_map_lookup_elem", "EINVAL");
    expect(e.message).to.contain("key is 3 bytes");
    expectBpfError(() => map.update(u32(1), Buffer.alloc(4)), "bpf_map_update_elem", "EINVAL");
    expectBpfError(() => map.delete(Buffer.alloc(5)), "bpf_map_delete_elem", "EINVAL");
  });
});

// ---- cgroup links -------------------------------------------------------------------------

/** Whether a link with this id still exists (Link.fromId fails once the kernel freed it). */
function linkAlive(id: number): boolean {
  try {
    Link.fromId(id).close();
    return true;
  } catch {
    return false;
  }
}

/** A TCP listener on 127.0.0.1 that records every connection it accepts. */
async function listener(): Promise<{ server: Server; port: number; accepted: () => number }> {
  let accepted = 0;
  const server = createServer((sock) => {
    accepted += 1;
    sock.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onTeardown("listener", () => server.close());
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no listener port");
  return { server, port: address.port, accepted: () => accepted };
}

/**
 * Connects to 127.0.0.1:port from a process placed in the cgroup (a shell writes its pid to
 * cgroup.procs, then execs python) and returns the peer port the socket ended up connected to.
 */
async function connectFromCgroup(cgroupDir: string, port: number): Promise<number> {
  const py = `import socket; s = socket.create_connection(("127.0.0.1", ${port}), timeout=5); print(s.getpeername()[1])`;
  const { stdout } = await execFileAsync(
    "sh",
    ["-c", 'echo $$ > "$1/cgroup.procs" && exec python3 -c "$2"', "sh", cgroupDir, py],
    { env: { ...process.env, PATH }, timeout: 10_000 },
  );
  return Number(stdout.trim());
}

describe("ebpf-napi: cgroup links", () => {
  it("attaches connect4 as a pinned link, replaces its program atomically, and detaches it", async () => {
    const cgroup = makeCgroup();
    const pins = makePinDir();
    const [a, b, c] = [await listener(), await listener(), await listener()];
    const obj = loadSelftest();
    const rewrite = owned(obj.map("selftest_rewrite"));
    const rewriteEntry = (from: number, to: number) => {
      const v = Buffer.alloc(4);
      v.writeUInt16LE(from, 0);
      v.writeUInt16LE(to, 2);
      return v;
    };
    rewrite.update(u32(0), rewriteEntry(a.port, b.port)); // v1: A -> B
    rewrite.update(u32(1), rewriteEntry(a.port, c.port)); // v2: A -> C
    const v1 = owned(obj.program("selftest_connect4"));
    const v2 = owned(obj.program("selftest_connect4_v2"));

    // Before: nothing attached, A is A.
    expect(await connectFromCgroup(cgroup, a.port)).to.equal(a.port);

    const link = owned(attachCgroup(v1, cgroup, "cgroup_inet4_connect"));
    const linkPath = join(pins, "connect4");
    link.pin(linkPath);
    onTeardown("unpin link", () => rmSync(linkPath, { force: true }));
    const info = link.info();
    expect(info).to.include({
      type: "cgroup",
      attachType: "cgroup_inet4_connect",
      progId: v1.info().id,
    });
    expect(info.cgroupId).to.equal(cgroupId(cgroup));
    expect(cgroupQuery(cgroup, "cgroup_inet4_connect")).to.deep.equal([v1.info().id]);
    const bpftool = JSON.parse(sh("bpftool", ["-j", "cgroup", "show", cgroup])) as Array<{
      id: number;
      attach_type: string;
    }>;
    expect(bpftool.map((p) => [p.id, p.attach_type])).to.deep.equal([
      [v1.info().id, "cgroup_inet4_connect"],
    ]);

    expect(await connectFromCgroup(cgroup, a.port)).to.equal(b.port);
    expect(b.accepted()).to.equal(1);
    link.close(); // the pin keeps the link attached
    expect(await connectFromCgroup(cgroup, a.port)).to.equal(b.port);

    // Replace through the pinned link: v1 -> v2, only if v1 is what runs.
    const pinned = owned(Link.openPinned(linkPath));
    expect(pinned.info().id).to.equal(info.id);
    expectBpfError(() => pinned.update(v2, { expected: v2 }), "bpf_link_update", "EPERM");
    pinned.update(v2, { expected: v1 });
    expect(pinned.info().progId).to.equal(v2.info().id);
    expect(await connectFromCgroup(cgroup, a.port)).to.equal(c.port);
    expect(c.accepted()).to.equal(1);
    const counts = owned(obj.map("selftest_rewrites"));
    expect(counts.lookup(u32(0))?.readBigUInt64LE()).to.equal(2n);
    expect(counts.lookup(u32(1))?.readBigUInt64LE()).to.equal(1n);

    pinned.detach();
    expect(cgroupQuery(cgroup, "cgroup_inet4_connect")).to.deep.equal([]);
    expect(
      JSON.parse(sh("bpftool", ["-j", "cgroup", "show", cgroup]).trim() || "[]"),
    ).to.deep.equal([]);
    expect(await connectFromCgroup(cgroup, a.port)).to.equal(a.port);

    unpin(linkPath);
    expect(existsSync(linkPath)).to.equal(false);
  });

  it("an unpinned link detaches when its last fd closes", () => {
    const cgroup = makeCgroup();
    const prog = owned(loadSelftest().program("selftest_connect4"));
    const link = attachCgroup(prog, cgroup, "cgroup_inet4_connect");
    expect(cgroupQuery(cgroup, "cgroup_inet4_connect")).to.have.length(1);
    link.close();
    expect(cgroupQuery(cgroup, "cgroup_inet4_connect")).to.deep.equal([]);
  });

  it("cgroupId equals bpf_get_current_cgroup_id() and netnsCookie equals bpf_get_netns_cookie() in a program", async () => {
    const cgroup = makeCgroup();
    const [a, b] = [await listener(), await listener()];
    const obj = loadSelftest();
    const rewrite = owned(obj.map("selftest_rewrite"));
    const entry = Buffer.alloc(4);
    entry.writeUInt16LE(a.port, 0);
    entry.writeUInt16LE(b.port, 2);
    rewrite.update(u32(0), entry);
    owned(attachCgroup(owned(obj.program("selftest_connect4")), cgroup, "cgroup_inet4_connect"));
    expect(await connectFromCgroup(cgroup, a.port)).to.equal(b.port);
    const seen = owned(obj.map("selftest_seen")).lookup(u32(0));
    expect(seen?.readBigUInt64LE(0)).to.equal(cgroupId(cgroup));
    expect(seen?.readBigUInt64LE(8)).to.equal(netnsCookie("/proc/self/ns/net"));
  });

  it("attach failures name the operation: missing cgroup, wrong attach type, non-cgroup type", () => {
    const prog = owned(loadSelftest().program("selftest_connect4"));
    expectBpfError(
      () => attachCgroup(prog, "/sys/fs/cgroup/unified/nope-en", "cgroup_inet4_connect"),
      "open_cgroup",
      "ENOENT",
    );
    const cgroup = makeCgroup();
    expectBpfError(
      () => attachCgroup(prog, cgroup, "cgroup_sock_ops"),
      "bpf_link_create",
      "EINVAL",
    );
    expectBpfError(
      () => attachCgroup(prog, cgroup, "xdp" as "cgroup_sock_ops"),
      "attach_type",
      "EINVAL",
    );
    expectBpfError(() => cgroupId("/nope-en"), "name_to_handle_at", "ENOENT");
  });
});

describe("ebpf-napi: batched cgroup links (pinCgroupLinks)", () => {
  /** Two connect4 programs and a TC one pinned in a fresh pin dir, and three cgroups. */
  function setup() {
    const pins = makePinDir();
    const obj = loadSelftest();
    const progs = {
      v1: owned(obj.program("selftest_connect4")),
      v2: owned(obj.program("selftest_connect4_v2")),
      tc: owned(obj.program("selftest_count_packets")),
    };
    for (const [name, prog] of Object.entries(progs)) prog.pin(join(pins, name));
    const cgroups = [makeCgroup(), makeCgroup(), makeCgroup()];
    // pinned links keep their cgroups busy: unpinned before the cgroups go (teardown is LIFO)
    onTeardown("unpin links", () => {
      for (const f of readdirSync(pins)) if (f.startsWith("link")) unpin(join(pins, f));
    });
    const item = (prog: string, n: number) => ({
      progPin: join(pins, prog),
      cgroupDir: cgroups[n] as string,
      attachType: "cgroup_inet4_connect" as const,
      linkPin: join(pins, `link${n}`),
    });
    return { pins, progs, cgroups, item };
  }

  it("links and pins every item in order: each cgroup runs its program through a pinned link", () => {
    const { progs, cgroups, item } = setup();
    const results = pinCgroupLinks([item("v1", 0), item("v2", 1), item("v1", 2)]);
    expect(results).to.deep.equal([
      { status: "pinned" },
      { status: "pinned" },
      { status: "pinned" },
    ]);
    const ids = [progs.v1.info().id, progs.v2.info().id, progs.v1.info().id];
    cgroups.forEach((cgroup, n) => {
      expect(cgroupQuery(cgroup, "cgroup_inet4_connect")).to.deep.equal([ids[n]]);
      const link = owned(Link.openPinned(item("v1", n).linkPin));
      expect(link.info()).to.include({ progId: ids[n], attachType: "cgroup_inet4_connect" });
      expect(link.info().cgroupId).to.equal(cgroupId(cgroup));
    });
  });

  it("a failing item leaves nothing, the items before it stay pinned, the ones after are skipped", () => {
    const { progs, cgroups, item } = setup();
    const before = fdCount();
    // item 1: a TC program for a cgroup hook, refused by bpf_link_create after its pin opened
    const results = pinCgroupLinks([item("v1", 0), item("tc", 1), item("v2", 2)]);
    expect(fdCount(), "fds leaked by the failed item").to.equal(before);
    expect(results.map((r) => r.status)).to.deep.equal(["pinned", "failed", "skipped"]);
    const failed = results[1];
    expect(failed?.status === "failed" && failed.error).to.be.instanceOf(BpfError);
    if (failed?.status === "failed") {
      expect(failed.error.op).to.equal("bpf_link_create");
      expect(failed.error.code).to.equal("EINVAL");
    }
    expect(cgroupQuery(cgroups[0] as string, "cgroup_inet4_connect")).to.deep.equal([
      progs.v1.info().id,
    ]);
    expect(cgroupQuery(cgroups[1] as string, "cgroup_inet4_connect")).to.deep.equal([]);
    expect(cgroupQuery(cgroups[2] as string, "cgroup_inet4_connect")).to.deep.equal([]);
    expect(existsSync(item("v1", 0).linkPin)).to.equal(true);
    expect(existsSync(item("v1", 1).linkPin)).to.equal(false);
    expect(existsSync(item("v1", 2).linkPin)).to.equal(false);
  });

  it("items on one cgroup all link to it (its directory opened once); a cgroup that is gone fails its item with open_cgroup ENOENT", () => {
    const { progs, cgroups, item } = setup();
    const before = fdCount();
    const second = { ...item("v2", 0), linkPin: `${item("v2", 0).linkPin}b` };
    const gone = { ...item("v1", 1), cgroupDir: join(cgroups[1] as string, "gone") };
    const results = pinCgroupLinks([item("v1", 0), second, gone]);
    expect(fdCount(), "fds left open").to.equal(before);
    expect(results.slice(0, 2)).to.deep.equal([{ status: "pinned" }, { status: "pinned" }]);
    const failed = results[2];
    expect(failed?.status === "failed" && [failed.error.op, failed.error.code]).to.deep.equal([
      "open_cgroup",
      "ENOENT",
    ]);
    expect(cgroupQuery(cgroups[0] as string, "cgroup_inet4_connect").sort()).to.deep.equal(
      [progs.v1.info().id, progs.v2.info().id].sort(),
    );
    expect(cgroupQuery(cgroups[1] as string, "cgroup_inet4_connect")).to.deep.equal([]);
  });

  it("a link that cannot be pinned is detached; a missing program pin is ENOENT", () => {
    const { cgroups, item } = setup();
    expect(pinCgroupLinks([item("v1", 0)])[0]).to.deep.equal({ status: "pinned" });
    // the same link pin again: bpf_obj_pin EEXIST, and the link made for it is gone
    const taken = { ...item("v2", 1), linkPin: item("v1", 0).linkPin };
    const [again] = pinCgroupLinks([taken]);
    expect(again?.status === "failed" && [again.error.op, again.error.code]).to.deep.equal([
      "bpf_obj_pin",
      "EEXIST",
    ]);
    expect(cgroupQuery(cgroups[1] as string, "cgroup_inet4_connect")).to.deep.equal([]);
    const [missing] = pinCgroupLinks([item("nope", 2)]);
    expect(missing?.status === "failed" && [missing.error.op, missing.error.code]).to.deep.equal([
      "bpf_obj_get",
      "ENOENT",
    ]);
    expect(pinCgroupLinks([])).to.deep.equal([]);
    expect(() => pinCgroupLinks("x" as unknown as [])).to.throw(TypeError, /an array of items/);
  });
});

// ---- TC -----------------------------------------------------------------------------------

/** Two netns joined by a veth pair with 10.77.0.1/30 (left) and 10.77.0.2/30 (right). */
function vethPair(): { left: string; right: string; ifLeft: string; ifRight: string } {
  const left = makeNetns();
  const right = makeNetns();
  const ifLeft = uniqueName("l");
  const ifRight = uniqueName("r");
  sh("ip", [
    "link",
    "add",
    ifLeft,
    "netns",
    left,
    "type",
    "veth",
    "peer",
    "name",
    ifRight,
    "netns",
    right,
  ]);
  sh("ip", ["-n", left, "addr", "add", "10.77.0.1/30", "dev", ifLeft]);
  sh("ip", ["-n", right, "addr", "add", "10.77.0.2/30", "dev", ifRight]);
  sh("ip", ["-n", left, "link", "set", ifLeft, "up"]);
  sh("ip", ["-n", right, "link", "set", ifRight, "up"]);
  return { left, right, ifLeft, ifRight };
}

/** Sends count UDP datagrams from inside a netns (this machine has no ping). */
function sendUdp(netns: string, to: string, count: number): void {
  const py = `import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(${count}):
    s.sendto(b"waggle", ("${to}", 9))
    time.sleep(0.05)`;
  sh("ip", ["netns", "exec", netns, "python3", "-c", py]);
}

function sumPerCpu(value: Buffer | null): bigint {
  let sum = 0n;
  for (let off = 0; value !== null && off < value.length; off += 8)
    sum += value.readBigUInt64LE(off);
  return sum;
}

describe("ebpf-napi: sockmap links", () => {
  it("attaches an sk_msg program to a sockhash as a pinned link, swaps its program, detaches it", () => {
    const pins = makePinDir();
    const obj = loadSelftest();
    const map = owned(obj.map("selftest_sockhash"));
    const v1 = owned(obj.program("selftest_msg_pass"));
    const v2 = owned(obj.program("selftest_msg_pass_v2"));
    const link = owned(attachSockmap(v1, map, "sk_msg_verdict"));
    const linkPath = join(pins, "msg");
    link.pin(linkPath);
    onTeardown("unpin link", () => rmSync(linkPath, { force: true }));
    expect(link.info()).to.include({
      type: "sockmap",
      attachType: "sk_msg_verdict",
      mapId: map.info.id,
      progId: v1.info().id,
    });
    const shown = JSON.parse(
      sh("bpftool", ["-j", "link", "show", "id", String(link.info().id)]),
    ) as {
      prog_id: number;
    };
    expect(shown.prog_id).to.equal(v1.info().id);

    const pinned = owned(Link.openPinned(linkPath));
    pinned.update(v2, { expected: v1 });
    expect(link.info().progId).to.equal(v2.info().id);
    expectBpfError(() => pinned.update(v1, { expected: v1 }), "bpf_link_update", "EPERM");

    pinned.detach();
    expect(link.info().progId, "a detached link still names its program").to.equal(v2.info().id);
    expect(() => pinned.update(v1))
      .to.throw(BpfError, /Link has been severed \(ENOLINK\)/)
      .with.property("code", "ENOLINK");
  });

  it("a pin opens only as its own kind: a map, program or link pin opened as another is EINVAL naming both", () => {
    const pins = makePinDir();
    const obj = loadSelftest();
    const map = owned(obj.map("selftest_sockhash"));
    const prog = owned(obj.program("selftest_msg_pass"));
    const link = owned(attachSockmap(prog, map, "sk_msg_verdict"));
    const at = (name: string) => join(pins, name);
    map.pin(at("map"));
    prog.pin(at("prog"));
    link.pin(at("link"));
    for (const name of ["map", "prog", "link"])
      onTeardown(`unpin ${name}`, () => rmSync(at(name), { force: true }));
    const fds = fdCount();
    // Before, a map opened as a link read back the map's info as a link's (a made-up prog id).
    const err = expectBpfError(() => Link.openPinned(at("map")), "bpf_obj_get", "EINVAL");
    expect(err.message).to.contain(`${at("map")} holds a map, not a link`);
    expectBpfError(() => Link.openPinned(at("prog")), "bpf_obj_get", "EINVAL");
    expectBpfError(() => BpfMap.openPinned(at("link")), "bpf_obj_get", "EINVAL");
    expect(() => Program.openPinned(at("map"))).to.throw(BpfError, /holds a map, not a prog/);
    expect(fdCount(), "the refused fds are closed").to.equal(fds);
    // each kind still opens as itself
    expect(owned(Link.openPinned(at("link"))).info().progId).to.equal(prog.info().id);
    expect(owned(BpfMap.openPinned(at("map"))).info.id).to.equal(map.info.id);
    expect(owned(Program.openPinned(at("prog"))).info().id).to.equal(prog.info().id);
    // named by the caller, or by the kernel (which keeps 15 characters of it)
    expect(owned(Program.openPinned(at("prog"))).name).to.equal("selftest_msg_pa");
    const named = owned(Program.openPinned(at("prog"), "selftest_msg_pass"));
    expect([named.name, named.info().id]).to.deep.equal(["selftest_msg_pass", prog.info().id]);
    expect(() => Program.openPinned(at("map"), "named")).to.throw(BpfError, /holds a map/);
  });

  it("refuses an attach type that is not a sockmap one, naming it", () => {
    const obj = loadSelftest();
    const map = owned(obj.map("selftest_sockhash"));
    const prog = owned(obj.program("selftest_msg_pass"));
    const err = expectBpfError(
      () => attachSockmap(prog, map, "cgroup_inet4_connect" as unknown as "sk_msg_verdict"),
      "attach_type",
      "EINVAL",
    );
    expect(err.message).to.contain("cgroup_inet4_connect is not a sockmap attach type");
  });

  it("refuses a map that is not a sockmap or sockhash (kernel EINVAL)", () => {
    const obj = loadSelftest();
    const map = owned(obj.map("selftest_hash"));
    const prog = owned(obj.program("selftest_msg_pass"));
    expectBpfError(() => attachSockmap(prog, map, "sk_msg_verdict"), "bpf_link_create", "EINVAL");
  });
});

describe("ebpf-napi: TC", () => {
  it("attaches a classifier on ingress in another netns, counts packets, and detaches", () => {
    const { left, right, ifRight } = vethPair();
    const obj = loadSelftest();
    const prog = owned(obj.program("selftest_count_packets"));
    const packets = owned(obj.map("selftest_packets"));
    const netns = `/run/netns/${right}`;
    const ourNetns = readlinkSync("/proc/thread-self/ns/net");

    const filter = tcAttach({ netns, ifname: ifRight, direction: "ingress", prog, priority: 7 });
    expect(filter).to.include({ priority: 7, progId: prog.info().id });
    expect(filter.handle).to.be.greaterThan(0);
    onTeardown("tc filter", () => {
      if (tcQuery(filter) !== null) tcDetach(filter);
    });
    const shown = sh("ip", [
      "netns",
      "exec",
      right,
      "tc",
      "filter",
      "show",
      "dev",
      ifRight,
      "ingress",
    ]);
    expect(shown).to.match(new RegExp(`pref 7 bpf .*id ${prog.info().id} name selftest_count_`));
    expect(shown).to.contain("direct-action");
    expect(tcQuery(filter)).to.equal(prog.info().id);

    const before = sumPerCpu(packets.lookup(u32(0)));
    sendUdp(left, "10.77.0.2", 5);
    expect(Number(sumPerCpu(packets.lookup(u32(0))) - before)).to.be.at.least(5);

    const sameSlot = {
      netns,
      ifname: ifRight,
      direction: "ingress",
      prog,
      priority: 7,
      handle: filter.handle,
    } as const;
    expectBpfError(() => tcAttach(sameSlot), "bpf_tc_attach", "EEXIST");
    expect(tcAttach({ ...sameSlot, replace: true })).to.include({
      priority: 7,
      handle: filter.handle,
    });

    tcDetach(filter);
    expect(tcQuery(filter)).to.equal(null);
    expect(
      sh("ip", ["netns", "exec", right, "tc", "filter", "show", "dev", ifRight, "ingress"]),
    ).to.not.contain("bpf");
    expectBpfError(() => tcDetach(filter), "bpf_tc_detach", "ENOENT");
    expect(readlinkSync("/proc/thread-self/ns/net"), "the JS thread never moves").to.equal(
      ourNetns,
    );
    const counted = sumPerCpu(packets.lookup(u32(0)));
    sendUdp(left, "10.77.0.2", 3);
    expect(sumPerCpu(packets.lookup(u32(0)))).to.equal(counted);

    expect(sh("ip", ["netns", "exec", right, "tc", "qdisc", "show", "dev", ifRight])).to.contain(
      "clsact",
    );
    tcDestroyHook({ netns, ifname: ifRight });
    expect(
      sh("ip", ["netns", "exec", right, "tc", "qdisc", "show", "dev", ifRight]),
    ).to.not.contain("clsact");
    expectBpfError(
      () => tcDestroyHook({ netns, ifname: ifRight }),
      "bpf_tc_hook_destroy",
      "ENOENT",
    );
    expectBpfError(() => tcDetach(filter), "bpf_tc_detach", "ENOENT");
  });

  it("egress attach lets the kernel choose priority and handle", () => {
    const { left, ifLeft } = vethPair();
    const prog = owned(loadSelftest().program("selftest_count_packets"));
    const netns = `/run/netns/${left}`;
    const filter = tcAttach({ netns, ifname: ifLeft, direction: "egress", prog });
    expect(filter.priority).to.be.greaterThan(0);
    expect(tcQuery(filter)).to.equal(prog.info().id);
    expect(
      sh("ip", ["netns", "exec", left, "tc", "filter", "show", "dev", ifLeft, "egress"]),
    ).to.contain("selftest_count_");
    tcDetach(filter);
    expect(tcQuery(filter)).to.equal(null);
  });

  it("TC failures: missing netns, missing interface, bad slot", () => {
    const prog = owned(loadSelftest().program("selftest_count_packets"));
    expectBpfError(
      () => tcAttach({ netns: "/run/netns/nope-en", ifname: "x", direction: "ingress", prog }),
      "open_netns",
      "ENOENT",
    );
    const netns = `/run/netns/${makeNetns()}`;
    expectBpfError(
      () => tcAttach({ netns, ifname: "nope0", direction: "ingress", prog }),
      "if_nametoindex",
      "ENODEV",
    );
    expectBpfError(
      () => tcAttach({ netns: "/proc/self/ns/mnt", ifname: "lo", direction: "ingress", prog }),
      "setns",
      "EINVAL",
    );
    expectBpfError(
      () => tcQuery({ netns, ifname: "lo", direction: "ingress", priority: 0, handle: 1 }),
      "bpf_tc_query",
      "EINVAL",
    );
    expectBpfError(
      () => tcAttach({ netns, ifname: "lo", direction: "ingress", prog, priority: 70000 }),
      "bpf_tc",
      "EINVAL",
    );
  });
});

// ---- namespaces ---------------------------------------------------------------------------

describe("ebpf-napi: netns cookie", () => {
  it("equals SO_NETNS_COOKIE read inside the netns, and differs between netns", () => {
    const one = makeNetns();
    const two = makeNetns();
    const py =
      'import socket; s = socket.socket(); print(int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 71, 8), "little"))';
    const reference = (ns: string) =>
      BigInt(sh("ip", ["netns", "exec", ns, "python3", "-c", py]).trim());
    expect(netnsCookie(`/run/netns/${one}`)).to.equal(reference(one));
    expect(netnsCookie(`/run/netns/${two}`)).to.equal(reference(two));
    expect(netnsCookie(`/run/netns/${one}`)).to.not.equal(netnsCookie(`/run/netns/${two}`));
  });

  it("a missing netns path is ENOENT, a non-netns path EINVAL", () => {
    expectBpfError(() => netnsCookie("/run/netns/nope-en"), "open_netns", "ENOENT");
    expectBpfError(() => netnsCookie("/proc/self/ns/uts"), "setns", "EINVAL");
  });
});

// ---- probes -------------------------------------------------------------------------------

describe("ebpf-napi: probes", () => {
  it("finds the program types, map types, helpers and attach types this kernel has", () => {
    for (const t of [
      "cgroup_sock_addr",
      "sched_cls",
      "sock_ops",
      "cgroup_sockopt",
      "cgroup_sock",
    ] as const) {
      expect(probeProgType(t), t).to.equal(true);
    }
    for (const t of [
      "hash",
      "array",
      "percpu_array",
      "lpm_trie",
      "sk_storage",
      "lru_hash",
    ] as const) {
      expect(probeMapType(t), t).to.equal(true);
    }
    expect(probeHelper("cgroup_sock_addr", "bpf_get_netns_cookie")).to.equal(true);
    expect(probeHelper("cgroup_sock_addr", "get_current_cgroup_id")).to.equal(true);
    expect(probeHelper("sched_cls", "bpf_skb_store_bytes")).to.equal(true);
    expect(probeHelper("cgroup_sock_addr", "bpf_skb_store_bytes")).to.equal(false);
    for (const t of [
      "cgroup_inet4_connect",
      "cgroup_inet6_connect",
      "cgroup_udp4_sendmsg",
      "cgroup_udp6_recvmsg",
      "cgroup_sock_ops",
      "cgroup_getsockopt",
      "cgroup_inet4_getpeername",
    ] as const) {
      expect(probeAttachType(t), t).to.equal(true);
    }
    expect(libbpfVersion()).to.match(/^v1\.\d+$/);
  });

  it("unknown names are EINVAL, not false", () => {
    expectBpfError(() => probeProgType("nope" as "xdp"), "prog_type", "EINVAL");
    expectBpfError(() => probeMapType("nope" as "hash"), "map_type", "EINVAL");
    expectBpfError(() => probeHelper("xdp", "bpf_nope"), "helper", "EINVAL");
    expectBpfError(() => probeAttachType("xdp" as "cgroup_sock_ops"), "attach_type", "EINVAL");
  });
});

// ---- fd hygiene, errors -------------------------------------------------------------------

describe("ebpf-napi: fds", () => {
  it("10,000 open/close cycles leave the fd count unchanged", function () {
    this.timeout(120_000);
    const pins = makePinDir();
    const cgroup = makeCgroup();
    const elf = bpfObject("selftest");
    const obj = loadSelftest({ pinMaps: { selftest_hash: join(pins, "hash") } });
    const prog = owned(obj.program("selftest_connect4"));
    const linkPath = join(pins, "link");
    const link = attachCgroup(prog, cgroup, "cgroup_inet4_connect");
    link.pin(linkPath);
    link.close();
    onTeardown("unpin link", () => unpin(linkPath));
    const progId = prog.info().id;
    const before = fdCount();
    for (let i = 0; i < 10_000; i++) {
      BpfObject.open(elf).close();
      const map = BpfMap.openPinned(join(pins, "hash"));
      map.lookup(u32(i));
      map.close();
      Link.openPinned(linkPath).close();
      Program.fromId(progId).close();
      try {
        BpfMap.openPinned(join(pins, "missing"));
      } catch {
        // the error path must not leak either
      }
      if (i % 100 === 0) {
        // a full load every 100 cycles: object, programs, maps, pinned-map reuse
        const loaded = BpfObject.open(elf, { pinMaps: { selftest_hash: join(pins, "hash") } });
        loaded.load();
        loaded.program("selftest_count_packets").close();
        loaded.map("selftest_lpm").close();
        loaded.close();
      }
    }
    expect(fdCount()).to.equal(before);
  });

  it("handles that are never closed are released by the finalizer", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    // Garbage that earlier tests left (handles they never closed) is collected first, so the
    // rounds below only have this test's handles to release.
    let before = fdCount();
    for (let round = 0; round < 20; round++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
      const now = fdCount();
      if (now === before) break;
      before = now;
    }
    (() => {
      for (let i = 0; i < 200; i++)
        BpfMap.create({ type: "array", keySize: 4, valueSize: 4, maxEntries: 1 });
      BpfObject.open(bpfObject("selftest")).load(); // maps and programs: a dozen fds
    })();
    expect(fdCount()).to.be.at.least(before + 200);
    for (let round = 0; round < 20 && fdCount() > before; round++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(fdCount()).to.equal(before);
  });

  it("errors carry op, errno and code; closed handles are EBADF", () => {
    const map = BpfMap.create({ type: "hash", keySize: 4, valueSize: 4, maxEntries: 1 });
    map.update(u32(1), u32(1));
    const full = expectBpfError(() => map.update(u32(2), u32(2)), "bpf_map_update_elem", "E2BIG");
    expect(full.errno).to.equal(7);
    expect(full.message).to.equal("bpf_map_update_elem: Argument list too long (E2BIG)");
    map.close();
    map.close(); // idempotent
    expect(map.closed).to.equal(true);
    expectBpfError(() => map.lookup(u32(1)), "fd", "EBADF");
    expectBpfError(() => Program.fromId(0x7fffffff), "bpf_prog_get_fd_by_id", "ENOENT");
    expectBpfError(() => Link.openPinned("/sys/fs/bpf/nope-en"), "bpf_obj_get", "ENOENT");
  });
});

// ---- self-containment ---------------------------------------------------------------------

describe("ebpf-napi: shipped libraries", () => {
  const systemLibs = ["libbpf.so.1", "libelf.so.1"].map((l) =>
    realpathSync(join("/usr/lib/x86_64-linux-gnu", l)),
  );

  /** Runs a node script in a private mount namespace where the system libbpf/libelf are /dev/null. */
  function withoutSystemLibbpf(script: string): { code: number; out: string } {
    const masks = systemLibs.map((l) => `mount --bind /dev/null ${l}`).join(" && ");
    try {
      const out = sh("unshare", [
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        `${masks} && exec "$0" -e "$1"`,
        NODE,
        script,
      ]);
      return { code: 0, out };
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      return { code: e.status, out: `${e.stdout}${e.stderr}` };
    }
  }

  it("the addon loads and works with the system libbpf and libelf masked", () => {
    const script = `
      const e = require(${JSON.stringify(INDEX_JS)});
      const m = e.BpfMap.create({ type: "hash", keySize: 4, valueSize: 4, maxEntries: 4 });
      m.update(Buffer.alloc(4), Buffer.from([1, 2, 3, 4]));
      const ok = m.lookup(Buffer.alloc(4)).equals(Buffer.from([1, 2, 3, 4])) && e.probeProgType("sched_cls");
      const maps = require("fs").readFileSync("/proc/self/maps", "utf8");
      const libs = [...new Set(maps.split("\\n").map((l) => l.split(/\\s+/)[5]).filter((p) => /lib(bpf|elf|z)\\.so/.test(p || "")))];
      console.log(JSON.stringify({ ok, libs }));`;
    const result = withoutSystemLibbpf(script);
    expect(result.code, result.out).to.equal(0);
    const { ok, libs } = JSON.parse(result.out) as { ok: boolean; libs: string[] };
    expect(ok).to.equal(true);
    const shipped = dirname(addonLocation());
    expect(libs.sort()).to.deep.equal(
      ["libbpf.so.1", "libelf.so.1", "libz.so.1"].map((l) => join(shipped, l)),
    );
  });

  it("control: an addon copied without its libraries fails there", () => {
    const dir = mkdtempSync(join(tmpdir(), "en-addon-"));
    onTeardown(`rm ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    copyFileSync(addonLocation(), join(dir, "ebpf_napi.node"));
    const script = `
      const e = require(${JSON.stringify(INDEX_JS)});
      e.setAddonPath(${JSON.stringify(join(dir, "ebpf_napi.node"))});
      e.possibleCpus();`;
    const result = withoutSystemLibbpf(script);
    expect(result.code).to.not.equal(0);
    expect(result.out).to.match(/libbpf\.so\.1: file too short/); // the masked system file
  });

  // A rebuild (npm run build, npm test, the demo, the bench; often another user of the same
  // checkout) must not pull the libraries out from under a process that loaded them. Writing a
  // library in place truncates the very file such a process has mapped: the kernel drops that
  // process's relocated (copy-on-write) pages, the GOT reads back unrelocated from the file,
  // and its next libbpf call jumps to an address like 0xa096: SIGSEGV.
  it("scripts/build-addon run while a process uses the addon leaves that process working", async function () {
    this.timeout(300_000);
    const script = `
      const e = require(${JSON.stringify(INDEX_JS)});
      const elf = require("fs").readFileSync(${JSON.stringify(join(repoRoot(), "bpf", "build", "selftest.bpf.o"))});
      const load = () => { const o = e.BpfObject.open(elf, { name: "selftest" }); o.load(); o.close(); };
      load();
      console.log("loaded");
      process.stdin.once("data", () => { load(); console.log("loaded again"); process.exit(0); });`;
    const child = spawn(NODE, ["-e", script], { stdio: ["pipe", "pipe", "pipe"] });
    onTeardown("kill the addon user", () => child.kill("SIGKILL"));
    let out = "";
    const loaded = new Promise<void>((resolve) => {
      const collect = (d: Buffer) => {
        out += d.toString();
        if (out.includes("loaded\n")) resolve();
      };
      child.stdout.on("data", collect);
      child.stderr.on("data", collect);
      child.on("exit", () => resolve());
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal })),
    );
    await loaded;
    expect(out, "the child loaded the addon").to.contain("loaded\n");

    await execFileAsync(join(repoRoot(), "scripts", "build-addon"), [], {
      env: { ...process.env, PATH },
    });
    child.stdin.write("go\n");
    const { code, signal } = await exited;
    expect({ code, signal }, out).to.deep.equal({ code: 0, signal: null });
    expect(out).to.contain("loaded again");
  });

  it("the addon's dynamic section: DT_RPATH $ORIGIN, no libstdc++, glibc 2.34 at most, N-API exports and the kernel BTF loader only", () => {
    const dynamic = sh("readelf", ["-d", addonLocation()]);
    expect(dynamic).to.match(/\(RPATH\)\s+Library rpath: \[\$ORIGIN\]/);
    expect(dynamic).to.not.contain("RUNPATH"); // DT_RUNPATH would not reach libbpf's own needs
    const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]);
    // libgcc_s is also a NEEDED of the node binary itself; libstdc++ is linked in statically.
    expect(needed.sort()).to.deep.equal(
      [
        "ld-linux-x86-64.so.2",
        "libbpf.so.1",
        "libc.so.6",
        "libelf.so.1",
        "libgcc_s.so.1",
        "libm.so.6",
        "libz.so.1",
      ].sort(),
    );
    const symbols = sh("objdump", ["-T", addonLocation()]);
    const glibc = [...symbols.matchAll(/GLIBC_2\.(\d+)/g)].map((m) => Number(m[1]));
    expect(Math.max(...glibc), "newest GLIBC_2.x symbol version").to.be.at.most(34);
    const functions = symbols
      .split("\n")
      .filter((l) => /\sDF \.text\s/.test(l))
      .map((l) => l.trim().split(/\s+/).pop());
    // btf__load_vmlinux_btf: libbpf's calls bind to the addon's (src/kernel_btf.cc)
    expect(functions.sort()).to.deep.equal([
      "btf__load_vmlinux_btf",
      "napi_register_module_v1",
      "node_api_module_get_api_version_v1",
    ]);
  });
});

describe("ebpf-napi: tracing links", () => {
  /** One loopback TCP exchange in this process: its reads fire sock_recv_length. */
  async function exchange(): Promise<void> {
    const server = createServer((c) => c.on("data", () => c.end()));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const { port } = server.address() as { port: number };
      await new Promise<void>((resolve, reject) => {
        const c = connect(port, "127.0.0.1", () => c.write("ping"));
        c.on("error", reject);
        c.on("close", () => resolve());
        c.resume();
      });
    } finally {
      await new Promise((r) => server.close(r));
    }
  }

  function tracingSelftest(): { prog: Program; reads: BpfMap } {
    const obj = owned(BpfObject.open(bpfObject("selftest"), { name: "selftest" }));
    obj.setAutoload("selftest_recv", true);
    obj.load();
    const reads = owned(obj.map("selftest_reads"));
    reads.update(u32(0), u64(BigInt(process.pid)));
    return { prog: owned(obj.program("selftest_recv")), reads };
  }
  const readsSeen = (reads: BpfMap) => (reads.lookup(u32(1)) as Buffer).readBigUInt64LE(0);

  it("attaches a tp_btf program as a pinned link that runs while the pin holds it, and stops once the pin is gone", async () => {
    const pins = makePinDir();
    const { prog, reads } = tracingSelftest();
    const link = owned(attachTracing(prog, "trace_raw_tp"));
    const linkPath = join(pins, "recv");
    link.pin(linkPath);
    onTeardown("unpin link", () => rmSync(linkPath, { force: true }));
    expect(link.info()).to.include({ type: "raw_tracepoint", progId: prog.info().id });
    const linkId = link.info().id;
    link.close(); // the pin alone keeps it attached
    await exchange();
    const seen = readsSeen(reads);
    expect(seen > 0n, "the program ran for this process's socket reads").to.equal(true);
    const pinned = owned(Link.openPinned(linkPath));
    expect(pinned.info().progId).to.equal(prog.info().id);
    pinned.close();
    rmSync(linkPath);
    // bpffs drops the pin's reference after an RCU grace period, and the kernel frees the
    // link's id before a worker detaches the program: both take a while on a loaded machine
    for (let i = 0; i < 250 && linkAlive(linkId); i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(linkAlive(linkId), "the link is released once its pin is gone").to.equal(false);
    let before = readsSeen(reads);
    for (let i = 0; i < 50; i++) {
      await exchange();
      const now = readsSeen(reads);
      if (now === before) break;
      before = now;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await exchange();
    expect(readsSeen(reads), "no run after the last holder went").to.equal(before);
  });

  it("a tracing link's program cannot be replaced in place (the kernel refuses bpf_link_update)", () => {
    const { prog } = tracingSelftest();
    const link = owned(attachTracing(prog, "trace_raw_tp"));
    expectBpfError(() => link.update(prog), "bpf_link_update", "EINVAL");
  });

  it("refuses an attach type that is not a tracing one, naming it", () => {
    const { prog } = tracingSelftest();
    const err = expectBpfError(
      () => attachTracing(prog, "sk_msg_verdict" as unknown as "trace_fexit"),
      "attach_type",
      "EINVAL",
    );
    expect(err.message).to.contain("sk_msg_verdict is not a tracing attach type");
  });

  it("refuses a program loaded for another attach type (kernel EINVAL)", () => {
    const obj = loadSelftest();
    const prog = owned(obj.program("selftest_msg_pass"));
    expectBpfError(() => attachTracing(prog, "trace_fexit"), "bpf_link_create", "EINVAL");
  });
});

describe("ebpf-napi: the kernel's BTF for libbpf", () => {
  const KERNEL_BTF = "/sys/kernel/btf/vmlinux";

  /** Loads the selftest object with its tp_btf program, which needs the kernel's BTF. */
  function loadWithKernelBtf(): void {
    const obj = owned(BpfObject.open(bpfObject("selftest"), { name: "selftest" }));
    obj.setAutoload("selftest_recv", true);
    obj.load();
    expect(owned(obj.program("selftest_recv")).info().type).to.equal("tracing");
  }

  /** A file of this test's own, removed at teardown. */
  function scratchFile(content: string): string {
    const dir = mkdtempSync(join(tmpdir(), "ebpf-napi-btf-"));
    onTeardown(`scratch ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "btf");
    writeFileSync(path, content);
    return path;
  }

  /** What the loads counted while fn ran. */
  function counted(fn: () => void): { mapped: number; searched: number } {
    const before = kernelBtfLoads();
    fn();
    const after = kernelBtfLoads();
    return { mapped: after.mapped - before.mapped, searched: after.searched - before.searched };
  }

  it("libbpf takes the kernel's BTF from the addon: mapped where the kernel allows it, else from libbpf's own search", () => {
    let mappable = true;
    try {
      mapKernelBtf(KERNEL_BTF);
    } catch {
      mappable = false; // kernels before 6.16 do not map it
    }
    expect(counted(loadWithKernelBtf)).to.deep.equal(
      mappable ? { mapped: 1, searched: 0 } : { mapped: 0, searched: 1 },
    );
  });

  it("an object that needs no kernel BTF loads none", () => {
    expect(counted(() => loadSelftest())).to.deep.equal({ mapped: 0, searched: 0 });
  });

  it("the mapped BTF has the very types of libbpf's own search", function () {
    let types: number;
    try {
      types = mapKernelBtf(KERNEL_BTF);
    } catch {
      this.skip(); // kernels before 6.16 do not map it
    }
    expect(types).to.be.greaterThan(1000);
    expect(types).to.equal(searchKernelBtf());
  });

  for (const [what, file] of [
    ["missing", () => "/nonexistent/vmlinux"],
    ["not BTF", () => scratchFile("not BTF\n")],
    ["empty", () => scratchFile("")],
  ] as const) {
    it(`a BTF file that cannot be mapped and parsed (${what}) hands the load to libbpf's search, which finds the kernel's`, () => {
      setKernelBtfPath(file());
      onTeardown("kernel BTF path", () => setKernelBtfPath(null));
      expect(counted(loadWithKernelBtf)).to.deep.equal({ mapped: 0, searched: 1 });
    });
  }

  it("mapKernelBtf names the step that failed", () => {
    expectBpfError(() => mapKernelBtf("/nonexistent/vmlinux"), "open", "ENOENT");
    expectBpfError(() => mapKernelBtf(scratchFile("not BTF\n")), "btf__new", "EINVAL");
    expectBpfError(() => mapKernelBtf(scratchFile("")), "fstat", "EINVAL");
  });
});
