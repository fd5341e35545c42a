#include "names.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "error.h"

namespace ebpf_napi {

namespace {

template <typename Enum>
Enum ByName(const std::string& name, int limit, const char* (*str)(Enum), const char* op) {
  for (int i = 0; i < limit; i++) {
    const char* s = str(static_cast<Enum>(i));
    if (s != nullptr && name == s) return static_cast<Enum>(i);
  }
  Fail(op, EINVAL, "unknown name " + name);
}

template <typename Enum>
std::string NameOf(uint32_t value, const char* (*str)(Enum)) {
  const char* s = str(static_cast<Enum>(value));
  return s != nullptr ? s : "unknown(" + std::to_string(value) + ")";
}

// libbpf's tables end where its knowledge ends; 256 bounds the prog/map/link enums.
constexpr int kEnumLimit = 256;

struct HelperName {
  const char* name;
  int id;
};

#define EBPF_NAPI_HELPER(x) {#x, BPF_FUNC_##x}
const HelperName kHelpers[] = {__BPF_FUNC_MAPPER(EBPF_NAPI_HELPER)};
#undef EBPF_NAPI_HELPER

}  // namespace

bpf_prog_type ProgTypeByName(const std::string& name) {
  return ByName<bpf_prog_type>(name, kEnumLimit, libbpf_bpf_prog_type_str, "prog_type");
}

bpf_map_type MapTypeByName(const std::string& name) {
  return ByName<bpf_map_type>(name, kEnumLimit, libbpf_bpf_map_type_str, "map_type");
}

bpf_attach_type AttachTypeByName(const std::string& name) {
  return ByName<bpf_attach_type>(name, __MAX_BPF_ATTACH_TYPE, libbpf_bpf_attach_type_str,
                                 "attach_type");
}

std::string ProgTypeName(uint32_t type) { return NameOf<bpf_prog_type>(type, libbpf_bpf_prog_type_str); }
std::string MapTypeName(uint32_t type) { return NameOf<bpf_map_type>(type, libbpf_bpf_map_type_str); }
std::string LinkTypeName(uint32_t type) { return NameOf<bpf_link_type>(type, libbpf_bpf_link_type_str); }
std::string AttachTypeName(uint32_t type) {
  if (type >= __MAX_BPF_ATTACH_TYPE) return "unknown(" + std::to_string(type) + ")";
  return NameOf<bpf_attach_type>(type, libbpf_bpf_attach_type_str);
}

bpf_prog_type CgroupProgTypeFor(bpf_attach_type type) {
  switch (type) {
    case BPF_CGROUP_INET_INGRESS:
    case BPF_CGROUP_INET_EGRESS:
      return BPF_PROG_TYPE_CGROUP_SKB;
    case BPF_CGROUP_INET_SOCK_CREATE:
    case BPF_CGROUP_INET_SOCK_RELEASE:
    case BPF_CGROUP_INET4_POST_BIND:
    case BPF_CGROUP_INET6_POST_BIND:
      return BPF_PROG_TYPE_CGROUP_SOCK;
    case BPF_CGROUP_SOCK_OPS:
      return BPF_PROG_TYPE_SOCK_OPS;
    case BPF_CGROUP_DEVICE:
      return BPF_PROG_TYPE_CGROUP_DEVICE;
    case BPF_CGROUP_INET4_BIND:
    case BPF_CGROUP_INET6_BIND:
    case BPF_CGROUP_INET4_CONNECT:
    case BPF_CGROUP_INET6_CONNECT:
    case BPF_CGROUP_UDP4_SENDMSG:
    case BPF_CGROUP_UDP6_SENDMSG:
    case BPF_CGROUP_UDP4_RECVMSG:
    case BPF_CGROUP_UDP6_RECVMSG:
    case BPF_CGROUP_INET4_GETPEERNAME:
    case BPF_CGROUP_INET6_GETPEERNAME:
    case BPF_CGROUP_INET4_GETSOCKNAME:
    case BPF_CGROUP_INET6_GETSOCKNAME:
      return BPF_PROG_TYPE_CGROUP_SOCK_ADDR;
    case BPF_CGROUP_SYSCTL:
      return BPF_PROG_TYPE_CGROUP_SYSCTL;
    case BPF_CGROUP_GETSOCKOPT:
    case BPF_CGROUP_SETSOCKOPT:
      return BPF_PROG_TYPE_CGROUP_SOCKOPT;
    default:
      Fail("attach_type", EINVAL, AttachTypeName(type) + " is not a cgroup attach type");
  }
}

int HelperIdByName(const std::string& name) {
  std::string bare = name.rfind("bpf_", 0) == 0 ? name.substr(4) : name;
  for (const auto& h : kHelpers) {
    if (bare == h.name && h.id != BPF_FUNC_unspec) return h.id;
  }
  Fail("helper", EINVAL, "unknown helper " + name);
}

}  // namespace ebpf_napi
