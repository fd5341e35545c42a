// The kernel-test support modules' pure parts: names, the teardown registry, the sandbox
// command line, address formatting, and the HAProxy / nginx configurations (checked by the
// real binaries' own config checks).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { run } from "../support/command";
import { haproxySidecarConfig } from "../support/haproxy";
import { IFNAME_MAX, isThisRunsName, RUN_TAG, uniqueName } from "../support/names";
import { nginxConfig } from "../support/nginx";
import { ResourceRegistry } from "../support/resources";
import { sandboxArgv } from "../support/sandbox";
import { hostPort } from "../support/sockprobe";

describe("test support: names", () => {
  it("are unique, carry the run tag and the kind, and fit IFNAMSIZ", () => {
    const names = Array.from({ length: 2000 }, () => uniqueName("h"));
    expect(new Set(names).size).to.equal(names.length);
    for (const name of names) {
      expect(name.startsWith(`${RUN_TAG}h`)).to.equal(true);
      expect(name.length).to.be.at.most(IFNAME_MAX);
      expect(isThisRunsName(name)).to.equal(true);
    }
    expect(RUN_TAG).to.match(/^wg[0-9a-z]{3,9}$/);
    expect(isThisRunsName("wgother1")).to.equal(RUN_TAG === "wgother1");
  });

  it("refuse a kind that is not one lowercase letter", () => {
    expect(() => uniqueName("pod")).to.throw(/one lowercase letter/);
    expect(() => uniqueName("")).to.throw(/one lowercase letter/);
  });
});

describe("test support: teardown registry", () => {
  it("releases a resource once and forgets it", () => {
    const registry = new ResourceRegistry();
    let calls = 0;
    const r = registry.track("thing", () => calls++);
    expect(registry.liveResources()).to.deep.equal(["thing"]);
    r.release();
    r.release();
    expect(calls).to.equal(1);
    expect(registry.liveResources()).to.deep.equal([]);
  });

  it("tears down newest first and goes on past failures, reporting them", () => {
    const registry = new ResourceRegistry();
    const order: string[] = [];
    registry.track("first", () => order.push("first"));
    registry.track("broken", () => {
      throw new Error("boom");
    });
    const last = registry.track("last", () => order.push("last"));
    expect(registry.teardownAll()).to.deep.equal(["broken: boom"]);
    expect(order).to.deep.equal(["last", "first"]);
    expect(registry.liveResources()).to.deep.equal([]);
    last.release();
    expect(order).to.deep.equal(["last", "first"]);
  });
});

describe("test support: run-scoped resources", () => {
  it("are torn down with the rest but never listed as live", () => {
    const registry = new ResourceRegistry();
    let removed = false;
    registry.track("shared file", () => (removed = true), { runScoped: true });
    expect(registry.liveResources()).to.deep.equal([]);
    expect(registry.teardownAll()).to.deep.equal([]);
    expect(removed).to.equal(true);
  });
});

describe("test support: sandbox command line", () => {
  it("joins the cgroup first, then the netns, then drops to the identity", () => {
    const argv = sandboxArgv("/run/netns/x", "/cg/x", "sleep", ["1"], {
      uid: 1000,
      gid: 1337,
      groups: [5, 6],
    });
    expect(argv.slice(0, 2)).to.deep.equal(["-c", 'echo $$ > "$1" || exit 125; shift; exec "$@"']);
    expect(argv.slice(2)).to.deep.equal([
      "sh",
      "/cg/x/cgroup.procs",
      "nsenter",
      "--net=/run/netns/x",
      "setpriv",
      "--reuid",
      "1000",
      "--regid",
      "1337",
      "--groups",
      "5,6",
      "--",
      "sleep",
      "1",
    ]);
  });

  it("defaults to root with the gid of the uid and no supplementary groups", () => {
    const privileges = (argv: string[]) =>
      argv.slice(argv.indexOf("setpriv") + 1, argv.indexOf("--"));
    expect(privileges(sandboxArgv("/n", "/c", "id", []))).to.deep.equal([
      "--reuid",
      "0",
      "--regid",
      "0",
      "--clear-groups",
    ]);
    expect(privileges(sandboxArgv("/n", "/c", "id", [], { uid: 1337 }))).to.deep.equal([
      "--reuid",
      "1337",
      "--regid",
      "1337",
      "--clear-groups",
    ]);
  });
});

describe("test support: addresses", () => {
  it("brackets IPv6 hosts", () => {
    expect(hostPort("10.0.0.2", 80)).to.equal("10.0.0.2:80");
    expect(hostPort("fd00::2", 80)).to.equal("[fd00::2]:80");
  });
});

describe("test support: server configurations pass the servers' own checks", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-config-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("the HAProxy sidecar configuration (haproxy -c)", async () => {
    const path = join(dir, "haproxy.cfg");
    writeFileSync(path, haproxySidecarConfig({ outboundPort: 15001, inboundPort: 15006 }));
    const result = await run("haproxy", ["-c", "-f", path]);
    expect(result.code, result.stderr + result.stdout).to.equal(0);
    const text = haproxySidecarConfig({ outboundPort: 15001, inboundPort: 15006 });
    expect(text).to.include("bind 127.0.0.1:15001").and.include("bind 0.0.0.0:15006");
    expect(text).to.include("server original 0.0.0.0:0 source 127.0.0.6");
  });

  it("the nginx configuration (nginx -t), with and without IPv6", async () => {
    for (const ipv6 of [false, true]) {
      const path = join(dir, `nginx-${ipv6}.conf`);
      writeFileSync(path, nginxConfig(dir, 8080, 'say "hi"\n', ipv6));
      const result = await run("nginx", ["-t", "-p", dir, "-c", path, "-e", "stderr"]);
      expect(result.code, result.stderr).to.equal(0);
    }
  });
});
