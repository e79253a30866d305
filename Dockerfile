# syntax=docker/dockerfile:1
# nri-cni container image for the DaemonSet install (deploy/kubernetes).
# `make image` builds the same image without a container engine; see
# hack/image. Build from the repository root:
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t ghcr.io/nri-cni/nri-cni:dev .

ARG GO_VERSION=1.26
ARG DEBIAN_RELEASE=bookworm

# The binary: static, so it runs on the package tree below without a Go
# runtime. `make build` sets CGO_ENABLED=0 and the version.
FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN make build VERSION=${VERSION}

# The root filesystem: iptables, nftables and their libraries, unpacked from
# Debian packages by the same script that `make image` runs, so that both
# images contain the same files.
FROM debian:${DEBIAN_RELEASE}-slim AS base
RUN apt-get update
COPY hack/image/packages.txt hack/image/debian-base.sh /hack/
RUN /hack/debian-base.sh /rootfs

FROM scratch
COPY --from=base /rootfs/ /
COPY --from=build /src/bin/nri-cni /usr/bin/nri-cni
# CNI plugins find iptables and nft on this PATH, which nri-cni passes on to
# them.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ARG VERSION=dev
LABEL org.opencontainers.image.title="nri-cni" \
	org.opencontainers.image.description="containerd NRI plugin that attaches extra CNI networks to pods" \
	org.opencontainers.image.source="https://github.com/nri-cni/nri-cni" \
	org.opencontainers.image.version="${VERSION}"
# Root, with the capabilities that deploy/kubernetes grants: the CNI plugins
# that nri-cni execs keep capabilities across exec only as root, and they
# write root-owned host folders (/var/lib/cni).
USER 0:0
ENTRYPOINT ["/usr/bin/nri-cni"]
