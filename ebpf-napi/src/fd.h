// RAII ownership of a file descriptor inside the addon.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "error.h"

namespace ebpf_napi {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  // Hands the fd to the caller (e.g. to JS), which then owns it.
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Opens a path (O_CLOEXEC added) or throws SysError(op) naming the path.
inline UniqueFd OpenPath(const std::string& path, int flags, const char* op) {
  return UniqueFd(CheckSys(::open(path.c_str(), flags | O_CLOEXEC), op, path));
}

// A close-on-exec duplicate of fd (for handing a libbpf-owned fd to JS).
inline UniqueFd DupFd(int fd, const char* op) {
  return UniqueFd(CheckSys(::fcntl(fd, F_DUPFD_CLOEXEC, 3), op));
}

}  // namespace ebpf_napi
