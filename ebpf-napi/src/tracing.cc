// Tracing programs as bpf_links: fentry/fexit/fmod_ret (BPF_LINK_TYPE_TRACING) and BTF
// tracepoints, tp_btf (BPF_LINK_TYPE_RAW_TRACEPOINT). The program names its kernel function or
// tracepoint when it is loaded (attach_btf_id, from its SEC("fexit/<function>") or
// SEC("tp_btf/<tracepoint>")), so the link needs no target. These links cannot change
// program (bpf_link_update refuses): replace one by attaching a new link and dropping the old.
#include <bpf/bpf.h>

#include <string>

#include "args.h"
#include "module.h"
#include "names.h"

namespace ebpf_napi {

namespace {

bool IsTracingAttachType(bpf_attach_type type) {
  switch (type) {
    case BPF_TRACE_FENTRY:
    case BPF_TRACE_FEXIT:
    case BPF_MODIFY_RETURN:
      return true;
    default:
      return false;
  }
}

// tracingLinkCreate(progFd, attachType) -> link fd
Napi::Value TracingLinkCreate(const Napi::CallbackInfo& info) {
  int progFd = ArgFd(info, 0);
  bpf_attach_type type = AttachTypeByName(ArgString(info, 1));
  if (type == BPF_TRACE_RAW_TP) {
    // BPF_RAW_TRACEPOINT_OPEN with no name: the tracepoint is the program's attach_btf_id
    // (bpf_link_create takes tp_btf programs only from 6.10)
    int fd = bpf_raw_tracepoint_open(nullptr, progFd);
    return Napi::Number::New(info.Env(), CheckLibbpf(fd, "bpf_raw_tracepoint_open"));
  }
  if (!IsTracingAttachType(type))
    Fail("attach_type", EINVAL, AttachTypeName(type) + " is not a tracing attach type");
  int fd = bpf_link_create(progFd, 0, type, nullptr);
  return Napi::Number::New(info.Env(), CheckLibbpf(fd, "bpf_link_create", AttachTypeName(type)));
}

}  // namespace

void InitTracing(Napi::Env env, Napi::Object exports) {
  Export<TracingLinkCreate>(env, exports, "tracingLinkCreate");
}

}  // namespace ebpf_napi
