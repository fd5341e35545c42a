// Change notifications from the rtnetlink of other network namespaces: one rtnetlink socket
// per watched netns, opened inside it on a netns thread (a socket stays bound to the netns it
// was created in) and subscribed to link, address and route changes of both families. One
// native thread waits on all of them (epoll) and, when a socket has messages, drains them and
// calls the JS callback with the watch's id. The messages are not parsed: the caller re-reads
// what it needs, so a lost message (ENOBUFS on overflow) is just another "changed".
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "args.h"
#include "fd.h"
#include "module.h"
#include "netns_thread.h"

namespace ebpf_napi {

namespace {

constexpr uint32_t kGroups =
    RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
constexpr uint64_t kWakeId = 0;  // the eventfd that stops the thread
constexpr int kReceiveBuffer = 1 << 20;

void CallJs(Napi::Env env, Napi::Function callback, std::nullptr_t*, uint32_t* id) {
  if (env != nullptr && callback != nullptr) {
    try {
      callback.Call({Napi::Number::New(env, *id)});
    } catch (...) {
      // the callback's own error: the JS wrapper handles its errors, nothing to do here
    }
  }
  delete id;
}

using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, uint32_t, CallJs>;

class Watcher {
 public:
  Watcher(Napi::Env env, Napi::Function callback)
      : epoll_(CheckSys(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")),
        wake_(CheckSys(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd")) {
    Poll(wake_.get(), kWakeId);
    tsfn_ = Tsfn::New(env, callback, "netns-watch", 0, 1);
    tsfn_.Unref(env);  // watching alone never keeps the process alive
    thread_ = std::thread([this] { Run(); });
  }
  ~Watcher() { Close(); }

  uint32_t Add(const std::string& netnsPath) {
    UniqueFd sock;
    RunInNetns(netnsPath, [&] {
      sock = UniqueFd(CheckSys(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE),
                               "socket(NETLINK_ROUTE)"));
      sockaddr_nl local{};
      local.nl_family = AF_NETLINK;
      local.nl_groups = kGroups;
      CheckSys(::bind(sock.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)), "bind(rtnetlink groups)",
               netnsPath);
    });
    // a larger queue makes overflow rarer; overflow itself is reported as a change
    ::setsockopt(sock.get(), SOL_SOCKET, SO_RCVBUF, &kReceiveBuffer, sizeof(kReceiveBuffer));
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) Fail("netns_watch_add", EBADF, "watcher is closed");
    uint32_t id = nextId_++;
    Poll(sock.get(), id);
    sockets_[id] = std::move(sock);
    return id;
  }

  void Remove(uint32_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sockets_.find(id);
    if (it == sockets_.end()) return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.get(), nullptr);
    sockets_.erase(it);  // closes the socket: the netns is no longer held
  }

  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return;
      closed_ = true;
    }
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof(one));
    if (thread_.joinable()) thread_.join();
    sockets_.clear();
    tsfn_.Release();
  }

 private:
  void Poll(int fd, uint64_t id) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    CheckSys(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev), "epoll_ctl");
  }

  void Run() {
    epoll_event events[16];
    char buf[16384];
    for (;;) {
      int n = ::epoll_wait(epoll_.get(), events, 16, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      for (int i = 0; i < n; i++) {
        uint64_t id = events[i].data.u64;
        if (id == kWakeId) return;
        bool changed = false;
        {
          std::lock_guard<std::mutex> lock(mu_);
          auto it = sockets_.find(static_cast<uint32_t>(id));
          if (it == sockets_.end()) continue;  // removed meanwhile
          for (;;) {
            ssize_t r = ::recv(it->second.get(), buf, sizeof(buf), MSG_DONTWAIT);
            if (r > 0 || (r < 0 && errno == ENOBUFS)) {
              changed = true;  // a message, or messages lost to overflow
            } else if (!(r < 0 && errno == EINTR)) {
              break;  // EAGAIN: drained
            }
          }
        }
        if (changed) {
          auto* data = new uint32_t(static_cast<uint32_t>(id));
          if (tsfn_.NonBlockingCall(data) != napi_ok) delete data;
        }
      }
    }
  }

  UniqueFd epoll_;
  UniqueFd wake_;
  std::mutex mu_;
  std::map<uint32_t, UniqueFd> sockets_;
  uint32_t nextId_ = 1;
  bool closed_ = false;
  Tsfn tsfn_;
  std::thread thread_;
};

Watcher* ArgWatcher(const Napi::CallbackInfo& info, size_t i) {
  Expect(info[i].IsExternal(), info, i, "a netns watcher");
  return info[i].As<Napi::External<Watcher>>().Data();
}

// netnsWatcherCreate(callback(id)) -> watcher; callback runs on the JS thread
Napi::Value NetnsWatcherCreate(const Napi::CallbackInfo& info) {
  Expect(info[0].IsFunction(), info, 0, "a function");
  auto* w = new Watcher(info.Env(), info[0].As<Napi::Function>());
  return Napi::External<Watcher>::New(info.Env(), w, [](Napi::Env, Watcher* watcher) { delete watcher; });
}

// netnsWatcherAdd(watcher, netnsPath) -> id
Napi::Value NetnsWatcherAdd(const Napi::CallbackInfo& info) {
  Watcher* w = ArgWatcher(info, 0);
  std::string path = ArgString(info, 1);
  if (path.empty()) Fail("netns_watch_add", EINVAL, "empty netns path");
  return Napi::Number::New(info.Env(), w->Add(path));
}

// netnsWatcherRemove(watcher, id): stops watching (and holding) that netns; unknown ids are fine
Napi::Value NetnsWatcherRemove(const Napi::CallbackInfo& info) {
  ArgWatcher(info, 0)->Remove(ArgU32(info, 1));
  return info.Env().Undefined();
}

// netnsWatcherClose(watcher): stops the thread and closes every socket; idempotent
Napi::Value NetnsWatcherClose(const Napi::CallbackInfo& info) {
  ArgWatcher(info, 0)->Close();
  return info.Env().Undefined();
}

}  // namespace

void InitNetnsWatch(Napi::Env env, Napi::Object exports) {
  Export<NetnsWatcherCreate>(env, exports, "netnsWatcherCreate");
  Export<NetnsWatcherAdd>(env, exports, "netnsWatcherAdd");
  Export<NetnsWatcherRemove>(env, exports, "netnsWatcherRemove");
  Export<NetnsWatcherClose>(env, exports, "netnsWatcherClose");
}

}  // namespace ebpf_napi
