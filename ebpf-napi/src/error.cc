#include "error.h"

#include <bpf/libbpf.h>

#include <cstring>

#include "addon_data.h"

namespace ebpf_napi {

namespace {

// libbpf's own codes (LIBBPF_ERRNO__*, 4000 and up) are not system errnos.
std::string Describe(int err) {
  if (err >= __LIBBPF_ERRNO__START) {
    char buf[128];
    libbpf_strerror(err, buf, sizeof(buf));
    return buf;
  }
  return std::strerror(err);
}

}  // namespace

void SetErrorFactory(Napi::Env env, Napi::Function factory) {
  Data(env).errorFactory = Napi::Persistent(factory);
}

Napi::Error ToJsError(Napi::Env env, const SysError& e) {
  AddonData& data = Data(env);
  std::string description = Describe(e.err);
  if (data.errorFactory.IsEmpty()) {
    return Napi::Error::New(env, e.op + ": " + description + " " + e.detail);
  }
  Napi::Value err = data.errorFactory.Call({
      Napi::String::New(env, e.op),
      Napi::Number::New(env, e.err),
      Napi::String::New(env, description),
      Napi::String::New(env, e.detail),
      Napi::String::New(env, e.log),
  });
  return Napi::Error(env, err);
}

}  // namespace ebpf_napi
