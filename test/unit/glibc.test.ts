import { expect } from "chai";
import { compareDotted, kernelVersion } from "../../base/dotted-version";
import { glibcFloor, glibcNeeds, highestGlibcVersion, runningGlibc } from "../../base/glibc";

// Shapes of `objdump -T` lines: imported (*UND*) symbols with their version, a weak import, and
// symbols the file defines itself (a libc's own versions are not needs).
const OBJDUMP_T = `
ebpf_napi.node:     file format elf64-x86-64

DYNAMIC SYMBOL TABLE:
0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.2.5) free
0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.34) pthread_create
0000000000000000  w   DF *UND*\t0000000000000000 (GLIBC_2.34) __pthread_key_create
0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.3.4) __xpg_strerror_r
0000000000000000      DF *UND*\t0000000000000000  LIBBPF_1.0 bpf_object__open_mem
0000000000000000      DF *UND*\t0000000000000000 (GLIBCXX_3.4.30) _ZNSt6thread
0000000000034d40 g    DF .text\t0000000000000020 (GLIBC_2.38) strlcpy
`;

describe("glibc floor", () => {
  it("takes the highest GLIBC version among imported symbols only", () => {
    expect(highestGlibcVersion(OBJDUMP_T)).to.equal("2.34");
  });

  it("returns null for a file that imports nothing versioned from glibc", () => {
    expect(
      highestGlibcVersion("DYNAMIC SYMBOL TABLE:\n0000 g DF .text 0010 (LIBBPF_1.0) x\n"),
    ).to.equal(null);
  });

  it("the floor is the highest need and keeps the file that sets it", () => {
    const floor = glibcFloor([
      { file: "node", version: "2.28" },
      { file: "libelf.so.1", version: "2.33" },
      { file: "libz.so.1", version: "2.14" },
    ]);
    expect(floor).to.deep.equal({ file: "libelf.so.1", version: "2.33" });
    expect(glibcFloor([])).to.equal(null);
  });

  it("measures a real ELF file with objdump", () => {
    const [need] = glibcNeeds([process.execPath]);
    expect(need.file).to.equal("node");
    expect(compareDotted(need.version, "2.17")).to.be.greaterThan(0);
  });

  it("objdump on a file that is not ELF fails loudly", () => {
    expect(() => glibcNeeds([__filename])).to.throw(/objdump/);
  });

  it("knows the glibc this process runs on", () => {
    expect(runningGlibc()).to.match(/^2\.\d+$/);
  });
});

describe("dotted versions", () => {
  it("compares numerically, padding missing parts with zero", () => {
    expect(compareDotted("2.28", "2.33")).to.be.lessThan(0);
    expect(compareDotted("2.33", "2.33.0")).to.equal(0);
    expect(compareDotted("2.33.1", "2.33")).to.be.greaterThan(0);
    expect(compareDotted("5.10", "5.7")).to.be.greaterThan(0);
    expect(compareDotted("10.0", "9.99")).to.be.greaterThan(0);
  });

  it("reads the version at the start of a kernel release string", () => {
    expect(kernelVersion("6.18.44-fc-v657")).to.equal("6.18.44");
    expect(kernelVersion("5.4.0-150-generic")).to.equal("5.4.0");
    expect(kernelVersion("5.10")).to.equal("5.10");
    expect(kernelVersion("rolling")).to.equal(null);
  });
});
