// Failures of kernel/libbpf operations, thrown as C++ exceptions by the core code and turned
// into JS BpfError objects at the binding boundary (Guard).
#pragma once

#include <napi.h>

#include <cerrno>
#include <string>

namespace ebpf_napi {

struct SysError {
  std::string op;      // the failing call, e.g. "bpf_link_update"
  int err;             // positive errno
  std::string detail;  // what it was applied to, e.g. a path (may be empty)
  std::string log;     // libbpf/verifier log captured during the call (may be empty)
};

[[noreturn]] inline void Fail(const char* op, int err, std::string detail = {}, std::string log = {}) {
  throw SysError{op, err, std::move(detail), std::move(log)};
}

// libbpf >= 1.0 returns negative errno codes directly.
inline int CheckLibbpf(int ret, const char* op, const std::string& detail = {}) {
  if (ret < 0) Fail(op, -ret, detail);
  return ret;
}

// Plain syscalls: -1 and errno.
inline int CheckSys(int ret, const char* op, const std::string& detail = {}) {
  if (ret < 0) Fail(op, errno, detail);
  return ret;
}

// Remembers the JS error factory (from lib/errors.ts) for this environment.
void SetErrorFactory(Napi::Env env, Napi::Function factory);

// Builds the JS BpfError for a SysError.
Napi::Error ToJsError(Napi::Env env, const SysError& e);

// Binding wrapper: runs F and converts SysError into a thrown JS BpfError.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value Guard(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const SysError& e) {
    throw ToJsError(info.Env(), e);
  }
}

}  // namespace ebpf_napi

namespace ebpf_napi {

// For ObjectWrap methods: runs fn and converts SysError into a thrown JS BpfError.
template <typename Fn>
auto Guarded(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const SysError& e) {
    throw ToJsError(env, e);
  }
}

}  // namespace ebpf_napi
