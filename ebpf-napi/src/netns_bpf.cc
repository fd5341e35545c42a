// BPF attached to a network namespace rather than a cgroup or an interface: netns bpf_links
// (sk_lookup, flow_dissector), what the kernel says about them, the programs a netns hook
// runs, and test runs of a program inside a netns (BPF_PROG_TEST_RUN on the netns thread, so
// the program's socket lookups with BPF_F_CURRENT_NETNS see that namespace).
#include <bpf/bpf.h>

#include <string>
#include <vector>

#include "args.h"
#include "fd.h"
#include "module.h"
#include "names.h"
#include "netns_thread.h"

namespace ebpf_napi {

namespace {

bpf_attach_type NetnsAttachType(const std::string& name, const char* op) {
  bpf_attach_type type = AttachTypeByName(name);
  if (type != BPF_SK_LOOKUP && type != BPF_FLOW_DISSECTOR) {
    Fail(op, EINVAL, "attach type " + name + " does not attach to a network namespace");
  }
  return type;
}

UniqueFd OpenNetns(const std::string& path) { return OpenPath(path, O_RDONLY, "open_netns"); }

// netnsLinkCreate(progFd, netnsPath, attachType) -> link fd
Napi::Value NetnsLinkCreate(const Napi::CallbackInfo& info) {
  int progFd = ArgFd(info, 0);
  std::string path = ArgString(info, 1);
  bpf_attach_type type = NetnsAttachType(ArgString(info, 2), "bpf_link_create");
  UniqueFd netns = OpenNetns(path);
  int fd = bpf_link_create(progFd, netns.get(), type, nullptr);
  return Napi::Number::New(info.Env(), CheckLibbpf(fd, "bpf_link_create", path));
}

// netnsLinkInfo(linkFd) -> { netnsIno, attachType }; netnsIno 0 once the netns is gone
Napi::Value NetnsLinkInfo(const Napi::CallbackInfo& info) {
  bpf_link_info l{};
  uint32_t len = sizeof(l);
  CheckLibbpf(bpf_obj_get_info_by_fd(ArgFd(info, 0), &l, &len), "bpf_obj_get_info_by_fd");
  if (l.type != BPF_LINK_TYPE_NETNS) {
    Fail("bpf_obj_get_info_by_fd", EINVAL, "link is a " + LinkTypeName(l.type) + " link, not netns");
  }
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("netnsIno", l.netns.netns_ino);
  out.Set("attachType", AttachTypeName(l.netns.attach_type));
  return out;
}

// netnsQuery(netnsPath, attachType) -> ids of the programs the netns hook runs, in order
Napi::Value NetnsQuery(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  bpf_attach_type type = NetnsAttachType(ArgString(info, 1), "bpf_prog_query");
  UniqueFd netns = OpenNetns(path);
  std::vector<uint32_t> ids(64);
  uint32_t count = ids.size();
  CheckLibbpf(bpf_prog_query(netns.get(), type, 0, nullptr, ids.data(), &count), "bpf_prog_query",
              path);
  ids.resize(count);
  Napi::Array out = Napi::Array::New(info.Env(), ids.size());
  for (uint32_t i = 0; i < ids.size(); i++) out.Set(i, ids[i]);
  return out;
}

// progTestRun(progFd, data, netnsPath | null) -> { retval, dataOut }
Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  int progFd = ArgFd(info, 0);
  Napi::Buffer<uint8_t> in = ArgBuffer(info, 1);
  std::string netns;
  ArgOptionalString(info, 2, &netns);
  std::vector<uint8_t> data(in.Data(), in.Data() + in.Length());
  std::vector<uint8_t> out(data.size() + 256);  // room for programs that grow the packet
  uint32_t retval = 0;
  uint32_t outSize = 0;
  RunInNetns(netns, [&] {
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = data.data();
    opts.data_size_in = data.size();
    opts.data_out = out.data();
    opts.data_size_out = out.size();
    opts.repeat = 1;
    CheckLibbpf(bpf_prog_test_run_opts(progFd, &opts), "bpf_prog_test_run", netns);
    retval = opts.retval;
    outSize = opts.data_size_out;
  });
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("retval", retval);
  result.Set("dataOut", Napi::Buffer<uint8_t>::Copy(info.Env(), out.data(), outSize));
  return result;
}

}  // namespace

void InitNetnsBpf(Napi::Env env, Napi::Object exports) {
  Export<NetnsLinkCreate>(env, exports, "netnsLinkCreate");
  Export<NetnsLinkInfo>(env, exports, "netnsLinkInfo");
  Export<NetnsQuery>(env, exports, "netnsQuery");
  Export<ProgTestRun>(env, exports, "progTestRun");
}

}  // namespace ebpf_napi
