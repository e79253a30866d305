#!/usr/bin/env bash
# Builds the root filesystem tree of the nri-cni runtime image from Debian
# packages, without a container engine or a registry. It fetches the
# packages of hack/image/packages.txt and their dependencies with
# `apt-get download`, checks them against the SHA256 sums of the apt lists and
# unpacks them with `dpkg-deb -x`. No maintainer script runs, so this script
# does the steps of those scripts that the image needs (the iptables
# alternatives, the library cache).
#
# Usage: debian-base.sh ROOTFS_DIR
# DEB_CACHE_DIR (default: ROOTFS_DIR.debs) keeps the .deb files between runs.
# The Dockerfile runs this script too, so both images get the same tree.
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 ROOTFS_DIR" >&2
	exit 2
fi

script_dir=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
rootfs=$(realpath -m "$1")
cache_dir=$(realpath -m "${DEB_CACHE_DIR:-$rootfs.debs}")

log() {
	if [[ ${V:-0} == 1 ]]; then
		echo "base: $*"
	fi
}

for tool in apt-get apt-cache dpkg-deb ldconfig sha256sum; do
	if ! command -v "$tool" >/dev/null; then
		echo "base: $tool not found: this script runs on Debian 12 (bookworm)" >&2
		exit 1
	fi
done

mapfile -t roots < <(grep -v -e '^#' -e '^[[:space:]]*$' "$script_dir/packages.txt")

# apt-cache has no candidate version before the first `apt-get update`.
if ! apt-cache show --no-all-versions "${roots[@]}" >/dev/null 2>&1; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "base: apt lists have no ${roots[*]}; run apt-get update as root" >&2
		exit 1
	fi
	log "running apt-get update"
	apt-get -qq update >/dev/null
fi

# The dependency closure of the roots. Lines with a leading space are the
# dependency relations, and <name> lines are virtual packages, which the
# recursion resolves to real ones.
mapfile -t packages < <(
	apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances "${roots[@]}" |
		grep -v -e '^ ' -e '^<' | sort -u
)
log "packages: ${packages[*]}"

# Fetch what the cache lacks. --print-uris names each file with its checksum,
# so a cached file is reused only while it matches the apt lists.
mkdir -p "$cache_dir"
debs=()
missing=()
while read -r _ file _ checksum; do
	debs+=("$cache_dir/$file")
	expected=${checksum#SHA256:}
	if [[ -f $cache_dir/$file ]] &&
		[[ $(sha256sum "$cache_dir/$file" | awk '{print $1}') == "$expected" ]]; then
		continue
	fi
	# Debian file names start with the package name and an underscore.
	missing+=("${file%%_*}")
done < <(apt-get download --print-uris "${packages[@]}")
if [[ ${#debs[@]} -ne ${#packages[@]} ]]; then
	echo "base: apt-get download listed ${#debs[@]} files for ${#packages[@]} packages" >&2
	exit 1
fi
if [[ ${#missing[@]} -gt 0 ]]; then
	log "downloading ${missing[*]}"
	# As root, apt hands downloads to its _apt user, which cannot write to a
	# cache folder that root owns.
	sandbox=()
	[[ $(id -u) -eq 0 ]] && sandbox=(-o APT::Sandbox::User=root)
	(cd "$cache_dir" && apt-get -qq "${sandbox[@]}" download "${missing[@]}" >/dev/null)
fi

rm -rf "$rootfs"
mkdir -p "$rootfs/var/lib/dpkg/status.d"
for deb in "${debs[@]}"; do
	dpkg-deb -x "$deb" "$rootfs"
	# One status file per package, in the layout distroless images use, so
	# that image scanners can list what the image contains.
	name=$(dpkg-deb -f "$deb" Package)
	{
		echo "Package: $name"
		echo "Status: install ok installed"
		dpkg-deb -f "$deb" | grep -v '^Package:'
	} >"$rootfs/var/lib/dpkg/status.d/$name"
done

# Debian 12 systems have a merged /usr, and the packages still ship some
# files below /bin, /sbin and /lib. Move them and link the old paths.
for dir in bin sbin lib lib64; do
	if [[ -d $rootfs/$dir && ! -L $rootfs/$dir ]]; then
		mkdir -p "$rootfs/usr/$dir"
		cp -a "$rootfs/$dir/." "$rootfs/usr/$dir/"
		rm -rf "${rootfs:?}/$dir"
	fi
	ln -sfn "usr/$dir" "$rootfs/$dir"
done

# Documentation, manuals and translations are not needed at run time. The
# copyright files stay. The iconv modules go too: nothing in the image
# converts character sets.
find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs/usr/share/man" "$rootfs/usr/share/info" "$rootfs/usr/share/lintian" \
	"$rootfs/usr/share/locale" "$rootfs"/usr/lib/*-linux-gnu/gconv

# The iptables postinst selects the nftables backend through alternatives,
# the Debian 12 default. The same links, made directly.
for command in iptables iptables-restore iptables-save ip6tables ip6tables-restore \
	ip6tables-save arptables arptables-restore arptables-save ebtables ebtables-restore \
	ebtables-save; do
	target=${command/tables/tables-nft}
	if [[ ! -e $rootfs/usr/sbin/$target ]]; then
		echo "base: /usr/sbin/$target is missing from the iptables packages" >&2
		exit 1
	fi
	ln -sfn "$target" "$rootfs/usr/sbin/$command"
done

# The parts of base-files that programs and container runtimes expect.
mkdir -p "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/run" \
	"$rootfs/tmp" "$rootfs/var/tmp" "$rootfs/root"
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
chmod 0700 "$rootfs/root"
ln -sfn ../run "$rootfs/var/run"
echo "root:x:0:0:root:/root:/usr/sbin/nologin" >"$rootfs/etc/passwd"
echo "root:x:0:" >"$rootfs/etc/group"
echo "include /etc/ld.so.conf.d/*.conf" >"$rootfs/etc/ld.so.conf"

# The library cache. ldconfig -r chroots into the tree, which needs root.
# Without the cache, Debian's dynamic loader still finds the libraries in its
# built-in /lib/x86_64-linux-gnu and /usr/lib/x86_64-linux-gnu.
if [[ $(id -u) -eq 0 ]]; then
	ldconfig -r "$rootfs"
else
	log "not root: skipped ldconfig"
fi

printf '%s\n' "${packages[@]}" >"$rootfs.packages"
log "built $rootfs from ${#packages[@]} packages"
