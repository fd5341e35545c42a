// TC programs on a clsact qdisc of an interface inside a netns (libbpf bpf_tc_*). All netlink
// work happens on the netns thread (netns_thread.h).
#include <bpf/libbpf.h>
#include <net/if.h>

#include <optional>
#include <string>

#include "args.h"
#include "module.h"
#include "netns_thread.h"

namespace ebpf_napi {

namespace {

struct TcTarget {
  std::string netns;
  std::string ifname;
  bpf_tc_attach_point direction;
  uint32_t priority;
  uint32_t handle;
};

// { netns: string | null, ifname, direction: "ingress" | "egress", priority, handle }
TcTarget ArgTarget(const Napi::CallbackInfo& info, size_t i) {
  Expect(info[i].IsObject(), info, i, "a TC target");
  auto o = info[i].As<Napi::Object>();
  TcTarget t;
  Napi::Value netns = o.Get("netns");
  if (netns.IsString()) t.netns = netns.As<Napi::String>().Utf8Value();
  Expect(o.Get("ifname").IsString(), info, i, "a TC target with an ifname");
  t.ifname = o.Get("ifname").As<Napi::String>().Utf8Value();
  std::string dir = o.Get("direction").ToString().Utf8Value();
  Expect(dir == "ingress" || dir == "egress", info, i, "a TC target with direction ingress/egress");
  t.direction = dir == "ingress" ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  t.priority = o.Get("priority").ToNumber().Uint32Value();
  t.handle = o.Get("handle").ToNumber().Uint32Value();
  Expect(t.priority <= UINT16_MAX, info, i, "a TC target with a priority of at most 65535");
  return t;
}

// Query and detach name an exact slot: both priority and handle are required.
void RequireSlot(const TcTarget& t, const char* op) {
  if (t.priority == 0 || t.handle == 0) Fail(op, EINVAL, "priority and handle are required");
}

// Runs on the netns thread: resolves the interface there.
bpf_tc_hook Hook(const TcTarget& t, bpf_tc_attach_point point) {
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = static_cast<int>(if_nametoindex(t.ifname.c_str()));
  if (hook.ifindex == 0) Fail("if_nametoindex", errno, t.ifname);
  hook.attach_point = point;
  return hook;
}

// With a valid hook and slot, the kernel answers EINVAL ("Parent Qdisc doesn't exists") when
// the interface has no clsact qdisc at all: report that as the filter/hook being absent.
int NoQdiscIsMissing(int ret) { return ret == -EINVAL ? -ENOENT : ret; }

bpf_tc_opts Slot(const TcTarget& t) {
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.priority = t.priority;
  opts.handle = t.handle;
  return opts;
}

// tcAttach(target, progFd, replace) -> { priority, handle, progId }
Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  TcTarget t = ArgTarget(info, 0);
  int progFd = ArgFd(info, 1);
  bool replace = ArgBool(info, 2);
  bpf_tc_opts opts = Slot(t);
  RunInNetns(t.netns, [&] {
    bpf_tc_hook hook = Hook(t, t.direction);
    int ret = bpf_tc_hook_create(&hook);
    if (ret != -EEXIST) CheckLibbpf(ret, "bpf_tc_hook_create", t.ifname);
    opts.prog_fd = progFd;
    opts.flags = replace ? BPF_TC_F_REPLACE : 0;
    CheckLibbpf(bpf_tc_attach(&hook, &opts), "bpf_tc_attach", t.ifname);
  });
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("priority", opts.priority);
  out.Set("handle", opts.handle);
  out.Set("progId", opts.prog_id);
  return out;
}

// tcQuery(target) -> prog id | null
Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  TcTarget t = ArgTarget(info, 0);
  RequireSlot(t, "bpf_tc_query");
  std::optional<uint32_t> progId;
  RunInNetns(t.netns, [&] {
    bpf_tc_hook hook = Hook(t, t.direction);
    bpf_tc_opts opts = Slot(t);
    int ret = NoQdiscIsMissing(bpf_tc_query(&hook, &opts));
    if (ret == -ENOENT) return;
    CheckLibbpf(ret, "bpf_tc_query", t.ifname);
    progId = opts.prog_id;
  });
  if (!progId) return info.Env().Null();
  return Napi::Number::New(info.Env(), *progId);
}

// tcDetach(target)
Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  TcTarget t = ArgTarget(info, 0);
  RequireSlot(t, "bpf_tc_detach");
  RunInNetns(t.netns, [&] {
    bpf_tc_hook hook = Hook(t, t.direction);
    bpf_tc_opts opts = Slot(t);
    CheckLibbpf(NoQdiscIsMissing(bpf_tc_detach(&hook, &opts)), "bpf_tc_detach", t.ifname);
  });
  return info.Env().Undefined();
}

// tcHookDestroy(netns | null, ifname): removes the clsact qdisc and all its filters.
Napi::Value TcHookDestroy(const Napi::CallbackInfo& info) {
  TcTarget t;
  ArgOptionalString(info, 0, &t.netns);
  t.ifname = ArgString(info, 1);
  RunInNetns(t.netns, [&] {
    bpf_tc_hook hook = Hook(t, static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
    CheckLibbpf(NoQdiscIsMissing(bpf_tc_hook_destroy(&hook)), "bpf_tc_hook_destroy", t.ifname);
  });
  return info.Env().Undefined();
}

}  // namespace

void InitTc(Napi::Env env, Napi::Object exports) {
  Export<TcAttach>(env, exports, "tcAttach");
  Export<TcQuery>(env, exports, "tcQuery");
  Export<TcDetach>(env, exports, "tcDetach");
  Export<TcHookDestroy>(env, exports, "tcHookDestroy");
}

}  // namespace ebpf_napi
