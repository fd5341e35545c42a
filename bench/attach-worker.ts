// The process the bench times attachPod and detachPod in (attach-timer.ts starts it). It runs
// nothing but those two calls, one request at a time, and never starts a process: the
// bench's own process forks for every command it runs (libuv spawns by fork), and a fork
// leaves every writable page of the parent copy-on-write, so the next attachPod there took a
// page fault for each page it wrote (50-60 where one that follows another takes 5-10;
// docs/benchmarks.md). A CNI ADD starts nothing before it attaches, nor does this process.
import { type AttachRequest, attachPod, type DatapathOptions, detachPod } from "../datapath";

/** What the bench asks (an id to match the answer). */
export type AttachWorkerRequest =
  | { id: number; op: "attach"; req: AttachRequest; opts: DatapathOptions }
  | { id: number; op: "detach"; containerId: string; opts: DatapathOptions };

/** The answer: the call's wall time in this process, or why it failed. */
export type AttachWorkerReply =
  | { id: number; ms: number }
  | { id: number; error: { message: string; code?: string } };

/** Runs one request, timed from the call to its return. */
export function serve(m: AttachWorkerRequest): AttachWorkerReply {
  try {
    const start = process.hrtime.bigint();
    if (m.op === "attach") attachPod(m.req, m.opts);
    else detachPod(m.containerId, m.opts);
    return { id: m.id, ms: Number(process.hrtime.bigint() - start) / 1e6 };
  } catch (e) {
    const err = e as Error & { code?: unknown };
    const code = typeof err.code === "string" ? err.code : undefined;
    return { id: m.id, error: { message: String(err.message ?? err), ...(code ? { code } : {}) } };
  }
}

if (require.main === module) {
  process.on("message", (m: AttachWorkerRequest) => process.send?.(serve(m)));
  process.on("disconnect", () => process.exit(0)); // the bench went away
}
