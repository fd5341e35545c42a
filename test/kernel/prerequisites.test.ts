// waggle's declared prerequisites (app/prerequisites.ts, what `waggle doctor` checks) against
// the BPF objects actually built: every program type, attach type, helper and map type a
// shipped object uses must be declared, so doctor can never pass on a host that cannot run them.
// Map types need the objects loaded (root).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { BpfObject, type CgroupAttachType, type ProgType } from "ebpf-napi";
import { attachTypeNeeds, helperNeeds, mapTypeNeeds, progTypeNeeds } from "../../app/prerequisites";
import { shippedBpfObjects } from "../../base/assets";
import { OPTIONAL_OBJECTS } from "../../datapath";
import { bpfElfSections, helperNamesById } from "../support/bpf-elf";

const BPF_BUILD = join(__dirname, "..", "..", "..", "bpf", "build");

/** libbpf section names waggle's programs use, with the program and attach type each means. */
const SECTION_TYPES: Record<string, { progType: ProgType; attachType?: CgroupAttachType }> = {
  "cgroup/connect4": { progType: "cgroup_sock_addr", attachType: "cgroup_inet4_connect" },
  "cgroup/connect6": { progType: "cgroup_sock_addr", attachType: "cgroup_inet6_connect" },
  "cgroup/sendmsg4": { progType: "cgroup_sock_addr", attachType: "cgroup_udp4_sendmsg" },
  "cgroup/sendmsg6": { progType: "cgroup_sock_addr", attachType: "cgroup_udp6_sendmsg" },
  "cgroup/recvmsg4": { progType: "cgroup_sock_addr", attachType: "cgroup_udp4_recvmsg" },
  "cgroup/recvmsg6": { progType: "cgroup_sock_addr", attachType: "cgroup_udp6_recvmsg" },
  "cgroup/getpeername4": { progType: "cgroup_sock_addr", attachType: "cgroup_inet4_getpeername" },
  "cgroup/getpeername6": { progType: "cgroup_sock_addr", attachType: "cgroup_inet6_getpeername" },
  "cgroup/getsockname4": { progType: "cgroup_sock_addr", attachType: "cgroup_inet4_getsockname" },
  "cgroup/getsockname6": { progType: "cgroup_sock_addr", attachType: "cgroup_inet6_getsockname" },
  "cgroup/bind4": { progType: "cgroup_sock_addr", attachType: "cgroup_inet4_bind" },
  "cgroup/bind6": { progType: "cgroup_sock_addr", attachType: "cgroup_inet6_bind" },
  sockops: { progType: "sock_ops", attachType: "cgroup_sock_ops" },
  "cgroup/getsockopt": { progType: "cgroup_sockopt", attachType: "cgroup_getsockopt" },
  "cgroup/setsockopt": { progType: "cgroup_sockopt", attachType: "cgroup_setsockopt" },
  sk_lookup: { progType: "sk_lookup" }, // a netns hook: its attach type comes with the type
  sk_msg: { progType: "sk_msg" }, // a sockmap link: its attach type comes with the type
  tc: { progType: "sched_cls" },
  classifier: { progType: "sched_cls" },
};

/** Helpers every program type has: not prerequisites of their own. */
const BASE_HELPERS = new Set(["map_lookup_elem", "map_update_elem", "map_delete_elem"]);

/**
 * The shipped objects doctor's probes must cover. Optional objects (OPTIONAL_OBJECTS: the
 * socket bypass's flow control, a tracing program libbpf cannot probe) are not
 * prerequisites: the datapath loads them where the kernel can, and what needs them stays off
 * otherwise (bypassSupport says why).
 */
function shippedObjects(): { name: string; elf: Buffer }[] {
  const names = shippedBpfObjects(readdirSync(BPF_BUILD)).filter(
    (n) => !(OPTIONAL_OBJECTS as readonly string[]).includes(n),
  );
  if (names.length === 0) throw new Error(`no shipped BPF objects in ${BPF_BUILD}`);
  return names.map((name) => ({ name, elf: readFileSync(join(BPF_BUILD, `${name}.bpf.o`)) }));
}

/** Program sections of an object (code sections other than .text, which holds no program). */
function programSections(elf: Buffer) {
  return bpfElfSections(elf).filter((s) => s.name !== ".text");
}

describe("prerequisites: declared for everything the shipped BPF objects use", () => {
  it("the ELF reader finds the programs and helper calls of an object", () => {
    const [first] = shippedObjects();
    const sections = programSections(first.elf);
    expect(sections.length).to.be.greaterThan(0);
    expect(sections.some((s) => s.helperIds.length > 0)).to.equal(true);
    const names = helperNamesById();
    expect(names.get(1)).to.equal("map_lookup_elem");
    expect(names.get(122)).to.equal("get_netns_cookie");
    expect(names.get(124)).to.equal("sk_assign");
  });

  it("helper code in .text (a non-inlined function) would be unattributable: there is none", () => {
    for (const { name, elf } of shippedObjects()) {
      const text = bpfElfSections(elf).find((s) => s.name === ".text");
      expect(text?.helperIds ?? [], `${name}.bpf.o .text`).to.deep.equal([]);
    }
  });

  it("every program section maps to a declared program type and attach type", () => {
    const progTypes = new Set(progTypeNeeds.map((n) => n.progType));
    const attachTypes = new Set(attachTypeNeeds.map((n) => n.attachType));
    for (const { name, elf } of shippedObjects()) {
      for (const section of programSections(elf)) {
        const types = SECTION_TYPES[section.name];
        expect(
          types,
          `${name}.bpf.o section ${section.name}: add it to SECTION_TYPES`,
        ).to.not.equal(undefined);
        expect(
          progTypes.has(types.progType),
          `${name}.bpf.o ${section.name}: program type ${types.progType}`,
        ).to.equal(true);
        if (types.attachType) {
          expect(
            attachTypes.has(types.attachType),
            `${name}.bpf.o ${section.name}: attach type ${types.attachType}`,
          ).to.equal(true);
        }
      }
    }
  });

  it("every helper a program calls is declared for that program's type", () => {
    const names = helperNamesById();
    const declared = new Set(helperNeeds.map((n) => `${n.progType}:${n.helper}`));
    const missing: string[] = [];
    for (const { name, elf } of shippedObjects()) {
      for (const section of programSections(elf)) {
        const progType = SECTION_TYPES[section.name]?.progType;
        for (const id of section.helperIds) {
          const helper = names.get(id) ?? `#${id}`;
          if (BASE_HELPERS.has(helper) || declared.has(`${progType}:${helper}`)) continue;
          missing.push(`${name}.bpf.o ${section.name}: bpf_${helper} in ${progType}`);
        }
      }
    }
    expect(missing).to.deep.equal([]);
  });

  it("every map type the loaded objects create is declared", () => {
    const declared = new Set<string>(mapTypeNeeds.map((n) => n.mapType));
    const missing: string[] = [];
    for (const { name, elf } of shippedObjects()) {
      const obj = BpfObject.open(elf, { name });
      try {
        obj.load();
        for (const mapName of obj.mapNames()) {
          const map = obj.map(mapName);
          try {
            if (!declared.has(map.info.type))
              missing.push(`${name}.bpf.o map ${mapName}: ${map.info.type}`);
          } finally {
            map.close();
          }
        }
      } finally {
        obj.close();
      }
    }
    expect(missing).to.deep.equal([]);
  });

  it("nothing is declared that no shipped object uses (the list stays true)", () => {
    const names = helperNamesById();
    const usedProg = new Set<string>();
    const usedAttach = new Set<string>();
    const usedHelpers = new Set<string>();
    for (const { elf } of shippedObjects()) {
      for (const section of programSections(elf)) {
        const types = SECTION_TYPES[section.name];
        if (!types) continue;
        usedProg.add(types.progType);
        if (types.attachType) usedAttach.add(types.attachType);
        for (const id of section.helperIds) usedHelpers.add(`${types.progType}:${names.get(id)}`);
      }
    }
    expect(progTypeNeeds.map((n) => n.progType).filter((t) => !usedProg.has(t))).to.deep.equal([]);
    expect(
      attachTypeNeeds.map((n) => n.attachType).filter((t) => !usedAttach.has(t)),
    ).to.deep.equal([]);
    expect(
      helperNeeds.map((n) => `${n.progType}:${n.helper}`).filter((h) => !usedHelpers.has(h)),
    ).to.deep.equal([]);
  });
});
