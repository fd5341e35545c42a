// Argument access for binding functions: typed getters that throw TypeError on misuse
// (the TS wrappers always pass the right shapes; these guard the native boundary).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace ebpf_napi {

inline void Expect(bool ok, const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!ok) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be " + what);
  }
}

inline std::string ArgString(const Napi::CallbackInfo& info, size_t i) {
  Expect(info[i].IsString(), info, i, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

inline int64_t ArgInt(const Napi::CallbackInfo& info, size_t i) {
  Expect(info[i].IsNumber(), info, i, "a number");
  return info[i].As<Napi::Number>().Int64Value();
}

inline uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i) {
  int64_t v = ArgInt(info, i);
  Expect(v >= 0 && v <= UINT32_MAX, info, i, "a u32");
  return static_cast<uint32_t>(v);
}

inline int ArgFd(const Napi::CallbackInfo& info, size_t i) {
  int64_t v = ArgInt(info, i);
  Expect(v >= 0 && v <= INT32_MAX, info, i, "an fd");
  return static_cast<int>(v);
}

inline bool ArgBool(const Napi::CallbackInfo& info, size_t i) {
  Expect(info[i].IsBoolean(), info, i, "a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

inline Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i) {
  Expect(info[i].IsBuffer(), info, i, "a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

// A string argument that may be null (e.g. "no netns: stay in ours").
inline bool ArgOptionalString(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  if (info[i].IsNull() || info[i].IsUndefined()) return false;
  *out = ArgString(info, i);
  return true;
}

}  // namespace ebpf_napi
