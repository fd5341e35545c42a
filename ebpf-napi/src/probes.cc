// Feature probes: program types, map types, helpers (libbpf_probe_*) and cgroup attach types
// (load a two-instruction program with that expected attach type).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <string>

#include "args.h"
#include "fd.h"
#include "module.h"
#include "names.h"

namespace ebpf_napi {

namespace {

// libbpf probes return 1 (supported), 0 (not) or a negative errno (could not tell).
Napi::Value ProbeResult(Napi::Env env, int ret, const char* op, const std::string& what) {
  CheckLibbpf(ret, op, what);
  return Napi::Boolean::New(env, ret == 1);
}

Napi::Value ProbeProgType(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  return ProbeResult(info.Env(), libbpf_probe_bpf_prog_type(ProgTypeByName(name), nullptr),
                     "libbpf_probe_bpf_prog_type", name);
}

Napi::Value ProbeMapType(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  return ProbeResult(info.Env(), libbpf_probe_bpf_map_type(MapTypeByName(name), nullptr),
                     "libbpf_probe_bpf_map_type", name);
}

// The expected attach type a probe program of this type must declare to load at all.
bpf_attach_type ProbeAttachTypeFor(bpf_prog_type type) {
  switch (type) {
    case BPF_PROG_TYPE_CGROUP_SOCK_ADDR:
      return BPF_CGROUP_INET4_CONNECT;
    case BPF_PROG_TYPE_CGROUP_SOCKOPT:
      return BPF_CGROUP_GETSOCKOPT;
    case BPF_PROG_TYPE_SK_LOOKUP:
      return BPF_SK_LOOKUP;
    default:
      return static_cast<bpf_attach_type>(0);
  }
}

// probeHelper(progType, helperName). libbpf 1.1's libbpf_probe_bpf_helper only recognises the
// verifier's older wording ("unknown func", "invalid func"); newer kernels say "program of
// this type cannot use helper" and libbpf would report such helpers as available. So the
// probe is done here: load "call helper; exit" and read the verifier's verdict.
Napi::Value ProbeHelper(const Napi::CallbackInfo& info) {
  std::string prog = ArgString(info, 0);
  std::string helper = ArgString(info, 1);
  bpf_prog_type type = ProgTypeByName(prog);
  int id = HelperIdByName(helper);
  const bpf_insn insns[] = {
      {BPF_JMP | BPF_CALL, 0, 0, 0, id},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  char log[4096] = "";
  bpf_prog_load_opts opts{};
  opts.sz = sizeof(opts);
  opts.expected_attach_type = ProbeAttachTypeFor(type);
  opts.log_buf = log;
  opts.log_size = sizeof(log);
  opts.log_level = 1;
  int fd = bpf_prog_load(type, nullptr, "GPL", insns, 2, &opts);
  if (fd >= 0) {
    UniqueFd loaded(fd);
    return Napi::Boolean::New(info.Env(), true);
  }
  bool unsupported = std::strstr(log, "invalid func ") != nullptr ||
                     std::strstr(log, "unknown func ") != nullptr ||
                     std::strstr(log, "cannot use helper ") != nullptr;
  // Any other verifier complaint (argument types, return value) means the call itself passed.
  if (!unsupported && log[0] == '\0') CheckLibbpf(fd, "bpf_prog_load", prog + " " + helper);
  return Napi::Boolean::New(info.Env(), !unsupported);
}

// probeAttachType(cgroupAttachType): r0 = 1; exit — accepted only if the kernel knows the type.
Napi::Value ProbeAttachType(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  bpf_attach_type type = AttachTypeByName(name);
  bpf_prog_type progType = CgroupProgTypeFor(type);
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  bpf_prog_load_opts opts{};
  opts.sz = sizeof(opts);
  opts.expected_attach_type = type;
  int fd = bpf_prog_load(progType, nullptr, "GPL", insns, 2, &opts);
  if (fd == -EINVAL || fd == -EOPNOTSUPP) return Napi::Boolean::New(info.Env(), false);
  UniqueFd prog(CheckLibbpf(fd, "bpf_prog_load", name));
  return Napi::Boolean::New(info.Env(), true);
}

}  // namespace

void InitProbes(Napi::Env env, Napi::Object exports) {
  Export<ProbeProgType>(env, exports, "probeProgType");
  Export<ProbeMapType>(env, exports, "probeMapType");
  Export<ProbeHelper>(env, exports, "probeHelper");
  Export<ProbeAttachType>(env, exports, "probeAttachType");
}

}  // namespace ebpf_napi
