import {
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { expect } from "chai";
import { apiServerUrl, KubeconfigKeeper, writeKubeconfig } from "../../install/kubeconfig";
import { InstallMetrics } from "../../install/metrics";
import { capturingLogger, scratchDir, waitFor } from "./install-fixtures";

const CA =
  "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZmFrZSBjYSBmb3IgdGVzdHM=\n-----END CERTIFICATE-----\n";

/**
 * A projected service account volume as the kubelet lays it out: files are symlinks into
 * `..data`, itself a symlink to a timestamped directory, swapped atomically on rotation.
 */
class ProjectedVolume {
  private generation = 0;
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  get tokenFile(): string {
    return join(this.dir, "token");
  }

  get caFile(): string {
    return join(this.dir, "ca.crt");
  }

  publish(token: string, ca = CA): void {
    const previous = this.generation > 0 ? `..gen_${this.generation}` : undefined;
    this.generation++;
    const generationDir = `..gen_${this.generation}`;
    mkdirSync(join(this.dir, generationDir));
    writeFileSync(join(this.dir, generationDir, "token"), token);
    writeFileSync(join(this.dir, generationDir, "ca.crt"), ca);
    symlinkSync(generationDir, join(this.dir, "..data_tmp"));
    renameSync(join(this.dir, "..data_tmp"), join(this.dir, "..data"));
    if (!previous) {
      symlinkSync("..data/token", this.tokenFile);
      symlinkSync("..data/ca.crt", this.caFile);
    } else {
      rmSync(join(this.dir, previous), { recursive: true });
    }
  }
}

function parse(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(readFileSync(path, "utf8"));
  return kc;
}

describe("install: kubeconfig (the plugin's API credentials)", function () {
  this.timeout(20_000);
  let dir: string;
  let remove: () => void;
  let sa: ProjectedVolume;
  let keeper: KubeconfigKeeper | undefined;
  beforeEach(() => {
    ({ dir, remove } = scratchDir("kubeconfig"));
    sa = new ProjectedVolume(join(dir, "serviceaccount"));
    mkdirSync(join(dir, "net.d"));
  });
  afterEach(async () => {
    await keeper?.stop();
    keeper = undefined;
    remove();
  });

  const source = () => ({
    tokenFile: sa.tokenFile,
    caFile: sa.caFile,
    serviceHost: "10.96.0.1",
    servicePort: 443,
  });

  it("embeds token, CA and server; mode 0600; TLS verified (a client parses it back)", async () => {
    sa.publish("token-1\n");
    const path = join(dir, "net.d", "waggle-kubeconfig");
    expect(await writeKubeconfig(path, source())).to.equal(true);
    expect(statSync(path).mode & 0o777).to.equal(0o600);
    const text = readFileSync(path, "utf8");
    expect(text).to.not.match(/insecure-skip-tls-verify/);
    const kc = parse(path);
    const cluster = kc.getCurrentCluster();
    expect(cluster?.server).to.equal("https://10.96.0.1:443");
    expect(Buffer.from(cluster?.caData ?? "", "base64").toString()).to.equal(CA);
    expect(cluster?.skipTLSVerify).to.not.equal(true);
    expect(kc.getCurrentUser()?.token).to.equal("token-1");
    expect(await writeKubeconfig(path, source()), "unchanged: no rewrite").to.equal(false);
  });

  it("brackets an IPv6 API server address", () => {
    expect(apiServerUrl("fd00::1", 6443)).to.equal("https://[fd00::1]:6443");
    expect(apiServerUrl("kubernetes.default.svc", 443)).to.equal(
      "https://kubernetes.default.svc:443",
    );
  });

  const failures: Array<[string, (v: ProjectedVolume) => void, RegExp]> = [
    ["no token", () => {}, /cannot read the service account token/],
    ["an empty token", (v) => v.publish("  \n"), /service account token .* is empty/],
    [
      "a CA without a certificate",
      (v) => v.publish("t", "garbage"),
      /no PEM certificate: refusing/,
    ],
  ];
  for (const [what, setup, message] of failures) {
    it(`refuses to write with ${what}, and writes nothing`, async () => {
      setup(sa);
      const path = join(dir, "net.d", "waggle-kubeconfig");
      await writeKubeconfig(path, source()).then(
        () => expect.fail("should fail"),
        (err: Error) => expect(err.message).to.match(message),
      );
      expect(() => statSync(path)).to.throw(/ENOENT/);
    });
  }

  it("rewrites within 2 s when the kubelet rotates a projected token (..data swap)", async () => {
    sa.publish("token-1");
    const path = join(dir, "net.d", "waggle-kubeconfig");
    const metrics = new InstallMetrics();
    keeper = new KubeconfigKeeper({ path, source: source(), log: capturingLogger().log, metrics });
    await keeper.start();
    expect(parse(path).getCurrentUser()?.token).to.equal("token-1");
    for (const token of ["token-2", "token-3"]) {
      sa.publish(token);
      await waitFor(
        `${token} in the kubeconfig`,
        () => parse(path).getCurrentUser()?.token === token,
        2000,
      );
      expect(statSync(path).mode & 0o777).to.equal(0o600);
    }
    await keeper.settled();
    expect(await metrics.kubeconfigWrites.get()).to.have.nested.property("values[0].value", 3);
  });

  it("writes it again when someone deletes it", async () => {
    sa.publish("token-1");
    const path = join(dir, "net.d", "waggle-kubeconfig");
    keeper = new KubeconfigKeeper({
      path,
      source: source(),
      log: capturingLogger().log,
      metrics: new InstallMetrics(),
    });
    await keeper.start();
    rmSync(path);
    await waitFor(
      "the kubeconfig back",
      () => {
        try {
          return parse(path).getCurrentUser()?.token === "token-1";
        } catch {
          return false;
        }
      },
      2000,
    );
  });
});
