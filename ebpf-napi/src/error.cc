#include "error.h"

#include <cstring>

#include "addon_data.h"

namespace ebpf_napi {

void SetErrorFactory(Napi::Env env, Napi::Function factory) {
  Data(env).errorFactory = Napi::Persistent(factory);
}

Napi::Error ToJsError(Napi::Env env, const SysError& e) {
  AddonData& data = Data(env);
  std::string description = std::strerror(e.err);
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
