{
  "targets": [
    {
      "target_name": "ebpf_napi",
      "sources": [
        "src/addon.cc",
        "src/error.cc",
        "src/flock.cc",
        "src/handles.cc",
        "src/ids.cc",
        "src/kernel_btf.cc",
        "src/libbpf_log.cc",
        "src/links.cc",
        "src/maps.cc",
        "src/names.cc",
        "src/netns_bpf.cc",
        "src/netns_interfaces.cc",
        "src/netns_thread.cc",
        "src/netns_watch.cc",
        "src/object.cc",
        "src/probes.cc",
        "src/tc.cc",
        "src/tracing.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=gnu++20", "-fexceptions", "-fvisibility=hidden", "-fvisibility-inlines-hidden", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "libraries": [
        "-Wl,--no-as-needed",
        "-lbpf",
        "-lelf",
        "-lz",
        "-Wl,--disable-new-dtags",
        "-Wl,-rpath,'$$ORIGIN'",
        "-static-libstdc++",
        "-Wl,--exclude-libs,ALL",
        "-Wl,--gc-sections"
      ]
    }
  ]
}
