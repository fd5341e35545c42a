// Per-environment state of the addon (safe with worker threads): JS functions it keeps.
#pragma once

#include <napi.h>

namespace ebpf_napi {

struct AddonData {
  Napi::FunctionReference errorFactory;  // (op, errno, description, detail, log) => BpfError
  Napi::FunctionReference objectClass;   // the NativeObject constructor
};

// Created on first use; freed by Node with the environment.
inline AddonData& Data(Napi::Env env) {
  auto* data = env.GetInstanceData<AddonData>();
  if (data == nullptr) {
    data = new AddonData();
    env.SetInstanceData(data);
  }
  return *data;
}

}  // namespace ebpf_napi
