// attachPod and detachPod timed in a process of their own (attach-worker.ts), which never
// forks: the bench's setup figure and its in-process attach at the scale checkpoints.
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import type { AttachRequest, DatapathOptions } from "../datapath";
import { type TrackedResource, track } from "../test/support/resources";
import type { AttachWorkerReply, AttachWorkerRequest } from "./attach-worker";

/** A request without its id (each union member on its own). */
type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

/** The worker process; one request at a time, answered in order. */
export class AttachTimer {
  private next = 1;
  private readonly pending = new Map<
    number,
    { resolve: (ms: number) => void; reject: (e: Error) => void }
  >();
  private gone: Error | null = null;
  private readonly tracked: TrackedResource;

  private constructor(private readonly child: ChildProcess) {
    this.tracked = track(`attach worker ${child.pid}`, () => child.kill("SIGKILL"));
    child.on("message", (m: AttachWorkerReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if ("ms" in m) p.resolve(m.ms);
      else p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
    });
    child.on("exit", (code, signal) => {
      this.gone = new Error(`the attach worker exited (${signal ?? `code ${code}`})`);
      for (const p of this.pending.values()) p.reject(this.gone);
      this.pending.clear();
    });
  }

  /** Starts the worker (from this build's out/bench). */
  static start(): AttachTimer {
    return new AttachTimer(
      fork(join(__dirname, "attach-worker.js"), [], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      }),
    );
  }

  /** The worker's process id. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** attachPod in the worker: its wall time there, ms. Rejects with the attach's error. */
  attach(req: AttachRequest, opts: DatapathOptions): Promise<number> {
    return this.call({ op: "attach", req, opts });
  }

  /** detachPod in the worker: its wall time there, ms. */
  detach(containerId: string, opts: DatapathOptions): Promise<number> {
    return this.call({ op: "detach", containerId, opts });
  }

  /** Stops the worker; calls after (or pending) reject. */
  async close(): Promise<void> {
    if (!this.gone) {
      const exited = once(this.child, "exit");
      // the worker exits when its channel closes
      if (this.child.connected) this.child.disconnect();
      else this.child.kill("SIGKILL");
      await exited;
    }
    this.tracked.release();
  }

  private call(req: WithoutId<AttachWorkerRequest>): Promise<number> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ ...req, id } as AttachWorkerRequest);
    });
  }
}
