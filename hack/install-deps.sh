#!/usr/bin/env bash
# Installs the Debian packages that the tools build and the e2e tests need.
# Runs non-interactively as root on Debian 12 and does nothing when every
# package is already installed.
set -euo pipefail

packages=(iptables nftables busybox-static libseccomp-dev jq iproute2)

missing=()
for package in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
	if [[ $status != "install ok installed" ]]; then
		missing+=("$package")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	[[ ${V:-0} == 1 ]] && echo "deps: all installed: ${packages[*]}"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing Debian packages: ${missing[*]}; run make deps as root" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
quiet=(-qq)
[[ ${V:-0} == 1 ]] && quiet=()
apt-get "${quiet[@]}" update >/dev/null
apt-get "${quiet[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
