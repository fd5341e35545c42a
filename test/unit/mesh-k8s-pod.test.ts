// Reading the pod from the API server (mesh/k8s-pod.ts) against a local fake API server:
// bounded retries, which failures are retried, and messages that name the cause.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { PodLookupError, readPod } from "../../mesh/k8s-pod";
import { FakeKubeApi } from "../support/fake-kube-api";

describe("cni k8s pod read (fake API server)", () => {
  let api: FakeKubeApi;
  let dir: string;
  let kubeconfig: string;
  const retries: string[] = [];

  const read = (over: Partial<Parameters<typeof readPod>[0]> = {}) =>
    readPod({
      kubeconfigPath: kubeconfig,
      namespace: "shop",
      name: "web-0",
      attempts: 4,
      intervalMs: 10,
      timeoutMs: 1000,
      onRetry: (attempt, err) => retries.push(`${attempt}: ${err.message}`),
      ...over,
    });

  async function failure(
    over: Partial<Parameters<typeof readPod>[0]> = {},
  ): Promise<PodLookupError> {
    try {
      await read(over);
    } catch (e) {
      expect(e).to.be.instanceOf(PodLookupError);
      return e as PodLookupError;
    }
    throw new Error("readPod succeeded");
  }

  beforeEach(async () => {
    retries.length = 0;
    dir = mkdtempSync(join(tmpdir(), "waggle-k8s-"));
    kubeconfig = join(dir, "kubeconfig");
    api = new FakeKubeApi();
    await api.start();
    api.writeKubeconfig(kubeconfig);
    api.addPod({
      metadata: { namespace: "shop", name: "web-0", uid: "u1" },
      spec: { containers: [{ name: "web" }] },
    });
  });
  afterEach(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads the pod with the kubeconfig's token", async () => {
    const pod = await read();
    expect(pod.metadata?.uid).to.equal("u1");
    expect(api.requests).to.deep.equal([
      {
        method: "GET",
        url: "/api/v1/namespaces/shop/pods/web-0",
        authorization: "Bearer test-token",
      },
    ]);
  });

  it("retries 503 and 429 and succeeds within the attempts", async () => {
    api.script.push({ status: 503, message: "etcd unavailable" }, { status: 429 });
    const pod = await read();
    expect(pod.metadata?.name).to.equal("web-0");
    expect(api.requests).to.have.length(3);
    expect(retries).to.deep.equal([
      "1: reading pod shop/web-0: HTTP 503 (etcd unavailable)",
      "2: reading pod shop/web-0: HTTP 429 (scripted 429)",
    ]);
  });

  it("fails closed after the last attempt, naming the cause (transient)", async () => {
    api.script.push(...Array(4).fill({ status: 500, message: "internal error" }));
    const e = await failure();
    expect(e.message).to.equal(
      "cannot read pod shop/web-0 from the API server after 4 attempts: HTTP 500 (internal error)",
    );
    expect(e.transient).to.equal(true);
    expect(e.attempts).to.equal(4);
    expect(api.requests).to.have.length(4);
  });

  it("a refused connection is retried and named", async () => {
    await api.stop();
    const e = await failure({ attempts: 2 });
    expect(e.message).to.match(/after 2 attempts: connection failed: ECONNREFUSED/);
    expect(e.transient).to.equal(true);
  });

  it("a hung API server times out per request and is retried", async () => {
    api.script.push("hang", "hang");
    const t0 = Date.now();
    const e = await failure({ attempts: 2, timeoutMs: 200 });
    expect(e.message).to.contain("after 2 attempts: no answer within 200 ms");
    expect(Date.now() - t0).to.be.below(2000);
    expect(api.requests).to.have.length(2);
  });

  it("404 is not retried (permanent) and names the server's message", async () => {
    const e = await failure({ name: "gone" });
    expect(e.message).to.equal(
      'cannot read pod shop/gone from the API server after 1 attempt: HTTP 404 (pods "gone" not found)',
    );
    expect(e.transient).to.equal(false);
    expect(api.requests).to.have.length(1);
  });

  it("403 (RBAC) is not retried", async () => {
    api.script.push({ status: 403, message: 'pods "web-0" is forbidden' });
    const e = await failure();
    expect(e.transient).to.equal(false);
    expect(e.message).to.contain("HTTP 403");
    expect(api.requests).to.have.length(1);
  });

  it("401 is retried with the kubeconfig read again (a rotated token is picked up)", async () => {
    api.token = "rotated";
    let rewritten = false;
    const pod = await read({
      onRetry: () => {
        if (!rewritten) api.writeKubeconfig(kubeconfig);
        rewritten = true;
      },
    });
    expect(pod.metadata?.name).to.equal("web-0");
    expect(api.requests.map((r) => r.authorization)).to.deep.equal([
      "Bearer test-token",
      "Bearer rotated",
    ]);
  });

  it("a missing kubeconfig fails at once, naming the file", async () => {
    const e = await failure({ kubeconfigPath: join(dir, "nope") });
    expect(e.message).to.contain(`kubeconfig ${join(dir, "nope")} is unusable: ENOENT`);
    expect(e.transient).to.equal(false);
    expect(api.requests).to.have.length(0);
  });

  it("an http:// server without TLS skipping is refused by the client, not retried", async () => {
    const { writeFileSync, readFileSync } = await import("node:fs");
    writeFileSync(
      kubeconfig,
      readFileSync(kubeconfig, "utf8").replace("    insecure-skip-tls-verify: true\n", ""),
    );
    const e = await failure();
    expect(e.transient).to.equal(false);
    expect(e.message).to.contain("request refused by the client");
    expect(api.requests).to.have.length(0);
  });
});
