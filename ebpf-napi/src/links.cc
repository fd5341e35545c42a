// cgroup v2 attachments as bpf_links: create, update (atomic program replace), detach, query;
// and sockmap/sockhash program links (BPF_LINK_TYPE_SOCKMAP, Linux 6.10+).
#include <bpf/bpf.h>

#include <optional>
#include <string>
#include <utility>
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

// A link of the program to the cgroup directory open as `cgroupFd` (the link's fd, checked;
// `dir` names it in errors). The caller has checked the attach type with CgroupProgTypeFor.
int CreateCgroupLink(int progFd, int cgroupFd, const std::string& dir, bpf_attach_type type) {
  return CheckLibbpf(bpf_link_create(progFd, cgroupFd, type, nullptr), "bpf_link_create", dir);
}

// cgroupLinkCreate(progFd, cgroupDir, attachType) -> link fd
Napi::Value CgroupLinkCreate(const Napi::CallbackInfo& info) {
  int progFd = ArgFd(info, 0);
  std::string dir = ArgString(info, 1);
  bpf_attach_type type = AttachTypeByName(ArgString(info, 2));
  CgroupProgTypeFor(type);  // rejects non-cgroup attach types with a clear error
  UniqueFd cgroup = OpenCgroup(dir);
  return Napi::Number::New(info.Env(), CreateCgroupLink(progFd, cgroup.get(), dir, type));
}

// One item of cgroupLinksPin: a pinned program attached to a cgroup, the link pinned.
struct CgroupLinkPin {
  std::string progPin;
  std::string cgroupDir;
  std::string attachType;
  std::string linkPin;
};

CgroupLinkPin CgroupLinkPinItem(Napi::Value v) {
  if (!v.IsObject()) Fail("cgroup_links_pin", EINVAL, "an item is not an object");
  Napi::Object o = v.As<Napi::Object>();
  CgroupLinkPin item;
  for (auto [key, field] : {std::pair{"progPin", &item.progPin}, {"cgroupDir", &item.cgroupDir},
                            {"attachType", &item.attachType}, {"linkPin", &item.linkPin}}) {
    Napi::Value f = o.Get(key);
    if (!f.IsString()) Fail("cgroup_links_pin", EINVAL, std::string(key) + " must be a string");
    *field = f.As<Napi::String>().Utf8Value();
  }
  return item;
}

// The cgroup directory of a batch's items, opened once for all the items that name it (they
// all do when one pod's links are pinned).
class CgroupDirs {
 public:
  int Get(const std::string& dir) {
    if (!fd_.has_value() || dir != dir_) {
      fd_.reset();  // closes the previous one first
      fd_.emplace(OpenCgroup(dir));
      dir_ = dir;
    }
    return fd_->get();
  }

 private:
  std::string dir_;
  std::optional<UniqueFd> fd_;
};

// Opens the program pin, links it to the cgroup and pins the link. On a failure the link
// (never pinned) is closed, which detaches it: the item leaves nothing behind.
void PinCgroupLink(const CgroupLinkPin& item, CgroupDirs& dirs) {
  bpf_attach_type type = AttachTypeByName(item.attachType);
  CgroupProgTypeFor(type);  // rejects non-cgroup attach types before opening anything
  UniqueFd prog(CheckLibbpf(bpf_obj_get(item.progPin.c_str()), "bpf_obj_get", item.progPin));
  UniqueFd link(CreateCgroupLink(prog.get(), dirs.Get(item.cgroupDir), item.cgroupDir, type));
  CheckLibbpf(bpf_obj_pin(link.get(), item.linkPin.c_str()), "bpf_obj_pin", item.linkPin);
}

// cgroupLinksPin([{ progPin, cgroupDir, attachType, linkPin }]) -> per item, in order: null
// (linked and pinned), the BpfError of the first item that failed (it left nothing), then
// undefined for the items after it (not attempted). Items before a failure stay pinned.
Napi::Value CgroupLinksPin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Expect(info[0].IsArray(), info, 0, "an array of items");
  Napi::Array items = info[0].As<Napi::Array>();
  std::vector<CgroupLinkPin> parsed;
  for (uint32_t i = 0; i < items.Length(); i++) parsed.push_back(CgroupLinkPinItem(items.Get(i)));
  Napi::Array out = Napi::Array::New(env, parsed.size());
  CgroupDirs dirs;
  for (uint32_t i = 0; i < parsed.size(); i++) {
    try {
      PinCgroupLink(parsed[i], dirs);
      out.Set(i, env.Null());
    } catch (const SysError& e) {
      out.Set(i, ToJsError(env, e).Value());
      break;
    }
  }
  return out;
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
  Export<CgroupLinksPin>(env, exports, "cgroupLinksPin");
  Export<SockmapLinkCreate>(env, exports, "sockmapLinkCreate");
  Export<LinkUpdate>(env, exports, "linkUpdate");
  Export<LinkDetach>(env, exports, "linkDetach");
}

}  // namespace ebpf_napi
