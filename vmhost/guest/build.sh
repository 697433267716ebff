#!/bin/sh
# build.sh OUT — the guest image for the qemu backend, from Debian packages:
#
#   OUT/vmlinux             Debian's kernel, uncompressed (qemu boots the ELF
#                           directly through its PVH entry: no decompression
#                           under TCG, about 3 s saved per boot)
#   OUT/initramfs.cpio.gz   busybox-static, the virtio-net modules of that
#                           same kernel, /init, and openssl with its libraries
#                           (a TLS client that verifies, to show the sandbox
#                           CA at work)
#
# The kernel package is downloaded, never installed: nothing on the host
# changes.  Everything per sandbox (command, CA, environment) arrives in a
# second initramfs the launcher appends, so this runs once; it does nothing
# while OUT is newer than this script and init.
set -eu

out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
vmlinux=$out/vmlinux
initramfs=$out/initramfs.cpio.gz

fresh() {
	[ -s "$1" ] && [ "$1" -nt "$here/build.sh" ] && [ "$1" -nt "$here/init" ]
}
if fresh "$vmlinux" && fresh "$initramfs"; then
	exit 0
fi

for tool in busybox dpkg-deb apt-get python3 gzip; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "guest: $tool is missing (apt-get install busybox-static)" >&2
		exit 1
	}
done
busybox=$(command -v busybox)
# A dynamically linked busybox would need its libraries in the guest.
if ldd "$busybox" >/dev/null 2>&1; then
	echo "guest: $busybox is dynamically linked; install busybox-static" >&2
	exit 1
fi

# The kernel the linux-image-amd64 metapackage points at; a machine whose
# package lists were never fetched (a fresh container) fetches them once.
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
kpkg=$(kernel_package)
[ -n "$kpkg" ] || { apt-get update -qq && kpkg=$(kernel_package); }
[ -n "$kpkg" ] || {
	echo "guest: apt knows no linux-image-amd64 package" >&2
	exit 1
}
kver=${kpkg#linux-image-}
mkdir -p "$out/deb"
deb=$(ls "$out/deb/${kpkg}_"*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
	echo "guest: downloading $kpkg"
	# a stale package list names a version the mirror no longer has
	(cd "$out/deb" && { apt-get download -q "$kpkg" >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get download -q "$kpkg" >/dev/null; }; })
	deb=$(ls "$out/deb/${kpkg}_"*.deb | head -n 1)
fi

# virtio-net over virtio-mmio (what -M microvm has), in load order: each
# module needs the ones before it.  The PCI transport is left out.
mods="drivers/virtio/virtio_ring drivers/virtio/virtio
      drivers/virtio/virtio_mmio net/core/failover drivers/net/net_failover
      drivers/net/virtio_net"

work=$(mktemp -d "$out/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Only the kernel and those modules out of the package's 400 MB.
mkdir "$work/k"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/k" \
	"./boot/vmlinuz-$kver" \
	$(for m in $mods; do echo "./lib/modules/$kver/kernel/$m.ko"; done)

# Debian's bzImage carries an XZ payload; the ELF inside has the PVH note.
python3 - "$work/k/boot/vmlinuz-$kver" "$work/vmlinux" <<'PY'
import lzma, sys
data = open(sys.argv[1], 'rb').read()
start = data.find(b'\xfd7zXZ\x00')
if start < 0:
    sys.exit('guest: %s has no XZ payload' % sys.argv[1])
elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
if elf[:4] != b'\x7fELF':
    sys.exit('guest: the payload of %s is not an ELF kernel' % sys.argv[1])
open(sys.argv[2], 'wb').write(elf)
PY

root=$work/root
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" \
	"$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/etc" \
	"$root/lib/modules"
cp "$busybox" "$root/bin/busybox"
for m in $mods; do
	cp "$work/k/lib/modules/$kver/kernel/$m.ko" "$root/lib/modules/"
	echo "${m##*/}" >> "$root/lib/modules/order"
done
cp "$here/init" "$root/init"
chmod 0755 "$root/init"

# openssl and exactly the libraries it links (ldd's resolved paths).
if command -v openssl >/dev/null 2>&1; then
	ssl=$(command -v openssl)
	cp "$ssl" "$root/usr/bin/openssl"
	ldd "$ssl" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' |
	while read -r lib; do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
	# openssl's default store, as on Debian
	mkdir -p "$root/usr/lib/ssl" "$root/etc/ssl/certs"
	ln -s /etc/ssl/certs/ca-certificates.crt "$root/usr/lib/ssl/cert.pem"
	ln -s /etc/ssl/certs "$root/usr/lib/ssl/certs"
fi

(cd "$root" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) |
	gzip -6 > "$work/initramfs.cpio.gz"
mv "$work/vmlinux" "$vmlinux"
mv "$work/initramfs.cpio.gz" "$initramfs"
echo "guest: $vmlinux ($kver), $initramfs"
