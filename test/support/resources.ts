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
  runScoped: boolean;
}

export interface TrackOptions {
  /**
   * The resource is meant to live until the end of the run (a shared helper file, say): it
   * is torn down with the rest but not listed by liveResources(), so it is neither a leak
   * nor a leftover.
   */
  runScoped?: boolean;
}

/** A set of live resources with their teardowns. The process-wide one is `registry`. */
export class ResourceRegistry {
  private readonly live = new Set<Entry>();

  /** Registers a resource; its teardown must cope with a partially created resource. */
  track(label: string, teardown: () => void, opts: TrackOptions = {}): TrackedResource {
    const entry: Entry = { label, teardown, runScoped: opts.runScoped ?? false };
    const live = this.live;
    live.add(entry);
    return {
      label,
      release() {
        if (!live.delete(entry)) return;
        teardown();
      },
    };
  }

  /** Labels of the resources still registered (except run-scoped ones), oldest first. */
  liveResources(): string[] {
    return [...this.live].filter((e) => !e.runScoped).map((e) => e.label);
  }

  /**
   * Tears down every registered resource, newest first (a process before its cgroup, a pod
   * before its node), continuing past failures. Returns one message per failed teardown.
   */
  teardownAll(): string[] {
    const failures: string[] = [];
    for (const entry of [...this.live].reverse()) {
      this.live.delete(entry);
      try {
        entry.teardown();
      } catch (e) {
        failures.push(`${entry.label}: ${(e as Error).message}`);
      }
    }
    return failures;
  }
}

/** The process-wide registry every fixture uses. */
export const registry = new ResourceRegistry();

/** registry.track */
export function track(
  label: string,
  teardown: () => void,
  opts: TrackOptions = {},
): TrackedResource {
  return registry.track(label, teardown, opts);
}

/** registry.liveResources */
export function liveResources(): string[] {
  return registry.liveResources();
}

/** registry.teardownAll */
export function teardownAll(): string[] {
  return registry.teardownAll();
}

process.on("exit", () => {
  if (registry.liveResources().length === 0) return;
  for (const f of registry.teardownAll())
    process.stderr.write(`test teardown at exit failed: ${f}\n`);
});
