# syntax=docker/dockerfile:1
# The install image: `waggle install` as the DaemonSet's container (conf/waggle.yaml).
#   docker build -t waggle:0.1.0 .
#
# Build stage: the steps CI runs on a clean clone (.ci/run), on the same Debian release:
# the apt packages from scripts/prepare-machine, `npm ci`, and `npm run build`
# (= scripts/build: BPF objects, ebpf-napi addon, TypeScript, the single binary dist/waggle).
FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
# npm only bootstraps `npm ci`; the build itself runs on Node 24 from node_modules.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/prepare-machine scripts/prepare-machine
# Packages only: a build container can't mount bpffs (and the build doesn't need it).
RUN scripts/prepare-machine --packages-only
# Then as CI on a clean clone: the whole tree (less .dockerignore), npm ci, the build.
COPY . .
RUN npm ci --no-audit --no-fund
RUN npm run build

# Runtime stage: dist/waggle carries Node, the bundled JS, the addon with its libbpf/libelf/libz
# and the BPF objects; it needs glibc and libstdc++ from the base image, nothing else.
FROM debian:bookworm-slim
COPY --from=build /src/dist/waggle /usr/local/bin/waggle
# The binary extracts its addon under /var/lib/waggle/runtime: the DaemonSet mounts a
# writable emptyDir at /var/lib/waggle (the root file system is read-only).
ENTRYPOINT ["/usr/local/bin/waggle", "install"]
