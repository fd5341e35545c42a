// Small filesystem helpers for bpffs directories.
import { readdirSync } from "node:fs";

/** Names of the entries under a directory ([] when it does not exist). */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
