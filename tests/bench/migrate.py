"""Driver for migrate.sh: see there."""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from vmms import bench_main

N = int(os.environ.get("N", "10"))
SIZES = os.environ.get("SIZES", "128M 512M 2G").split()
GUEST = "build/guest/guest.elf"
QEMU = shutil.which("qemu-system-x86_64")
# With a lab namespace (migrate.sh makes one when it can), the guests sit on its bridge and a
# client on one keep-alive connection (a request every 10 ms) measures the gap it sees, and a
# ping every 10 ms counts the echoes lost.
NS = os.environ.get("BENCH_NS")
MAC, IP, INTERVAL_MS = "52:54:30:30:30:30", "192.168.123.10", 10
APPEND = "--ip=eth0,%s,255.255.255.0 --defaultgw=192.168.123.1" % IP


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Hmp:
    def __init__(self, path):
        deadline = time.monotonic() + 20
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.s.settimeout(60)
        self.buf = b""
        self.until(rb"\((?:tern|qemu)\) ")

    def until(self, rx):
        while not re.search(rx, self.buf):
            d = self.s.recv(65536)
            if not d:
                raise RuntimeError("monitor closed")
            self.buf += d
        m = re.search(rx, self.buf)
        out, self.buf = self.buf[:m.start()], self.buf[m.end():]
        return out.decode(errors="replace")

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\n")
        return self.until(rb"\((?:tern|qemu)\) ")


def qemu_tap_name(mon):
    return "tq" + os.path.basename(mon)


def qemu_tap(name):
    """QEMU's tap on the lab's bridge, made beforehand (QEMU's own way needs a helper)."""
    subprocess.run(["ip", "-n", NS, "tuntap", "add", "dev", name, "mode", "tap"], check=True)
    subprocess.run(["ip", "-n", NS, "link", "set", name, "master", "osvbr0", "up"], check=True)


def start(kind, mem, mon, incoming=None):
    if kind == "tern":
        cmd = ["build/tern", "-kernel", GUEST, "-m", mem, "-nographic", "-serial", "none",
               "-monitor", "unix:%s,server,nowait" % mon]
        if NS:
            cmd += ["-netdev", "bridge,id=n0,br=osvbr0",
                    "-device", "virtio-net,netdev=n0,mac=" + MAC]
    else:
        # microvm: virtio-mmio, as the guest's driver wants, announced on the cmdline by QEMU.
        cmd = [QEMU, "-enable-kvm", "-cpu", "host", "-M", "microvm,acpi=off,x-option-roms=off",
               "-m", mem, "-kernel", GUEST, "-display", "none", "-serial", "none",
               "-nodefaults", "-no-user-config", "-global", "virtio-mmio.force-legacy=false",
               "-monitor", "unix:%s,server,nowait" % mon]
        if NS:
            tap = qemu_tap_name(mon)
            qemu_tap(tap)
            cmd += ["-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % tap,
                    "-device", "virtio-net-device,netdev=n0,mac=" + MAC]
    if NS:
        cmd = ["ip", "netns", "exec", NS, *cmd, "-append", APPEND]
    if incoming:
        cmd += ["-incoming", incoming]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    return p, Hmp(mon)


def number(info, key):
    m = re.search(r"^%s: ([0-9.]+)" % re.escape(key), info, re.M)
    return float(m.group(1)) if m else float("nan")


def pings_lost(out):
    """Echo requests that went unanswered, counting only those sent before the last answer:
    the ones still in flight when ping was stopped are not lost."""
    seqs = {int(m) for m in re.findall(r"icmp_seq=(\d+)", out)}
    if not seqs:
        raise RuntimeError("ping got no answer: %s" % out[-300:])
    return max(seqs) - len(seqs)


def one(kind, mem, tmp):
    mons = [os.path.join(tmp, "a"), os.path.join(tmp, "b")]
    a, am = start(kind, mem, mons[0])
    time.sleep(0.5)  # let the guest boot and settle: this measures an idle guest
    port = free_port()
    b, bm = start(kind, mem, mons[1], "tcp:127.0.0.1:%d" % port)
    client = summary = ping = None
    try:
        if NS:
            summary = os.path.join(tmp, "client.json")
            log = os.path.join(tmp, "client.log")
            client = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable,
                                       "scripts/client-loop.py", IP, "--summary", summary,
                                       "--interval-ms", str(INTERVAL_MS)],
                                      stdout=open(log, "w"), stderr=subprocess.STDOUT)
            # ping's output line by line, so that its first answer can be seen.
            ping_log = os.path.join(tmp, "ping.log")
            ping = subprocess.Popen(["ip", "netns", "exec", NS, "stdbuf", "-oL", "ping", "-n",
                                     "-i", "0.01", IP], stdout=open(ping_log, "w"),
                                    stderr=subprocess.STDOUT)
            # A few answers in for both: the guest serves, and both run before the migration
            # (starting a process is slow where the CPU is emulated).
            deadline = time.monotonic() + 20
            while os.path.getsize(log) < 200 or "icmp_seq=" not in open(ping_log).read():
                if time.monotonic() > deadline or client.poll() is not None:
                    raise RuntimeError("no answers: %s%s" % (open(log).read(),
                                                             open(ping_log).read()))
                time.sleep(0.05)
        am.cmd("migrate tcp:127.0.0.1:%d" % port)
        deadline = time.monotonic() + 60
        while True:
            info = am.cmd("info migrate")
            if re.search(r"Migration status: (completed|failed|cancelled)", info):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("migration did not end")
            time.sleep(0.01)
        if "completed" not in info:
            raise RuntimeError(info)
        sent = number(info, "transferred ram") * 1024
        gap = lost = float("nan")
        if client:
            time.sleep(0.5)
            ping.send_signal(signal.SIGINT)
            ping.wait(timeout=10)
            lost = pings_lost(open(ping_log).read())
            client.terminate()
            client.wait(timeout=10)
            c = json.load(open(summary))
            if c["errors"] or c["resets"]:
                raise RuntimeError("the client lost requests: %s" % c)
            gap = c["max_delta_ms"] - INTERVAL_MS
        return {"total": number(info, "total time"), "downtime": number(info, "downtime"),
                "setup": number(info, "setup"), "sent": sent,
                "rounds": number(info, "dirty sync count"), "gap": gap, "pings lost": lost}
    finally:
        for p in (client, ping):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        for p in (a, b):
            p.kill()
            p.wait()
        if NS and kind == "qemu":
            for mon in mons:
                subprocess.run(["ip", "-n", NS, "link", "del", qemu_tap_name(mon)],
                               stderr=subprocess.DEVNULL)


def bench(kind, mem):
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(N):
            runs.append(one(kind, mem, tmp))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main():
    print("migration benchmark: medians of %d migrations of an idle test guest over tcp "
          "on loopback" % N)
    if NS:
        print("guests on a bridge; gap: the largest wait beyond %d ms that a client "
              "sending a request every %d ms saw; pings lost: of one every %d ms"
              % (INTERVAL_MS, INTERVAL_MS, INTERVAL_MS))
    print("%-6s %-5s %10s %10s %10s %12s %7s %8s %10s" % (
        "size", "vmm", "total ms", "downtime", "setup ms", "sent KiB", "rounds", "gap ms",
        "pings lost"))
    for mem in SIZES:
        res = {"tern": bench("tern", mem)}
        if QEMU:
            try:
                res["qemu"] = bench("qemu", mem)
            except Exception as e:  # QEMU may not boot here; say so, keep going
                print("%-6s qemu   could not be measured: %s" % (mem, e))
        for kind, r in res.items():
            print("%-6s %-5s %10.3f %10.3f %10.3f %12.0f %7.0f %8.1f %10.0f" % (
                mem, kind, r["total"], r["downtime"], r["setup"], r["sent"] / 1024, r["rounds"],
                r["gap"], r["pings lost"]))
        if "qemu" in res:
            t, q = res["tern"], res["qemu"]
            ratio = {k: t[k] / q[k] if q[k] else float("nan") for k in t}
            print("%-6s ratio tern/qemu: total %.3f, downtime %.3f, bytes %.3f, gap %.3f" % (
                mem, ratio["total"], ratio["downtime"], ratio["sent"], ratio["gap"]))
    sys.stdout.flush()


if __name__ == "__main__":
    bench_main(main)
