// Following other network namespaces: change notifications from their rtnetlink (links,
// addresses, routes of both families), and an advisory lock on a path held by an fd.
import { closeSync } from "node:fs";
import { native } from "./native";

interface WatchNative {
  netnsWatcherCreate(callback: (id: number) => void): unknown;
  netnsWatcherAdd(watcher: unknown, netnsPath: string): number;
  netnsWatcherRemove(watcher: unknown, id: number): void;
  netnsWatcherClose(watcher: unknown): void;
  lockPath(path: string): number;
}

function watchNative(): WatchNative {
  return native() as unknown as WatchNative;
}

/**
 * Calls `onChange(id)` on the JS thread soon after an interface, address or route of a
 * watched netns appears, changes or goes away (one call per burst read, not per message;
 * a queue overflow is reported the same way). A native thread waits on every watched netns;
 * it never keeps the process alive. A watch holds its netns until removed or closed.
 */
export class NetnsWatcher {
  private readonly handle: unknown;
  private closed = false;

  constructor(onChange: (id: number) => void) {
    this.handle = watchNative().netnsWatcherCreate(onChange);
  }

  /** Starts watching the netns at netnsPath (opened now); returns the watch's id. */
  add(netnsPath: string): number {
    return watchNative().netnsWatcherAdd(this.handle, netnsPath);
  }

  /** Stops one watch (unknown ids are fine). */
  remove(id: number): void {
    if (!this.closed) watchNative().netnsWatcherRemove(this.handle, id);
  }

  /** Stops every watch and the thread. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    watchNative().netnsWatcherClose(this.handle);
  }
}

/**
 * Takes an exclusive flock on path (a file or directory), waiting until it is free, and
 * returns the release function (closing the fd; a killed holder's lock goes with it).
 */
export function lockPath(path: string): () => void {
  const fd = watchNative().lockPath(path);
  return () => closeSync(fd);
}
