// A CliIo that keeps what a command writes, for running commands in-process in tests.
import type { CliIo } from "../../base/cli-io";

export type CapturedIo = CliIo & { stdout: string; stderr: string };

export function captureIo(): CapturedIo {
  const io = {
    stdout: "",
    stderr: "",
    out(text: string) {
      io.stdout += text;
    },
    err(text: string) {
      io.stderr += text;
    },
  };
  return io;
}
