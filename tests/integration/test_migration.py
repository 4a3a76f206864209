"""Issue 4: live migration between two tern processes on this host (no network needed)."""
import os
import re
import select
import signal
import socket
import time

import pytest

from conftest import GUEST, Monitor, free_port, run_tern
from migproxy import (FakeDestination, MigProxy, holding, holding_answers, patch_device_state,
                      record)

# Every test here boots a guest.
pytestmark = pytest.mark.kvm

MEM = "128M"


def guest_args(mon, *extra, mem=MEM, append="memtest=8"):
    return ["-kernel", GUEST, "-nographic", "-serial", "stdio", "-m", mem, "-append", append,
            "-monitor", "unix:%s,server,nowait" % mon] + list(extra)


def incoming_args(mon, uri, *extra, mem=MEM, append="memtest=8"):
    return guest_args(mon, "-incoming", uri, *extra, mem=mem, append=append)


def guest_cmd(t, line, pattern, timeout=10):
    mark = len(t.out)
    t.send(line + "\r")
    return t.expect(pattern, timeout=timeout, start=mark)


def clock_offset_ms(t):
    r"""Smallest distance of the guest's wall clock from the host's, over a few samples, in ms.

    The serial console reaches us a byte at a time, so the pattern must take in the whole
    line: `wall_ns=(\d+)` alone matched as soon as the first digits had come ("wall_ns=17"
    read as 17 ns, a clock 56 years behind). The guest reads its clock between our sending
    `time` and the end of its reply: a right clock lies inside that window, so the offset is
    the distance from it (0 inside)."""
    best = None
    for _ in range(3):
        before = time.time_ns()
        m = guest_cmd(t, "time", r"time: wall_ns=(\d+) now_ns=\d+\r?\n")
        after = time.time_ns()
        wall = int(m.group(1))
        off = max(before - wall, wall - after, 0) / 1e6
        best = off if best is None else min(best, off)
    return best


def wait_status(mon, want, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = mon.info("migrate")
        if info.get("Migration status") in want:
            return info
        time.sleep(0.02)
    raise AssertionError("migration never reached %s: %s" % (want, info))


def assert_guest_alive(t, mon):
    # The source says completed once it has sent go; the destination resumes a moment later.
    deadline = time.monotonic() + 10
    while mon.info("status")["VM status"] != "running":
        assert time.monotonic() < deadline, mon.info("status")
        time.sleep(0.02)
    guest_cmd(t, "check", r"memtest: ok")


@pytest.fixture
def socks(tmp_path):
    return lambda name: str(tmp_path / name)


def start_pair(tern, socks, uri, **kw):
    a = tern(*guest_args(socks("a.mon"), **kw))
    a.expect(r"memtest: filled")
    b = tern(*incoming_args(socks("b.mon"), uri, **kw))
    return a, Monitor(socks("a.mon")), b, Monitor(socks("b.mon"))


def test_migrate_ten_times_tcp_and_unix(tern, socks):
    """A->B->A'... ten times, alternating tcp and unix; memory intact, clock right."""
    cur = tern(*guest_args(socks("m0"), append="memtest=16"))
    cur.expect(r"memtest: filled")
    cur_mon = Monitor(socks("m0"))
    off = clock_offset_ms(cur)
    assert off < 5, "guest clock off by %.2f ms before any migration" % off
    for i in range(1, 11):
        uri = ("tcp:127.0.0.1:%d" % free_port()) if i % 2 else "unix:" + socks("mig%d.sock" % i)
        nxt = tern(*incoming_args(socks("m%d" % i), uri, append="memtest=16"))
        nxt_mon = Monitor(socks("m%d" % i))
        assert nxt_mon.info("status")["VM status"] == "paused (inmigrate)"
        out = cur_mon.cmd('migrate "%s"' % uri)
        assert "migrate: completed" in out, out
        assert cur_mon.info("status")["VM status"] == "paused (postmigrate)"
        assert_guest_alive(nxt, nxt_mon)
        off = clock_offset_ms(nxt)
        assert off < 5, "guest clock off by %.2f ms after migration %d" % (off, i)
        assert "Error" in cur_mon.cmd("cont")  # never two running copies
        cur_mon.cmd("quit")
        cur.wait()
        cur, cur_mon = nxt, nxt_mon


def test_info_migrate_fields(tern, socks):
    port = free_port()
    a, am, b, bm = start_pair(tern, socks, "tcp:0:%d" % port)
    # A host name: the source resolves it (NSS, /etc/hosts) from behind its sandbox.
    am.cmd('migrate "tcp:localhost:%d"' % port)
    info = am.info("migrate")
    assert info["Migration status"] == "completed"
    for key in ("total time", "downtime", "setup", "transferred ram", "throughput",
                "remaining ram", "total ram", "duplicate", "normal", "dirty sync count"):
        assert key in info, info
    # Round 0 skips untouched pages: far less than 128M moves.
    assert int(info["transferred ram"].split()[0]) < 64 * 1024, info
    # The source is done at go; the destination a moment later, once the guest runs there.
    wait_status(bm, ("completed",))


def test_migrate_incoming_after_defer(tern, socks):
    """-incoming defer, then migrate_incoming: a failed listen says why and may be retried."""
    a, am, b, bm = start_pair(tern, socks, "defer")
    assert bm.info("status")["VM status"] == "paused (inmigrate)"
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    out = bm.cmd('migrate_incoming "tcp:127.0.0.1:%d"' % busy.getsockname()[1])
    busy.close()
    assert "Error: tcp:127.0.0.1:" in out and "Address already in use" in out, out
    assert "unknown migration URI" in bm.cmd('migrate_incoming "exec:cat"')
    port = free_port()
    assert bm.cmd('migrate_incoming "tcp:127.0.0.1:%d"' % port).strip() == ""
    # As QEMU: a second one is refused for what it is; b was started with -incoming defer.
    again = bm.cmd('migrate_incoming "tcp:127.0.0.1:%d"' % port)
    assert "Error: the incoming migration has already been started" in again, again
    assert "completed" in am.cmd('migrate "tcp:127.0.0.1:%d"' % port)
    assert_guest_alive(b, bm)


def snapshot_of_a_guest(tern, socks):
    """The path of a snapshot of a running test guest, whose tern has quit since."""
    snap = socks("guest.snap")
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    am = Monitor(socks("a.mon"))
    assert "completed" in am.cmd('migrate "file:%s"' % snap)
    am.cmd("quit")
    a.wait()
    return snap


def test_snapshot_to_file_and_restore(tern, socks):
    snap = snapshot_of_a_guest(tern, socks)
    b = tern(*incoming_args(socks("b.mon"), "file:" + snap))
    bm = Monitor(socks("b.mon"))
    wait_status(bm, ("completed",))
    assert_guest_alive(b, bm)


def test_restore_from_a_fifo_and_sigterm_while_it_waits(tern, socks):
    """-incoming file: on a FIFO: tern waits for the writer without holding anything, and a
    SIGTERM meanwhile ends it at once (the open blocked set-up, the signal unheard, for
    ever); a writer that comes late restores the guest."""
    fifo = socks("fifo")
    os.mkfifo(fifo)
    b = tern(*incoming_args(socks("b.mon"), "file:" + fifo))
    bm = Monitor(socks("b.mon"))
    assert "inmigrate" in bm.cmd("info status")
    b.proc.send_signal(signal.SIGTERM)
    assert b.wait(timeout=10) == 0, b.text()
    snap = snapshot_of_a_guest(tern, socks)
    c = tern(*incoming_args(socks("c.mon"), "file:" + fifo))
    cm = Monitor(socks("c.mon"))
    time.sleep(0.5)
    with open(fifo, "wb") as w:
        w.write(open(snap, "rb").read())
    wait_status(cm, ("completed",))
    assert_guest_alive(c, cm)


@pytest.mark.parametrize("how", ["stop", "-S"])
def test_snapshot_of_a_stopped_guest_restores_stopped(tern, socks, how):
    """A snapshot carries the run state, as a migration does (and QEMU's): a guest stopped
    when it was saved is restored paused, one never started (-S) in prelaunch; cont runs it.
    It used to arrive running, the file holding no word of it."""
    snap = socks("guest.snap")
    a = tern(*guest_args(socks("a.mon"), *(["-S"] if how == "-S" else [])))
    am = Monitor(socks("a.mon"))
    if how == "stop":
        a.expect(r"memtest: filled")
        assert am.cmd("stop").strip() == ""
    assert "completed" in am.cmd('migrate "file:%s"' % snap)
    am.cmd("quit")
    a.wait()
    b = tern(*incoming_args(socks("b.mon"), "file:" + snap))
    bm = Monitor(socks("b.mon"))
    wait_status(bm, ("completed",))  # set after the run state: then it is final
    want = "paused" if how == "stop" else "paused (prelaunch)"
    assert bm.info("status")["VM status"] == want
    assert bm.cmd("cont").strip() == ""
    if how == "-S":
        b.expect(r"memtest: filled")
    assert_guest_alive(b, bm)


def test_truncated_snapshot_refused(tern, socks, tmp_path):
    snap = socks("guest.snap")
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    am = Monitor(socks("a.mon"))
    am.cmd('migrate "file:%s"' % snap)
    data = open(snap, "rb").read()
    for name, blob in (("trunc", data[:len(data) // 2]),
                       ("flip", data[:5000] + bytes([data[5000] ^ 1]) + data[5001:])):
        path = str(tmp_path / name)
        open(path, "wb").write(blob)
        code, out = run_tern(incoming_args(socks(name + ".mon"), "file:" + path), timeout=30)
        assert code != 0, out
        line = [l for l in out.splitlines() if l.startswith("tern:")][-1]
        assert "incoming migration failed" in line, out
        assert ("ends early" in line) if name == "trunc" else ("corrupt" in line), out


def test_snapshot_with_impossible_device_state_refused(tern, socks, tmp_path):
    """A well-formed stream whose device state no guest could have made is refused, naming
    why: an IER with bits 4-7 set, an IOAPIC moved off 0xfec00000 (KVM_SET_IRQCHIP took the
    base from the stream, and the guest lost its IOAPIC), a PIC whose timer line could be made
    level-triggered, a PIT silenced by an HPET this board does not have. (Byte offsets: the
    first of kvm_ioapic_state.base_address, kvm_pic_state.elcr_mask, kvm_pit_state2.flags.)"""
    snap = snapshot_of_a_guest(tern, socks)
    for node, prop, at, value, why in (
            ("serial@3f8", "regs", 0, 0xf1, "serial@3f8: the stream's IER 0xf1"),
            ("irqchip", "ioapic", 0, 0x10, "IOAPIC is at 0xfec00010, not 0xfec00000"),
            ("irqchip", "pic-master", 15, 0xff, "pic-master ELCR mask is 0xff, not 0xf8"),
            ("irqchip", "pit", 72, 0x01, "PIT is silenced by an HPET")):
        path = str(tmp_path / (node + ".snap"))
        patch_device_state(snap, path, node, prop, at, value)
        code, out = run_tern(incoming_args(socks(node + ".mon"), "file:" + path), timeout=30)
        assert code != 0, out
        assert why in out, out
        line = [l for l in out.splitlines() if l.startswith("tern:")][-1]
        assert "incoming migration failed" in line and "device %s refused" % node in line, out


def test_destination_not_listening(tern, socks):
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    am = Monitor(socks("a.mon"))
    out = am.cmd('migrate "tcp:127.0.0.1:%d"' % free_port())
    assert "failed" in out and "Connection refused" in out, out
    info = am.info("migrate")
    assert info["Migration status"] == "failed" and "Connection refused" in info["error"]
    assert_guest_alive(a, am)


def unanswering_port():
    """A port on 127.0.0.1 that answers no connect, as a host that is down, without leaving
    this host: its listener's backlog (0) is full, so the kernel drops further SYNs and a
    connect waits there for minutes. Returns the port and the sockets to close afterwards."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)
    probe = socket.socket()
    probe.setblocking(False)
    probe.connect_ex(("127.0.0.1", port))
    assert not select.select([], [probe], [], 0.3)[1], "a full backlog answers connects here"
    return port, (probe, filler, lsock)


def test_cancel_while_connecting(tern, socks):
    """A destination that never answers the connect: migrate_cancel ends the migration at
    once, cancelled, and the guest runs on; quit in the same place exits at once too. Both
    used to wait for the kernel to give the connect up, two minutes."""
    port, keep = unanswering_port()
    try:
        a = tern(*guest_args(socks("a.mon")))
        a.expect(r"memtest: filled")
        am = Monitor(socks("a.mon"))
        am.cmd('migrate -d "tcp:127.0.0.1:%d"' % port)
        time.sleep(0.3)
        assert am.info("migrate")["Migration status"] == "setup"
        am.cmd("migrate_cancel")
        info = wait_status(am, ("cancelled",), timeout=2)
        assert "cancel" in info["error"], info
        assert_guest_alive(a, am)
        am.cmd('migrate -d "tcp:127.0.0.1:%d"' % port)
        time.sleep(0.3)
        assert am.info("migrate")["Migration status"] == "setup"
        start = time.monotonic()
        am.cmd("quit")
        assert a.wait(timeout=5) == 0
        assert time.monotonic() - start < 3
    finally:
        for s in keep:
            s.close()


def test_cancel_and_quit_while_a_unix_destination_accepts_nothing(tern, socks):
    """A unix socket whose listener accepts nothing (its backlog full): migrate_cancel ends
    the migration, cancelled, and the guest runs on; quit in the same place exits. The
    connect used to block there for ever, deaf to both."""
    path = socks("full.sock")
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(path)
    lsock.listen(0)
    filler = socket.socket(socket.AF_UNIX)
    filler.setblocking(False)
    filler.connect_ex(path)
    try:
        a = tern(*guest_args(socks("a.mon")))
        a.expect(r"memtest: filled")
        am = Monitor(socks("a.mon"))
        am.cmd('migrate -d "unix:%s"' % path)
        assert am.info("migrate")["Migration status"] == "setup"
        am.cmd("migrate_cancel")
        info = wait_status(am, ("cancelled", "failed"))
        assert info["Migration status"] == "cancelled", info
        assert_guest_alive(a, am)
        am.cmd('migrate -d "unix:%s"' % path)
        am.cmd("quit")
        assert a.wait(timeout=15) == 0
    finally:
        filler.close()
        lsock.close()


def test_snapshot_to_a_directory_or_an_unread_pipe_fails_at_once(tern, socks, tmp_path):
    """A snapshot that cannot be written says why in one line, and the guest runs on; a
    migrate right after it is taken, not refused as "already in progress" (the thread of the
    failed one had yet to say it was done). A FIFO that nobody reads used to hold the
    migration, and migrate_cancel and quit with it, for ever."""
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    am = Monitor(socks("a.mon"))
    for _ in range(10):
        out = am.cmd('migrate "file:%s"' % tmp_path)
        assert out == "migrate: failed: file:%s: Is a directory\n" % tmp_path, out
    fifo = socks("fifo")
    os.mkfifo(fifo)
    out = am.cmd('migrate "file:%s"' % fifo)
    assert out == "migrate: failed: file:%s: a pipe that nobody reads\n" % fifo, out
    out = am.cmd('migrate "file:%s"' % socks("a.mon"))
    assert out == "migrate: failed: file:%s: a socket (unix:PATH connects to one)\n" \
        % socks("a.mon"), out
    assert_guest_alive(a, am)
    am.cmd("quit")
    assert a.wait() == 0


def test_destination_with_other_memory_size_refuses(tern, socks):
    uri = "tcp:127.0.0.1:%d" % free_port()
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    b = tern(*incoming_args(socks("b.mon"), uri, mem="256M"))
    am = Monitor(socks("a.mon"))
    Monitor(socks("b.mon")).close()
    out = am.cmd('migrate "%s"' % uri)
    assert "destination refused: memory 128M != 256M" in out, out
    info = am.info("migrate")
    assert info["Migration status"] == "failed" and "128M != 256M" in info["error"]
    assert info["normal"] == "0 pages", "pages were sent before the refusal"
    assert_guest_alive(a, am)
    assert b.wait() != 0


def test_smp_guest_migrates_with_every_vcpu(tern, socks):
    """-smp 3: each vCPU's state travels (the boot CPU's and the two still waiting for a SIPI),
    and the guest runs on at the destination with all three; a destination with another -smp
    refuses before any page is sent."""
    uri = "tcp:127.0.0.1:%d" % free_port()
    a = tern(*guest_args(socks("a.mon"), "-smp", "3"))
    a.expect(r"memtest: filled")
    b = tern(*incoming_args(socks("b.mon"), uri, "-smp", "3"))
    am, bm = Monitor(socks("a.mon")), Monitor(socks("b.mon"))
    before = am.cmd("info registers -a")
    c = tern(*incoming_args(socks("c.mon"), "unix:" + socks("c.sock"), "-smp", "2"))
    Monitor(socks("c.mon")).close()
    out = am.cmd('migrate "unix:%s"' % socks("c.sock"))
    assert "destination refused: vcpus 3 != 2" in out, out
    assert am.info("migrate")["normal"] == "0 pages"
    assert c.wait() != 0
    out = am.cmd('migrate "%s"' % uri)
    assert "migrate: completed" in out, out
    assert_guest_alive(b, bm)
    assert len(bm.cmd("info cpus").splitlines()) == 3
    after = bm.cmd("info registers -a")
    # The waiting vCPUs arrive exactly as they left.
    for cpu in (1, 2):
        def regs(out):
            return out.split("CPU#%d\n" % cpu)[1].split("\nCPU#")[0]
        assert regs(after) == regs(before), (before, after)


# CPUID leaf 1 ECX features every x86-64 KVM offers one of: (name, bit).
LEAF1_FEATURES = [("sse4.2", 20), ("ssse3", 9), ("sse3", 0)]


def leaf1_ecx(t):
    m = guest_cmd(t, "cpuid 1", r"cpuid: 1\.0 eax=[0-9a-f]{8} ebx=[0-9a-f]{8} ecx=([0-9a-f]{8}) "
                  r"edx=[0-9a-f]{8}\r?\n")
    return int(m.group(1), 16)


def feature_seen(t):
    """A leaf-1 feature the guest in t sees: (name, bit)."""
    ecx = leaf1_ecx(t)
    return next(f for f in LEAF1_FEATURES if ecx >> f[1] & 1)


def test_destination_lacking_a_cpu_feature_refuses(tern, socks):
    """A guest is never handed to a side that cannot give it every CPU feature it was given
    (here one hidden there with -cpu host,-F): refused in the hello, before any page; the
    guest runs on at the source."""
    uri = "tcp:127.0.0.1:%d" % free_port()
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    name, _ = feature_seen(a)
    b = tern(*incoming_args(socks("b.mon"), uri, "-cpu", "host,-" + name))
    am = Monitor(socks("a.mon"))
    Monitor(socks("b.mon")).close()
    out = am.cmd('migrate "%s"' % uri)
    assert "destination refused: the guest uses CPU features hidden here by -cpu: %s" % name \
        in out, out
    assert am.info("migrate")["normal"] == "0 pages"
    assert_guest_alive(a, am)
    assert b.wait() != 0


def test_cpu_feature_hidden_at_the_source_stays_hidden(tern, socks):
    """-cpu host,-F at the source, plain -cpu host at the destination: the destination takes
    the guest and hides F too, so the guest finds the same CPU after the move."""
    uri = "tcp:127.0.0.1:%d" % free_port()
    probe = tern(*guest_args(socks("p.mon")))
    probe.expect(r"memtest: filled")
    name, bit = feature_seen(probe)
    probe.kill()
    a = tern(*guest_args(socks("a.mon"), "-cpu", "host,-" + name))
    a.expect(r"memtest: filled")
    before = leaf1_ecx(a)
    assert not before >> bit & 1
    b = tern(*incoming_args(socks("b.mon"), uri, "-cpu", "host"))
    am, bm = Monitor(socks("a.mon")), Monitor(socks("b.mon"))
    assert "migrate: completed" in am.cmd('migrate "%s"' % uri)
    assert_guest_alive(b, bm)
    assert leaf1_ecx(b) == before
    # And on again from there: the side that adapted its CPU saves the guest as it is now.
    c = tern(*incoming_args(socks("c.mon"), "unix:" + socks("c.sock")))
    cm = Monitor(socks("c.mon"))
    assert "migrate: completed" in bm.cmd('migrate "unix:%s"' % socks("c.sock"))
    assert_guest_alive(c, cm)
    assert leaf1_ecx(c) == before


def test_unknown_uri_rejected(tern, socks):
    a = tern(*guest_args(socks("a.mon")))
    am = Monitor(socks("a.mon"))
    assert "unknown migration URI" in am.cmd('migrate "ftp:somewhere"')
    assert "usage" in am.cmd("migrate")


def slow_pair(tern, socks, uri):
    """A pair whose migration takes seconds: 64M of pattern at 16 MB/s."""
    a, am, b, bm = start_pair(tern, socks, uri, append="memtest=64")
    am.cmd("migrate_set_parameter max-bandwidth 16M")
    return a, am, b, bm


def test_max_bandwidth_paces_the_round(tern, socks):
    """max-bandwidth holds all along a round, not just on average after it (the round used to
    go out at full speed, then a sleep): with 64M at 16 MB/s, 1.5 s in, well under 40M have
    gone; and info migrate shows them going (it used to say 0 until the round ended)."""
    uri = "tcp:127.0.0.1:%d" % free_port()
    a, am, b, bm = slow_pair(tern, socks, uri)
    am.cmd('migrate -d "%s"' % uri)
    wait_status(am, ("active",))
    time.sleep(1.5)
    info = am.info("migrate")
    assert 0 < int(info["transferred ram"].split()[0]) < 40 << 10, info
    wait_status(am, ("completed",), timeout=60)
    assert_guest_alive(b, bm)


def test_pages_zeroed_after_round0_arrive_zeroed(tern, socks):
    """Pages round 0 carried as data, which the guest clears before the hand-over, go again
    as zero pages; the destination must clear what it holds of them (fresh RAM only is zero
    already). The guest clears every odd page of its 64M while round 0 is a few MiB in, at
    16 MB/s: the first of them went as data, the rest go as zeros."""
    uri = "tcp:127.0.0.1:%d" % free_port()
    a, am, b, bm = slow_pair(tern, socks, uri)
    am.cmd('migrate -d "%s"' % uri)
    deadline = time.monotonic() + 30
    while int(am.info("migrate").get("transferred ram", "0").split()[0]) < 4 << 10:
        assert time.monotonic() < deadline, am.info("migrate")
        time.sleep(0.02)
    guest_cmd(a, "zero", r"memtest: zeroed \d+ pages")
    assert int(am.info("migrate")["transferred ram"].split()[0]) < 48 << 10, \
        "round 0 went too far before the guest cleared its pages"
    wait_status(am, ("completed",), timeout=60)
    wait_status(bm, ("completed",))
    m = guest_cmd(b, "check", r"memtest: (ok|BAD)[^\n]*\n")
    assert m.group(1) == b"ok", m.group(0)


def test_destination_that_never_gets_go_never_runs(tern, socks):
    """The guest runs at one place only: a destination that has loaded the state and said READY
    but never got GO (here the source's migration is cancelled while READY is held back, so
    the guest goes on there) discards the guest, never resumes it."""
    port = free_port()
    a, am, b, bm = start_pair(tern, socks, "tcp:127.0.0.1:%d" % port)
    proxy = holding_answers(port, "END")
    am.cmd('migrate -d "tcp:127.0.0.1:%d"' % proxy.port)
    deadline = time.monotonic() + 20
    while "END" not in proxy.seen or am.info("status")["VM status"] != "paused (finish-migrate)":
        assert time.monotonic() < deadline, (proxy.seen, am.info("status"))
        time.sleep(0.02)
    time.sleep(0.5)  # the destination has the END: it loads the state and says READY
    am.cmd("migrate_cancel")
    info = wait_status(am, ("cancelled", "failed"))
    assert info["Migration status"] == "cancelled", info
    assert_guest_alive(a, am)
    assert b.wait(timeout=15) != 0
    assert "went away before handing the guest over" in b.text(), b.text()[-2000:]


def test_destination_killed_during_round0(tern, socks):
    uri = "tcp:127.0.0.1:%d" % free_port()
    a, am, b, bm = slow_pair(tern, socks, uri)
    am.cmd('migrate -d "%s"' % uri)
    wait_status(am, ("active",))
    time.sleep(0.5)
    b.kill()
    info = wait_status(am, ("failed",))
    assert info["error"], info
    assert_guest_alive(a, am)


def test_destination_that_stops_reading_times_out(tern, socks):
    """A destination that takes nothing more (a proxy that stops reading in round 0, with 64M
    to send) fails the migration after 10 s, and the guest runs on at the source, instead of
    waiting for it forever."""
    port = free_port()
    a, am, b, bm = start_pair(tern, socks, "tcp:127.0.0.1:%d" % port, append="memtest=64")
    proxy = holding(port, "PAGES")
    try:
        am.cmd('migrate -d "tcp:127.0.0.1:%d"' % proxy.port)
        info = wait_status(am, ("failed",), timeout=60)
    finally:
        proxy.release.set()
    assert "timed out: the other side takes nothing" in info["error"], info
    assert_guest_alive(a, am)


def test_migrate_cancel_midway(tern, socks):
    uri = "tcp:127.0.0.1:%d" % free_port()
    a, am, b, bm = slow_pair(tern, socks, uri)
    am.cmd('migrate -d "%s"' % uri)
    wait_status(am, ("active",))
    time.sleep(0.3)
    am.cmd("migrate_cancel")
    info = wait_status(am, ("cancelled",))
    assert "cancel" in info["error"]
    assert_guest_alive(a, am)
    assert b.wait(timeout=15) != 0  # the destination discards what it got


@pytest.mark.parametrize("where", ["SYNC", "DEVICES", "END"])
def test_connection_cut_before_go(tern, socks, where):
    """Cut as the source asks the destination to catch up (just before the stop), or in the
    stop-and-copy: either way the guest runs on at the source."""
    port = free_port()
    a, am, b, bm = start_pair(tern, socks, "tcp:127.0.0.1:%d" % port)
    proxy = MigProxy(port, lambda kind, n: "cut" if kind == where else "pass")
    out = am.cmd('migrate "tcp:127.0.0.1:%d"' % proxy.port)
    assert "failed" in out, out
    assert where in proxy.seen, (out, proxy.seen)
    assert_guest_alive(a, am)
    assert b.wait(timeout=15) != 0


@pytest.mark.parametrize("how", ["stop", "-S"])
def test_destination_told_to_stay_stopped(tern, socks, how):
    """As QEMU's autostart: stop on a waiting destination, or -S, and the guest arrives paused
    (cont runs it); cont there takes the stop back."""
    port = free_port()
    uri = "tcp:127.0.0.1:%d" % port
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    b = tern(*incoming_args(socks("b.mon"), uri, *(["-S"] if how == "-S" else [])))
    am, bm = Monitor(socks("a.mon")), Monitor(socks("b.mon"))
    if how == "stop":
        assert bm.cmd("stop").strip() == ""
        assert bm.cmd("cont").strip() == ""  # takes it back: arrives running
        assert bm.cmd("stop").strip() == ""  # and once more: arrives paused
    assert bm.info("status")["VM status"] == "paused (inmigrate)"
    assert "migrate: completed" in am.cmd('migrate "%s"' % uri)
    wait_status(bm, ("completed",))  # set after the run state: then "paused" is final
    assert bm.info("status")["VM status"] == "paused"
    bm.cmd("cont")
    assert_guest_alive(b, bm)


def test_waiting_destination_cont_runs_it_on_arrival(tern, socks):
    """-S, then cont while it waits: it runs once there, as in QEMU."""
    uri = "tcp:127.0.0.1:%d" % free_port()
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    b = tern(*incoming_args(socks("b.mon"), uri, "-S"))
    am, bm = Monitor(socks("a.mon")), Monitor(socks("b.mon"))
    assert bm.cmd("cont").strip() == ""
    assert bm.info("status")["VM status"] == "paused (inmigrate)"
    assert "migrate: completed" in am.cmd('migrate "%s"' % uri)
    assert_guest_alive(b, bm)


def test_stopped_guest_migrates_stopped_and_cont_waits(tern, socks):
    """In the stop-and-copy, cont is refused (it used to resume the guest while its last state
    was being sent); a guest the user stopped arrives stopped, as in QEMU."""
    port = free_port()
    a, am, b, bm = start_pair(tern, socks, "tcp:127.0.0.1:%d" % port)
    proxy = holding(port, "END")
    am.cmd("stop")
    am.cmd('migrate -d "tcp:127.0.0.1:%d"' % proxy.port)
    deadline = time.monotonic() + 20
    while am.info("status")["VM status"] != "paused (finish-migrate)":
        assert time.monotonic() < deadline, am.info("status")
        time.sleep(0.02)
    out = am.cmd("cont")
    assert "Error: the guest is being handed over" in out, out
    assert am.info("status")["VM status"] == "paused (finish-migrate)"
    proxy.release.set()
    wait_status(am, ("completed",))
    assert am.info("status")["VM status"] == "paused (postmigrate)"
    deadline = time.monotonic() + 10
    while bm.info("status")["VM status"] != "paused":
        assert time.monotonic() < deadline, bm.info("status")
        time.sleep(0.02)
    bm.cmd("cont")
    assert_guest_alive(b, bm)


def test_guest_never_started_arrives_in_prelaunch(tern, socks):
    """-S at the source, migrated before cont: it arrives not yet started (QEMU's prelaunch),
    and cont there boots it from its first instruction."""
    uri = "tcp:127.0.0.1:%d" % free_port()
    a = tern(*guest_args(socks("a.mon"), "-S"))
    b = tern(*incoming_args(socks("b.mon"), uri))
    am, bm = Monitor(socks("a.mon")), Monitor(socks("b.mon"))
    assert "migrate: completed" in am.cmd('migrate "%s"' % uri)
    wait_status(bm, ("completed",))
    assert bm.info("status")["VM status"] == "paused (prelaunch)"
    assert "Booted up" not in a.text() + b.text()
    assert bm.cmd("cont").strip() == ""
    b.expect(r"memtest: filled")
    assert_guest_alive(b, bm)


def test_flipped_byte_refused(tern, socks):
    port = free_port()
    a, am, b, bm = start_pair(tern, socks, "tcp:127.0.0.1:%d" % port)
    flipped = []

    def flip(kind, n):
        if kind == "PAGES" and not flipped:
            flipped.append(1)
            return "flip"
        return "pass"
    proxy = MigProxy(port, flip)
    out = am.cmd('migrate "tcp:127.0.0.1:%d"' % proxy.port)
    assert "failed" in out, out
    assert b.wait(timeout=15) != 0
    assert "checksum mismatch" in b.text(), b.text()[-2000:]
    assert_guest_alive(a, am)


def test_destination_killed_after_go_leaves_source_paused(tern, socks):
    uri = "tcp:127.0.0.1:%d" % free_port()
    a, am, b, bm = start_pair(tern, socks, uri)
    assert "completed" in am.cmd('migrate "%s"' % uri)
    b.kill()
    time.sleep(0.2)
    assert am.info("status")["VM status"] == "paused (postmigrate)"
    # The destination said it took the guest: not even a forced cont runs it here again.
    for cont in ("cont", "cont -f"):
        assert "Error: the guest is migrated away" in am.cmd(cont)
    assert am.info("status")["VM status"] == "paused (postmigrate)"


@pytest.mark.parametrize("how", ["quit", "SIGTERM", "SIGKILL"])
def test_destination_gone_before_go_keeps_the_guest_at_the_source(tern, socks, how):
    """The destination ends (quit, a signal) after it said READY but before GO reached it (a
    slow link holds its READY): the guest never ran there, so the source keeps it running.
    The source's GO used to go into a socket whose other end had closed, the write succeeded,
    and the source waited paused for a guest that ran nowhere.
    Killed (SIGKILL), the destination says nothing: the source cannot tell that from one that
    took the guest and whose answer was lost, so the guest stays paused, and the user, who can
    know, runs it here with cont -f (it used to be lost: cont was refused for good)."""
    port = free_port()
    a, am, b, bm = start_pair(tern, socks, "tcp:127.0.0.1:%d" % port)
    # Every answer before END has reached the source: READY is the next.
    proxy = holding_answers(port, "END")
    am.cmd('migrate -d "tcp:127.0.0.1:%d"' % proxy.port)
    proxy.wait_seen("END")
    time.sleep(1)  # the destination loads the state and says READY, which the proxy holds
    if how == "quit":
        bm.cmd("quit")
    else:
        b.proc.send_signal(getattr(signal, how))
    assert b.wait(timeout=15) is not None
    proxy.back_gate.set()
    info = wait_status(am, ("failed", "completed"))
    assert info["Migration status"] == "failed", info
    if how == "SIGKILL":
        assert "after hand-over" in info["error"], info
        out = am.cmd("cont")
        assert "Error: the destination never confirmed that it took the guest" in out, out
        assert "Error: usage: cont [-f]" in am.cmd("cont -x")
        assert am.info("status")["VM status"] == "paused (postmigrate)"
        assert am.cmd("cont -f").strip() == ""
    else:
        assert "destination failed: tern is exiting" in info["error"], (proxy.seen, info)
    assert_guest_alive(a, am)


def test_relay_hanging_up_after_go_leaves_source_paused(tern, socks):
    """A relay between source and destination (ssh -L, socat) dies after GO, before the
    destination's TAKEN has reached the source: the end of stream the source hears comes from
    the relay, not from the destination, which took the guest and runs it. The source took an
    end of stream for proof that the guest never ran there and ran it too: on both sides."""
    port = free_port()
    a, am, b, bm = start_pair(tern, socks, "tcp:127.0.0.1:%d" % port)
    proxy = holding_answers(port, "GO")
    am.cmd('migrate -d "tcp:127.0.0.1:%d"' % proxy.port)
    wait_status(bm, ("completed",))  # the destination has taken the guest
    proxy.hang_up()
    info = wait_status(am, ("failed", "completed"))
    assert info["Migration status"] == "failed", info
    assert am.info("status")["VM status"] == "paused (postmigrate)", info
    assert_guest_alive(b, bm)


# The destination's answers, as migproxy.REC numbers them.
ACCEPT, REFUSE, READY, SYNCED = 2, 3, 9, 14


def test_destination_answer_torn_off_times_out(tern, socks):
    """A destination (or the link to it) that sends the first bytes of its READY and then
    nothing: the source waited for the rest for ever, the guest paused in stop-and-copy and
    `migrate` never returning. The answer's timeout holds for the whole record: the migration
    fails and the guest runs on at the source."""
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    am = Monitor(socks("a.mon"))
    dest = FakeDestination({"HELLO": record(ACCEPT), "SYNC": record(SYNCED),
                            "END": record(READY)[:8]})
    am.cmd('migrate -d "tcp:127.0.0.1:%d"' % dest.port)
    info = wait_status(am, ("failed", "completed"), timeout=40)
    assert "timed out in the header" in info["error"], (dest.seen, info)
    assert "GO" not in dest.seen, dest.seen
    assert_guest_alive(a, am)


def test_destination_refusing_after_go_leaves_source_paused(tern, socks):
    """After GO only the destination's ERROR gives the guest back to the source: a REFUSE
    there (an answer to a hello, out of place) proves nothing, and the guest stays paused."""
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    am = Monitor(socks("a.mon"))
    dest = FakeDestination({"HELLO": record(ACCEPT), "SYNC": record(SYNCED),
                            "END": record(READY), "GO": record(REFUSE, b"no\0")})
    am.cmd('migrate -d "tcp:127.0.0.1:%d"' % dest.port)
    info = wait_status(am, ("failed", "completed"), timeout=30)
    assert "destination refused: no" in info["error"], (dest.seen, info)
    assert am.info("status")["VM status"] == "paused (postmigrate)", info
    assert "Error" in am.cmd("cont")


def test_destination_refusing_without_a_reason(tern, socks):
    """A refusal with an empty reason still says something, and the guest runs on here."""
    a = tern(*guest_args(socks("a.mon")))
    a.expect(r"memtest: filled")
    am = Monitor(socks("a.mon"))
    dest = FakeDestination({"HELLO": record(REFUSE, b"\0")})
    am.cmd('migrate -d "tcp:127.0.0.1:%d"' % dest.port)
    info = wait_status(am, ("failed", "completed"), timeout=30)
    assert info["error"] == "destination refused: (no reason given)", (dest.seen, info)
    assert am.info("status")["VM status"] == "running", info


def test_cancel_after_go_does_nothing(tern, socks):
    """migrate_cancel while the source waits for the destination's TAKEN (a slow link holds
    it) is too late, as a cancel after completion is in QEMU: the guest goes on there, and the
    source says completed, not cancelled, which would have a management tool resume it here
    and kill it there."""
    port = free_port()
    a, am, b, bm = start_pair(tern, socks, "tcp:127.0.0.1:%d" % port)
    proxy = holding_answers(port, "GO")
    am.cmd('migrate -d "tcp:127.0.0.1:%d"' % proxy.port)
    proxy.wait_seen("GO")
    assert am.cmd("migrate_cancel").strip() == ""
    proxy.back_gate.set()
    assert wait_status(am, ("completed", "failed", "cancelled"))["Migration status"] == "completed"
    assert am.info("status")["VM status"] == "paused (postmigrate)"
    assert_guest_alive(b, bm)


def test_fast_dirtier_bounded(tern, socks):
    uri = "tcp:127.0.0.1:%d" % free_port()
    a, am, b, bm = start_pair(tern, socks, uri, append="memtest=8 dirty=400")
    am.cmd("migrate_set_parameter downtime-limit 1")
    out = am.cmd('migrate "%s"' % uri, timeout=60)
    info = am.info("migrate")
    assert info["Migration status"] in ("completed", "failed"), info
    assert int(info["dirty sync count"]) <= 30, info
    if info["Migration status"] == "completed":
        # Rounds ran out with the rest over the limit: said, with what helps.
        note = "the rest never fitted the downtime limit"
        assert note in out and "auto-converge on" in out, out
        assert note in info["note"], info
        assert_guest_alive(b, bm)
    else:
        assert_guest_alive(a, am)


def throttled_migration(mon, uri, cancel=False):
    """migrate -d, watching info migrate: the throttle percentages seen, and the last info."""
    mon.cmd('migrate -d "%s"' % uri)
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = mon.info("migrate")
        pct = info.get("cpu throttle percentage")
        if pct is not None and (not seen or seen[-1] != int(pct)):
            seen.append(int(pct))
        if info["Migration status"] not in ("setup", "active"):
            return seen, info
        if cancel and seen:
            mon.cmd("migrate_cancel")
        time.sleep(0.02)
    raise AssertionError("migration still going: %s" % info)


def test_auto_converge_slows_a_fast_dirtier(tern, socks):
    """QEMU's auto-converge: a guest that rewrites its 4M faster than the link (8 MB/s)
    carries them is slowed down, cpu-throttle-initial first, then cpu-throttle-increment more
    each time, until the rest fits the downtime limit, well before the 30 rounds that
    otherwise end it. A cancel ends the throttle with the migration, and the next migration
    starts from cpu-throttle-initial again."""
    uri = "tcp:127.0.0.1:%d" % free_port()
    a, am, b, bm = start_pair(tern, socks, uri, append="memtest=4 dirty=100")
    for cmd in ("migrate_set_capability auto-converge on",
                "migrate_set_parameter max-bandwidth 8M",
                "migrate_set_parameter cpu-throttle-initial 50",
                "migrate_set_parameter cpu-throttle-increment 20"):
        assert am.cmd(cmd).strip() == "", cmd
    seen, info = throttled_migration(am, uri, cancel=True)
    assert info["Migration status"] == "cancelled", info
    assert seen[0] == 50, seen
    assert "cpu throttle percentage" not in am.info("migrate")
    assert_guest_alive(a, am)
    assert b.wait(timeout=15) != 0  # the destination of a failed migration gives up
    uri = "tcp:127.0.0.1:%d" % free_port()
    b = tern(*incoming_args(socks("b2.mon"), uri, append="memtest=4 dirty=100"))
    bm = Monitor(socks("b2.mon"))
    seen, info = throttled_migration(am, uri)
    assert info["Migration status"] == "completed", info
    assert seen[0] == 50 and all(p in (70, 90, 99) for p in seen[1:]), seen
    assert int(info["dirty sync count"]) < 30 and "note" not in info, info
    assert_guest_alive(b, bm)


def test_console_migrate_via_ctrl_a(tern, socks):
    """The user's way: Ctrl-A c, then migrate with the URI in quotes."""
    uri = "tcp:127.0.0.1:%d" % free_port()
    a, am, b, bm = start_pair(tern, socks, uri)
    a.send(b"\x01c")
    a.send('migrate "%s"\n' % uri)
    a.expect(r"migrate: completed")
    a.send("info migrate\n")
    a.expect(r"Migration status: completed")
    assert_guest_alive(b, bm)
