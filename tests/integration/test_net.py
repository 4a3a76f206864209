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

from conftest import GUEST, ROOT, Monitor, Tern, free_port
from migproxy import patch_device_state

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
            "--pass-args=-monitor unix:%s,server,nowait" % mon]
    if tap:
        args += ["-t", tap]
    return Tern(args[1:], netns=NS, prog=args[0])


def guest_ip(t):
    m = t.expect(r"eth0: (\d+\.\d+\.\d+\.\d+)\r?\n", timeout=30)
    return m.group(1).decode()


def taps_in_lab():
    out = sh("ip", "-n", NS, "-o", "link", "show").stdout
    return re.findall(r"^\d+: (tap\d+)", out, re.M)


def test_two_guests_dhcp_ping_http(lab, tmp_path):
    a = run_py(tmp_path / "a.mon", PINNED_MAC, "")
    # The other with QEMU's -nic shorthand for the same -netdev and -device.
    b = Tern(["-kernel", GUEST, "-m", "128M", "-nographic", "-append", "",
              "-nic", "bridge,br=osvbr0,mac=%s,model=virtio-net-pci" % OTHER_MAC,
              "-monitor", "unix:%s,server,nowait" % (tmp_path / "b.mon")], netns=NS)
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
        info = Monitor(str(tmp_path / "a.mon")).cmd("info network")
        assert "macaddr=" + PINNED_MAC in info and "bridge osvbr0" in info, info
        assert re.search(r"rx [1-9]\d* packets", info) and "running" in info, info
        # The tap's own MAC: high, so the bridge never takes it; the guest's, so both ends
        # of a migration have the same one.
        tap = re.search(r"tap (\w+)", info).group(1)
        assert "link/ether fe:54:30:30:30:30 " in sh("ip", "-n", NS, "link", "show", tap).stdout
        assert "macaddr=" + OTHER_MAC in Monitor(str(tmp_path / "b.mon")).cmd("info network")
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


# Counts the RARP frames from MAC (argv[1]) on the lab's bridge for SECONDS (argv[2]), once
# it has printed "ready".
SNIFF_RARPS = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
s.bind(("osvbr0", 0))
s.settimeout(0.2)
print("ready", flush=True)
end, seen = time.time() + float(sys.argv[2]), []
while time.time() < end:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    if f[6:12] == bytes.fromhex(sys.argv[1].replace(":", "")):
        seen.append(time.time())
print("rarps %d" % len(seen))
"""


def sniff_rarps(seconds):
    p = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", SNIFF_RARPS,
                          PINNED_MAC, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def test_announce_self_sends_five_rarps(lab, tmp_path):
    """announce_self, as after a migration: 5 RARP frames from the guest's MAC on the bridge."""
    a = run_py(tmp_path / "a.mon", PINNED_MAC, "")
    try:
        guest_ip(a)
        p = sniff_rarps(3)
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
        assert "broken" in mon.cmd("info network")
        assert mon.info("status")["VM status"] == "running"
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


def test_persistent_tap_is_left_as_found(lab, tmp_path):
    """A tap made with `ip tuntap add` and given with -t: tern puts it on the bridge, takes it
    off at exit and leaves it there, so the same command works a second time."""
    tap = "ternp0"
    in_ns("ip", "tuntap", "add", tap, "mode", "tap")
    try:
        for _ in range(2):
            a = run_py(tmp_path / "a.mon", PINNED_MAC, "", tap=tap)
            assert guest_ip(a) == PINNED_IP
            Monitor(str(tmp_path / "a.mon")).cmd("quit")
            assert a.wait() == 0
            link = sh("ip", "-n", NS, "-o", "link", "show", tap).stdout
            assert "master" not in link, link
    finally:
        in_ns("ip", "link", "del", tap, check=False)


def test_missing_bridge_is_one_line(lab):
    p = subprocess.run(["ip", "netns", "exec", NS, os.path.join(ROOT, "build", "tern"),
                        "-kernel", GUEST, "-nographic", "-serial", "none",
                        "-netdev", "bridge,id=n0,br=nosuchbr0", "-device", "virtio-net,netdev=n0"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "bridge: nosuchbr0" in lines[0], p.stderr
    assert not taps_in_lab()


def test_tap_set_down_is_said_once(lab, tmp_path):
    """A tap set down fails every frame the guest sends (EIO): one line that names the tap,
    not silence (the guest's network dead without a word) and not one line per frame. No
    bridge, so no DHCP server: the guest's DHCP discovers keep coming."""
    tap, mon = "terntx0", str(tmp_path / "a.mon")
    t = Tern(["-kernel", GUEST, "-m", "128M", "-nographic", "-serial", "stdio",
              "-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % tap,
              "-device", "virtio-net,netdev=n0,mac=" + OTHER_MAC,
              "-monitor", "unix:%s,server,nowait" % mon], netns=NS)
    t.expect(r"Booted up", timeout=30)
    in_ns("ip", "link", "set", tap, "down")
    t.expect(r"write tap %s \(the frame is dropped; further errors are only counted\): "
             r"Input/output error" % tap, timeout=60)
    time.sleep(10)  # more discovers, no more lines
    assert t.text().count("write tap") == 1, t.text()
    Monitor(mon).cmd("quit")
    assert t.wait() == 0


def tern_in_lab(mon, *extra):
    return Tern(["-kernel", GUEST, "-m", "128M", "-nographic", "-serial", "stdio",
                 "-netdev", "bridge,id=n0,br=osvbr0",
                 "-device", "virtio-net,netdev=n0,mac=" + PINNED_MAC,
                 "-monitor", "unix:%s,server,nowait" % mon, *extra], netns=NS)


def hand_over(cur, cur_mon, mon_path, uri, *extra):
    """Migrates the lab guest in cur to a new tern waiting on uri, quits cur; the new one."""
    nxt = tern_in_lab(mon_path, "-incoming", uri, *extra)
    try:
        nxt_mon = Monitor(str(mon_path))
        out = cur_mon.cmd('migrate "%s"' % uri)
        assert "migrate: completed" in out, out
    except BaseException:
        nxt.kill()
        raise
    cur_mon.cmd("quit")
    cur.wait()
    return nxt, nxt_mon


def test_migrate_guest_with_two_nics(lab, tmp_path):
    """Each NIC's state goes to its own twin: they used to share one node in the stream, so the
    destination refused the second MAC."""
    second = ["-netdev", "bridge,id=n1,br=osvbr0",
              "-device", "virtio-net,netdev=n1,mac=52:54:00:00:00:02"]
    cur = tern_in_lab(tmp_path / "m0", *second)
    assert guest_ip(cur) == PINNED_IP
    cur, cur_mon = hand_over(cur, Monitor(str(tmp_path / "m0")), tmp_path / "m1",
                             "tcp:127.0.0.1:%d" % free_port(), *second)
    try:
        net = cur_mon.cmd("info network")
        assert PINNED_MAC.lower() in net and "52:54:00:00:00:02" in net, net
        in_ns("ping", "-c", "3", "-W", "5", PINNED_IP)
    finally:
        cur.kill()


def test_destination_announces_the_guest_after_migration(lab, tmp_path):
    """Once the guest runs at the destination, its NIC sends the 5 RARP frames of
    announce_self by itself, so the bridge learns the new port before the guest says
    anything; the paused source sends none."""
    cur = tern_in_lab(tmp_path / "m0")
    try:
        assert guest_ip(cur) == PINNED_IP
        p = sniff_rarps(8)
        cur, cur_mon = hand_over(cur, Monitor(str(tmp_path / "m0")), tmp_path / "m1",
                                 "tcp:127.0.0.1:%d" % free_port())
        out = p.communicate(timeout=20)[0]
        assert "rarps 5" in out, out
    finally:
        cur.kill()


def test_destination_with_another_mac_refuses(lab, tmp_path):
    """The hello compares the NICs' MACs: a destination whose NIC has another MAC refuses the
    guest before any page moves, and the guest runs on at the source."""
    src = tern_in_lab(tmp_path / "m0")
    dst = None
    try:
        assert guest_ip(src) == PINNED_IP
        uri = "tcp:127.0.0.1:%d" % free_port()
        dst = Tern(["-kernel", GUEST, "-m", "128M", "-nographic", "-serial", "stdio",
                    "-netdev", "bridge,id=n0,br=osvbr0",
                    "-device", "virtio-net,netdev=n0,mac=" + OTHER_MAC,
                    "-monitor", "unix:%s,server,nowait" % (tmp_path / "m1"),
                    "-incoming", uri], netns=NS)
        Monitor(str(tmp_path / "m1")).close()
        mon = Monitor(str(tmp_path / "m0"))
        out = mon.cmd('migrate "%s"' % uri)
        assert "destination refused: " in out and \
            "mac %s != %s" % (PINNED_MAC, OTHER_MAC) in out, out
        assert mon.info("migrate")["normal"] == "0 pages", "pages were sent before the refusal"
        assert dst.wait(timeout=15) != 0
        assert mon.info("status")["VM status"] == "running"
        in_ns("ping", "-c", "3", "-W", "5", PINNED_IP)
    finally:
        src.kill()
        if dst:
            dst.kill()


def test_late_frames_reach_the_nic_with_other_options(lab, tmp_path):
    """Frames that reach the source after the hand-over go on to the destination's NIC even
    where the two were started with different monitors: they named the NIC by its index among
    all devices, which a -qmp on one side only shifts, and went to another device, lost. The
    destination's tap is on no bridge, so its NIC receives only what the source forwards."""
    tap = "ternfw0"
    in_ns("ip", "tuntap", "add", tap, "mode", "tap")
    in_ns("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % tap)  # a silent tap
    src = tern_in_lab(tmp_path / "m0", "-qmp", "unix:%s,server,nowait" % (tmp_path / "q0"))
    dst = ping = None
    try:
        assert guest_ip(src) == PINNED_IP
        uri = "tcp:127.0.0.1:%d" % free_port()
        dst = Tern(["-kernel", GUEST, "-m", "128M", "-nographic", "-serial", "stdio",
                    "-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % tap,
                    "-device", "virtio-net,netdev=n0,mac=" + PINNED_MAC,
                    "-monitor", "unix:%s,server,nowait" % (tmp_path / "m1"),
                    "-incoming", uri], netns=NS)
        dst_mon = Monitor(str(tmp_path / "m1"))
        # The bridge goes on sending the guest's frames to the source's tap: the pings
        # queued there while the guest stops, and those after, are all forwarded.
        log = tmp_path / "ping.out"
        with open(log, "w") as f:
            ping = subprocess.Popen(["ip", "netns", "exec", NS, "ping", "-i", "0.01",
                                     PINNED_IP], stdout=f)
        deadline = time.monotonic() + 30
        while "bytes from" not in log.read_text():  # pinging the guest at the source
            assert ping.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        out = Monitor(str(tmp_path / "m0")).cmd('migrate "%s"' % uri)
        assert "migrate: completed" in out, out
        deadline = time.monotonic() + 10
        while True:
            net = dst_mon.cmd("info network")
            if int(re.search(r"rx (\d+) packets", net).group(1)) > 0:
                break
            assert time.monotonic() < deadline, net
            time.sleep(0.1)
    finally:
        if ping:
            ping.kill()
        src.kill()
        if dst:
            dst.kill()
        in_ns("ip", "link", "del", tap, check=False)


def test_snapshot_then_cont_keeps_the_network(lab, tmp_path):
    """After a snapshot to a file the guest may go on where it is: with its NIC (which used
    to stay paused, the guest deaf)."""
    t = tern_in_lab(tmp_path / "m")
    assert guest_ip(t) == PINNED_IP
    mon = Monitor(str(tmp_path / "m"))
    try:
        assert "completed" in mon.cmd('migrate "file:%s"' % (tmp_path / "snap"))
        assert "Error" not in mon.cmd("cont")
        in_ns("ping", "-c", "3", "-W", "5", PINNED_IP)
    finally:
        t.kill()


def rx_packets(mon):
    return int(re.search(r"rx (\d+) packets", mon.cmd("info network")).group(1))


def test_stopped_guest_gets_frames_only_at_cont(lab, tmp_path):
    """A stopped guest's memory stays as it was, as in QEMU: frames for it wait in the tap
    (they used to land in its rings while it was stopped) and reach it at cont."""
    t = tern_in_lab(tmp_path / "m")
    assert guest_ip(t) == PINNED_IP
    mon = Monitor(str(tmp_path / "m"))
    try:
        in_ns("ping", "-c", "1", "-W", "5", PINNED_IP)
        mon.cmd("stop")
        before = rx_packets(mon)
        p = in_ns("ping", "-c", "3", "-i", "0.2", "-W", "1", PINNED_IP, check=False)
        assert p.returncode != 0, p.stdout
        assert rx_packets(mon) == before
        assert "Error" not in mon.cmd("cont")
        deadline = time.time() + 10
        while rx_packets(mon) < before + 3 and time.time() < deadline:
            time.sleep(0.1)
        assert rx_packets(mon) >= before + 3
        in_ns("ping", "-c", "3", "-W", "5", PINNED_IP)
    finally:
        t.kill()


def test_snapshot_with_link_down_refused(lab, tmp_path):
    """The NIC's link status is the device's own, always up: a snapshot that says down (the
    last byte of the big-endian "status") is refused with one line, and the guest does not run
    there with its network dead, as it used to."""
    t = tern_in_lab(tmp_path / "m0")
    try:
        assert guest_ip(t) == PINNED_IP
        mon = Monitor(str(tmp_path / "m0"))
        assert "completed" in mon.cmd('migrate "file:%s"' % (tmp_path / "snap"))
    finally:
        t.kill()
    path = str(tmp_path / "down.snap")
    patch_device_state(str(tmp_path / "snap"), path, "virtio-net", "status", 3, 0)
    dst = tern_in_lab(tmp_path / "m1", "-incoming", "file:" + path)
    try:
        assert dst.wait(timeout=30) != 0
        out = dst.text()
        assert "the stream's link status 0 is not this device's (1: link up)" in out, out
        line = [l for l in out.splitlines() if l.startswith("tern:")][-1]
        assert line.endswith("incoming migration failed: device virtio-net refused its state"), out
    finally:
        dst.kill()


def test_migrations_keep_a_busy_tcp_connection(lab, tmp_path):
    """Ten migrations A->B->A'..., alternating tcp and unix, while a client sends a request
    every 10 ms on one keep-alive connection: no request lost, no reset, no wait over 1 s."""
    cur = tern_in_lab(tmp_path / "m0")
    assert guest_ip(cur) == PINNED_IP
    cur_mon = Monitor(str(tmp_path / "m0"))
    summary = tmp_path / "client.json"
    client = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable,
                               os.path.join(ROOT, "scripts", "client-loop.py"), PINNED_IP,
                               "--interval-ms", "10", "--quiet", "--summary", str(summary)])
    try:
        time.sleep(1)
        for i in range(1, 11):
            uri = ("tcp:127.0.0.1:%d" % free_port()) if i % 2 else \
                "unix:%s" % (tmp_path / ("mig%d.sock" % i))
            cur, cur_mon = hand_over(cur, cur_mon, tmp_path / ("m%d" % i), uri)
            time.sleep(0.5)
        net = cur_mon.cmd("info network")
        assert "running" in net
    finally:
        client.terminate()
        client.wait(timeout=10)
        cur.kill()
    result = json.load(open(summary))
    print(result)
    assert result["errors"] == 0 and result["resets"] == 0, \
        (result, net, cur.text()[-1500:])
    assert result["max_delta_ms"] < 1000, result
    assert result["requests"] > 500, result


# Streams a pattern through the guest's TCP echo (port 7), keeping up to 256 KiB in flight,
# and checks every byte that comes back; writes how much came back to PROGRESS; drains and
# stops once STOP exists. Prints "ok BYTES LONGEST_STALL_MS" or what went wrong.
BULK_ECHO_CLIENT = r"""
import os, random, select, socket, sys, time
ip, progress, stop = sys.argv[1:4]
pat = random.Random(7).randbytes((1 << 20) + 7)  # odd length: a slip shows at once
s = socket.create_connection((ip, 7), timeout=30)
s.setblocking(False)
sent = got = 0
stall, last, stopping = 0.0, time.monotonic(), False
while not stopping or got < sent:
    stopping = stopping or os.path.exists(stop)
    want_w = not stopping and sent - got < (256 << 10)
    r, w, _ = select.select([s], [s] if want_w else [], [], 30)
    now = time.monotonic()
    if not r and not w:
        sys.exit("stalled at %d of %d bytes" % (got, sent))
    if w:
        off = sent % len(pat)
        sent += s.send(pat[off:off + (64 << 10)])
    if r:
        d = s.recv(1 << 16)
        if not d:
            sys.exit("closed by the guest at %d bytes" % got)
        off = got % len(pat)
        exp = (pat[off:] + pat)[:len(d)]
        if d != exp:
            sys.exit("wrong bytes at %d" % got)
        got += len(d)
        stall, last = max(stall, now - last), now
        with open(progress + ".tmp", "w") as f:
            f.write(str(got))
        os.replace(progress + ".tmp", progress)
print("ok %d %.0f" % (got, stall * 1000))
"""


def test_migrations_during_bulk_tcp_echo(lab, tmp_path):
    """A->B->A while the guest echoes a bulk TCP stream: every byte comes back, in order.
    The device writes received frames into guest memory all through the rounds, so this is
    the dirty log of the VMM's own writes, the rings' state and the frames forwarded after the
    hand-over, all under load."""
    progress, stop = tmp_path / "progress", tmp_path / "stop"

    def echoed():
        try:
            return int(progress.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def wait_more(n):
        goal, deadline = echoed() + n, time.monotonic() + 60
        while echoed() < goal:
            assert client.poll() is None and time.monotonic() < deadline, \
                (echoed(), client.communicate(timeout=10))
            time.sleep(0.05)

    cur = tern_in_lab(tmp_path / "m0")
    assert guest_ip(cur) == PINNED_IP
    cur_mon = Monitor(str(tmp_path / "m0"))
    client = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c",
                               BULK_ECHO_CLIENT, PINNED_IP, str(progress), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_more(1 << 20)
        for i in (1, 2):
            uri = "tcp:127.0.0.1:%d" % free_port()
            cur, cur_mon = hand_over(cur, cur_mon, tmp_path / ("m%d" % i), uri)
            wait_more(1 << 20)
        stop.touch()
        out, _ = client.communicate(timeout=60)
    finally:
        client.kill()
        cur.kill()
    print(out)
    assert client.returncode == 0 and out.startswith("ok "), (out, cur.text()[-1500:])


def run_demo(name, ns, namespaces):
    """scripts/demo-NAME.sh end to end, in namespaces of its own; none may be left behind."""
    env = dict(os.environ, TERN_LAB_NS=ns)
    p = subprocess.run([os.path.join(ROOT, "scripts", "demo-%s.sh" % name)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180)
    print(p.stdout)
    assert p.returncode == 0, p.stdout
    assert "migrations done: 2" in p.stdout and "requests lost: 0" in p.stdout
    left = sh("ip", "netns", "list").stdout.split()
    assert not set(namespaces) & set(left), left
    return p.stdout


def test_demo_intra_host(lab):
    run_demo("intra-host", NS + "d", [NS + "d"])


def test_demo_inter_host(lab):
    """Two host namespaces, a switch, the stream on a link of its own: the guest's MAC moves
    from one uplink to the other, and the destination's RARP tells the switch at once."""
    ns = NS + "i"
    out = run_demo("inter-host", ns, [ns, ns + "-a", ns + "-b"])
    ports = re.findall(r"the guest's MAC is behind (\S+)", out)
    assert ports == ["a-up", "b-up", "a-up"], out


# --- the host's network changing under a running tern ------------------------------------

def cpu_percent(t, seconds):
    """tern's CPU use (all threads) over the next seconds, its output read meanwhile."""
    def ticks():
        f = open("/proc/%d/stat" % t.proc.pid).read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    before = ticks()
    t.drain(seconds)
    return 100.0 * (ticks() - before) / os.sysconf("SC_CLK_TCK") / seconds


def tap_of(mon):
    return re.search(r"tap (\w+)", mon.cmd("info network")).group(1)


@pytest.fixture
def own_bridge(lab):
    """A bridge of the test's own in the lab, free to delete."""
    br = "ternhb0"
    in_ns("ip", "link", "add", br, "type", "bridge")
    in_ns("ip", "link", "set", br, "up")
    yield br
    in_ns("ip", "link", "del", br, check=False)


def test_deleted_tap_is_one_line_and_quit_is_clean(lab, tmp_path):
    """`ip link del` of a running guest's tap: no busy loop on the dead fd, and announce_self
    (five frames, each refused) says so once, not five times; the monitor answers and quit
    leaves nothing behind."""
    t = tern_in_lab(tmp_path / "m")
    try:
        assert guest_ip(t) == PINNED_IP
        mon = Monitor(str(tmp_path / "m"))
        in_ns("ip", "link", "del", tap_of(mon))
        mon.cmd("announce_self")
        assert cpu_percent(t, 3) < 50
        assert t.text().count("announce on") == 1, t.text()
        assert "running" in mon.cmd("info network")
        mon.cmd("quit")
        assert t.wait() == 0
        assert not taps_in_lab()
    finally:
        t.kill()


@pytest.mark.parametrize("how", ["nomaster", "bridge deleted"])
def test_persistent_tap_taken_off_its_bridge_quits_quietly(own_bridge, tmp_path, how):
    """A persistent tap that tern put on its bridge, taken off it on the host: at exit there
    is nothing to undo, and no error line about it."""
    tap = "ternp1"
    in_ns("ip", "tuntap", "add", tap, "mode", "tap")
    t = Tern(["-kernel", GUEST, "-m", "128M", "-nographic", "-serial", "stdio",
              "-netdev", "tap,id=n0,ifname=%s,br=%s,script=no,downscript=no" % (tap, own_bridge),
              "-device", "virtio-net,netdev=n0,mac=" + PINNED_MAC,
              "-monitor", "unix:%s,server,nowait" % (tmp_path / "m")], netns=NS)
    try:
        t.expect(r"Booted up", timeout=30)
        if how == "nomaster":
            in_ns("ip", "link", "set", tap, "nomaster")
        else:
            in_ns("ip", "link", "del", own_bridge)
        Monitor(str(tmp_path / "m")).cmd("quit")
        assert t.wait() == 0
        assert "bridge:" not in t.text(), t.text()
    finally:
        t.kill()
        in_ns("ip", "link", "del", tap, check=False)


def test_forwarding_skips_a_deleted_source_tap(lab, tmp_path):
    """The source forwards frames from its tap for a second after GO: a tap deleted on the
    host is POLLERR for good, which that loop used to spin on."""
    src = tern_in_lab(tmp_path / "m0")
    uri = "tcp:127.0.0.1:%d" % free_port()
    dst = tern_in_lab(tmp_path / "m1", "-incoming", uri)
    try:
        assert guest_ip(src) == PINNED_IP
        mon = Monitor(str(tmp_path / "m0"))
        Monitor(str(tmp_path / "m1")).close()
        in_ns("ip", "link", "del", tap_of(mon))
        assert "migrate: completed" in mon.cmd('migrate "%s"' % uri)
        assert cpu_percent(src, 0.8) < 25
        mon.cmd("quit")
        assert src.wait() == 0
    finally:
        src.kill()
        dst.kill()


@pytest.mark.parametrize("what", ["tap", "bridge"])
def test_destination_that_lost_its_network_refuses(own_bridge, tmp_path, what):
    """A destination whose tap was deleted, or whose bridge was, while it waited would run
    the guest deaf: it refuses in the hello, before any page moves, naming the tap, and the
    guest runs on at the source. (QEMU's destination has no such check.)"""
    src = tern_in_lab(tmp_path / "m0")
    uri = "tcp:127.0.0.1:%d" % free_port()
    dst = Tern(["-kernel", GUEST, "-m", "128M", "-nographic", "-serial", "stdio",
                "-netdev", "bridge,id=n0,br=" + own_bridge,
                "-device", "virtio-net,netdev=n0,mac=" + PINNED_MAC,
                "-monitor", "unix:%s,server,nowait" % (tmp_path / "m1"), "-incoming", uri],
               netns=NS)
    try:
        assert guest_ip(src) == PINNED_IP
        mon = Monitor(str(tmp_path / "m0"))
        dtap = tap_of(Monitor(str(tmp_path / "m1")))
        in_ns("ip", "link", "del", dtap if what == "tap" else own_bridge)
        out = mon.cmd('migrate "%s"' % uri)
        assert dst.wait(timeout=15) == 1
        want = "tap %s was deleted on this host" % dtap if what == "tap" else \
            "tap %s is no longer a port of bridge %s" % (dtap, own_bridge)
        assert "destination refused: virtio-net: " + want in out, out
        assert want in dst.text(), dst.text()
        assert mon.info("migrate")["normal"] == "0 pages", "pages were sent before the refusal"
        assert mon.info("status")["VM status"] == "running"
        in_ns("ping", "-c", "3", "-W", "5", PINNED_IP)
    finally:
        src.kill()
        dst.kill()
