"""The measuring half of tests/bench/disk.sh."""
import os
import re
import shutil
import subprocess
import tempfile
import time

from vmms import GUEST, bench_main, kvm_ok, qemu_microvm

MIB = 32
RUNS = 3


def command(kind, img):
    if kind == "tern":
        return ["build/tern", "-kernel", GUEST, "-m", "128M", "-nographic", "-serial", "stdio",
                "-drive", "file=%s,if=virtio,format=raw" % img]
    return qemu_microvm("-drive", "file=%s,if=none,id=d0,format=raw,cache=writeback" % img,
                        "-device", "virtio-blk-device,drive=d0")


def expect(p, pattern, timeout):
    out, deadline = b"", time.monotonic() + timeout
    os.set_blocking(p.stdout.fileno(), False)
    while True:
        m = re.search(pattern, out)
        if m:
            return m
        if time.monotonic() > deadline or p.poll() is not None:
            raise RuntimeError("no %r from the guest:\n%s" % (pattern, out[-2000:].decode(
                errors="replace")))
        out += p.stdout.read() or b""
        time.sleep(0.02)


def measure(kind, img):
    """Best of RUNS passes in one guest: (read MiB/s, write MiB/s)."""
    p = subprocess.Popen(command(kind, img), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        expect(p, rb"Booted up", 60)
        best = [0.0, 0.0]
        for _ in range(RUNS):
            p.stdin.write(b"blk bench %d\r" % MIB)
            p.stdin.flush()
            m = expect(p, rb"blk: bench \d+ MiB read (\d+) us write (\d+) us status (\d+)\r?\n",
                       300)
            if m.group(3) != b"0":
                raise RuntimeError("the device answered status %s" % m.group(3).decode())
            for i in (0, 1):
                best[i] = max(best[i], MIB / (int(m.group(i + 1)) / 1e6))
        return best
    finally:
        p.kill()
        p.wait()


def main():
    print("disk benchmark: %d MiB read, then written, in 64 KiB requests (best of %d), "
          "raw image in the page cache" % (MIB, RUNS))
    print("%-14s %12s %12s" % ("vmm", "read MiB/s", "write MiB/s"))
    rows = {}
    kinds = (["tern"] if kvm_ok() else []) + (["qemu"] if shutil.which("qemu-system-x86_64")
                                             else [])
    if not kvm_ok():
        print("%-14s not measured: no usable /dev/kvm on this machine" % "tern")
    with tempfile.TemporaryDirectory(prefix="tern-disk-bench-") as d:
        img = os.path.join(d, "disk.img")
        with open(img, "wb") as f:
            f.write(os.urandom(MIB << 20))
        for kind in kinds:
            label = kind if kind == "tern" or kvm_ok() else "qemu (tcg)"
            try:
                rows[kind] = measure(kind, img)
            except Exception as e:  # one VMM failing must not hide the other's figures
                print("%-14s could not be measured: %s" % (label, e))
                continue
            print("%-14s %12.1f %12.1f" % (label, *rows[kind]))
    if "tern" in rows and "qemu" in rows:
        print("ratio tern/qemu: read %.2f, write %.2f" % (
            rows["tern"][0] / rows["qemu"][0], rows["tern"][1] / rows["qemu"][1]))


if __name__ == "__main__":
    bench_main(main)
