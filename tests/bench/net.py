"""The measuring half of tests/bench/net.sh (which sets up and tears down the lab)."""
import os
import re
import shutil
import subprocess
import sys
import time

from vmms import GUEST, bench_main, kvm_ok, qemu_microvm

NS = sys.argv[1]
MAC, IP = "52:54:30:30:30:30", "192.168.123.10"
MIB = 16

CLIENT = r"""
import socket, sys, threading, time
n = int(sys.argv[2]) << 20
s = socket.create_connection((sys.argv[1], 7), timeout=10)
got = [0]
def reader():
    while got[0] < n:
        d = s.recv(1 << 16)
        if not d:
            break
        got[0] += len(d)
t = threading.Thread(target=reader)
t0 = time.monotonic()
t.start()
block = b"x" * (1 << 16)
for _ in range(n >> 16):
    s.sendall(block)
t.join(60)
print("%.6f %d" % (time.monotonic() - t0, got[0]))
"""


def in_ns(*cmd, **kw):
    return subprocess.run(["ip", "netns", "exec", NS, *cmd], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw)


def start(kind):
    if kind == "tern":
        cmd = ["build/tern", "-kernel", GUEST, "-m", "128M", "-nographic", "-serial", "stdio",
               "-netdev", "bridge,id=n0,br=osvbr0", "-device", "virtio-net,netdev=n0,mac=" + MAC]
    else:
        in_ns("ip", "tuntap", "add", "dev", "qbench0", "mode", "tap", check=True)
        in_ns("ip", "link", "set", "qbench0", "master", "osvbr0", "up", check=True)
        cmd = qemu_microvm("-netdev", "tap,id=n0,ifname=qbench0,script=no,downscript=no",
                           "-device", "virtio-net-device,netdev=n0,mac=" + MAC)
    p = subprocess.Popen(["ip", "netns", "exec", NS, *cmd], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, deadline = b"", time.monotonic() + 30
    while not re.search(rb"eth0: " + IP.encode(), out):
        if time.monotonic() > deadline or p.poll() is not None:
            p.kill()
            raise RuntimeError("%s: the guest got no address:\n%s" % (kind, out[-2000:]))
        os.set_blocking(p.stdout.fileno(), False)
        out += p.stdout.read() or b""
        time.sleep(0.05)
    return p


def measure(kind):
    p = start(kind)
    try:
        r = in_ns(sys.executable, "-c", CLIENT, IP, str(MIB), timeout=90, check=True)
        secs, got = r.stdout.split()
        ping = in_ns("ping", "-q", "-c", "20", "-i", "0.05", IP, timeout=30).stdout
        rtt = re.search(r"= [\d.]+/([\d.]+)/", ping)
        return MIB * 8 / float(secs), int(got) == MIB << 20, float(rtt.group(1)) if rtt else 0
    finally:
        p.kill()
        p.wait()
        if kind != "tern":
            in_ns("ip", "link", "del", "qbench0")


def main():
    print("network benchmark: %d MiB through the guest's TCP echo (port 7), ping x20, "
          "in namespace %s" % (MIB, NS))
    print("%-14s %14s %10s %12s" % ("vmm", "echo Mbit/s", "all back", "ping avg ms"))
    rows = {}
    kinds = (["tern"] if kvm_ok() else []) + (["qemu"] if shutil.which("qemu-system-x86_64")
                                             else [])
    if not kvm_ok():
        print("%-14s not measured: no usable /dev/kvm on this machine" % "tern")
    for kind in kinds:
        label = kind if kind == "tern" or kvm_ok() else "qemu (tcg)"
        try:
            rows[kind] = measure(kind)
        except Exception as e:  # one VMM failing must not hide the other's figures
            print("%-14s could not be measured: %s" % (label, e))
            continue
        mbps, ok, rtt = rows[kind]
        print("%-14s %14.1f %10s %12.3f" % (label, mbps, "yes" if ok else "NO", rtt))
    if "tern" in rows and "qemu" in rows:
        print("ratio tern/qemu: throughput %.2f, ping %.2f" % (
            rows["tern"][0] / rows["qemu"][0], rows["tern"][2] / rows["qemu"][2]))


if __name__ == "__main__":
    bench_main(main)
