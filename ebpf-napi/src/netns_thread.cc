#include "netns_thread.h"

#include <fcntl.h>
#include <sched.h>

#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "error.h"
#include "fd.h"

namespace ebpf_napi {

namespace {

// Enters netnsPath (empty: `home`, the process's own netns, entered only when the thread is
// elsewhere, `atHome` false: setns needs CAP_SYS_ADMIN even into the netns one is in), runs
// the work, and hands back what it threw. Every trip enters its netns first, so where the
// last one left the thread never matters beyond atHome.
void EnterAndRun(int home, bool& atHome, const std::string& netnsPath,
                 const std::function<void()>& work, std::optional<SysError>& failure,
                 std::exception_ptr& other) {
  try {
    if (netnsPath.empty()) {
      if (!atHome) CheckSys(::setns(home, CLONE_NEWNET), "setns", "the process's own netns");
      atHome = true;
    } else {
      UniqueFd ns = OpenPath(netnsPath, O_RDONLY, "open_netns");
      CheckSys(::setns(ns.get(), CLONE_NEWNET), "setns", netnsPath);
      atHome = false;
    }
    work();
  } catch (const SysError& e) {
    failure = e;
  } catch (...) {
    other = std::current_exception();
  }
}

// One thread that makes every trip, started at the first and kept: a thread per trip cost
// a clone, a stack and a join each time (an attach makes three trips). Trips are serialized.
// It is never destroyed (a joinable std::thread at exit would terminate the process); the
// process's exit ends it.
class NetnsWorker {
 public:
  NetnsWorker() : home_(OpenPath("/proc/thread-self/ns/net", O_RDONLY, "open_netns")) {
    std::thread serving([this] { Serve(); });
    id_ = serving.get_id();  // set before any caller can ask OnWorker (Worker()'s static init)
    serving.detach();
  }

  void Run(const std::string& netnsPath, const std::function<void()>& work) {
    std::lock_guard<std::mutex> trip(tripMu_);  // one trip at a time
    std::optional<SysError> failure;
    std::exception_ptr other;
    {
      std::unique_lock<std::mutex> lock(mu_);
      task_ = Task{&netnsPath, &work, &failure, &other};
      done_ = false;
      cv_.notify_all();
      cv_.wait(lock, [this] { return done_; });
    }
    if (failure) throw *failure;
    if (other) std::rethrow_exception(other);
  }

  bool OnWorker() const { return std::this_thread::get_id() == id_; }
  int Home() const { return home_.get(); }

 private:
  struct Task {
    const std::string* netnsPath;
    const std::function<void()>* work;
    std::optional<SysError>* failure;
    std::exception_ptr* other;
  };

  void Serve() {
    for (;;) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return task_.has_value(); });
      Task t = *task_;
      task_.reset();
      lock.unlock();
      EnterAndRun(home_.get(), atHome_, *t.netnsPath, *t.work, *t.failure, *t.other);
      lock.lock();
      done_ = true;
      cv_.notify_all();
      lock.unlock();
      GoHome();
    }
  }

  // Back to the process's netns once the caller has its answer (off its way): a thread that
  // stayed in a pod's netns would hold it, and a pod deleted meanwhile would stay half torn
  // down until the next trip, which then paid for the teardown (a fresh pod's first trip took
  // 0.9 ms instead of 0.5). Failing here only leaves atHome_ false: the next trip enters its
  // netns first anyway.
  void GoHome() {
    if (atHome_) return;
    if (::setns(home_.get(), CLONE_NEWNET) == 0) atHome_ = true;
  }

  UniqueFd home_;
  bool atHome_ = true;  // the worker's own: only Serve reads and writes it
  std::mutex tripMu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Task> task_;
  bool done_ = false;
  std::thread::id id_;
};

NetnsWorker& Worker() {
  static NetnsWorker* worker = new NetnsWorker();  // never destroyed: see the class
  return *worker;
}

}  // namespace

void RunInNetns(const std::string& netnsPath, const std::function<void()>& work) {
  NetnsWorker& worker = Worker();
  if (!worker.OnWorker()) {
    worker.Run(netnsPath, work);
    return;
  }
  // a trip asked for from inside a trip: on a thread of its own (it starts in the worker's
  // current netns, so it is not at home)
  std::optional<SysError> failure;
  std::exception_ptr other;
  bool atHome = false;
  std::thread nested([&] { EnterAndRun(worker.Home(), atHome, netnsPath, work, failure, other); });
  nested.join();
  if (failure) throw *failure;
  if (other) std::rethrow_exception(other);
}

}  // namespace ebpf_napi
