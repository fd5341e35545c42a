// The datapath's state lifecycle in a real pod: 10,000 short redirected connections leave no
// growth in any map; attach/detach leave nothing behind (also with the netns gone, twice,
// after a failed attach); checkPod notices a missing link; getsockopt calls other than
// SO_ORIGINAL_DST, a > 4096-byte one included, get exactly the kernel's answer.
import { existsSync } from "node:fs";
import { expect } from "chai";
import { unpin } from "ebpf-napi";
import {
  checkPod,
  DatapathError,
  detachPod,
  ensureSharedPrograms,
  listPods,
  MAP_NAMES,
  mapEntryCounts,
  paths,
} from "../../datapath";
import { uniqueName } from "../support/names";
import { createPod, type Pod } from "../support/pod";
import { attachTestPod, BpfRoot } from "../support/waggle-mode";

function mapSizes(root: string): Record<string, number> {
  return mapEntryCounts({ bpfRoot: root });
}

const SHORT_CONNECTIONS = `
import socket, sys, threading
n = int(sys.argv[1])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 15001)); srv.listen(512)
def serve():
    for _ in range(n):
        c, _ = srv.accept(); c.close()
t = threading.Thread(target=serve); t.start()
import os
pid = os.fork()
if pid == 0:
    os.setgroups([]); os.setgid(1000); os.setuid(1000)
    for _ in range(n):
        s = socket.socket(); s.connect(("10.99.0.1", 80)); s.close()
    os._exit(0)
os.waitpid(pid, 0); t.join(); print("done")
`;

// getsockopt through libc with a caller-chosen buffer (Python's socket.getsockopt caps it at 1024).
const GETSOCKOPT = `
import ctypes, os, socket, sys, json
libc = ctypes.CDLL(None, use_errno=True)
def raw(fd, level, opt, size):
    buf = ctypes.create_string_buffer(b"\\xab" * size, size); ln = ctypes.c_uint32(size)
    r = libc.getsockopt(fd, level, opt, buf, ctypes.byref(ln))
    return {"r": r, "errno": ctypes.get_errno() if r else 0, "len": ln.value, "sha": __import__("hashlib").sha1(buf.raw).hexdigest()}
os.setgroups(list(range(10000, 12000)))
a, b = socket.socketpair()
t = socket.socket()
out = {
  "peergroups": raw(a.fileno(), socket.SOL_SOCKET, 59, 12000),
  "sndbuf_big": raw(t.fileno(), socket.SOL_SOCKET, socket.SO_SNDBUF, 9000),
  "sndbuf": raw(t.fileno(), socket.SOL_SOCKET, socket.SO_SNDBUF, 4),
  "sotype_big": raw(t.fileno(), socket.SOL_SOCKET, socket.SO_TYPE, 5000),
  "origdst_unconnected": raw(t.fileno(), 0, 80, 16),
}
print(json.dumps(out))
`;

describe("datapath state and getsockopt in a real pod", function () {
  this.timeout(120_000);
  let root: BpfRoot;
  let pod: Pod;

  before(async () => {
    root = new BpfRoot();
    ensureSharedPrograms(root.opts);
    pod = await createPod({ label: "leaks" });
  });
  after(async () => {
    await pod?.destroy();
    root?.destroy();
  });

  function attach(containerId = uniqueName("k")) {
    return attachTestPod(pod, root.opts, { containerId });
  }

  it("10,000 short redirected connections leave no growth in any map", async () => {
    const baseline = mapSizes(root.path);
    const rec = attach();
    try {
      const attached = mapSizes(root.path);
      const out = await pod.execChecked("python3", ["-c", SHORT_CONNECTIONS, "10000"]);
      expect(out.trim()).to.equal("done");
      expect(mapSizes(root.path)).to.deep.equal(attached);
      expect(attached[MAP_NAMES.redirect]).to.equal(0);
      const counters = listPods(root.opts).find((p) => p.containerId === rec.containerId)?.counters;
      expect(counters?.outbound_redirected).to.equal(10000);
      expect(counters?.errors).to.equal(0);
    } finally {
      detachPod(rec.containerId, root.opts);
    }
    expect(mapSizes(root.path)).to.deep.equal(baseline);
  });

  it("getsockopt other than SO_ORIGINAL_DST (a 12000-byte SO_PEERGROUPS included) is the kernel's answer", async () => {
    const unmeshed = JSON.parse(await pod.execChecked("python3", ["-c", GETSOCKOPT]));
    const rec = attach();
    try {
      const meshed = JSON.parse(await pod.execChecked("python3", ["-c", GETSOCKOPT]));
      expect(unmeshed.peergroups.len).to.be.greaterThan(4096);
      expect(meshed).to.deep.equal(unmeshed);
    } finally {
      detachPod(rec.containerId, root.opts);
    }
  });

  it("detach removes links, entries and pins; is idempotent; works with the record's netns gone", () => {
    const baseline = mapSizes(root.path);
    const rec = attach();
    expect(checkPod(rec.containerId, root.opts)).to.deep.equal([]);
    detachPod(rec.containerId, root.opts);
    detachPod(rec.containerId, root.opts);
    expect(existsSync(paths.pod(root.path, rec.containerId))).to.equal(false);
    expect(mapSizes(root.path)).to.deep.equal(baseline);
    expect(checkPod(rec.containerId, root.opts)[0]).to.match(/not attached/);
    detachPod("never-attached", root.opts);
  });

  it("checkPod names a missing link", () => {
    const rec = attach();
    try {
      unpin(paths.podLink(root.path, rec.containerId, "waggle_connect4"));
      expect(checkPod(rec.containerId, root.opts)).to.deep.equal([
        "link waggle_connect4 is missing",
      ]);
    } finally {
      detachPod(rec.containerId, root.opts);
    }
  });

  it("a failed attach (no such interface) leaves nothing and says why", () => {
    const baseline = mapSizes(root.path);
    const id = uniqueName("k");
    let err: unknown;
    try {
      attachTestPod(pod, root.opts, { containerId: id, ifname: "nosuch0" });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(DatapathError);
    expect((err as DatapathError).code).to.equal("NETNS");
    expect(existsSync(paths.pod(root.path, id))).to.equal(false);
    expect(mapSizes(root.path)).to.deep.equal(baseline);
  });

  it("a second container on an attached netns is a CONFLICT", () => {
    const rec = attach();
    try {
      expect(() => attach()).to.throw(DatapathError, /already attached/);
    } finally {
      detachPod(rec.containerId, root.opts);
    }
  });
});
