// The bench's own C tools (bench/loadgen/loadgen.c, bench/speedprobe/speedprobe.c): built on
// first use with the host C compiler into out/bench/bin, rebuilt when the source is newer.

import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { runChecked } from "../../test/support/command";

/** bench/<dir>/<file> of the source tree, seen from out/bench/tools. */
export function benchSource(dir: string, file: string): string {
  return join(__dirname, "..", "..", "..", "bench", dir, file);
}

const BINARY_DIR = join(__dirname, "..", "bin");

/** Compiles source into outDir/name when the binary is missing or older; returns its path. */
export async function buildCProgram(
  source: string,
  name: string,
  outDir = BINARY_DIR,
): Promise<string> {
  const binary = join(outDir, name);
  if (!existsSync(source)) throw new Error(`${name} source ${source} is missing`);
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return binary;
  mkdirSync(outDir, { recursive: true });
  await runChecked("cc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", binary, source]);
  return binary;
}
