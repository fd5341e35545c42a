#include "libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace ebpf_napi {

namespace {

// The capture buffer of the call in progress; libbpf calls are made synchronously on the
// thread that set it (or on a native thread it joins), so a plain pointer suffices.
std::string* g_capture = nullptr;
bool g_debug = false;

int Print(enum libbpf_print_level level, const char* format, va_list args) {
  if (g_debug) {
    va_list copy;
    va_copy(copy, args);
    vfprintf(stderr, format, copy);
    va_end(copy);
  }
  if (g_capture == nullptr || level == LIBBPF_DEBUG) return 0;
  // Verifier logs arrive as one huge %s: measure first, then format in place.
  va_list measure;
  va_copy(measure, args);
  int n = vsnprintf(nullptr, 0, format, measure);
  va_end(measure);
  if (n <= 0) return 0;
  size_t start = g_capture->size();
  g_capture->resize(start + n + 1);
  vsnprintf(&(*g_capture)[start], n + 1, format, args);
  g_capture->resize(start + n);
  return 0;
}

}  // namespace

void InstallLibbpfPrint() {
  g_debug = std::getenv("EBPF_NAPI_DEBUG") != nullptr;
  libbpf_set_print(Print);
}

LibbpfLogCapture::LibbpfLogCapture() : previous_(g_capture) { g_capture = &text_; }

LibbpfLogCapture::~LibbpfLogCapture() { g_capture = previous_; }

}  // namespace ebpf_napi
