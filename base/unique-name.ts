// Unique parts of temporary names (staging directories, files written then renamed into
// place). Not node:crypto: its first load costs a CNI call 7-23 ms on a slow machine
// (docs/benchmarks.md), and these names need to be unique, not unguessable: each is made
// in a directory only root may write, next to the process id.

/** `bytes` random bytes as lowercase hex (Math.random, seeded per process by V8). */
export function randomHex(bytes: number): string {
  let out = "";
  for (let i = 0; i < bytes; i++) {
    out += Math.floor(Math.random() * 256)
      .toString(16)
      .padStart(2, "0");
  }
  return out;
}
