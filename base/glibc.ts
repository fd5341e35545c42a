// The glibc a set of ELF files needs (from `objdump -T`), and the glibc this process runs on.
// The build bakes the floor into the binary; `waggle doctor` compares it with the running glibc.
import { execFileSync } from "node:child_process";
import { basename } from "node:path";
import type { GlibcNeed } from "./build-info";
import { compareDotted } from "./dotted-version";

/**
 * The highest GLIBC_x.y version among the undefined (imported) dynamic symbols in `objdump -T`
 * output, or null when the file imports nothing versioned from glibc. Symbols the file defines
 * itself (a libc would) are not needs.
 */
export function highestGlibcVersion(objdumpT: string): string | null {
  let highest: string | null = null;
  for (const line of objdumpT.split("\n")) {
    if (!line.includes("*UND*")) continue;
    const m = /\bGLIBC_(\d+(?:\.\d+)+)\b/.exec(line);
    if (m && (highest === null || compareDotted(m[1], highest) > 0)) highest = m[1];
  }
  return highest;
}

/** The glibc needs of each ELF file, by running `objdump -T` (binutils) on it. */
export function glibcNeeds(files: string[]): GlibcNeed[] {
  return files.flatMap((file) => {
    const out = execFileSync("objdump", ["-T", file], {
      encoding: "utf8",
      maxBuffer: 256 * 1024 * 1024,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const version = highestGlibcVersion(out);
    return version === null ? [] : [{ file: basename(file), version }];
  });
}

/** The highest need: the oldest glibc every file can run on. Null when nothing needs glibc. */
export function glibcFloor(needs: GlibcNeed[]): GlibcNeed | null {
  let floor: GlibcNeed | null = null;
  for (const need of needs) {
    if (floor === null || compareDotted(need.version, floor.version) > 0) floor = need;
  }
  return floor;
}

/** The glibc this process runs on ("2.36"), or null on a non-glibc libc. */
export function runningGlibc(): string | null {
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } })
    .header;
  return header?.glibcVersionRuntime ?? null;
}
