// Advisory locks (flock) on a path, held by an fd the caller closes to release the lock:
// processes that change the same pinned state (a CNI plugin's DEL, the installer following
// a pod's interfaces) take turns. The lock goes with the fd, so a killed holder never leaves
// it behind.
#include <sys/file.h>

#include "args.h"
#include "fd.h"
#include "module.h"

namespace ebpf_napi {

namespace {

// lockPath(path) -> fd holding an exclusive flock on path (a file or directory); blocks
// until it is free. close the fd to release.
Napi::Value LockPath(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  UniqueFd fd = OpenPath(path, O_RDONLY, "open_lock");
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) CheckSys(-1, "flock", path);
  }
  return Napi::Number::New(info.Env(), fd.release());
}

}  // namespace

void InitFlock(Napi::Env env, Napi::Object exports) { Export<LockPath>(env, exports, "lockPath"); }

}  // namespace ebpf_napi
