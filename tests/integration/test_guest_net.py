"""The test guest's network stack (virtio-net driver + lwIP + services), booted under QEMU.

These tests validate the guest side on its own, so that they run where there is no KVM:
QEMU's microvm machine with TCG boots build/guest/guest.elf through its PVH note and gives
it a modern (Version 2) virtio-mmio virtio-net device on a tap. The guest then has no
kvmclock and no x2APIC and uses its fallbacks (TSC calibrated against the PIT, CMOS RTC,
xAPIC through MMIO).

Everything runs in a lab of its own made by scripts/lab.sh (namespace, bridge osvbr0
192.168.123.1/24, dnsmasq pinning 52:54:30:30:30:30 to 192.168.123.10 with an infinite
lease), taken down afterwards, even on failure. No host interface is touched.
"""
import calendar
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, Tern

GUEST = os.environ.get("TERN_TEST_GUEST") or os.path.join(ROOT, "build", "guest", "guest.elf")
LAB_SH = os.path.join(ROOT, "scripts", "lab.sh")
QEMU = shutil.which("qemu-system-x86_64")

NS = "tgnet%d" % os.getpid()
STATE = "/run/tern-lab/" + NS
BR = "osvbr0"
HOST_IP = "192.168.123.1"
PINNED_MAC = "52:54:30:30:30:30"
PINNED_IP = "192.168.123.10"
STATIC_MAC = "52:54:30:30:30:31"
STATIC_IP = "192.168.123.20"
GARBAGE_MAC = "52:54:30:30:30:32"

pytestmark = pytest.mark.skipif(QEMU is None,
                                reason="qemu-system-x86_64 not found (Debian: qemu-system-x86)")


def sh(*args, check=True, timeout=20):
    return subprocess.run(list(args), check=check, timeout=timeout, capture_output=True, text=True)


def nsexec(*args, **kw):
    return sh("ip", "netns", "exec", NS, *args, **kw)


def qemu_guest(tap, mac, append):
    """The test guest under QEMU (microvm, TCG) on a tap of the lab's bridge; console on a pipe."""
    nsexec("ip", "tuntap", "add", "dev", tap, "mode", "tap")
    nsexec("ip", "link", "set", tap, "master", BR, "up")
    # QEMU's own complaints (it reports the garbage rings too) go to a log of their own: on
    # the console they would land in the middle of the guest's lines.
    return Tern([
        "-c", 'exec "$0" "$@" 2>>"%s"' % os.path.join(STATE, tap + ".qemu.log"), QEMU,
        "-M", "microvm,acpi=off,x-option-roms=off", "-accel", "tcg", "-m", "128M",
        "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
        "-global", "virtio-mmio.force-legacy=false",
        "-kernel", GUEST, "-append", append,
        "-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % tap,
        "-device", "virtio-net-device,netdev=n0,mac=%s" % mac,
    ], netns=NS, prog="/bin/sh")


def lab_sh(cmd):
    subprocess.run([LAB_SH, cmd], env=dict(os.environ, TERN_LAB_NS=NS), check=cmd == "up",
                   timeout=60, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def lab():
    """scripts/lab.sh's lab in a namespace of our own, and three guests: DHCP, static --ip=,
    netgarbage."""
    if not os.path.exists(GUEST):
        pytest.fail("%s is missing: run make guest" % GUEST)
    if os.geteuid() != 0:
        pytest.fail("these tests need root (network namespaces, taps)")
    guests = {}
    try:
        lab_sh("up")
        guests["dhcp"] = qemu_guest("tgtap0", PINNED_MAC, "echo")
        guests["static"] = qemu_guest(
            "tgtap1", STATIC_MAC,
            "echo --ip=eth0,%s,255.255.255.0 --defaultgw=%s --nameserver=%s"
            % (STATIC_IP, HOST_IP, HOST_IP))
        guests["garbage"] = qemu_guest("tgtap2", GARBAGE_MAC, "echo netgarbage=300 --ip=eth0,"
                                       "192.168.123.30,255.255.255.0")
        yield {"guests": guests, "leases": os.path.join(STATE, "dnsmasq.leases"),
               "dnsmasq_log": os.path.join(STATE, "dnsmasq.log")}
    finally:
        for g in guests.values():
            g.kill()
        lab_sh("down")


def guest_up(lab, name, ip):
    g = lab["guests"][name]
    g.expect(r"eth0: %s\r?\n" % re.escape(ip), timeout=20)
    return g


# A client run inside the namespace (the test process stays in the host's): HTTP keep-alive
# and pipelining, 404, and a bounded TCP echo session. Prints one JSON object.
CLIENT = r'''
import json, os, socket, sys, time
ip = sys.argv[1]
res = {}

def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed in headers")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    n = int(hdrs["content-length"])
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed in body")
        rest += d
    return lines[0], hdrs, rest[:n], rest[n:]

s = socket.create_connection((ip, 8000), timeout=5)
buf, bodies, statuses = b"", [], []
req = b"GET /os/date HTTP/1.1\r\nHost: guest\r\n\r\n"
for _ in range(20):
    s.sendall(req)
    st, h, body, buf = read_response(s, buf)
    statuses.append(st)
    bodies.append(body.decode())
s.sendall(req * 5)                       # pipelined
for _ in range(5):
    st, h, body, buf = read_response(s, buf)
    statuses.append(st)
s.sendall(b"GET /nothing/here HTTP/1.1\r\nHost: guest\r\n\r\n")
st404, h404, b404, buf = read_response(s, buf)
s.sendall(b"GET /os/date HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n")
stc, hc, bc, buf = read_response(s, buf)
closed = s.recv(1) == b""
s.close()
res["http"] = {"statuses": statuses, "bodies": bodies, "status404": st404, "body404": b404.decode(),
               "close_status": stc, "close_header": hc.get("connection"), "closed": closed,
               "content_type": h.get("content-type"), "now": time.time()}

s = socket.create_connection((ip, 7), timeout=5)
s.setblocking(False)
data = os.urandom(1 << 20)
sent = got = 0
rx = bytearray()
t0 = time.monotonic()
import selectors
sel = selectors.DefaultSelector()
sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
total = len(data) * 4
while got < total and time.monotonic() - t0 < 60:  # a stall, not a speed limit
    for key, ev in sel.select(timeout=0.5):
        if ev & selectors.EVENT_WRITE and sent < total:
            off = sent % len(data)
            try:
                sent += s.send(data[off:off + 65536])
            except BlockingIOError:
                pass
        if ev & selectors.EVENT_READ:
            d = s.recv(1 << 20)
            if not d:
                got = -1
                break
            rx += d
            got += len(d)
    if sent >= total:
        sel.modify(s, selectors.EVENT_READ)
    if got < 0:
        break
s.close()
ok = got == total and all(rx[i:i + len(data)] == data for i in range(0, total, len(data)))
res["echo"] = {"sent": sent, "got": got, "ok": ok, "seconds": time.monotonic() - t0}
print(json.dumps(res))
'''


def run_client(ip):
    r = nsexec("/usr/bin/python3", "-c", CLIENT, ip, check=False, timeout=120)
    assert r.returncode == 0, "client failed:\n%s%s" % (r.stdout, r.stderr)
    return json.loads(r.stdout)


def test_dhcp_gives_pinned_address(lab):
    g = guest_up(lab, "dhcp", PINNED_IP)
    out = g.text()
    assert "virtio-net@" in out and "mac 52:54:30:30:30:30" in out, out
    assert "header 12 bytes" in out, out          # MRG_RXBUF without VERSION_1: legacy header
    assert "Cmdline: echo\r\n" in out, out         # virtio_mmio.device= entries stripped
    with open(lab["leases"]) as f:
        leases = f.read()
    assert re.search(r"^0 %s %s " % (PINNED_MAC, re.escape(PINNED_IP)), leases, re.M), leases


def test_ping(lab):
    guest_up(lab, "dhcp", PINNED_IP)
    r = nsexec("ping", "-c", "3", "-i", "0.2", "-W", "2", PINNED_IP, check=False)
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr


def test_http_date_with_curl(lab):
    guest_up(lab, "dhcp", PINNED_IP)
    r = nsexec("curl", "-sS", "--max-time", "5", "-w", "\n%{http_code} %{content_type}",
               "http://%s:8000/os/date" % PINNED_IP, check=False)
    now = time.time()
    assert r.returncode == 0, r.stderr
    body, status = r.stdout.rsplit("\n", 1)
    assert status == "200 application/json", r.stdout
    date = json.loads(body)
    t = calendar.timegm(time.strptime(date, "%a %b %d %H:%M:%S UTC %Y"))
    assert abs(t - now) < 4, "guest says %r, host %s" % (date, time.ctime(now))


def test_http_keepalive_404_and_tcp_echo(lab):
    guest_up(lab, "dhcp", PINNED_IP)
    res = run_client(PINNED_IP)
    h = res["http"]
    assert all(s == "HTTP/1.1 200 OK" for s in h["statuses"]) and len(h["statuses"]) == 25, h
    assert h["content_type"] == "application/json", h
    for b in h["bodies"]:
        t = calendar.timegm(time.strptime(json.loads(b), "%a %b %d %H:%M:%S UTC %Y"))
        assert abs(t - h["now"]) < 6, (b, h["now"])
    assert h["status404"].startswith("HTTP/1.1 404"), h
    assert h["close_status"] == "HTTP/1.1 200 OK" and h["close_header"] == "close", h
    assert h["closed"], h
    e = res["echo"]
    assert e["ok"], e


def test_static_ip(lab):
    g = guest_up(lab, "static", STATIC_IP)
    assert "(static)" in g.text()
    r = nsexec("ping", "-c", "2", "-i", "0.2", "-W", "2", STATIC_IP, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    r = nsexec("curl", "-sS", "--max-time", "5", "http://%s:8000/os/date" % STATIC_IP, check=False)
    assert r.returncode == 0 and re.fullmatch(r'"\w{3} \w{3} \d\d \d\d:\d\d:\d\d UTC \d{4}"',
                                              r.stdout), r.stdout + r.stderr
    with open(lab["leases"]) as f:
        assert STATIC_MAC not in f.read()      # never asked for a lease


def test_netgarbage_guest_keeps_running(lab):
    g = guest_up(lab, "garbage", "192.168.123.30")
    g.expect(r"netgarbage: wrote garbage into the rx and tx rings", timeout=10)
    at = len(g.text())
    g.send("uptime\r")
    g.expect(r"uptime: \d+\.\d+ ms", timeout=10, start=at)
