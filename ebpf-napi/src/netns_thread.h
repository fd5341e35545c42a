// Work inside another network namespace without ever moving a Node or libuv thread: a fresh
// std::thread enters the netns (setns CLONE_NEWNET, by path), runs the work and ends; the
// caller joins it and gets its SysError rethrown.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace ebpf_napi {

// netnsPath null or empty: the work runs on the new thread in our own netns.
void RunInNetns(const std::string& netnsPath, const std::function<void()>& work);

// The cookie of the calling thread's netns (SO_NETNS_COOKIE of a socket made there); path
// only names it in errors. Call it inside RunInNetns.
uint64_t CurrentNetnsCookie(const std::string& path);

}  // namespace ebpf_napi
