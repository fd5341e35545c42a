// Module entry: registers every concern's functions plus init/version/cpus/closeFd.
#include <bpf/libbpf.h>

#include <string>

#include "args.h"
#include "error.h"
#include "fd.h"
#include "libbpf_log.h"
#include "module.h"

namespace ebpf_napi {

namespace {

// init(errorFactory): the TS side hands over how to build BpfError objects.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Expect(info[0].IsFunction(), info, 0, "a function");
  SetErrorFactory(info.Env(), info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), libbpf_version_string());
}

Napi::Value PossibleCpus(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), CheckLibbpf(libbpf_num_possible_cpus(), "libbpf_num_possible_cpus"));
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  CheckSys(::close(fd), "close", std::to_string(fd));
  return info.Env().Undefined();
}

}  // namespace

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  InstallLibbpfPrint();
  exports.Set("init", Napi::Function::New<Init>(env, "init"));
  Export<LibbpfVersion>(env, exports, "libbpfVersion");
  Export<PossibleCpus>(env, exports, "possibleCpus");
  Export<CloseFd>(env, exports, "closeFd");
  InitObject(env, exports);
  InitHandles(env, exports);
  InitMaps(env, exports);
  InitLinks(env, exports);
  InitTc(env, exports);
  InitIds(env, exports);
  InitProbes(env, exports);
  InitNetnsBpf(env, exports);
  InitNetnsInterfaces(env, exports);
  InitNetnsWatch(env, exports);
  InitFlock(env, exports);
  InitTracing(env, exports);
  InitKernelBtf(env, exports);
  return exports;
}

}  // namespace ebpf_napi

static Napi::Object RegisterModule(Napi::Env env, Napi::Object exports) {
  return ebpf_napi::Register(env, exports);
}

NODE_API_MODULE(ebpf_napi, RegisterModule)
