// cgroup v2 attachments as bpf_links: create, update (atomic program replace), detach, query;
// and sockmap/sockhash program links (BPF_LINK_TYPE_SOCKMAP, Linux 6.10+).
#include <bpf/bpf.h>

#include <string>
#include <vector>

#include "args.h"
#include "fd.h"
#include "module.h"
#include "names.h"

namespace ebpf_napi {

namespace {

UniqueFd OpenCgroup(const std::string& dir) {
  return OpenPath(dir, O_RDONLY | O_DIRECTORY, "open_cgroup");
}

// cgroupLinkCreate(progFd, cgroupDir, attachType) -> link fd
Napi::Value CgroupLinkCreate(const Napi::CallbackInfo& info) {
  int progFd = ArgFd(info, 0);
  std::string dir = ArgString(info, 1);
  bpf_attach_type type = AttachTypeByName(ArgString(info, 2));
  CgroupProgTypeFor(type);  // rejects non-cgroup attach types with a clear error
  UniqueFd cgroup = OpenCgroup(dir);
  int fd = bpf_link_create(progFd, cgroup.get(), type, nullptr);
  return Napi::Number::New(info.Env(), CheckLibbpf(fd, "bpf_link_create", dir));
}

// The attach types a program can have on a sockmap or sockhash.
bool IsSockmapAttachType(bpf_attach_type type) {
  switch (type) {
    case BPF_SK_MSG_VERDICT:
    case BPF_SK_SKB_STREAM_PARSER:
    case BPF_SK_SKB_STREAM_VERDICT:
    case BPF_SK_SKB_VERDICT:
      return true;
    default:
      return false;
  }
}

// sockmapLinkCreate(progFd, mapFd, attachType) -> link fd. libbpf 1.1 has no
// bpf_program__attach_sockmap, but its bpf_link_create passes the map fd and attach type
// through; kernels before 6.10 refuse with EINVAL.
Napi::Value SockmapLinkCreate(const Napi::CallbackInfo& info) {
  int progFd = ArgFd(info, 0);
  int mapFd = ArgFd(info, 1);
  bpf_attach_type type = AttachTypeByName(ArgString(info, 2));
  if (!IsSockmapAttachType(type))
    Fail("attach_type", EINVAL, AttachTypeName(type) + " is not a sockmap attach type");
  int fd = bpf_link_create(progFd, mapFd, type, nullptr);
  return Napi::Number::New(info.Env(), CheckLibbpf(fd, "bpf_link_create", AttachTypeName(type)));
}

// cgroupQuery(cgroupDir, attachType, effective) -> program ids
Napi::Value CgroupQuery(const Napi::CallbackInfo& info) {
  std::string dir = ArgString(info, 0);
  bpf_attach_type type = AttachTypeByName(ArgString(info, 1));
  uint32_t flags = ArgBool(info, 2) ? BPF_F_QUERY_EFFECTIVE : 0;
  UniqueFd cgroup = OpenCgroup(dir);
  std::vector<uint32_t> ids(64);
  for (;;) {
    uint32_t count = ids.size();
    int ret = bpf_prog_query(cgroup.get(), type, flags, nullptr, ids.data(), &count);
    if (ret == -ENOSPC) {  // count now holds how many there are
      ids.resize(count + 16);
      continue;
    }
    CheckLibbpf(ret, "bpf_prog_query", dir);
    ids.resize(count);
    break;
  }
  Napi::Array out = Napi::Array::New(info.Env(), ids.size());
  for (uint32_t i = 0; i < ids.size(); i++) out.Set(i, ids[i]);
  return out;
}

// linkUpdate(linkFd, progFd, expectedProgFd | -1)
Napi::Value LinkUpdate(const Napi::CallbackInfo& info) {
  int linkFd = ArgFd(info, 0);
  int progFd = ArgFd(info, 1);
  int64_t expected = ArgInt(info, 2);
  bpf_link_update_opts opts{};
  opts.sz = sizeof(opts);
  if (expected >= 0) {
    opts.flags = BPF_F_REPLACE;
    opts.old_prog_fd = static_cast<uint32_t>(expected);
  }
  CheckLibbpf(bpf_link_update(linkFd, progFd, &opts), "bpf_link_update");
  return info.Env().Undefined();
}

Napi::Value LinkDetach(const Napi::CallbackInfo& info) {
  CheckLibbpf(bpf_link_detach(ArgFd(info, 0)), "bpf_link_detach");
  return info.Env().Undefined();
}

}  // namespace

void InitLinks(Napi::Env env, Napi::Object exports) {
  Export<CgroupLinkCreate>(env, exports, "cgroupLinkCreate");
  Export<CgroupQuery>(env, exports, "cgroupQuery");
  Export<SockmapLinkCreate>(env, exports, "sockmapLinkCreate");
  Export<LinkUpdate>(env, exports, "linkUpdate");
  Export<LinkDetach>(env, exports, "linkDetach");
}

}  // namespace ebpf_napi
