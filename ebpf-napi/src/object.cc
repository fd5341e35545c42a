// NativeObject: one bpf_object (open from bytes, adjust, load, hand out dup'd fds, close).
#include <bpf/libbpf.h>

#include <memory>
#include <vector>

#include "addon_data.h"
#include "args.h"
#include "error.h"
#include "fd.h"
#include "libbpf_log.h"
#include "module.h"

namespace ebpf_napi {

namespace {

struct ObjectCloser {
  void operator()(bpf_object* obj) const { bpf_object__close(obj); }
};

class NativeObject : public Napi::ObjectWrap<NativeObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeObject",
                       {
                           InstanceMethod<&NativeObject::SetMapMaxEntries>("setMapMaxEntries"),
                           InstanceMethod<&NativeObject::SetAutoload>("setAutoload"),
                           InstanceMethod<&NativeObject::Load>("load"),
                           InstanceMethod<&NativeObject::ProgramNames>("programNames"),
                           InstanceMethod<&NativeObject::MapNames>("mapNames"),
                           InstanceMethod<&NativeObject::ProgramFd>("programFd"),
                           InstanceMethod<&NativeObject::MapFd>("mapFd"),
                           InstanceMethod<&NativeObject::Close>("close"),
                       });
  }

  // new NativeObject(elf: Buffer, name: string | null, pinMaps: Record<string, string>)
  explicit NativeObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeObject>(info) {
    auto elf = ArgBuffer(info, 0);
    std::string name;
    ArgOptionalString(info, 1, &name);
    Expect(info[2].IsObject(), info, 2, "an object");
    auto pins = info[2].As<Napi::Object>();
    // libbpf keeps pointing into the buffer until load: own a copy.
    elf_.assign(elf.Data(), elf.Data() + elf.Length());
    Guarded(info.Env(), [&] {
      Open(name);
      SetPinPaths(info, pins);
    });
  }

 private:
  void Open(const std::string& name) {
    bpf_object_open_opts opts{};
    opts.sz = sizeof(opts);
    opts.object_name = name.empty() ? nullptr : name.c_str();
    LibbpfLogCapture capture;
    bpf_object* obj = bpf_object__open_mem(elf_.data(), elf_.size(), &opts);
    if (obj == nullptr) Fail("bpf_object__open_mem", errno, name, capture.text());
    obj_.reset(obj);
  }

  void SetPinPaths(const Napi::CallbackInfo& info, Napi::Object pins) {
    Napi::Array names = pins.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string map = names.Get(i).ToString().Utf8Value();
      Napi::Value path = pins.Get(map);
      Expect(path.IsString(), info, 2, "a map of strings");
      CheckLibbpf(bpf_map__set_pin_path(FindMap(map), path.As<Napi::String>().Utf8Value().c_str()),
                  "bpf_map__set_pin_path", map);
    }
  }

  bpf_object* Obj() {
    if (!obj_) Fail("bpf_object", EBADF, "used after close()");
    return obj_.get();
  }

  bpf_map* FindMap(const std::string& name) {
    bpf_map* map = bpf_object__find_map_by_name(Obj(), name.c_str());
    if (map == nullptr) Fail("bpf_object__find_map_by_name", ENOENT, name);
    return map;
  }

  bpf_program* FindProgram(const std::string& name) {
    bpf_program* prog = bpf_object__find_program_by_name(Obj(), name.c_str());
    if (prog == nullptr) Fail("bpf_object__find_program_by_name", ENOENT, name);
    return prog;
  }

  Napi::Value SetMapMaxEntries(const Napi::CallbackInfo& info) {
    std::string name = ArgString(info, 0);
    uint32_t max = ArgU32(info, 1);
    Guarded(info.Env(), [&] {
      CheckLibbpf(bpf_map__set_max_entries(FindMap(name), max), "bpf_map__set_max_entries", name);
    });
    return info.Env().Undefined();
  }

  Napi::Value SetAutoload(const Napi::CallbackInfo& info) {
    std::string name = ArgString(info, 0);
    bool autoload = ArgBool(info, 1);
    Guarded(info.Env(), [&] {
      CheckLibbpf(bpf_program__set_autoload(FindProgram(name), autoload), "bpf_program__set_autoload",
                  name);
    });
    return info.Env().Undefined();
  }

  Napi::Value Load(const Napi::CallbackInfo& info) {
    Guarded(info.Env(), [&] {
      bpf_object* obj = Obj();
      LibbpfLogCapture capture;
      int ret = bpf_object__load(obj);
      if (ret < 0) Fail("bpf_object__load", -ret, bpf_object__name(obj), capture.text());
    });
    return info.Env().Undefined();
  }

  Napi::Value ProgramNames(const Napi::CallbackInfo& info) {
    return Guarded(info.Env(), [&] {
      Napi::Array out = Napi::Array::New(info.Env());
      bpf_program* prog;
      uint32_t i = 0;
      bpf_object__for_each_program(prog, Obj()) {
        out.Set(i++, Napi::String::New(info.Env(), bpf_program__name(prog)));
      }
      return out;
    });
  }

  Napi::Value MapNames(const Napi::CallbackInfo& info) {
    return Guarded(info.Env(), [&] {
      Napi::Array out = Napi::Array::New(info.Env());
      bpf_map* map;
      uint32_t i = 0;
      bpf_object__for_each_map(map, Obj()) {
        out.Set(i++, Napi::String::New(info.Env(), bpf_map__name(map)));
      }
      return out;
    });
  }

  Napi::Value ProgramFd(const Napi::CallbackInfo& info) {
    std::string name = ArgString(info, 0);
    return Guarded(info.Env(), [&] {
      int fd = bpf_program__fd(FindProgram(name));
      if (fd < 0) Fail("bpf_program__fd", EINVAL, name + " is not loaded");
      return Napi::Number::New(info.Env(), DupFd(fd, "dup").release());
    });
  }

  Napi::Value MapFd(const Napi::CallbackInfo& info) {
    std::string name = ArgString(info, 0);
    return Guarded(info.Env(), [&] {
      int fd = bpf_map__fd(FindMap(name));
      if (fd < 0) Fail("bpf_map__fd", EINVAL, name + " is not created (load the object first)");
      return Napi::Number::New(info.Env(), DupFd(fd, "dup").release());
    });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    obj_.reset();
    elf_ = {};
    return info.Env().Undefined();
  }

  std::vector<uint8_t> elf_;
  std::unique_ptr<bpf_object, ObjectCloser> obj_;
};

// objectOpen(elf, name, pinMaps) -> NativeObject
Napi::Value ObjectOpen(const Napi::CallbackInfo& info) {
  return Data(info.Env()).objectClass.New({info[0], info[1], info[2]});
}

}  // namespace

void InitObject(Napi::Env env, Napi::Object exports) {
  Data(env).objectClass = Napi::Persistent(NativeObject::Define(env));
  exports.Set("objectOpen", Napi::Function::New<ObjectOpen>(env, "objectOpen"));
}

}  // namespace ebpf_napi
