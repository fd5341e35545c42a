// Inbound capture meets TIME_WAIT: a client that reuses its source port while the server's
// side of the previous connection on that 4-tuple is still in TIME_WAIT (the server closed
// first) must connect at once, to the proxy's 15006 listener, with the right
// SO_ORIGINAL_DST, every time. The kernel turns such a SYN into a new connection (TCP_TW_SYN)
// by looking up a listener for the tuple; under iptables REDIRECT the tuple is the NATed one
// (port 15006). The benchmark found waggle's first inbound design (bpf_sk_assign at TC
// ingress) bypassing that path: the TIME_WAIT socket caught the handshake's final ACK and the
// connection hung until the client gave up. Both the iptables baseline and waggle run the
// same scenarios here.

import { expect } from "chai";
import { type CaptureLab, type CaptureMode, labAddress } from "../support/capture-lab";
import type { Family } from "../support/capture-scenarios";
import "../support/hooks";
import { APP_PORT, withInboundPod } from "../support/inbound-pod";
import { IptablesCaptureMode } from "../support/istio-iptables";
import type { Pod } from "../support/pod";
import { hostPort, PYTHON } from "../support/sockprobe";
import { useWaggleLab } from "../support/waggle-mode";

/** The client runs as the proxy uid of another pod, as a sidecar's outbound connection does. */
const CLIENT = { uid: 1337, gid: 1337 };
/** An attempt slower than this counts as a failure (a lost handshake costs >= 1 s). */
const PROMPT_SECONDS = 1;

/**
 * Sequential connections from fixed source ports (a pool, used round robin), each waiting for
 * the listener's record (sockprobe's accept line) and the server's close. Stops at the first
 * failure. argv: family host port bind_host first_port pool count delay_seconds timeout.
 * Prints one JSON line: {"attempts": [{"port", "ms", "listener", "local", "originalDst"}],
 * "failure": null | {"attempt", "port", "error", "ms"}}.
 */
const CLIENT_SCRIPT = `
import errno, json, socket, sys, time
family = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
host, port, bind_host = sys.argv[2], int(sys.argv[3]), sys.argv[4]
first, pool, count = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
delay, timeout = float(sys.argv[8]), float(sys.argv[9])
attempts, failure = [], None
for i in range(count):
    sport = first + i % pool
    s = socket.socket(family, socket.SOCK_STREAM)
    start = time.monotonic()
    try:
        for _ in range(100):  # our previous socket on this port may still await its last ACK
            try:
                s.bind((bind_host, sport)); break
            except OSError as e:
                if e.errno != errno.EADDRINUSE: raise
                time.sleep(0.01)
        start = time.monotonic()
        s.settimeout(timeout)
        s.connect((host, port))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk: break
            data += chunk
        record = json.loads(data.decode())
        attempts.append({"port": sport, "ms": round((time.monotonic() - start) * 1000, 1),
                         "listener": record["listener"], "local": record["local"],
                         "originalDst": record["originalDst"] or record["originalDstError"]})
    except Exception as e:
        failure = {"attempt": i, "port": sport, "error": repr(e),
                   "ms": round((time.monotonic() - start) * 1000, 1)}
        break
    finally:
        s.close()
    if delay: time.sleep(delay)
print(json.dumps({"attempts": attempts, "failure": failure}))
`;

interface Attempt {
  port: number;
  ms: number;
  listener: string;
  local: string;
  originalDst: string;
}
interface RunResult {
  attempts: Attempt[];
  failure: { attempt: number; port: number; error: string; ms: number } | null;
}

/** Runs CLIENT_SCRIPT in the peer pod against the captured pod's app port. */
async function connectRepeatedly(
  lab: CaptureLab,
  family: Family,
  opts: { firstPort: number; pool: number; count: number; delay: number },
): Promise<RunResult> {
  const out = await lab.peer.execChecked(
    PYTHON,
    [
      "-c",
      CLIENT_SCRIPT,
      String(family),
      labAddress("pod", family),
      String(APP_PORT),
      labAddress("peer", family),
      String(opts.firstPort),
      String(opts.pool),
      String(opts.count),
      String(opts.delay),
      String(PROMPT_SECONDS),
    ],
    { ...CLIENT, timeoutMs: 120_000 },
  );
  return JSON.parse(out) as RunResult;
}

/** Server-side TIME_WAIT sockets of the pod whose peer is the given client address. */
async function timeWaitsFrom(pod: Pod, client: string): Promise<string[]> {
  const out = await pod.execChecked("ss", ["-Htan", "state", "time-wait"]);
  return out
    .split("\n")
    .filter((l) => l.trim() !== "")
    .filter((l) => l.trim().split(/\s+/).at(-1) === client);
}

/** Every attempt prompt, on the proxy's inbound listener, with the original destination. */
function expectAllCaptured(result: RunResult, family: Family, count: number): void {
  expect(result.failure, `an attempt failed: ${JSON.stringify(result.failure)}`).to.equal(null);
  expect(result.attempts).to.have.length(count);
  const original = hostPort(labAddress("pod", family), APP_PORT);
  for (const a of result.attempts) {
    expect(a.listener, `attempt from port ${a.port}`).to.equal("pod:inbound");
    expect(a.originalDst, `attempt from port ${a.port}`).to.equal(original);
    expect(a.ms, `attempt from port ${a.port} took ${a.ms} ms`).to.be.below(PROMPT_SECONDS * 1000);
  }
}

describe("inbound capture: a SYN on a 4-tuple in TIME_WAIT (server closed first)", function () {
  this.timeout(120_000);
  const fx = useWaggleLab();
  const modes: { name: string; mode: () => CaptureMode }[] = [
    { name: "iptables", mode: () => new IptablesCaptureMode() },
    { name: "waggle", mode: () => fx.waggle },
  ];

  // Distinct source ports per test, so no test meets another's leftover sockets.
  let nextPort = 42000;
  const ports = (n: number) => {
    const first = nextPort;
    nextPort += n;
    return first;
  };

  for (const { name, mode } of modes) {
    for (const family of [4, 6] as const) {
      it(`${name} (IPv${family}): the same source port again 0.2 s later connects at once to 15006 with SO_ORIGINAL_DST, three times`, async () => {
        await withInboundPod(
          fx.lab,
          mode(),
          family,
          { proxy: true },
          async ({ pod, proxy, app }) => {
            const firstPort = ports(1);
            const first = await connectRepeatedly(fx.lab, family, {
              firstPort,
              pool: 1,
              count: 1,
              delay: 0.2,
            });
            expectAllCaptured(first, family, 1);
            // the scenario really is the TIME_WAIT one: the server's side waits on this tuple
            const client = hostPort(labAddress("peer", family), firstPort);
            expect(await timeWaitsFrom(pod, client), "server-side TIME_WAIT").to.have.length(1);
            const again = await connectRepeatedly(fx.lab, family, {
              firstPort,
              pool: 1,
              count: 3,
              delay: 0.2,
            });
            expectAllCaptured(again, family, 3);
            expect(proxy?.records()).to.have.length(4);
            expect(app.records(), "the app is never reached directly").to.deep.equal([]);
          },
        );
      });

      it(`${name} (IPv${family}): 300 sequential new connections from 8 source ports, server closing first: no timeouts`, async () => {
        await withInboundPod(
          fx.lab,
          mode(),
          family,
          { proxy: true },
          async ({ pod, proxy, app }) => {
            const firstPort = ports(8);
            const result = await connectRepeatedly(fx.lab, family, {
              firstPort,
              pool: 8,
              count: 300,
              delay: 0,
            });
            expectAllCaptured(result, family, 300);
            // every port but the first use of each met its own TIME_WAIT: 292 reuses
            const client = hostPort(labAddress("peer", family), firstPort);
            expect(await timeWaitsFrom(pod, client)).to.have.length(1);
            expect(proxy?.records()).to.have.length(300);
            expect(app.records()).to.deep.equal([]);
          },
        );
      });
    }
  }
});
