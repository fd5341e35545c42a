// Each concern registers its exports here (addon.cc calls them all).
#pragma once

#include <napi.h>

namespace ebpf_napi {

void InitObject(Napi::Env env, Napi::Object exports);   // object.cc
void InitHandles(Napi::Env env, Napi::Object exports);  // handles.cc
void InitMaps(Napi::Env env, Napi::Object exports);     // maps.cc
void InitLinks(Napi::Env env, Napi::Object exports);    // links.cc
void InitTc(Napi::Env env, Napi::Object exports);       // tc.cc
void InitIds(Napi::Env env, Napi::Object exports);      // ids.cc
void InitProbes(Napi::Env env, Napi::Object exports);   // probes.cc
void InitNetnsBpf(Napi::Env env, Napi::Object exports);         // netns_bpf.cc
void InitNetnsInterfaces(Napi::Env env, Napi::Object exports);  // netns_interfaces.cc
void InitNetnsWatch(Napi::Env env, Napi::Object exports);       // netns_watch.cc
void InitFlock(Napi::Env env, Napi::Object exports);            // flock.cc
void InitTracing(Napi::Env env, Napi::Object exports);          // tracing.cc
void InitKernelBtf(Napi::Env env, Napi::Object exports);        // kernel_btf.cc

// Registers exports[name] = Guard<F>.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
void Export(Napi::Env env, Napi::Object exports, const char* name);

}  // namespace ebpf_napi

#include "error.h"

namespace ebpf_napi {

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
void Export(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New<Guard<F>>(env, name));
}

}  // namespace ebpf_napi
