#!/usr/bin/env bash
# prepare.sh OUT.cpio.gz [AGENT]: print the path of a Debian kernel with
# 9P modules (downloaded once into $SPRAYDRYFS_VM_CACHE, default
# /var/cache/spraydryfs-vm, or ~/.cache/spraydryfs-vm when that is not
# writable; never into the repository) and build OUT, a
# busybox initramfs with those modules, guest-init.sh as /init and AGENT
# (a static binary) as /agent. Needs (Debian): qemu-system-x86
# busybox-static cpio, apt lists for the first download.
set -euo pipefail
out=$1
agent=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
cache=${SPRAYDRYFS_VM_CACHE:-/var/cache/spraydryfs-vm}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/spraydryfs-vm # not root
	mkdir -p "$cache"
fi
exec 9>"$cache/lock"
flock 9

# The versioned image linux-image-amd64 depends on (not the cloud flavour:
# it has no 9P). Without apt lists, use what is cached.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' || true)
if [ -z "$pkg" ]; then
	pkg=$(cd "$cache" && ls -d linux-image-[0-9]* 2>/dev/null | grep -v '\.deb$' | tail -n 1 || true)
fi
[ -n "$pkg" ] || { echo "prepare.sh: cannot find the linux-image-amd64 package (apt-get update?)" >&2; exit 1; }
kver=${pkg#linux-image-}
root=$cache/$pkg
if [ ! -f "$root/.done" ]; then
	(cd "$cache" && rm -f "${pkg}"_*.deb && apt-get download "$pkg" >&2) 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true
	deb=$(ls "$cache/${pkg}"_*.deb)
	rm -rf "$root"
	dpkg-deb -x "$deb" "$root"
	rm -f "$deb"
	touch "$root/.done"
fi
kernel=$root/boot/vmlinuz-$kver
[ -f "$kernel" ] || { echo "prepare.sh: no $kernel" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/lib/modules"
busybox=$(command -v busybox)
cp "$busybox" "$tmp/bin/busybox"
for m in netfs fscache 9pnet 9pnet_fd virtio_ring virtio virtio_pci_modern_dev \
	virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net 9pnet_virtio 9p; do
	f=$(find "$root/lib/modules/$kver" -name "$m.ko" -o -name "$m.ko.xz" | head -n 1)
	case "$f" in
	"") ;; # built in
	*.xz) xz -dc "$f" >"$tmp/lib/modules/$m.ko" ;;
	*) cp "$f" "$tmp/lib/modules/$m.ko" ;;
	esac
done
install -m 755 "$here/guest-init.sh" "$tmp/init"
[ -z "$agent" ] || install -m 755 "$agent" "$tmp/agent"
(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
echo "$kernel"
