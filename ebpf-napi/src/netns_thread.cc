#include "netns_thread.h"

#include <sched.h>

#include <exception>
#include <optional>
#include <thread>

#include "error.h"
#include "fd.h"

namespace ebpf_napi {

void RunInNetns(const std::string& netnsPath, const std::function<void()>& work) {
  std::optional<SysError> failure;
  std::exception_ptr other;
  std::thread worker([&] {
    try {
      if (!netnsPath.empty()) {
        UniqueFd ns = OpenPath(netnsPath, O_RDONLY, "open_netns");
        CheckSys(::setns(ns.get(), CLONE_NEWNET), "setns", netnsPath);
      }
      work();
    } catch (const SysError& e) {
      failure = e;
    } catch (...) {
      other = std::current_exception();
    }
  });
  worker.join();
  if (failure) throw *failure;
  if (other) std::rethrow_exception(other);
}

}  // namespace ebpf_napi
