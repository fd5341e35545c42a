// Map element operations on Buffers; the caller passes the sizes it expects (from map info)
// and every Buffer is checked against them before the kernel reads or writes it.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <map>
#include <tuple>
#include <string>
#include <vector>

#include "args.h"
#include "fd.h"
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

// A pinned map opened for mapsUpdatePinned: its fd and the lengths its keys and values take.
struct OpenedMap {
  UniqueFd fd;
  uint32_t keySize = 0;
  uint32_t valueLength = 0;
};

bool IsPerCpu(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

// Why the fd opened from `pin` is not a map, or "" when it is one: its /proc/self/fd link
// names the kind's anon inode (lib/fd.ts openPinnedAs says the same for one pin).
std::string NotAMap(int fd, const std::string& pin) {
  char target[64];
  ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), target, sizeof(target) - 1);
  if (n < 0) return "";  // no procfs: the kernel's own checks stay
  std::string kind(target, n);
  if (kind == "anon_inode:bpf-map") return "";
  if (kind == "anon_inode:bpf-prog") return pin + " holds a prog, not a map";
  if (kind == "anon_inode:bpf_link" || kind == "anon_inode:bpf-link")
    return pin + " holds a link, not a map";
  return pin + " holds no BPF program, map or link, not a map";
}

// Opens a pinned map and reads its sizes. The kind is checked only when something does not
// fit: the info call answers for any kind (a program's would give nonsense sizes), and the
// kernel refuses an update through an fd that is not a map's.
OpenedMap OpenPinnedMap(const std::string& pin) {
  OpenedMap m;
  m.fd = UniqueFd(CheckLibbpf(bpf_obj_get(pin.c_str()), "bpf_obj_get", pin));
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  int ret = bpf_obj_get_info_by_fd(m.fd.get(), &info, &len);
  if (ret < 0) {
    std::string why = NotAMap(m.fd.get(), pin);
    if (!why.empty()) Fail("bpf_obj_get", EINVAL, why);
    Fail("bpf_obj_get_info_by_fd", -ret, pin);
  }
  m.keySize = info.key_size;
  m.valueLength = info.value_size;
  if (IsPerCpu(info.type)) {
    int cpus = CheckLibbpf(libbpf_num_possible_cpus(), "libbpf_num_possible_cpus");
    m.valueLength = static_cast<uint32_t>(cpus) * ((info.value_size + 7) / 8 * 8);
  }
  return m;
}

// mapsUpdatePinned([{ pin, key, value }]): each value stored under its key (BPF_ANY) in the
// map pinned at `pin`, in order, each map opened once. Stops at the first failure (a BpfError
// naming the pin); the entries before it stay written.
Napi::Value MapsUpdatePinned(const Napi::CallbackInfo& info) {
  Expect(info[0].IsArray(), info, 0, "an array of entries");
  Napi::Array items = info[0].As<Napi::Array>();
  std::map<std::string, OpenedMap> maps;
  for (uint32_t i = 0; i < items.Length(); i++) {
    Napi::Value v = items.Get(i);
    Expect(v.IsObject(), info, 0, "an array of { pin, key, value }");
    Napi::Object o = v.As<Napi::Object>();
    Napi::Value pinValue = o.Get("pin"), keyValue = o.Get("key"), valueValue = o.Get("value");
    Expect(pinValue.IsString() && keyValue.IsBuffer() && valueValue.IsBuffer(), info, 0,
           "an array of { pin: string, key: Buffer, value: Buffer }");
    std::string pin = pinValue.As<Napi::String>().Utf8Value();
    auto key = keyValue.As<Napi::Buffer<uint8_t>>();
    auto value = valueValue.As<Napi::Buffer<uint8_t>>();
    auto it = maps.find(pin);
    if (it == maps.end()) it = maps.emplace(pin, OpenPinnedMap(pin)).first;
    OpenedMap& m = it->second;
    for (auto [buf, size, what] : {std::tuple{&key, m.keySize, "key"}, {&value, m.valueLength, "value"}}) {
      if (buf->Length() == size) continue;
      std::string why = NotAMap(m.fd.get(), pin);
      if (!why.empty()) Fail("bpf_obj_get", EINVAL, why);
      Fail("bpf_map_update_elem", EINVAL,
           pin + ": " + what + " is " + std::to_string(buf->Length()) + " bytes, the map wants " +
               std::to_string(size));
    }
    int ret = bpf_map_update_elem(m.fd.get(), key.Data(), value.Data(), BPF_ANY);
    if (ret < 0) {
      std::string why = NotAMap(m.fd.get(), pin);
      if (!why.empty()) Fail("bpf_obj_get", EINVAL, why);
      Fail("bpf_map_update_elem", -ret, pin);
    }
  }
  return info.Env().Undefined();
}

}  // namespace

void InitMaps(Napi::Env env, Napi::Object exports) {
  Export<MapCreate>(env, exports, "mapCreate");
  Export<MapLookup>(env, exports, "mapLookup");
  Export<MapUpdate>(env, exports, "mapUpdate");
  Export<MapDelete>(env, exports, "mapDelete");
  Export<MapNextKey>(env, exports, "mapNextKey");
  Export<MapsUpdatePinned>(env, exports, "mapsUpdatePinned");
}

}  // namespace ebpf_napi
