// Kernel identities: the netns cookie of a netns path and the cgroup id of a cgroup directory.
#include <fcntl.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "args.h"
#include "fd.h"
#include "module.h"
#include "netns_thread.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace ebpf_napi {

uint64_t CurrentNetnsCookie(const std::string& path) {
  uint64_t cookie = 0;
  UniqueFd sock(CheckSys(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket"));
  socklen_t len = sizeof(cookie);
  CheckSys(::getsockopt(sock.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len),
           "getsockopt(SO_NETNS_COOKIE)", path);
  return cookie;
}

namespace {

// netnsCookie(path) -> bigint: a socket made inside the netns reports its cookie.
Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  if (path.empty()) Fail("netns_cookie", EINVAL, "empty netns path");
  uint64_t cookie = 0;
  RunInNetns(path, [&] { cookie = CurrentNetnsCookie(path); });
  return Napi::BigInt::New(info.Env(), cookie);
}

// cgroupId(dir) -> bigint: on cgroup2 the 8-byte file handle of the directory is its id.
Napi::Value CgroupId(const Napi::CallbackInfo& info) {
  std::string dir = ArgString(info, 0);
  union {
    file_handle handle;
    char storage[sizeof(file_handle) + MAX_HANDLE_SZ];
  } buf{};
  buf.handle.handle_bytes = MAX_HANDLE_SZ;
  int mountId = 0;
  CheckSys(::name_to_handle_at(AT_FDCWD, dir.c_str(), &buf.handle, &mountId, 0), "name_to_handle_at",
           dir);
  if (buf.handle.handle_bytes != sizeof(uint64_t)) {
    Fail("name_to_handle_at", EINVAL, dir + " is not on cgroup2 (file handle is not 8 bytes)");
  }
  uint64_t id;
  std::memcpy(&id, buf.handle.f_handle, sizeof(id));
  return Napi::BigInt::New(info.Env(), id);
}

}  // namespace

void InitIds(Napi::Env env, Napi::Object exports) {
  Export<NetnsCookie>(env, exports, "netnsCookie");
  Export<CgroupId>(env, exports, "cgroupId");
}

}  // namespace ebpf_napi
