// ebpf-napi without the kernel: lazy loading of the addon, setAddonPath, BpfError's shape and
// argument checks that happen before any native call.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { expect } from "chai";
import { BpfError, type Program, tcAttach, tcQuery } from "ebpf-napi";
import { repoRoot } from "../../base/assets";
import { invalidArgument } from "../../ebpf-napi/lib/errors";

const INDEX_JS = join(repoRoot(), "out", "ebpf-napi", "lib", "index.js");

/** Runs a script in a fresh Node (same binary) and returns its stdout. */
function node(script: string): string {
  return execFileSync(process.execPath, ["-e", script], { encoding: "utf8", stdio: "pipe" });
}

describe("ebpf-napi: loading", () => {
  it("importing the API does not load the native addon; the first call does", () => {
    const out = node(`
      const maps = () => require("fs").readFileSync("/proc/self/maps", "utf8");
      const e = require(${JSON.stringify(INDEX_JS)});
      const before = maps().includes("ebpf_napi.node") || maps().includes("libbpf.so");
      e.possibleCpus();
      const after = maps().includes("ebpf_napi.node");
      console.log(JSON.stringify({ before, after }));`);
    expect(JSON.parse(out)).to.deep.equal({ before: false, after: true });
  });

  it("setAddonPath: a wrong path fails the first call naming it; a change after loading is refused", () => {
    const out = node(`
      const e = require(${JSON.stringify(INDEX_JS)});
      const result = {};
      const good = e.addonLocation();
      e.setAddonPath("/nonexistent/ebpf_napi.node");
      try { e.possibleCpus(); } catch (err) { result.missing = err.message; }
      e.setAddonPath(good);
      result.cpus = e.possibleCpus();
      e.setAddonPath(good); // the same path again is fine
      try { e.setAddonPath("/elsewhere/ebpf_napi.node"); } catch (err) { result.late = err.message; }
      console.log(JSON.stringify(result));`);
    const result = JSON.parse(out) as { missing: string; cpus: number; late: string };
    expect(result.missing).to.contain("/nonexistent/ebpf_napi.node");
    expect(result.cpus).to.be.greaterThan(0);
    expect(result.late).to.contain("already loaded");
  });
});

describe("ebpf-napi: BpfError", () => {
  it("names the operation, the errno description and code, then the detail", () => {
    const e = new BpfError("bpf_link_update", 22, "Invalid argument");
    expect(e).to.be.instanceOf(Error);
    expect(e.name).to.equal("BpfError");
    expect(e.message).to.equal("bpf_link_update: Invalid argument (EINVAL)");
    expect(e).to.include({ op: "bpf_link_update", errno: 22, code: "EINVAL" });
    expect(e.log).to.equal(undefined);
    const d = new BpfError("bpf_obj_get", 2, "No such file or directory", "/sys/fs/bpf/x");
    expect(d.message).to.equal("bpf_obj_get: No such file or directory (ENOENT): /sys/fs/bpf/x");
  });

  it("keeps the whole load log and ends the message with its last 12 lines", () => {
    const log = `${Array.from({ length: 30 }, (_, i) => `line ${i}`).join("\n")}\n`;
    const e = new BpfError("bpf_object__load", 13, "Permission denied", "obj", log);
    expect(e.log).to.equal(log);
    const lines = e.message.split("\n");
    expect(lines[0]).to.equal("bpf_object__load: Permission denied (EACCES): obj");
    expect(lines.slice(1)).to.deep.equal(Array.from({ length: 12 }, (_, i) => `line ${18 + i}`));
  });

  it("gives libbpf's own error numbers their LIBBPF_ERRNO__ names", () => {
    expect(new BpfError("bpf_object__open_mem", 4001, "Invalid ELF format").code).to.equal(
      "LIBBPF_ERRNO__FORMAT",
    );
    expect(new BpfError("bpf_object__load", 4007, "Verifier blocks").code).to.equal(
      "LIBBPF_ERRNO__VERIFY",
    );
  });

  it("names errnos libuv does not map by the platform's name (ENOLINK of a severed link)", () => {
    const e = new BpfError("bpf_link_update", 67, "Link has been severed");
    expect(e.code).to.equal("ENOLINK");
    expect(e.message).to.equal("bpf_link_update: Link has been severed (ENOLINK)");
    // a value shared by two names keeps libuv's (EAGAIN, not EWOULDBLOCK)
    expect(new BpfError("bpf_prog_load", 11, "Resource temporarily unavailable").code).to.equal(
      "EAGAIN",
    );
    expect(new BpfError("op", 4999, "no such errno").code).to.equal("E4999");
  });

  it("input errors caught before any syscall use the same shape", () => {
    const e = invalidArgument("bpf_tc", "priority 70000 is not in 1..65535");
    expect(e).to.include({ op: "bpf_tc", errno: 22, code: "EINVAL" });
    expect(e.message).to.equal(
      "bpf_tc: Invalid argument (EINVAL): priority 70000 is not in 1..65535",
    );
    expect(invalidArgument("fd", "map used after close()", "EBADF").errno).to.equal(9);
  });
});

describe("ebpf-napi: TC arguments", () => {
  const prog = { fd: 1 } as Program;
  const iface = { ifname: "eth0" };

  it("rejects a direction other than ingress/egress", () => {
    const bad = () => tcAttach({ ...iface, direction: "sideways" as "ingress", prog });
    expect(bad).to.throw(BpfError, /direction must be ingress or egress/);
  });

  it("rejects priorities outside 0..65535 and handles outside u32", () => {
    expect(() => tcAttach({ ...iface, direction: "ingress", prog, priority: 65536 })).to.throw(
      BpfError,
      /priority 65536/,
    );
    expect(() => tcAttach({ ...iface, direction: "ingress", prog, priority: 1.5 })).to.throw(
      BpfError,
      /priority 1.5/,
    );
    expect(() => tcQuery({ ...iface, direction: "ingress", priority: 1, handle: -1 })).to.throw(
      BpfError,
      /handle -1/,
    );
  });
});
