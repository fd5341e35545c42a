// The registry of everything kernel tests created and have not removed yet.
//
// Each fixture registers a synchronous teardown when it creates something (a netns, a
// cgroup, a process). Tearing down a resource releases it; whatever is still registered when
// the run ends is torn down by the root hook (test/support/hooks.ts) and, as a last resort,
// by a process "exit" handler. Teardowns are synchronous so that both paths can run them.

export interface TrackedResource {
  readonly label: string;
  /** Runs the teardown once and forgets the resource; later calls do nothing. */
  release(): void;
}

interface Entry {
  label: string;
  teardown: () => void;
}

const live = new Set<Entry>();

/** Registers a resource; its teardown must be idempotent enough to run after partial failure. */
export function track(label: string, teardown: () => void): TrackedResource {
  const entry: Entry = { label, teardown };
  live.add(entry);
  return {
    label,
    release() {
      if (!live.delete(entry)) return;
      teardown();
    },
  };
}

/** Labels of the resources still registered, oldest first. */
export function liveResources(): string[] {
  return [...live].map((e) => e.label);
}

/**
 * Tears down every registered resource, newest first (a process before its cgroup, a pod
 * before its node), continuing past failures. Returns one message per failed teardown.
 */
export function teardownAll(): string[] {
  const failures: string[] = [];
  for (const entry of [...live].reverse()) {
    live.delete(entry);
    try {
      entry.teardown();
    } catch (e) {
      failures.push(`${entry.label}: ${(e as Error).message}`);
    }
  }
  return failures;
}

process.on("exit", () => {
  if (live.size === 0) return;
  const failures = teardownAll();
  for (const f of failures) process.stderr.write(`test teardown at exit failed: ${f}\n`);
});
