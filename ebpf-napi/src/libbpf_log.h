// Captures libbpf's log output (including verifier logs) for the duration of one call, so a
// failed load can report it in its BpfError. Outside a capture, libbpf output is dropped
// unless EBPF_NAPI_DEBUG is set in the environment (then everything goes to stderr).
#pragma once

#include <string>

namespace ebpf_napi {

// Installs the print callback; called once at module init.
void InstallLibbpfPrint();

class LibbpfLogCapture {
 public:
  LibbpfLogCapture();
  ~LibbpfLogCapture();
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::string* previous_;
};

}  // namespace ebpf_napi
