// The waggle CNI plugin as an executable from out/ (for the libcni harness while dist/waggle
// is absent or older than out/): stdin and environment in, runCni, stdout/stderr and exit out.
import { readFileSync } from "node:fs";
import { runCni } from "../../cni/plugin";

runCni(process.env, readFileSync(0)).then(
  (out) => {
    process.stdout.write(out.stdout);
    process.stderr.write(out.stderr);
    process.exitCode = out.exitCode;
  },
  (err: unknown) => {
    process.stderr.write(`waggle: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
