"""The GDB stub (-gdb, -s): gdb itself, on a terminal, debugs the test guest."""
import os
import socket
import time

import pytest

from conftest import GUEST, Monitor, Tern, free_port, run_tern

pytestmark = pytest.mark.kvm

DEBUG_ELF = os.path.join(os.path.dirname(GUEST), "guest.debug.elf")
NO_BREAKPOINTS = os.environ.get("TERN_NESTED_HOST") == "1"


class Gdb(Tern):
    """gdb on a pseudo-terminal, as a user runs it, with the guest's symbols."""

    def __init__(self, port):
        super().__init__(["-nx", "-q", "-ex", "set style enabled off", "-ex", "set confirm off",
                          "-ex", "set pagination off", DEBUG_ELF], use_pty=True, prog="gdb")
        self.expect(r"\(gdb\) ", timeout=60)  # gdb starts slowly on an emulated CPU
        out = self.cmd("target remote 127.0.0.1:%d" % port)
        assert "Remote debugging using" in out, out

    def cmd(self, line, until=r"\(gdb\) ", timeout=30):
        """Runs line; returns what gdb printed up to until (its next prompt)."""
        mark = len(self.out)
        self.send(line + "\n")
        m = self.expect(until, timeout=timeout, start=mark + len(line))
        return self.out[mark:m.end()].decode(errors="replace")

    def quit(self):
        self.send("quit\n")
        self.wait()


def guest(tern, tmp_path, port, *extra, append="ticks memtest=1"):
    t = tern("-kernel", GUEST, "-nographic", "-serial", "stdio", "-append", append,
             "-gdb", "tcp:127.0.0.1:%d" % port,
             "-monitor", "unix:%s,server,nowait" % (tmp_path / "m"), *extra)
    t.expect(r"tick 1 ")
    return t, Monitor(str(tmp_path / "m"))


def test_gdb_attach_read_write_step_interrupt_detach(tern, tmp_path):
    """gdb attaches and the guest stops (as in QEMU); registers and memory read by symbol;
    a memory write the guest then sees; stepi; both vCPUs as threads; continue and Ctrl-C
    (interrupt); no migration and no second debugger while attached; detach and it runs on."""
    port = free_port()
    t, mon = guest(tern, tmp_path, port, "-smp", "2")
    gdb = Gdb(port)
    assert mon.info("status")["VM status"] == "paused (debug)"
    t.drain(0.3)
    ticks = t.text().count("tick ")
    out = gdb.cmd("info registers rip")
    assert "rip            0x" in out, out
    # A variable, read through the guest's page tables: 1 MiB of pages.
    assert "= 256" in gdb.cmd("print npages")
    gdb.cmd("set var rewritten = 4242")
    assert "= 4242" in gdb.cmd("print rewritten")
    # A register, written and put back (gdb's P packet).
    old = gdb.cmd("print/x $rax").split("= ")[1].split()[0]
    gdb.cmd("set $rax = 0x1234abcd")
    assert "= 0x1234abcd" in gdb.cmd("print/x $rax")
    gdb.cmd("set $rax = %s" % old)
    assert "= %s" % old in gdb.cmd("print/x $rax")
    out = gdb.cmd("info threads")
    assert "Thread 1" in out and "Thread 2" in out, out
    before = gdb.cmd("print $pc")
    gdb.cmd("stepi")
    assert gdb.cmd("print $pc") != before
    # Stopped means stopped: no tick while gdb holds it.
    t.drain(0.5)
    assert t.text().count("tick ") == ticks
    # One debugger at a time: a second connection is closed at once.
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert s.recv(16) == b""
    s.close()
    out = mon.cmd('migrate "tcp:127.0.0.1:%d"' % free_port())
    assert "Error: a debugger (gdb) is attached: detach it first" in out, out
    gdb.cmd("continue &")
    t.expect(r"tick %d " % (ticks + 2), start=0)
    assert mon.info("status")["VM status"] == "running"
    out = gdb.cmd("interrupt", until=r"received signal SIGINT")
    assert mon.info("status")["VM status"] == "paused (debug)"
    out = gdb.cmd("detach")
    assert "Detaching" in out or "detached" in out, out
    assert mon.info("status")["VM status"] == "running"
    # The guest runs on, with the word gdb wrote.
    mark = len(t.out)
    t.send("check\r")
    t.expect(r"memtest: ok \(1 MiB, 4242 page rewrites\)", start=mark)
    gdb.quit()


@pytest.mark.skipif(NO_BREAKPOINTS, reason="the nested test host's guests cannot hit "
                    "breakpoints: QEMU's TCG AMD-V neither intercepts their int3 nor arms "
                    "the debug registers for them")
def test_gdb_breakpoints_and_watchpoints(tern, tmp_path):
    """break (int3), hbreak and watch (debug registers) stop the guest where they should,
    and the int3 is gone from guest memory once gdb has let go."""
    port = free_port()
    t, mon = guest(tern, tmp_path, port, append="ticks memtest=1 dirty=1")
    gdb = Gdb(port)
    for kind in ("break", "hbreak"):
        gdb.cmd("%s ticks_poll" % kind)
        out = gdb.cmd("continue", until=r"ticks_poll.*\n.*\(gdb\) ")
        assert "reakpoint" in out, out
        gdb.cmd("delete")
    gdb.cmd("watch rewritten")
    out = gdb.cmd("continue", until=r"New value = .*\n(.*\n)*\(gdb\) ")
    assert "atchpoint" in out, out
    gdb.cmd("delete")
    gdb.cmd("detach")
    mark = len(t.out)
    t.send("check\r")
    t.expect(r"memtest: ok", start=mark)
    t.expect(r"tick \d+ ", start=mark)
    gdb.quit()


def test_gdb_kill_ends_tern(tern, tmp_path):
    port = free_port()
    t, mon = guest(tern, tmp_path, port)
    gdb = Gdb(port)
    gdb.send("kill\n")
    assert t.wait() == 0
    assert "terminated by gdb (kill)" in t.text()
    gdb.quit()


def rsp(s, packet):
    """One packet of gdb's remote protocol, by hand: the stub's ack and reply."""
    s.sendall(b"$%s#%02x" % (packet, sum(packet) & 0xff))
    return recv_reply(s)


def recv_reply(s):
    """What the stub sends up to the end of a packet (its checksum)."""
    got = b""
    while not (b"#" in got and len(got) >= got.index(b"#") + 3):
        data = s.recv(4096)
        assert data, got
        got += data
    return got


def reply(s, packet):
    """The payload of the stub's reply to packet, its ack and checksum checked."""
    got = rsp(s, packet)
    assert got.startswith(b"+$"), (packet, got)
    body, cs = got[2:].split(b"#", 1)
    assert cs == b"%02x" % (sum(body) & 0xff), (packet, got)
    return body


def is_error(body):
    """An error (Enn) or the empty reply (what the stub does not do): nothing else."""
    return body == b"" or (len(body) == 3 and body[:1] == b"E" and
                           all(c in b"0123456789abcdef" for c in body[1:]))


def test_gdb_bad_packets(tern, tmp_path):
    """The gdb port is an input like any other: malformed packets, impossible addresses and
    lengths, threads and registers that do not exist each get an error reply (or the empty
    one) and change nothing; bad framing is skipped; a client that hangs up mid-packet or
    while the guest runs lets it run on; tern goes on throughout."""
    port = free_port()
    t, mon = guest(tern, tmp_path, port, "-smp", "2")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    regs = reply(s, b"g")
    rip = int.from_bytes(bytes.fromhex(regs[256:272].decode()), "little")
    code = reply(s, b"m%x,8" % rip)
    assert len(code) == 16, code
    # A read of nothing is nothing (it sent what the stack held before).
    assert reply(s, b"m%x,0" % rip) == b""
    bad = [
        # Addresses the vCPU cannot form (KVM_TRANSLATE would walk bit 60 away), that wrap, or
        # that nothing maps.
        b"m%x,8" % (rip | 1 << 60), b"mffffffffffffffff,2", b"m-1,4", b"m7fff00000000,4",
        b"M%x,1:cc" % (rip | 1 << 60), b"Z0,%x,1" % (rip | 1 << 60), b"Z0,7fff00000000,1",
        b"Z0,ffffffffffffffff,1",
        # Not hex, missing parts, lengths that do not fit or do not match the data.
        b"mzz,4", b"m,4", b"m4", b"m1,", b"m1,4x", b"m1,10000000000000000",
        b"M0,1:zz", b"M%x,ffffffffffffffff:00" % rip, b"M%x,1:0" % rip, b"M%x,2:00" % rip,
        b"M%x,1" % rip, b"X%x,1:\x7d\x5d" % rip,
        # Breakpoints of no kind, of impossible sizes, unaligned watchpoints, rwatch.
        b"Z", b"Z0", b"Z9,0,1", b"Z3,1000,4", b"Z0,zz,1", b"Z2,1000,3", b"Z2,1001,2",
        b"Z2,1000,10", b"Z4,1000,0",
        # Threads that do not exist (two vCPUs: threads 1 and 2).
        b"Hg3", b"Hg-2", b"Hgffffffffffffffffffff", b"Hgzz", b"Hg", b"Hx1", b"T3", b"Tzz",
        b"T",
        # Registers: out of range, no number, short values, a short G.
        b"P99=0000000000000000", b"Pffffffffffffffffffffff=00", b"P=0000000000000000",
        b"P0=00", b"P0=00000000000000001", b"P11=00", b"G00", b"p99",
        # Resuming elsewhere, with a signal, the target features of another annex.
        b"c1234", b"s1234", b"C05", b"qXfer:features:read:foo.xml:0,10",
        b"qXfer:features:read:target.xml:zz", b"", b"\x00\xff",
    ]
    for packet in bad:
        body = reply(s, packet)
        assert is_error(body), (packet, body)
    # Four debug registers: the fifth is refused (ENOSPC), and all four go again.
    for i in range(4):
        assert reply(s, b"Z1,%x,1" % (rip + i)) == b"OK"
    assert reply(s, b"Z1,%x,1" % (rip + 4)) == b"E1c"
    for i in range(4):
        assert reply(s, b"z1,%x,1" % (rip + i)) == b"OK"
    # An offset past the end of the XML is its end, not an error.
    assert reply(s, b"qXfer:features:read:target.xml:ffff,10") == b"l"
    # Bad framing: a wrong or non-hex checksum is asked for again; a Ctrl-C while stopped
    # says nothing; junk between packets, a packet too long for any buffer, and one that
    # comes in pieces.
    for frame in (b"$qC#00", b"$qC#zz"):
        s.sendall(frame)
        assert s.recv(1) == b"-"
    s.sendall(b"\x03+-junk")
    s.sendall(b"$" + b"A" * 100000)
    assert reply(s, b"?") == b"T05thread:01;"
    for piece in (b"$q", b"C#b", b"4"):
        s.sendall(piece)
    assert recv_reply(s) == b"+$QC01#f5"
    # Nothing of the above touched the guest: its registers and code are as they were.
    assert reply(s, b"Hg1") == b"OK"
    assert reply(s, b"g") == regs
    assert reply(s, b"m%x,8" % rip) == code
    assert mon.info("status")["VM status"] == "paused (debug)"
    # A client that hangs up mid-packet: the guest runs on.
    s.sendall(b"$m0,")
    s.close()
    mark = len(t.out)
    t.expect(r"tick \d+ ", start=mark)
    assert mon.info("status")["VM status"] == "running"
    # One that hangs up while the guest runs (after c): it runs on as well.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert reply(s, b"?").startswith(b"T05")
    s.sendall(b"$c#63")
    assert s.recv(1) == b"+"
    s.close()
    mark = len(t.out)
    t.expect(r"tick \d+ ", start=mark)
    assert mon.info("status")["VM status"] == "running"
    assert t.proc.poll() is None
    mon.cmd("quit")
    assert t.wait() == 0


def test_gdb_and_the_monitor(tern, tmp_path):
    """stop and cont on the monitor while gdb holds the guest: a cont lets it run until gdb
    asks for anything; a stop while gdb let it run is the monitor's, and outlives gdb."""
    port = free_port()
    t, mon = guest(tern, tmp_path, port)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert reply(s, b"?").startswith(b"T05")
    assert mon.info("status")["VM status"] == "paused (debug)"
    assert "Error" not in mon.cmd("cont")
    mark = len(t.out)
    t.expect(r"tick \d+ ", start=mark)
    assert reply(s, b"qC") == b"QC01"
    assert mon.info("status")["VM status"] == "paused (debug)"
    s.sendall(b"$c#63")
    assert s.recv(1) == b"+"
    mark = len(t.out)
    t.expect(r"tick \d+ ", start=mark)
    mon.cmd("stop")
    assert mon.info("status")["VM status"] == "paused"
    s.sendall(b"\x03")
    got = recv_reply(s)
    assert got.startswith(b"$T02"), got
    assert reply(s, b"D") == b"OK"
    s.close()
    assert mon.info("status")["VM status"] == "paused"
    assert "Error" not in mon.cmd("cont")
    mark = len(t.out)
    t.expect(r"tick \d+ ", start=mark)


def test_gdb_qemu_spelling_and_unix_socket(tern, tmp_path):
    """OSv's run.py passes -gdb tcp::1234,server,nowait; a unix socket works as well."""
    port = free_port()
    t = tern("-kernel", GUEST, "-nographic", "-append", "ticks",
             "-gdb", "tcp::%d,server,nowait" % port)
    t.expect(r"tick 1 ")
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert rsp(s, b"?").startswith(b"+$T05thread:01;#")
    s.close()
    rc, out = run_tern(["-kernel", GUEST, "-gdb", "tcp::%d,server,wait" % port])
    assert rc != 0 and "'wait': tern always listens and never waits" in out, out
    path = str(tmp_path / "gdb.sock")
    u = tern("-kernel", GUEST, "-nographic", "-append", "ticks", "-gdb", "unix:" + path)
    u.expect(r"tick 1 ")
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    assert rsp(s, b"qC").startswith(b"+$QC01#")
    # What the stub does not know is an empty reply; memory gdb cannot have is EFAULT; a
    # packet whose checksum is wrong is asked for again.
    assert rsp(s, b"vMustReplyEmpty") == b"+$#00"
    assert rsp(s, b"m7fff00000000,4") == b"+$E14#aa"
    s.sendall(b"$qC#00")
    assert s.recv(1) == b"-"
    s.close()
    u.send(b"\x01x")
    assert u.wait() == 0
    assert not os.path.exists(path)


@pytest.mark.parametrize("incoming", ["tcp", "defer"])
def test_gdb_refused_while_migrating(tern, incoming):
    """A destination waiting for its guest takes no debugger: what gdb wrote would be
    overwritten by the arriving memory, and its detach would write the bytes its int3s hid
    over the guest's. With -incoming defer too: migrate_incoming asks no debugger."""
    port = free_port()
    uri = "tcp:127.0.0.1:%d" % free_port() if incoming == "tcp" else "defer"
    t = tern("-kernel", GUEST, "-nographic", "-incoming", uri,
             "-gdb", "tcp:127.0.0.1:%d" % port)
    deadline = time.monotonic() + 10
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert s.recv(16) == b""
    s.close()


def test_gdb_bad_option_and_busy_port():
    rc, out = run_tern(["-kernel", GUEST, "-gdb", "1234"])
    assert rc != 0 and out.strip().endswith(
        "-gdb: '1234': expected tcp:[HOST]:PORT or unix:PATH"), out
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    rc, out = run_tern(["-kernel", GUEST, "-gdb", "tcp:127.0.0.1:%d" % busy.getsockname()[1]])
    busy.close()
    assert rc != 0 and "-gdb: tcp:127.0.0.1:" in out and "Address already in use" in out, out


def test_gdb_socket_path_of_a_file(tmp_path):
    """A unix: path where a file (not a socket) is: refused, and the file left where it is."""
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    rc, out = run_tern(["-kernel", GUEST, "-gdb", "unix:%s" % f])
    assert rc != 0 and "exists and is not a socket" in out, out
    assert f.read_text() == "mine\n"
