// Fd-level operations shared by programs, maps and links: pin, unpin, open pinned, open by
// id, and the kernel's info about each kind.
#include <bpf/bpf.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "args.h"
#include "fd.h"
#include "module.h"
#include "names.h"

namespace ebpf_napi {

namespace {

template <typename Info>
Info GetInfo(int fd, const char* op) {
  Info info{};
  uint32_t len = sizeof(info);
  CheckLibbpf(bpf_obj_get_info_by_fd(fd, &info, &len), op);
  return info;
}

Napi::Value Pin(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  std::string path = ArgString(info, 1);
  CheckLibbpf(bpf_obj_pin(fd, path.c_str()), "bpf_obj_pin", path);
  return info.Env().Undefined();
}

Napi::Value Unpin(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  CheckSys(::unlink(path.c_str()), "unpin", path);
  return info.Env().Undefined();
}

Napi::Value OpenPinned(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  return Napi::Number::New(info.Env(), CheckLibbpf(bpf_obj_get(path.c_str()), "bpf_obj_get", path));
}

template <int (*ById)(uint32_t), const char* Op>
Napi::Value FdById(const Napi::CallbackInfo& info) {
  uint32_t id = ArgU32(info, 0);
  return Napi::Number::New(info.Env(), CheckLibbpf(ById(id), Op, "id " + std::to_string(id)));
}
constexpr char kProgById[] = "bpf_prog_get_fd_by_id";
constexpr char kMapById[] = "bpf_map_get_fd_by_id";
constexpr char kLinkById[] = "bpf_link_get_fd_by_id";

Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  auto p = GetInfo<bpf_prog_info>(ArgFd(info, 0), "bpf_obj_get_info_by_fd");
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) std::snprintf(tag + 2 * i, 3, "%02x", p.tag[i]);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("id", p.id);
  out.Set("name", p.name);
  out.Set("tag", tag);
  out.Set("type", ProgTypeName(p.type));
  return out;
}

Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  auto m = GetInfo<bpf_map_info>(ArgFd(info, 0), "bpf_obj_get_info_by_fd");
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("id", m.id);
  out.Set("name", m.name);
  out.Set("type", MapTypeName(m.type));
  out.Set("keySize", m.key_size);
  out.Set("valueSize", m.value_size);
  out.Set("maxEntries", m.max_entries);
  out.Set("flags", m.map_flags);
  return out;
}

// BPF_LINK_TYPE_SOCKMAP and its bpf_link_info member (Linux 6.10); Debian 12's headers
// predate both.
constexpr uint32_t kLinkTypeSockmap = 14;
struct SockmapLinkInfo {
  uint32_t map_id;
  uint32_t attach_type;
};

Napi::Value LinkInfo(const Napi::CallbackInfo& info) {
  auto l = GetInfo<bpf_link_info>(ArgFd(info, 0), "bpf_obj_get_info_by_fd");
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", l.id);
  out.Set("progId", l.prog_id);
  out.Set("type", l.type == kLinkTypeSockmap ? std::string("sockmap") : LinkTypeName(l.type));
  if (l.type == BPF_LINK_TYPE_CGROUP) {
    out.Set("attachType", AttachTypeName(l.cgroup.attach_type));
    out.Set("cgroupId", Napi::BigInt::New(env, static_cast<uint64_t>(l.cgroup.cgroup_id)));
  }
  if (l.type == kLinkTypeSockmap) {
    // struct { __u32 map_id; __u32 attach_type; } sockmap, at the start of the union
    SockmapLinkInfo s;
    std::memcpy(&s, &l.raw_tracepoint, sizeof(s));
    out.Set("attachType", AttachTypeName(s.attach_type));
    out.Set("mapId", s.map_id);
  }
  return out;
}

}  // namespace

void InitHandles(Napi::Env env, Napi::Object exports) {
  Export<Pin>(env, exports, "pin");
  Export<Unpin>(env, exports, "unpin");
  Export<OpenPinned>(env, exports, "openPinned");
  Export<FdById<bpf_prog_get_fd_by_id, kProgById>>(env, exports, "progFdById");
  Export<FdById<bpf_map_get_fd_by_id, kMapById>>(env, exports, "mapFdById");
  Export<FdById<bpf_link_get_fd_by_id, kLinkById>>(env, exports, "linkFdById");
  Export<ProgInfo>(env, exports, "progInfo");
  Export<MapInfo>(env, exports, "mapInfo");
  Export<LinkInfo>(env, exports, "linkInfo");
}

}  // namespace ebpf_napi
