// String names <-> kernel enums, using libbpf's own spellings (libbpf_bpf_*_type_str).
#pragma once

#include <linux/bpf.h>

#include <string>

namespace ebpf_napi {

// Each throws SysError(op "<kind>_type", EINVAL) for an unknown name.
bpf_prog_type ProgTypeByName(const std::string& name);
bpf_map_type MapTypeByName(const std::string& name);
bpf_attach_type AttachTypeByName(const std::string& name);

// Names for reporting; "unknown(<n>)" when libbpf has no name.
std::string ProgTypeName(uint32_t type);
std::string MapTypeName(uint32_t type);
std::string AttachTypeName(uint32_t type);
std::string LinkTypeName(uint32_t type);

// The program type a cgroup attach type needs; throws SysError EINVAL for non-cgroup types.
bpf_prog_type CgroupProgTypeFor(bpf_attach_type type);

// Helper id by UAPI name, with or without the "bpf_" prefix; throws SysError EINVAL if unknown.
int HelperIdByName(const std::string& name);

}  // namespace ebpf_napi
