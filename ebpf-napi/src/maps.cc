// Map element operations on Buffers; the caller passes the sizes it expects (from map info)
// and every Buffer is checked against them before the kernel reads or writes it.
#include <bpf/bpf.h>

#include <string>

#include "args.h"
#include "module.h"
#include "names.h"

namespace ebpf_napi {

namespace {

void CheckSize(const Napi::Buffer<uint8_t>& buf, uint32_t size, const char* op, const char* what) {
  if (buf.Length() != size) {
    Fail(op, EINVAL,
         std::string(what) + " is " + std::to_string(buf.Length()) + " bytes, the map wants " +
             std::to_string(size));
  }
}

// mapCreate(type, name|null, keySize, valueSize, maxEntries, flags) -> fd
Napi::Value MapCreate(const Napi::CallbackInfo& info) {
  bpf_map_type type = MapTypeByName(ArgString(info, 0));
  std::string name;
  bool named = ArgOptionalString(info, 1, &name);
  bpf_map_create_opts opts{};
  opts.sz = sizeof(opts);
  opts.map_flags = ArgU32(info, 5);
  int fd = bpf_map_create(type, named ? name.c_str() : nullptr, ArgU32(info, 2), ArgU32(info, 3),
                          ArgU32(info, 4), &opts);
  return Napi::Number::New(info.Env(), CheckLibbpf(fd, "bpf_map_create", name));
}

// mapLookup(fd, key, keySize, valueLength) -> Buffer | null
Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1);
  CheckSize(key, ArgU32(info, 2), "bpf_map_lookup_elem", "key");
  auto value = Napi::Buffer<uint8_t>::New(info.Env(), ArgU32(info, 3));
  int ret = bpf_map_lookup_elem(fd, key.Data(), value.Data());
  if (ret == -ENOENT) return info.Env().Null();
  CheckLibbpf(ret, "bpf_map_lookup_elem");
  return value;
}

// mapUpdate(fd, key, keySize, value, valueLength, flags)
Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1);
  CheckSize(key, ArgU32(info, 2), "bpf_map_update_elem", "key");
  auto value = ArgBuffer(info, 3);
  CheckSize(value, ArgU32(info, 4), "bpf_map_update_elem", "value");
  CheckLibbpf(bpf_map_update_elem(fd, key.Data(), value.Data(), ArgU32(info, 5)),
              "bpf_map_update_elem");
  return info.Env().Undefined();
}

// mapDelete(fd, key, keySize) -> whether the key was there
Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1);
  CheckSize(key, ArgU32(info, 2), "bpf_map_delete_elem", "key");
  int ret = bpf_map_delete_elem(fd, key.Data());
  if (ret == -ENOENT) return Napi::Boolean::New(info.Env(), false);
  CheckLibbpf(ret, "bpf_map_delete_elem");
  return Napi::Boolean::New(info.Env(), true);
}

// mapNextKey(fd, key|null, keySize) -> the following key, or null at the end
Napi::Value MapNextKey(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  uint32_t keySize = ArgU32(info, 2);
  const void* current = nullptr;
  if (!info[1].IsNull()) {
    auto key = ArgBuffer(info, 1);
    CheckSize(key, keySize, "bpf_map_get_next_key", "key");
    current = key.Data();
  }
  auto next = Napi::Buffer<uint8_t>::New(info.Env(), keySize);
  int ret = bpf_map_get_next_key(fd, current, next.Data());
  if (ret == -ENOENT) return info.Env().Null();
  CheckLibbpf(ret, "bpf_map_get_next_key");
  return next;
}

}  // namespace

void InitMaps(Napi::Env env, Napi::Object exports) {
  Export<MapCreate>(env, exports, "mapCreate");
  Export<MapLookup>(env, exports, "mapLookup");
  Export<MapUpdate>(env, exports, "mapUpdate");
  Export<MapDelete>(env, exports, "mapDelete");
  Export<MapNextKey>(env, exports, "mapNextKey");
}

}  // namespace ebpf_napi
