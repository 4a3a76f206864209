"""A stock distribution kernel on tern: Debian's own Linux (a bzImage, with no driver built in
for tern's devices) boots, finds the virtio-mmio NIC and the serial port that tern describes on
its command line and in its ACPI tables, uses kvm-clock, pings over a tap with the pinned MAC,
and powers off through ACPI, which ends tern with status 0 (a panic, reported through
pvpanic, ends it with 1). And it live-migrates: its ticks go
on at the destination, and it answers pings there.

It needs a KVM with hardware virtualization: TERN_STOCK_LINUX names a folder with that kernel
(vmlinuz) and a busybox initramfs for it (stock-initrd.gz). The nested test host sets it
(tests/nested/build.sh makes both); under kvm_pvm, as on the CI machines, Linux cannot boot
(PLATFORM.md) and the test is skipped."""
import os
import re
import subprocess

import pytest

from conftest import Monitor, free_port

STOCK = os.environ.get("TERN_STOCK_LINUX")
NS = "ternstock-%d" % os.getpid()
MAC = "52:54:30:30:30:31"

pytestmark = [pytest.mark.kvm,
              pytest.mark.skipif(not STOCK, reason="TERN_STOCK_LINUX unset: no stock kernel "
                                 "and a KVM that runs it here (the nested test host has both)")]


def ip(*args):
    subprocess.run(["ip", *args], check=True, timeout=30)


@pytest.fixture
def bridge():
    """A bridge in a namespace of its own, with the guest's peer address on it."""
    ip("netns", "add", NS)
    try:
        ip("-n", NS, "link", "set", "lo", "up")
        ip("-n", NS, "link", "add", "br0", "type", "bridge")
        ip("-n", NS, "addr", "add", "10.9.9.1/24", "dev", "br0")
        ip("-n", NS, "link", "set", "br0", "up")
        yield "br0"
    finally:
        subprocess.run(["ip", "netns", "del", NS], timeout=30)


def stock_args(bridge, *extra, append=""):
    """Debian's kernel with the stock initramfs, its NIC on bridge."""
    return ["-kernel", os.path.join(STOCK, "vmlinuz"),
            "-initrd", os.path.join(STOCK, "stock-initrd.gz"), "-m", "256M", "-nographic",
            "-serial", "stdio", "-netdev", "bridge,id=n0,br=" + bridge,
            "-device", "virtio-net,netdev=n0,mac=" + MAC,
            "-append", "console=ttyS0 panic=-1 loglevel=4 stock.ip=10.9.9.2 stock.peer=10.9.9.1 "
            + append, *extra]


def test_stock_linux_boots_finds_devices_and_powers_off(tern, bridge, tmp_path):
    """With -smp 2: Linux finds both CPUs in the MADT and starts the second with INIT/SIPI;
    and -cpu host,-movbe hides MOVBE from both. Its virtio-blk driver finds the disk (through
    ACPI, as the NIC), reads it and writes it."""
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.write(b"tern-disk-hello!")
        f.truncate(2 << 20)
    t = tern(*stock_args(bridge, "-smp", "2", "-cpu", "host,-movbe",
                         "-drive", "file=%s,format=raw" % img), netns=NS)
    t.expect(r"stock: up \d+\.\d+", timeout=180)
    t.expect(r"stock: cpus 0-1\r?\n")
    t.expect(r"stock: movbe on 0 cpus")
    t.expect(r"stock: clocksource kvm-clock")
    # tern offers the TSC-deadline timer KVM emulates, as QEMU does.
    t.expect(r"stock: clockevent lapic-deadline")
    t.expect(r"stock: acpi 2 virtio-mmio devices")
    t.expect(r"stock: pvpanic 1\r?\n")
    t.expect(r"stock: eth0 " + MAC)
    t.expect(r"stock: vda 4096 sectors, says tern-disk-hello!")
    t.expect(r"stock: vda written")
    t.expect(r"stock: ping 10\.9\.9\.1 ok", timeout=60)
    assert t.wait(timeout=60) == 0, t.text()[-2000:]
    assert "insmod" not in t.text(), t.text()[-2000:]
    with open(img, "rb") as f:
        assert f.read(1024)[512:] == b"stock-wrote-this\n".ljust(512, b"\0")


def test_stock_linux_reboot_ends_tern(tern, bridge):
    """Linux reboots through the reset vector tern fills in (there is no BIOS): tern exits."""
    t = tern(*stock_args(bridge, append="stock.reboot"), netns=NS)
    t.expect(r"stock: ping 10\.9\.9\.1 ok", timeout=180)
    assert t.wait(timeout=60) == 0, t.text()[-2000:]
    assert "reboot: Restarting system" in t.text()


def test_stock_linux_panic_ends_tern_with_status_1(tern, bridge):
    """A kernel crash: Linux's pvpanic driver finds tern's QEMU0001 device in the DSDT and
    reports the panic there, and tern exits with status 1 and a line that says so."""
    t = tern(*stock_args(bridge, append="stock.panic"), netns=NS)
    t.expect(r"stock: ping 10\.9\.9\.1 ok", timeout=180)
    assert t.wait(timeout=60) == 1, t.text()[-2000:]
    assert "Kernel panic" in t.text() and "guest panicked (pvpanic)" in t.text()


def test_stock_linux_live_migrates(tern, bridge, tmp_path):
    """Two vCPUs: the ticks are read on the second, so they go on only if it still runs."""
    port = free_port()
    a = tern(*stock_args(bridge, "-smp", "2",
                         "-monitor", "unix:%s,server,nowait" % (tmp_path / "a"),
                         append="stock.stay"), netns=NS)
    a.expect(r"stock: cpus 0-1\r?\n", timeout=180)
    a.expect(r"stock: ping 10\.9\.9\.1 ok", timeout=180)
    a.expect(r"stock: tick [0-9.]+\r?\n")
    b = tern(*stock_args(bridge, "-smp", "2",
                         "-monitor", "unix:%s,server,nowait" % (tmp_path / "b"),
                         "-incoming", "tcp:127.0.0.1:%d" % port, append="stock.stay"), netns=NS)
    am, bm = Monitor(str(tmp_path / "a")), Monitor(str(tmp_path / "b"))
    out = am.cmd('migrate "tcp:127.0.0.1:%d"' % port, timeout=120)
    assert "migrate: completed" in out, out
    a.drain(0.2)  # what it printed before it stopped
    last = max(float(u) for u in re.findall(r"stock: tick ([0-9.]+)\r?\n", a.text()))
    # The guest goes on at the destination, its clock from where it was.
    m = b.expect(r"stock: tick ([0-9.]+)\r?\n", timeout=30)
    first = float(m.group(1))
    assert last < first < last + 30, (last, first)
    ticks = [first]
    for _ in range(4):
        m = b.expect(r"stock: tick ([0-9.]+)\r?\n", start=m.end(), timeout=30)
        ticks.append(float(m.group(1)))
    # A second apart, each: its timers fire (a TSC deadline must be restored after the LAPIC).
    assert all(0 < y - x < 5 for x, y in zip(ticks, ticks[1:])), ticks
    assert bm.info("status")["VM status"] == "running"
    # And its network: the bridge learnt the guest's new port from tern's announcement.
    p = subprocess.run(["ip", "netns", "exec", NS, "ping", "-c", "3", "-W", "5", "10.9.9.2"],
                       stdout=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 0, p.stdout


def test_ctrl_a_b_is_magic_sysrq(tern, bridge):
    """Ctrl-A b sends a break on the serial line, which Linux's 8250 driver takes as the start
    of a magic SysRq: the key after it (h) makes the kernel print its SysRq help."""
    t = tern(*stock_args(bridge, append="stock.stay"), netns=NS)
    m = t.expect(r"stock: tick", timeout=180)
    t.send(b"\x01b")
    t.drain(0.5)
    t.send(b"h")
    t.expect(r"sysrq: HELP : ", start=m.end(), timeout=30)
    t.send(b"\x01x")
    assert t.wait(timeout=30) == 0
