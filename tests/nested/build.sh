#!/bin/bash
# Builds a small Linux host for machines without a usable /dev/kvm (see README.md, "Testing
# without KVM"): Debian's own kernel and busybox-static, fetched with apt-get download from the
# machine's configured sources, and an initramfs whose /init loads kvm_amd and the modules the
# tests need. QEMU then runs that kernel under TCG with an emulated AMD-V CPU, so tern talks to
# a real KVM. Idempotent: a second run with everything in place and newer than the init scripts
# needs no network.
# Besides, stock-initrd.gz: busybox and the virtio modules for the same kernel booted as a
# guest by tern inside that host (tests/integration/test_stock_linux.py).
#
# usage: tests/nested/build.sh BUILD_DIR
set -Eeuo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "${1:?usage: build.sh BUILD_DIR}"
OUT=$(cd "$1" && pwd)
[[ -f $OUT/vmlinuz && $OUT/initrd.gz -nt $HERE/init && $OUT/stock-initrd.gz -nt $HERE/stock-init ]] &&
	exit 0

mkdir -p "$OUT/debs"
cd "$OUT/debs"
kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
[[ -n $kpkg ]] || { echo "nested: apt-cache knows no linux-image-amd64" >&2; exit 1; }
ls "$kpkg"_*.deb >/dev/null 2>&1 || apt-get -q -o APT::Sandbox::User=root download "$kpkg"
ls busybox-static_*.deb >/dev/null 2>&1 || apt-get -q -o APT::Sandbox::User=root download busybox-static

x=$OUT/x
rm -rf "$x" "$OUT/root"
dpkg-deb -x "$kpkg"_*.deb "$x"
dpkg-deb -x busybox-static_*.deb "$x"
kver=$(basename "$(ls -d "$x"/lib/modules/*)")

# Only the modules the tests use (and what they depend on); busybox's depmod indexes them.
r=$OUT/root
kmod=lib/modules/$kver/kernel
mkdir -p "$r/bin" "$r/dev" "$r/proc" "$r/sys" "$r/host" "$r/$kmod"
for m in arch/x86/kvm virt/lib drivers/crypto/ccp fs/9p net/9p fs/netfs fs/fscache \
	drivers/virtio drivers/net/tun.ko drivers/net/veth.ko net/bridge net/802 net/llc; do
	mkdir -p "$r/$kmod/$(dirname "$m")"
	cp -r "$x/$kmod/$m" "$r/$kmod/$(dirname "$m")/"
done
cp "$x/lib/modules/$kver"/modules.builtin* "$r/lib/modules/$kver/"
cp "$x/bin/busybox" "$r/bin/"
"$x/bin/busybox" depmod -b "$r" "$kver"
install -m 755 "$HERE/init" "$r/init"
(cd "$r" && find . | "$x/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$OUT/initrd.gz.tmp"
s=$OUT/stock
rm -rf "$s" && mkdir -p "$s/bin" "$s/lib" "$s/proc" "$s/sys" "$s/dev"
cp "$x/bin/busybox" "$s/bin/"
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_mmio \
	net/core/failover drivers/net/net_failover drivers/net/virtio_net drivers/block/virtio_blk \
	drivers/misc/pvpanic/pvpanic drivers/misc/pvpanic/pvpanic-mmio; do
	cp "$x/$kmod/$m.ko" "$s/lib/"
done
install -m 755 "$HERE/stock-init" "$s/init"
(cd "$s" && find . | "$x/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$OUT/stock-initrd.gz"
rm -rf "$s"
cp "$x/boot/vmlinuz-$kver" "$OUT/vmlinuz"
mv "$OUT/initrd.gz.tmp" "$OUT/initrd.gz"
rm -rf "$x"
echo "nested: Linux $kver with kvm_amd ready in $OUT"
