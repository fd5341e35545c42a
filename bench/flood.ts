// The host rule flood: kube-proxy-shaped rules (kube-rules.ts) loaded with iptables-restore
// into the bench's node netns, never the real host's, and taken out again afterwards so the
// node is left exactly as it was (checked against iptables-save).

import { runChecked } from "../test/support/command";
import type { Node } from "../test/support/pod";
import { type FloodLevel, floodLevelLabel, renderKubeRules, renderRemoval } from "./kube-rules";

/** The node's default iptables backend, like the pods' (nf_tables). */
const RESTORE = "iptables-nft-restore";
const SAVE = "iptables-nft-save";

export interface FloodApplied {
  label: string;
  services: number;
  endpointsPerService: number;
  rules: number;
  chains: number;
  /** Lines of iptables-save after loading, counted (matches the generator's estimate). */
  saveLines: number;
  applyMs: number;
  removeMs?: number;
}

/** iptables-save of the node without comments and counters (for before/after comparison). */
async function saveNode(node: Node): Promise<string> {
  const out = await runChecked("nsenter", [`--net=${node.netnsPath}`, SAVE]);
  return out
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.replace(/\[\d+:\d+\]$/, ""))
    .join("\n");
}

export class HostFlood {
  private applied: { level: FloodLevel; input: string; before: string } | undefined;

  constructor(private readonly node: Node) {}

  /** Loads a level's rules (0 services: nothing). Only one level at a time. */
  async apply(level: FloodLevel): Promise<FloodApplied> {
    if (this.applied) throw new Error("a rule flood is already loaded: remove it first");
    const rendered = renderKubeRules(level);
    const result: FloodApplied = {
      label: floodLevelLabel(level),
      services: level.services,
      endpointsPerService: level.endpointsPerService,
      rules: rendered.rules,
      chains: rendered.chains,
      saveLines: 0,
      applyMs: 0,
    };
    if (rendered.rules === 0) return result;
    const before = await saveNode(this.node);
    // A node without rules gets whole tables (100k rules load in about 3 s here); one with
    // rules gets ours added with --noflush, which iptables-nft 1.8.9 does far more slowly
    // (over a minute of CPU for 100k rules here).
    const flush = before === "" ? [] : ["--noflush"];
    const start = process.hrtime.bigint();
    await runChecked("nsenter", [`--net=${this.node.netnsPath}`, RESTORE, ...flush], {
      input: rendered.restoreInput,
    });
    result.applyMs = Number(process.hrtime.bigint() - start) / 1e6;
    this.applied = { level, input: rendered.restoreInput, before };
    const save = await runChecked("nsenter", [`--net=${this.node.netnsPath}`, SAVE]);
    result.saveLines = save.split("\n").filter((l) => l !== "").length;
    return result;
  }

  /** Takes the loaded rules out; checks the node's rules are what they were before. */
  async remove(): Promise<number> {
    const applied = this.applied;
    if (!applied) return 0;
    const start = process.hrtime.bigint();
    if (applied.before === "") {
      // The node had no tables: flushing restores delete them (no nat hooks left behind).
      await runChecked("nsenter", [`--net=${this.node.netnsPath}`, RESTORE], {
        input: "*nat\nCOMMIT\n*filter\nCOMMIT\n",
      });
    } else {
      await runChecked("nsenter", [`--net=${this.node.netnsPath}`, RESTORE, "--noflush"], {
        input: renderRemoval(applied.input),
      });
    }
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    this.applied = undefined;
    const after = await saveNode(this.node);
    if (after !== applied.before)
      throw new Error(`node rules differ after removing the flood:\n${after.slice(0, 2000)}`);
    return ms;
  }
}
