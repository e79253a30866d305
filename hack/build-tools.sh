#!/usr/bin/env bash
# Builds the third-party programs that the e2e tests and the demo run:
# containerd, ctr, containerd-shim-runc-v2, runc and crictl into
# _output/tools/bin, and the CNI reference plugins into _output/tools/cni.
# Their versions come only from tools/go.mod, and tools/go.sum verifies the
# sources. A stamp file records what the last build used, so a second run with
# the same inputs builds nothing.
set -euo pipefail

script_path=$(realpath "${BASH_SOURCE[0]}")
repo_root=$(dirname "$(dirname "$script_path")")
tools_module="$repo_root/tools"
output_dir=${TOOLS_OUTPUT_DIR:-$repo_root/_output/tools}
bin_dir="$output_dir/bin"
cni_dir="$output_dir/cni"
stamp_file="$output_dir/.stamp"

log() {
	if [[ ${V:-0} == 1 ]]; then
		echo "tools: $*"
	fi
}

cni_plugins=(
	ipam/host-local
	main/bridge
	main/loopback
	main/ptp
	meta/bandwidth
	meta/firewall
	meta/portmap
	meta/tuning
)
expected_files=(
	"$bin_dir/containerd"
	"$bin_dir/containerd-shim-runc-v2"
	"$bin_dir/ctr"
	"$bin_dir/runc"
	"$bin_dir/crictl"
)
for plugin in "${cni_plugins[@]}"; do
	expected_files+=("$cni_dir/${plugin#*/}")
done

# The stamp covers everything that changes the output: the pinned modules,
# this script and the Go toolchain.
stamp=$(
	cd "$tools_module"
	{
		sha256sum go.mod go.sum "$script_path" | awk '{print $1}'
		go env GOVERSION GOARCH
	} | sha256sum | awk '{print $1}'
)

up_to_date=true
if [[ ! -f $stamp_file || $(cat "$stamp_file") != "$stamp" ]]; then
	up_to_date=false
fi
for file in "${expected_files[@]}"; do
	if [[ ! -x $file ]]; then
		up_to_date=false
	fi
done
if $up_to_date; then
	log "up to date in $output_dir"
	exit 0
fi

if ! pkg-config --exists libseccomp 2>/dev/null && [[ ! -f /usr/include/seccomp.h ]]; then
	echo "tools: libseccomp headers not found, runc needs them; run make deps" >&2
	exit 1
fi

cd "$tools_module"
module_version() {
	go list -m -f '{{.Version}}' "$1"
}
containerd_version=$(module_version github.com/containerd/containerd/v2)
runc_version=$(module_version github.com/opencontainers/runc)
plugins_version=$(module_version github.com/containernetworking/plugins)
crictl_version=$(module_version sigs.k8s.io/cri-tools)

rm -f "$stamp_file"
mkdir -p "$bin_dir" "$cni_dir"
start=$SECONDS

log "building containerd $containerd_version"
CGO_ENABLED=0 go build -trimpath -o "$bin_dir/" \
	-tags urfave_cli_no_docs \
	-ldflags "-X github.com/containerd/containerd/v2/version.Version=$containerd_version" \
	github.com/containerd/containerd/v2/cmd/containerd \
	github.com/containerd/containerd/v2/cmd/ctr
CGO_ENABLED=0 go build -trimpath -o "$bin_dir/" \
	-tags "urfave_cli_no_docs no_grpc" \
	-ldflags "-X github.com/containerd/containerd/v2/version.Version=$containerd_version" \
	github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2

# runc needs cgo for libseccomp. The libpathrs tag of runc's own Makefile is
# left out because it needs a Rust library that Debian 12 does not package.
log "building runc $runc_version"
CGO_ENABLED=1 go build -trimpath -o "$bin_dir/runc" \
	-tags "seccomp urfave_cli_no_docs" \
	github.com/opencontainers/runc

log "building CNI plugins $plugins_version"
plugin_packages=()
for plugin in "${cni_plugins[@]}"; do
	plugin_packages+=("github.com/containernetworking/plugins/plugins/$plugin")
done
CGO_ENABLED=0 go build -trimpath -o "$cni_dir/" \
	-ldflags "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$plugins_version" \
	"${plugin_packages[@]}"

log "building crictl $crictl_version"
CGO_ENABLED=0 go build -trimpath -o "$bin_dir/crictl" \
	-ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_version" \
	sigs.k8s.io/cri-tools/cmd/crictl

echo "$stamp" >"$stamp_file"
echo "tools: built containerd $containerd_version, runc $runc_version," \
	"CNI plugins $plugins_version, crictl $crictl_version in $((SECONDS - start))s"
