// The waggle capture mode for the scenario runner (capture-lab.ts): setup is what the CNI
// ADD does (attachPod), teardown what DEL does (detachPod). Each mode instance has its own
// bpffs root under /sys/fs/bpf, so tests running at the same time never share pins; the
// shared programs are loaded into it once and removed by destroy().
import { join } from "node:path";
import {
  type AttachRequest,
  attachPod,
  type DatapathOptions,
  detachPod,
  ensureSharedPrograms,
  type PodRecordData,
  removeTree,
} from "../../datapath";
import { defaultRedirectSettings, type RedirectSettings } from "../../mesh/redirect-settings";
import { CaptureLab, type CaptureMode } from "./capture-lab";
import { uniqueName } from "./names";
import type { Pod } from "./pod";
import { type TrackedResource, track } from "./resources";

/**
 * Attaches a test pod as the plugin's ADD would: its eth0, its IPv4 address, Istio's default
 * settings and a fresh container id, unless `over` says otherwise. Returns the record.
 */
export function attachTestPod(
  pod: Pod,
  opts: DatapathOptions,
  over: Partial<AttachRequest> = {},
): PodRecordData {
  return attachPod(testAttachRequest(pod, over), opts);
}

/** The request attachTestPod makes. */
export function testAttachRequest(pod: Pod, over: Partial<AttachRequest> = {}): AttachRequest {
  return {
    containerId: uniqueName("k"),
    netnsPath: pod.netnsPath,
    ifname: "eth0",
    cgroupPath: pod.cgroupDir,
    podIPs: [pod.address(4)],
    settings: defaultRedirectSettings(),
    ...over,
  };
}

/** A unique bpffs root for one test file's datapath, removed at destroy (or at exit). */
export class BpfRoot {
  readonly path: string;
  private readonly tracked: TrackedResource;

  constructor() {
    this.path = join("/sys/fs/bpf", uniqueName("b"));
    const path = this.path;
    this.tracked = track(`bpffs root ${path}`, () => removeTree(path));
  }

  /**
   * The datapath options of this root. WAGGLE_TEST_SOCKET_BYPASS=1 (or 0) runs the suites that
   * use it with the node's socket bypass on (off); unset, the kernel's default applies.
   */
  get opts(): DatapathOptions {
    const bypass = process.env.WAGGLE_TEST_SOCKET_BYPASS;
    return {
      bpfRoot: this.path,
      ...(bypass === undefined ? {} : { socketBypass: bypass === "1" }),
    };
  }

  destroy(): void {
    this.tracked.release();
  }
}

export class WaggleMode implements CaptureMode {
  readonly name = "waggle";
  readonly root: BpfRoot;
  /** The record of the pod attached by the last setup (for tests that look inside). */
  current: PodRecordData | null = null;
  private containerId: string | null = null;
  private readonly ownsRoot: boolean;

  /**
   * With `root`, the mode attaches into that (shared) root, as pods of one node share one
   * datapath; destroy() then leaves the root to its owner.
   */
  constructor(root?: BpfRoot) {
    this.ownsRoot = root === undefined;
    this.root = root ?? new BpfRoot();
    ensureSharedPrograms(this.root.opts);
  }

  async setup(pod: Pod, settings: RedirectSettings): Promise<void> {
    this.current = attachTestPod(pod, this.root.opts, {
      podIPs: [pod.ipv4, pod.ipv6].filter((ip): ip is string => ip !== undefined),
      settings,
    });
    this.containerId = this.current.containerId;
  }

  async teardown(): Promise<void> {
    if (this.containerId === null) return;
    const id = this.containerId;
    this.containerId = null;
    this.current = null;
    detachPod(id, this.root.opts);
  }

  /** Removes the shared programs and maps of this mode's root (when it made the root). */
  destroy(): void {
    if (this.ownsRoot) this.root.destroy();
  }
}

/**
 * The lab and the waggle mode one describe block shares: made in its before hook, destroyed in
 * its after hook (also when a test failed). Read them from the returned object inside tests.
 */
export function useWaggleLab(): { readonly lab: CaptureLab; readonly waggle: WaggleMode } {
  let lab: CaptureLab | undefined;
  let waggle: WaggleMode | undefined;
  before(async () => {
    waggle = new WaggleMode();
    lab = await CaptureLab.create();
  });
  after(async () => {
    await lab?.destroy();
    waggle?.destroy();
  });
  const made = <T>(x: T | undefined, what: string): T => {
    if (x === undefined) throw new Error(`${what} is used before the describe block's before hook`);
    return x;
  };
  return {
    get lab() {
      return made(lab, "the capture lab");
    },
    get waggle() {
      return made(waggle, "the waggle mode");
    },
  };
}
