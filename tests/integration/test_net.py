"""tern's virtio-net on a tap and a bridge, end to end: the test guest booted with run.py in a
private lab (scripts/lab.sh in a namespace of its own), DHCP by pinned MAC, ping, HTTP, a TCP
echo session, RARP announcements, a guest that breaks its rings, and taps cleaned up."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime

import pytest

from conftest import GUEST, ROOT, Monitor, Tern

LAB_SH = os.path.join(ROOT, "scripts", "lab.sh")
RUN_PY = os.path.join(ROOT, "scripts", "run.py")
NS = "ternnet-%d" % os.getpid()
PINNED_MAC, PINNED_IP = "52:54:30:30:30:30", "192.168.123.10"
OTHER_MAC = "52:54:30:30:30:31"

pytestmark = [pytest.mark.kvm]


def sh(*cmd, check=True, timeout=60):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    if check:
        assert p.returncode == 0, "%s: rc %d\n%s" % (cmd, p.returncode, p.stdout)
    return p


def in_ns(*cmd, **kw):
    return sh("ip", "netns", "exec", NS, *cmd, **kw)


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0 or not shutil.which("dnsmasq"):
        pytest.skip("the lab needs root and dnsmasq")
    env = dict(os.environ, TERN_LAB_NS=NS)
    try:
        subprocess.run([LAB_SH, "up"], env=env, check=True, timeout=60)
        yield NS
    finally:
        subprocess.run([LAB_SH, "down"], env=env, timeout=60)
        sh("ip", "netns", "del", NS, check=False)


def run_py(mon, mac, execute, tap=None):
    """The test guest through scripts/run.py, as a user in the lab would start it."""
    args = [RUN_PY, "-n", "-b", "osvbr0", "--mac", mac, "-m", "128M", "-e", execute,
            "--pass-args", "-monitor unix:%s,server,nowait" % mon]
    if tap:
        args += ["-t", tap]
    return Tern(args[1:], netns=NS, prog=args[0])


def guest_ip(t):
    m = t.expect(r"eth0: (\d+\.\d+\.\d+\.\d+)", timeout=30)
    return m.group(1)


def taps_in_lab():
    out = sh("ip", "-n", NS, "-o", "link", "show").stdout
    return re.findall(r"^\d+: (tap\d+)", out, re.M)


def test_two_guests_dhcp_ping_http(lab, tmp_path):
    a = run_py(tmp_path / "a.mon", PINNED_MAC, "")
    b = run_py(tmp_path / "b.mon", OTHER_MAC, "")
    try:
        assert guest_ip(a) == PINNED_IP
        other = guest_ip(b)
        assert other.startswith("192.168.123.") and other != PINNED_IP
        for ip in (PINNED_IP, other):
            in_ns("ping", "-c", "3", "-W", "2", ip)
        before = time.time()
        body = in_ns("curl", "-sS", "--max-time", "10",
                     "http://%s:8000/os/date" % PINNED_IP).stdout
        date = parsedate_to_datetime(_rfc2822(json.loads(body)))
        assert abs(date.timestamp() - before) < 5, body
        info = Monitor(str(tmp_path / "a.mon")).info("network")
        assert "macaddr=" + PINNED_MAC in info and "bridge osvbr0" in info, info
        assert re.search(r"rx [1-9]\d* packets", info) and "running" in info, info
    finally:
        a.kill()
        b.kill()


def _rfc2822(osv_date):
    """OSv's `Mon Nov 23 09:33:09 UTC 2026` as RFC 2822 `Mon, 23 Nov 2026 09:33:09 +0000`."""
    wd, mon, day, hms, _tz, year = osv_date.split()
    return "%s, %s %s %s %s +0000" % (wd, day, mon, year, hms)


ECHO_CLIENT = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7), timeout=5)
end, n, worst = time.time() + float(sys.argv[2]), 0, 0.0
while time.time() < end:
    msg = b"tern %08d\n" % n
    t0 = time.time()
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(len(msg) - len(got))
        if not chunk:
            sys.exit("connection closed after %d echoes" % n)
        got += chunk
    assert got == msg, (got, msg)
    worst = max(worst, time.time() - t0)
    n += 1
    time.sleep(0.05)
print("echoes %d worst %.1f ms" % (n, worst * 1000))
"""


def test_tcp_echo_session_stays_open_60s(lab, tmp_path):
    a = run_py(tmp_path / "a.mon", PINNED_MAC, "")
    try:
        assert guest_ip(a) == PINNED_IP
        out = in_ns(sys.executable, "-c", ECHO_CLIENT, PINNED_IP, "60", timeout=90).stdout
        print(out)
        assert int(re.search(r"echoes (\d+)", out).group(1)) > 500, out
    finally:
        a.kill()


def test_announce_self_sends_five_rarps(lab, tmp_path):
    """announce_self, as after a migration: 5 RARP frames from the guest's MAC on the bridge."""
    sniff = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
s.bind(("osvbr0", 0))
s.settimeout(0.2)
print("ready", flush=True)
end, seen = time.time() + 3, []
while time.time() < end:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    if f[6:12] == bytes.fromhex(sys.argv[1].replace(":", "")):
        seen.append(time.time())
print("rarps %d" % len(seen))
"""
    a = run_py(tmp_path / "a.mon", PINNED_MAC, "")
    try:
        guest_ip(a)
        p = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", sniff,
                              PINNED_MAC], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        Monitor(str(tmp_path / "a.mon")).cmd("announce_self")
        out = p.communicate(timeout=10)[0]
        assert "rarps 5" in out, out
    finally:
        a.kill()


def test_garbage_in_rings_marks_device_broken(lab, tmp_path):
    a = run_py(tmp_path / "a.mon", PINNED_MAC, "netgarbage ticks")
    try:
        a.expect(r"virtio-net@0x[0-9a-f]+: queue \d: .*NEEDS_RESET", timeout=30)
        mon = Monitor(str(tmp_path / "a.mon"))
        assert "broken" in mon.info("network")
        assert "running" in mon.info("status")
        mark = len(a.out)
        a.expect(r"tick \d+", start=mark, timeout=5)  # the guest itself runs on
        assert a.proc.poll() is None
    finally:
        a.kill()


def test_taps_are_removed_on_exit(lab, tmp_path):
    a = run_py(tmp_path / "a.mon", PINNED_MAC, "")
    a.expect(r"Booted up")
    assert taps_in_lab()
    Monitor(str(tmp_path / "a.mon")).cmd("quit")
    assert a.wait() == 0
    assert not taps_in_lab()


def test_missing_bridge_is_one_line(lab):
    p = in_ns(os.path.join(ROOT, "build", "tern"), "-kernel", GUEST, "-nographic",
              "-serial", "none", "-netdev", "bridge,id=n0,br=nosuchbr0",
              "-device", "virtio-net,netdev=n0", check=False)
    assert p.returncode != 0
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1 and "bridge: nosuchbr0" in lines[0], p.stdout
