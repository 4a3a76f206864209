"""A stock distribution kernel on tern: Debian's own Linux (a bzImage, with no driver built in
for tern's devices) boots, finds the virtio-mmio NIC and the serial port that tern describes on
its command line and in its ACPI tables, uses kvm-clock, pings over a tap with the pinned MAC,
and powers off through ACPI, which ends tern with status 0.

It needs a KVM with hardware virtualization: TERN_STOCK_LINUX names a folder with that kernel
(vmlinuz) and a busybox initramfs for it (stock-initrd.gz). The nested test host sets it
(tests/nested/build.sh makes both); under kvm_pvm, as on the CI machines, Linux cannot boot
(PLATFORM.md) and the test is skipped."""
import os
import subprocess

import pytest


STOCK = os.environ.get("TERN_STOCK_LINUX")
NS = "ternstock-%d" % os.getpid()
MAC = "52:54:30:30:30:31"

pytestmark = [pytest.mark.kvm,
              pytest.mark.skipif(not STOCK, reason="TERN_STOCK_LINUX unset: no stock kernel "
                                 "and a KVM that runs it here (the nested test host has both)")]


def ip(*args):
    subprocess.run(["ip", *args], check=True, timeout=30)


@pytest.fixture
def tap():
    """A tap in a namespace of its own, with the guest's peer address on it."""
    ip("netns", "add", NS)
    try:
        ip("-n", NS, "tuntap", "add", "dev", "st0", "mode", "tap")
        ip("-n", NS, "addr", "add", "10.9.9.1/24", "dev", "st0")
        ip("-n", NS, "link", "set", "st0", "up")
        yield "st0"
    finally:
        subprocess.run(["ip", "netns", "del", NS], timeout=30)


def test_stock_linux_boots_finds_devices_and_powers_off(tern, tap):
    t = tern("-kernel", os.path.join(STOCK, "vmlinuz"),
             "-initrd", os.path.join(STOCK, "stock-initrd.gz"), "-m", "256M", "-nographic",
             "-serial", "stdio",
             "-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % tap,
             "-device", "virtio-net,netdev=n0,mac=" + MAC,
             "-append", "console=ttyS0 panic=-1 loglevel=4 stock.ip=10.9.9.2 "
                        "stock.peer=10.9.9.1", netns=NS)
    t.expect(r"stock: up \d+\.\d+", timeout=180)
    t.expect(r"stock: clocksource kvm-clock")
    t.expect(r"stock: acpi 1 virtio-mmio devices")
    t.expect(r"stock: eth0 " + MAC)
    t.expect(r"stock: ping 10\.9\.9\.1 ok", timeout=60)
    assert t.wait(timeout=60) == 0, t.text()[-2000:]
    assert "insmod" not in t.text(), t.text()[-2000:]
