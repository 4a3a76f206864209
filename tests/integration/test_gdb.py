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
    got = b""
    while not (b"#" in got and len(got) >= got.index(b"#") + 3):
        data = s.recv(4096)
        assert data, got
        got += data
    return got


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


def test_gdb_refused_while_migrating(tern):
    """A destination waiting for its guest takes no debugger: what gdb wrote would be
    overwritten by the arriving memory."""
    port = free_port()
    t = tern("-kernel", GUEST, "-nographic", "-incoming", "tcp:127.0.0.1:%d" % free_port(),
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
