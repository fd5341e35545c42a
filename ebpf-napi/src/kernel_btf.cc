// The kernel's BTF for libbpf, at half the memory.
//
// libbpf 1.1 loads the kernel's BTF (btf__load_vmlinux_btf) for every object whose load needs
// it (CO-RE relocations, kfuncs and typed ksyms, tp_btf/fentry attach targets) and frees it
// when that load ends. It reads /sys/kernel/btf/vmlinux (5.2 MiB on a typical kernel) whole
// into one buffer, copies that into the btf's own and only then frees the first: 11 MiB of
// process memory at the peak, on top of whatever the process already holds.
//
// This file defines btf__load_vmlinux_btf itself. libbpf calls that function through its PLT,
// and the dynamic linker binds such a call to the first definition in the calling library's
// lookup scope: the addon, which dlopen loaded first and libbpf only as its dependency. Where
// the kernel lets its BTF file be mapped (Linux 6.16+: sysfs maps the kernel's own pages of it,
// which count in no process's RSS), libbpf's btf__new copies from the mapping: one buffer, not
// two. Where it does not, or what is mapped does not parse, libbpf's own function runs
// (exported under its old name, libbpf_find_kernel_btf): the same search, files and result.
// kernelBtfLoads() counts which way each load went, so a libbpf that stopped calling through
// its PLT shows as a count that stays at zero (test/kernel/ebpf-napi.test.ts).
#include <bpf/btf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>

#include "args.h"
#include "error.h"
#include "fd.h"
#include "module.h"

extern "C" {
// libbpf's own btf__load_vmlinux_btf: an alias libbpf 1.x still exports (LIBBPF_0.0.7) but no
// longer declares.
struct btf* libbpf_find_kernel_btf(void);
// Defined below; replaces libbpf's for libbpf's own calls (see above).
__attribute__((visibility("default"))) struct btf* btf__load_vmlinux_btf(void);
}

namespace ebpf_napi {

namespace {

constexpr const char* kKernelBtf = "/sys/kernel/btf/vmlinux";

// The file mapped for libbpf: kKernelBtf unless a test set another (setKernelBtfPath).
std::string g_path = kKernelBtf;

std::atomic<uint32_t> g_mapped{0};    // loads served from the mapped file
std::atomic<uint32_t> g_searched{0};  // loads handed to libbpf's own search

// What failed in MapBtf: the step and its errno.
struct MapFailure {
  const char* op = "";
  int err = 0;
};

// The BTF in `path`, parsed from a read-only private mapping of it; nullptr when the file
// cannot be opened or mapped or is not BTF (`failure` then says which step and why).
struct btf* MapBtf(const char* path, MapFailure* failure) {
  auto fail = [&](const char* op, int err) -> struct btf* {
    *failure = {op, err};
    return nullptr;
  };
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return fail("open", errno);
  struct stat st{};
  if (::fstat(fd.get(), &st) < 0) return fail("fstat", errno);
  if (st.st_size <= 0 || st.st_size > UINT32_MAX) return fail("fstat", EINVAL);  // BTF's own bound
  size_t size = static_cast<size_t>(st.st_size);
  void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (data == MAP_FAILED) return fail("mmap", errno);
  struct btf* btf = btf__new(data, static_cast<__u32>(size));
  int err = errno;
  ::munmap(data, size);
  return btf != nullptr ? btf : fail("btf__new", err);
}

// kernelBtfLoads() -> { mapped, searched }: how this process's kernel BTF loads went.
Napi::Value KernelBtfLoads(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("mapped", Napi::Number::New(info.Env(), g_mapped.load()));
  out.Set("searched", Napi::Number::New(info.Env(), g_searched.load()));
  return out;
}

// mapKernelBtf(path) -> number of types: the mapped load of one file (tests, diagnostics).
Napi::Value MapKernelBtf(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  MapFailure failure;
  struct btf* btf = MapBtf(path.c_str(), &failure);
  if (btf == nullptr) Fail(failure.op, failure.err, path);
  uint32_t types = btf__type_cnt(btf);
  btf__free(btf);
  return Napi::Number::New(info.Env(), types);
}

// setKernelBtfPath(path | null): tests make the mapped file another (null: the kernel's).
Napi::Value SetKernelBtfPath(const Napi::CallbackInfo& info) {
  std::string path = kKernelBtf;
  ArgOptionalString(info, 0, &path);
  g_path = path;
  return info.Env().Undefined();
}

// searchKernelBtf() -> number of types: libbpf's own search, the fallback (tests).
Napi::Value SearchKernelBtf(const Napi::CallbackInfo& info) {
  struct btf* btf = libbpf_find_kernel_btf();
  if (btf == nullptr) Fail("libbpf_find_kernel_btf", errno);
  uint32_t types = btf__type_cnt(btf);
  btf__free(btf);
  return Napi::Number::New(info.Env(), types);
}

}  // namespace

void InitKernelBtf(Napi::Env env, Napi::Object exports) {
  Export<KernelBtfLoads>(env, exports, "kernelBtfLoads");
  Export<MapKernelBtf>(env, exports, "mapKernelBtf");
  Export<SearchKernelBtf>(env, exports, "searchKernelBtf");
  Export<SetKernelBtfPath>(env, exports, "setKernelBtfPath");
}

}  // namespace ebpf_napi

struct btf* btf__load_vmlinux_btf(void) {
  ebpf_napi::MapFailure failure;
  struct btf* btf = ebpf_napi::MapBtf(ebpf_napi::g_path.c_str(), &failure);
  if (btf != nullptr) {
    ebpf_napi::g_mapped++;
    return btf;
  }
  ebpf_napi::g_searched++;
  return libbpf_find_kernel_btf();
}
