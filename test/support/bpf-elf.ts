// What a compiled BPF object uses, read from its ELF file: its sections, each program section
// with the helper ids it calls, and the UAPI helper names by id. Lets tests hold waggle's
// declared prerequisites against the programs actually built, and the bench compare two builds
// of Merbridge's programs instruction for instruction (bench/merbridge.ts).
import { readFileSync } from "node:fs";

export interface BpfElfSection {
  /** Section name as libbpf reads it, without a leading "?" (non-autoload marker). */
  name: string;
  /** Helper ids called (BPF_CALL with src_reg 0), sorted, without repeats. */
  helperIds: number[];
}

const SHF_EXECINSTR = 0x4;
const BPF_JMP_CALL = 0x85;

/** A section of an ELF file: its name, flags and contents. */
export interface ElfSection {
  name: string;
  flags: number;
  bytes: Buffer;
}

/** The sections of an ELF64 little-endian file, in header order. */
export function elfSections(elf: Buffer): ElfSection[] {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) {
    throw new Error("not a 64-bit little-endian ELF file");
  }
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const header = (i: number) => {
    const at = shoff + i * shentsize;
    return {
      nameOffset: elf.readUInt32LE(at),
      flags: Number(elf.readBigUInt64LE(at + 8)),
      offset: Number(elf.readBigUInt64LE(at + 0x18)),
      size: Number(elf.readBigUInt64LE(at + 0x20)),
    };
  };
  const strtab = header(shstrndx);
  const nameAt = (off: number) => {
    const start = strtab.offset + off;
    return elf.toString("latin1", start, elf.indexOf(0, start));
  };
  const sections: ElfSection[] = [];
  for (let i = 0; i < shnum; i++) {
    const h = header(i);
    sections.push({
      name: nameAt(h.nameOffset),
      flags: h.flags,
      bytes: elf.subarray(h.offset, h.offset + h.size),
    });
  }
  return sections;
}

/** The non-empty executable sections (the programs) of an ELF file. */
export function elfCodeSections(elf: Buffer): ElfSection[] {
  return elfSections(elf).filter((s) => (s.flags & SHF_EXECINSTR) !== 0 && s.bytes.length > 0);
}

/** Executable sections of an ELF64 little-endian BPF object and the helpers each calls. */
export function bpfElfSections(elf: Buffer): BpfElfSection[] {
  return elfCodeSections(elf).map((s) => {
    const ids = new Set<number>();
    for (let at = 0; at < s.bytes.length; at += 8) {
      const srcReg = s.bytes[at + 1] >> 4;
      if (s.bytes[at] === BPF_JMP_CALL && srcReg === 0) ids.add(s.bytes.readInt32LE(at + 4));
    }
    return {
      name: s.name.replace(/^\?/, ""),
      helperIds: [...ids].sort((a, b) => a - b),
    };
  });
}

/**
 * Helper names by id from the UAPI header's __BPF_FUNC_MAPPER list: "FN(name)" lines in id order
 * (older headers) or "FN(name, id, ...)" (newer ones).
 */
export function helperNamesById(
  header = readFileSync("/usr/include/linux/bpf.h", "utf8"),
): Map<number, string> {
  // The list follows "#define __BPF_FUNC_MAPPER(FN) \" (older) or
  // "#define ___BPF_FUNC_MAPPER(FN, ctx...) \" (newer), one FN(...) per line.
  const start = header.search(/#define _{2,3}BPF_FUNC_MAPPER\(FN(, ctx\.\.\.)?\)\s*\\\n/);
  if (start < 0) throw new Error("no __BPF_FUNC_MAPPER list in the UAPI header");
  const names = new Map<number, string>();
  let next = 0;
  for (const line of header.slice(start).split("\n").slice(1)) {
    const m = /^\s*FN\(([a-z0-9_]+)(?:,\s*(\d+))?/.exec(line);
    if (!m) break;
    const id = m[2] === undefined ? next : Number(m[2]);
    names.set(id, m[1]);
    next = id + 1;
  }
  return names;
}
