"""The test guest's network stack (virtio-net driver + lwIP + services), booted under QEMU.

These tests validate the guest side on its own, so that they run where there is no KVM:
QEMU's microvm machine with TCG boots build/guest/guest.elf through its PVH note and gives
it a modern (Version 2) virtio-mmio virtio-net device on a tap. The guest then has no
kvmclock and no x2APIC and uses its fallbacks (TSC calibrated against the PIT, CMOS RTC,
xAPIC through MMIO).

Everything runs in a network namespace created here (bridge osvbr0 192.168.123.1/24,
dnsmasq pinning 52:54:30:30:30:30 to 192.168.123.10 with an infinite lease, as
scripts/lab.sh) and deleted afterwards, even on failure. No host interface is touched.
"""
import calendar
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUEST = os.environ.get("TERN_TEST_GUEST") or os.path.join(ROOT, "build", "guest", "guest.elf")
QEMU = shutil.which("qemu-system-x86_64")

NS = "tgnet%d" % os.getpid()
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


class QemuGuest:
    """The test guest under QEMU (microvm, TCG) on a tap in the namespace; console on a pipe."""

    def __init__(self, tap, mac, append, log_dir):
        self.tap = tap
        nsexec("ip", "tuntap", "add", "dev", tap, "mode", "tap")
        nsexec("ip", "link", "set", tap, "master", BR)
        nsexec("ip", "link", "set", tap, "up")
        self.cmd = [
            "ip", "netns", "exec", NS, QEMU,
            "-M", "microvm,acpi=off,x-option-roms=off", "-accel", "tcg", "-m", "128M",
            "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
            "-global", "virtio-mmio.force-legacy=false",
            "-kernel", GUEST, "-append", append,
            "-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % tap,
            "-device", "virtio-net-device,netdev=n0,mac=%s" % mac,
        ]
        self.log = os.path.join(log_dir, "%s.log" % tap)
        self.out = b""
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            data = self.proc.stdout.read1(65536)
            if not data:
                return
            with self.lock:
                self.out += data

    def text(self):
        with self.lock:
            return self.out.decode(errors="replace")

    def expect(self, pattern, timeout=10, start=0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text(), start)
            if m:
                return m
            if time.monotonic() > deadline or self.proc.poll() is not None:
                time.sleep(0.1)
                m = rx.search(self.text(), start)
                if m:
                    return m
                raise AssertionError("guest on %s: timed out waiting for %r (qemu %s); output:\n%s"
                                     % (self.tap, pattern,
                                        "running" if self.proc.poll() is None
                                        else "exited %s" % self.proc.returncode,
                                        self.text()[-3000:]))
            time.sleep(0.05)

    def send(self, line):
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self.reader.join(timeout=2)
        with open(self.log, "w") as f:
            f.write(self.text())


def ns_delete():
    if os.path.exists("/run/netns/" + NS):
        pids = sh("ip", "netns", "pids", NS, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", NS, check=False)


@pytest.fixture(scope="module")
def lab():
    """Namespace, bridge, dnsmasq, and three guests: DHCP, static --ip=, netgarbage."""
    if not os.path.exists(GUEST):
        pytest.fail("%s is missing: run make guest" % GUEST)
    if os.geteuid() != 0:
        pytest.fail("these tests need root (network namespaces, taps)")
    state = tempfile.mkdtemp(prefix="tern-guest-net-")
    os.chmod(state, 0o755)
    guests = {}
    dnsmasq = None
    try:
        ns_delete()
        sh("ip", "netns", "add", NS)
        nsexec("ip", "link", "set", "lo", "up")
        nsexec("ip", "link", "add", BR, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        nsexec("ip", "addr", "add", HOST_IP + "/24", "dev", BR)
        nsexec("ip", "link", "set", BR, "up")
        leases = os.path.join(state, "leases")
        dlog = os.path.join(state, "dnsmasq.log")
        open(leases, "w").close()
        open(dlog, "w").close()
        shutil.chown(dlog, "nobody")
        dnsmasq = subprocess.Popen(
            ["ip", "netns", "exec", NS, "dnsmasq", "--keep-in-foreground",
             "--conf-file=/dev/null", "--port=0", "--interface=" + BR, "--bind-interfaces",
             "--except-interface=lo", "--dhcp-range=192.168.123.100,192.168.123.200,12h",
             "--dhcp-host=%s,%s,infinite" % (PINNED_MAC, PINNED_IP), "--dhcp-authoritative",
             "--dhcp-leasefile=" + leases, "--pid-file=", "--log-facility=" + dlog,
             "--log-dhcp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.2)
        if dnsmasq.poll() is not None:
            pytest.fail("dnsmasq did not start: %s" % dnsmasq.stderr.read().decode())
        guests["dhcp"] = QemuGuest("tgtap0", PINNED_MAC, "echo", state)
        guests["static"] = QemuGuest(
            "tgtap1", STATIC_MAC,
            "echo --ip=eth0,%s,255.255.255.0 --defaultgw=%s --nameserver=%s"
            % (STATIC_IP, HOST_IP, HOST_IP), state)
        guests["garbage"] = QemuGuest("tgtap2", GARBAGE_MAC, "echo netgarbage=300 --ip=eth0,"
                                      "192.168.123.30,255.255.255.0", state)
        yield {"guests": guests, "leases": leases, "dnsmasq_log": dlog, "state": state}
    finally:
        for g in guests.values():
            g.stop()
        if dnsmasq and dnsmasq.poll() is None:
            dnsmasq.terminate()
            try:
                dnsmasq.wait(timeout=5)
            except subprocess.TimeoutExpired:
                dnsmasq.kill()
                dnsmasq.wait()
        ns_delete()
        shutil.rmtree(state, ignore_errors=True)


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
while got < total and time.monotonic() - t0 < 8:
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
    r = nsexec("/usr/bin/python3", "-c", CLIENT, ip, check=False, timeout=30)
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
