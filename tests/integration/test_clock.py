"""The guest's clock across stop/cont, snapshots and migrations.

A Linux guest reads the wall clock once, at boot, and then counts kvmclock: its wall clock is
right only while kvmclock advances as the host's real time does. The test guest asks the host
for the wall clock again at every `time`, which hides that; so these tests follow kvmclock
itself (`now_ns`) against the host's CLOCK_REALTIME, and the guest's own count of the clock's
steps back (`monotonic`, read at every poll of its main loop)."""
import time

import pytest

from conftest import Monitor, free_port, run_tern
from migproxy import patch_device_state
from test_migration import (assert_guest_alive, guest_args, guest_cmd, incoming_args, socks,
                            wait_status)

pytestmark = pytest.mark.kvm
assert socks  # the fixture, imported for the tests here

# The guest's kvmclock-based wall clock may be this far from the host's after any of these.
SLACK_MS = 20


def kvm_offset(t):
    """host realtime - guest kvmclock, as a window (lo, hi) in ns: the guest read its clock
    between our sending `time` and the end of its reply. The narrowest of a few samples."""
    best = None
    for _ in range(3):
        before = time.time_ns()
        m = guest_cmd(t, "time", r"time: wall_ns=\d+ now_ns=(\d+)\r?\n")
        after = time.time_ns()
        now = int(m.group(1))
        w = (before - now, after - now)
        if best is None or w[1] - w[0] < best[1] - best[0]:
            best = w
    return best


def drift_ms(w0, w1):
    """How far the guest's kvmclock-based wall clock moved from the host's between two
    windows, in ms: positive when it fell behind, negative when it ran ahead, 0 when they
    overlap."""
    if w1[0] > w0[1]:
        return (w1[0] - w0[1]) / 1e6
    if w1[1] < w0[0]:
        return (w1[1] - w0[0]) / 1e6
    return 0.0


def assert_clock_kept(t, w0, what):
    d = drift_ms(w0, kvm_offset(t))
    assert abs(d) < SLACK_MS, "guest clock %s by %.1f ms %s" % (
        "behind" if d > 0 else "ahead", abs(d), what)
    m = guest_cmd(t, "monotonic", r"monotonic: reads=(\d+) backs=(\d+) max_back_ns=(\d+)\r?\n")
    assert int(m.group(2)) == 0, "guest clock stepped back %s: %s" % (what, m.group(0))


def boot(tern, socks, name, *extra):
    t = tern(*guest_args(socks(name), *extra))
    t.expect(r"memtest: filled")
    return t, Monitor(socks(name))


def test_clock_across_stop_and_cont(tern, socks):
    a, am = boot(tern, socks, "a.mon")
    w0 = kvm_offset(a)
    am.cmd("stop")
    time.sleep(3)
    am.cmd("cont")
    assert_clock_kept(a, w0, "after stop, 3 s, cont")


def test_clock_across_a_snapshot_restored_later(tern, socks):
    snap = socks("guest.snap")
    a, am = boot(tern, socks, "a.mon")
    w0 = kvm_offset(a)
    assert "completed" in am.cmd('migrate "file:%s"' % snap)
    am.cmd("quit")
    a.wait()
    time.sleep(5)
    b = tern(*incoming_args(socks("b.mon"), "file:" + snap))
    bm = Monitor(socks("b.mon"))
    wait_status(bm, ("completed",))
    assert_guest_alive(b, bm)
    assert_clock_kept(b, w0, "after a snapshot restored 5 s later")


def test_clock_across_migration_of_a_stopped_guest(tern, socks):
    uri = "tcp:127.0.0.1:%d" % free_port()
    a, am = boot(tern, socks, "a.mon")
    b = tern(*incoming_args(socks("b.mon"), uri))
    bm = Monitor(socks("b.mon"))
    w0 = kvm_offset(a)
    am.cmd("stop")
    time.sleep(1)
    assert "migrate: completed" in am.cmd('migrate "%s"' % uri)
    wait_status(bm, ("completed",))
    time.sleep(1)
    bm.cmd("cont")
    assert_guest_alive(b, bm)
    assert_clock_kept(b, w0, "after a stopped guest's migration")


def test_clock_across_a_to_b_to_a(tern, socks):
    cur, cur_mon = boot(tern, socks, "m0")
    w0 = kvm_offset(cur)
    for i in (1, 2):
        uri = "tcp:127.0.0.1:%d" % free_port()
        nxt = tern(*incoming_args(socks("m%d" % i), uri))
        nxt_mon = Monitor(socks("m%d" % i))
        assert "migrate: completed" in cur_mon.cmd('migrate "%s"' % uri)
        assert_guest_alive(nxt, nxt_mon)
        assert_clock_kept(nxt, w0, "after migration %d" % i)
        cur_mon.cmd("quit")
        cur.wait()
        cur, cur_mon = nxt, nxt_mon


def test_absurd_clock_record(tern, socks, tmp_path):
    """The stream's clock record says when (host realtime) the guest's clock was taken; the
    destination moves the guest's clock on by the time since. One taken decades ago (its top
    byte zeroed: the early 1970s) moved it on by some 55 years, without a word; one taken in
    our future (a top byte of 0x7f: 2262) left it behind, also without a word. Either says a
    host's clock is wrong: the guest's clock goes on from where it was, and a note says why.
    A clock beyond what a guest can count (signed 64-bit nanoseconds) is refused."""
    snap = socks("guest.snap")
    a, am = boot(tern, socks, "a.mon")
    assert "completed" in am.cmd('migrate "file:%s"' % snap)
    am.cmd("quit")
    a.wait()

    for name, prop, top, note in (
            ("past", "realtime", 0x00, r"taken at 197\d-\S+ \S+ UTC, before 2020: the source's"),
            ("future", "realtime", 0x7f, r"taken at 2262-\S+ \S+ UTC, in this host's future")):
        path = str(tmp_path / (name + ".snap"))
        patch_device_state(snap, path, "kvmclock", prop, 0, top)
        b = tern(*incoming_args(socks(name + ".mon"), "file:" + path))
        bm = Monitor(socks(name + ".mon"))
        wait_status(bm, ("completed",))
        assert_guest_alive(b, bm)
        b.expect(r"kvmclock: the stream's clock was " + note)
        m = guest_cmd(b, "time", r"time: wall_ns=\d+ now_ns=(\d+)\r?\n")
        assert int(m.group(1)) < 600e9, "guest clock moved on to %s ns" % m.group(1)
        bm.cmd("quit")
        b.wait()

    path = str(tmp_path / "huge.snap")
    patch_device_state(snap, path, "kvmclock", "clock", 0, 0x80)
    code, out = run_tern(incoming_args(socks("huge.mon"), "file:" + path), timeout=30)
    assert code != 0, out
    assert "is beyond any guest's" in out, out
    line = [l for l in out.splitlines() if l.startswith("tern:")][-1]
    assert "incoming migration failed: device kvmclock refused its state" in line, out
