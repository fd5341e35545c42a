// Work inside another network namespace without ever moving a Node or libuv thread: one
// worker thread, started at the first trip and kept, enters the netns (setns CLONE_NEWNET, by
// path) and runs the work while the caller waits; the caller gets its SysError rethrown.
// Trips are serialized; the worker holds one fd (the process's own netns) for its life, and
// goes back to that netns after each trip (it never keeps a pod's netns alive).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace ebpf_napi {

// netnsPath null or empty: the work runs on the worker in the process's own netns.
void RunInNetns(const std::string& netnsPath, const std::function<void()>& work);

// The cookie of the calling thread's netns (SO_NETNS_COOKIE of a socket made there); path
// only names it in errors. Call it inside RunInNetns.
uint64_t CurrentNetnsCookie(const std::string& path);

}  // namespace ebpf_napi
