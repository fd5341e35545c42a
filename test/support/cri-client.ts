// A small CRI v1 client over a runtime's unix socket, as kubelet talks to containerd: gRPC
// from @grpc/grpc-js, the messages from test/support/cri/runtime-v1.proto (a subset of the
// published CRI API) loaded at run time by @grpc/proto-loader. Field names are camelCase
// (podSandboxId), int64s are numbers, enums are their names ("SANDBOX_READY").
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { REPO } from "./libcni";

/** The proto in the source tree. */
export const CRI_PROTO = join(REPO, "test", "support", "cri", "runtime-v1.proto");

export type Message = Record<string, unknown>;

type UnaryMethod = (
  req: Message,
  options: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: Message) => void,
) => void;

let loaded: grpc.GrpcObject | undefined;
function criPackage(): grpc.GrpcObject {
  loaded ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(CRI_PROTO, {
      keepCase: false,
      longs: Number,
      enums: String,
      defaults: true,
    }),
  );
  const runtime = (loaded.runtime as grpc.GrpcObject).v1 as grpc.GrpcObject;
  return runtime;
}

/** A failed CRI call: the gRPC status and the runtime's message. */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(`CRI ${method} failed (${grpc.status[code] ?? code}): ${details}`);
  }
}

export class CriClient {
  private readonly runtime: grpc.Client;
  private readonly images: grpc.Client;

  constructor(
    readonly socket: string,
    /** Per-call deadline in ms (kubelet's default runtime request timeout is 2 min). */
    readonly timeoutMs = 60_000,
  ) {
    const pkg = criPackage();
    const address = `unix://${socket}`;
    const creds = grpc.credentials.createInsecure();
    this.runtime = new (pkg.RuntimeService as grpc.ServiceClientConstructor)(address, creds);
    this.images = new (pkg.ImageService as grpc.ServiceClientConstructor)(address, creds);
  }

  /** One unary call of the runtime or image service. */
  call<T = Message>(method: string, req: Message = {}, timeoutMs = this.timeoutMs): Promise<T> {
    const client = method === "ImageStatus" ? this.images : this.runtime;
    const fn = (client as unknown as Record<string, UnaryMethod>)[method];
    if (typeof fn !== "function") throw new Error(`CRI method ${method} is not in ${CRI_PROTO}`);
    return new Promise((resolve, reject) => {
      fn.call(client, req, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(new CriError(method, err.code, err.details || err.message));
        else resolve(res as T);
      });
    });
  }

  version(): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call("Version", { version: "v1" }, 5000);
  }

  async runPodSandbox(config: Message): Promise<string> {
    const r = await this.call<{ podSandboxId: string }>("RunPodSandbox", { config });
    return r.podSandboxId;
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.call("StopPodSandbox", { podSandboxId });
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.call("RemovePodSandbox", { podSandboxId });
  }

  /** The sandbox's status and, verbose, containerd's info document (pid, runtime spec). */
  async podSandboxStatus(
    podSandboxId: string,
  ): Promise<{ status: Message & { state: string; network?: { ip: string } }; info: Message }> {
    const r = await this.call<{ status: never; info: Record<string, string> }>("PodSandboxStatus", {
      podSandboxId,
      verbose: true,
    });
    return { status: r.status, info: r.info?.info ? (JSON.parse(r.info.info) as Message) : {} };
  }

  async listPodSandbox(): Promise<
    Array<{ id: string; state: string; labels: Record<string, string> }>
  > {
    const r = await this.call<{ items: never[] }>("ListPodSandbox", {});
    return r.items;
  }

  async createContainer(
    podSandboxId: string,
    config: Message,
    sandboxConfig: Message,
  ): Promise<string> {
    const r = await this.call<{ containerId: string }>("CreateContainer", {
      podSandboxId,
      config,
      sandboxConfig,
    });
    return r.containerId;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call("StartContainer", { containerId });
  }

  async containerStatus(
    containerId: string,
  ): Promise<Message & { state: string; exitCode: number }> {
    const r = await this.call<{ status: never }>("ContainerStatus", { containerId });
    return r.status;
  }

  /** Runs a command in a container; stdout/stderr as text. */
  async execSync(
    containerId: string,
    cmd: string[],
    timeoutSeconds = 20,
  ): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const r = await this.call<{ stdout: Buffer; stderr: Buffer; exitCode: number }>(
      "ExecSync",
      { containerId, cmd, timeout: timeoutSeconds },
      (timeoutSeconds + 10) * 1000,
    );
    return { stdout: r.stdout.toString(), stderr: r.stderr.toString(), exitCode: r.exitCode };
  }

  /** The image's id, or undefined when the runtime does not have it. */
  async imageId(image: string): Promise<string | undefined> {
    const r = await this.call<{ image: { id: string } | null }>("ImageStatus", {
      image: { image },
    });
    return r.image?.id || undefined;
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }
}
