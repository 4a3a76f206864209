"""Issue 2: tern boots the test unikernel; console, monitor, exits and bad input."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from conftest import GUEST, TERN, Monitor, connect_unix, run_tern

BOOT = ["-kernel", GUEST, "-nographic", "-serial", "stdio", "-m", "128M"]


@pytest.mark.kvm
def test_boot_prints_booted_and_cmdline(tern):
    t = tern(*BOOT, "-append", "hello world")
    t.expect(r"Booted up in [0-9.]+ ms")
    t.expect(r"hello world")


@pytest.mark.kvm
def test_pvh_entry_boots(tern):
    t = tern(*BOOT, "-pvh", "-append", "pvh-check")
    t.expect(r"Booted up in [0-9.]+ ms")
    t.expect(r"pvh-check")


@pytest.mark.kvm
def test_poweroff_exits_zero():
    code, out = run_tern(BOOT + ["-append", "poweroff"])
    assert code == 0, out
    assert "Booted up" in out


@pytest.mark.kvm
def test_crash_exits_nonzero_with_one_line():
    code, out = run_tern(BOOT + ["-append", "crash"])
    assert code != 0, out
    lines = [l for l in out.splitlines() if l.startswith("tern:")]
    assert len(lines) == 1 and "triple fault" in lines[0] and "RIP 0x" in lines[0], out


@pytest.mark.kvm
def test_echo_reaches_guest(tern):
    t = tern(*BOOT, "-append", "echo")
    m = t.expect(r"Booted up")
    t.drain(0.2)
    t.send("abc-xyz")
    t.expect(r"abc-xyz", start=m.end())


@pytest.mark.kvm
def test_input_raises_the_serial_interrupt(tern):
    """Input reaches the guest by IRQ 4, not only by its timer tick's polling, which alone
    would still deliver every byte and hide an interrupt that is never raised."""
    t = tern(*BOOT, "-append", "echo")
    m = t.expect(r"Booted up")
    t.drain(0.2)
    # A first line, so that its interrupt is surely taken before "irqs" counts.
    t.send("uptime\r")
    m = t.expect(r"uptime: [0-9.]+ ms", start=m.end())
    t.send("irqs\r")
    m = t.expect(r"irqs: com1 (\d+)", start=m.end())
    assert int(m.group(1)) > 0, t.text()


@pytest.mark.kvm
def test_ctrl_a_help_and_literal_ctrl_a(tern):
    """Ctrl-A in one read and its key in the next are still an escape; Ctrl-A Ctrl-A is one
    Ctrl-A for the guest; Ctrl-A with a key it does not know is dropped, both bytes."""
    t = tern(*BOOT, "-append", "echo")
    m = t.expect(r"Booted up")
    t.drain(0.2)
    t.send(b"\x01")
    t.drain(0.2)
    t.send(b"h")
    t.expect(r"C-a x    exit tern\n", start=m.end())
    # The guest echoes what it gets: the Ctrl-A between its neighbours, the unknown key not.
    mark = len(t.out)
    t.send(b"p\x01\x01q\x01zr")
    t.expect(r"p\x01qr", start=mark)


@pytest.mark.kvm
def test_echr_moves_the_escape_key(tern):
    """-echr 20, as in QEMU: Ctrl-T is the escape key (for tern inside screen, whose own is
    Ctrl-A); the help names it, Ctrl-A reaches the guest as it is, and Ctrl-T x quits."""
    t = tern(*BOOT, "-append", "echo", "-echr", "20")
    m = t.expect(r"Booted up")
    t.drain(0.2)
    t.send(b"\x14h")
    t.expect(r"C-t x    exit tern\n", start=m.end())
    t.expect(r"C-t C-t  sends C-t\n", start=m.end())
    mark = len(t.out)
    t.send(b"p\x01q\x14\x14r")
    t.expect(rb"p\x01q\x14r", start=mark)
    t.send(b"\x14x")
    assert t.wait() == 0


@pytest.mark.kvm
def test_ctrl_a_t_stamps_the_guest_lines(tern):
    """Ctrl-A t, as in QEMU: from the next line on, each line of the guest's begins with the
    time since the key, as [hh:mm:ss.mmm]; Ctrl-A t again ends it."""
    t = tern(*BOOT, "-append", "echo")
    m = t.expect(r"Booted up")
    t.drain(0.2)
    t.send(b"\x01tuptime\r")
    m = t.expect(rb"\n\[00:00:0\d\.\d{3}\] uptime: [0-9.]+ ms", start=m.end())
    t.send(b"uptime\r")
    m = t.expect(rb"\n\[00:00:0\d\.\d{3}\] uptime: [0-9.]+ ms", start=m.end())
    t.send(b"\x01t")
    t.drain(0.2)
    mark = len(t.out)
    t.send(b"uptime\r")
    t.expect(rb"\nuptime: [0-9.]+ ms", start=mark)
    assert b"[00:" not in t.out[mark:], t.text()[-500:]


@pytest.mark.kvm
def test_monitor_info_status_and_quit(tern):
    t = tern(*BOOT, "-append", "echo")
    t.expect(r"Booted up")
    t.send(b"\x01c")
    t.send("info status\n")
    t.expect(r"VM status: running")
    t.send("bogus-command\n")
    t.expect(r"unknown command 'bogus-command'")
    t.send("quit\n")
    assert t.wait() == 0


@pytest.mark.kvm
def test_monitor_forgets_a_line_left_at_a_switch(tern):
    """A line half typed when Ctrl-A c leaves the monitor is forgotten, as QEMU's readline
    does at the switch back: the prompt comes back empty, so it must be empty."""
    t = tern(*BOOT, "-append", "echo")
    t.expect(r"Booted up")
    t.send(b"\x01cstop")
    t.drain(0.2)
    t.send(b"\x01c")
    t.drain(0.2)
    mark = len(t.out)
    t.send(b"\x01cinfo status\r")
    t.expect(r"VM status: running", start=mark)
    assert "unknown command" not in t.text()[mark:], t.text()[mark:]


@pytest.mark.kvm
def test_monitor_output_waits_while_the_console_shows(tern, tmp_path):
    """A blocking migrate, and Ctrl-A c to the guest while it runs: its progress lines, its
    summary and the prompt after it wait for the switch back (as QEMU's mux holds the
    monitor's output), and are not mixed into the guest's console."""
    snap = tmp_path / "snap"
    t = tern(*BOOT, "-append", "memtest=16", "-monitor",
             "unix:%s,server,nowait" % (tmp_path / "m"))
    t.expect(r"memtest: filled")
    mon = Monitor(str(tmp_path / "m"))
    mon.cmd("migrate_set_parameter max-bandwidth 4M")
    t.send(b"\x01cmigrate \"file:%s\"\r" % str(snap).encode())
    t.expect(r"migrate: (active|setup), round")
    t.send(b"\x01c")
    t.drain(0.2)
    mark = len(t.out)
    deadline = time.monotonic() + 60
    while mon.info("migrate").get("Migration status") != "completed":
        assert time.monotonic() < deadline, t.text()[-2000:]
        t.drain(0.2)
    t.drain(2)
    shown = t.text()[mark:]
    assert "migrate:" not in shown and "(tern)" not in shown, shown
    t.send(b"\x01c")
    m = t.expect(r"migrate: completed in .*\n(.*\n)*?\(tern\) $", start=mark)
    assert m.group(0).count(b"(tern)") == 1, m.group(0)
    t.send(b"info status\r")
    t.expect(r"VM status: paused \(postmigrate\)", start=mark)


@pytest.mark.kvm
def test_monitor_refuses_a_line_too_long(tern, tmp_path):
    """A line longer than the monitor takes is refused whole, never run cut short."""
    t = tern(*BOOT, "-append", "echo", "-monitor", "unix:%s,server,nowait" % (tmp_path / "m"))
    t.expect(r"Booted up")
    m = Monitor(str(tmp_path / "m"))
    out = m.cmd("stop " + "x" * 5000)
    assert out.strip() == "Error: line too long (at most 1023 characters)", out
    assert "VM status: running" in m.cmd("info status")
    assert "VM status: running" in m.cmd("info status" + " " * 1000)  # 1011: fits


@pytest.mark.kvm
def test_monitor_refuses_extra_words(tern, tmp_path):
    """A command with words it does not take is refused, as QEMU does: not run. info and help
    take one: an unknown one is an error too."""
    t = tern(*BOOT, "-append", "echo", "-monitor", "unix:%s,server,nowait" % (tmp_path / "m"))
    t.expect(r"Booted up")
    m = Monitor(str(tmp_path / "m"))
    out = m.cmd("stop now please")
    assert out.strip() == "Error: 'stop' takes no arguments (got 'now')", out
    out = m.cmd("info status please")
    assert out.strip() == "Error: 'info status' takes no arguments (got 'please')", out
    out = m.cmd("migrate_set_parameter " + "x " * 20)
    assert out.strip() == "Error: too many words (at most 16)", out
    assert m.cmd("info bogus").strip() == "Error: unknown info item 'bogus' (try 'info')"
    assert m.cmd("help stop").strip() == "stop -- pause the guest"
    assert "info migrate -- " in m.cmd("help info")
    assert m.cmd("help frob").strip() == "Error: unknown command 'frob' (try 'help')"
    assert "VM status: running" in m.cmd("info status")


@pytest.mark.kvm
def test_monitor_info_version_and_migrate_parameters(tern, tmp_path):
    """QEMU's info version and info migrate_parameters: the version -version prints, and
    the parameters as migrate_set_parameter left them."""
    rc, version = run_tern(["-version"])
    assert rc == 0, version
    t = tern(*BOOT, "-append", "echo", "-monitor", "unix:%s,server,nowait" % (tmp_path / "m"))
    t.expect(r"Booted up")
    m = Monitor(str(tmp_path / "m"))
    assert m.cmd("info version") == "0.1.0 (tern)\n"
    assert m.cmd("info name").strip() == ""  # no -name
    assert m.cmd("info kvm") == "kvm support: enabled\n"
    assert version == "tern version 0.1.0\n"
    assert m.cmd("migrate_set_parameter downtime-limit 7").strip() == ""
    assert m.cmd("migrate_set_parameter max-bandwidth 1M").strip() == ""
    assert m.cmd("migrate_set_parameter cpu_throttle_initial 30").strip() == ""
    assert m.cmd("info migrate_parameters").splitlines() == [
        "downtime-limit: 7 ms", "cpu-throttle-initial: 30", "cpu-throttle-increment: 10",
        "max-cpu-throttle: 99", "max-bandwidth: 1048576 bytes/second"]
    assert m.cmd("migrate_set_parameter max-cpu-throttle 100").strip() == \
        "Error: Parameter 'max-cpu-throttle' expects an integer in the range of 1 to 99"
    assert m.cmd("migrate_set_parameter max-cpu-throttle 25").strip() == \
        "Error: max-cpu-throttle 25 is below cpu-throttle-initial 30"
    assert m.cmd("migrate_set_parameter speed 1").strip() == \
        "Error: unknown parameter 'speed' (info migrate_parameters lists them)"
    assert "Migration status: none" in m.cmd("info migrate")
    # QEMU's auto-converge capability, off unless asked for.
    assert m.cmd("info migrate_capabilities") == "auto-converge: off\n"
    assert m.cmd("migrate_set_capability auto-converge on").strip() == ""
    assert m.cmd("info migrate_capabilities") == "auto-converge: on\n"
    assert m.cmd("migrate_set_capability xbzrle on").strip() == \
        "Error: unknown capability 'xbzrle' (tern has auto-converge)"
    assert m.cmd("migrate_set_capability auto-converge maybe").strip() == \
        "Error: usage: migrate_set_capability auto-converge on|off"


@pytest.mark.kvm
def test_info_registers(tern, tmp_path):
    """QEMU's info registers: a running guest shows where it is (long mode, its page tables)
    and goes on ticking; a stopped one stays stopped and shows the same place twice."""
    t = tern(*BOOT, "-append", "ticks", "-monitor", "unix:%s,server,nowait" % (tmp_path / "m"))
    t.expect(r"tick 2 ")
    m = Monitor(str(tmp_path / "m"))
    out = m.cmd("info registers")
    lines = out.splitlines()
    assert re.fullmatch(r"RAX=[0-9a-f]{16} RBX=[0-9a-f]{16} RCX=[0-9a-f]{16} RDX=[0-9a-f]{16}",
                        lines[0]), out
    assert lines[3].startswith("R12="), out
    rip = re.search(r"^RIP=([0-9a-f]{16}) RFL=[0-9a-f]{8} \[[-DOSZAPC]{7}\] CPL=[03] II=[01] "
                    r"A20=1 SMM=0 HLT=[01]$", out, re.M)
    assert rip and int(rip.group(1), 16), out
    assert re.search(r"^CS =[0-9a-f]{4} [0-9a-f]{16} [0-9a-f]{8} [0-9a-f]{8} DPL=[03] CS64 "
                     r"\[-R[-A]\]$", out, re.M), out
    assert re.search(r"^TR =[0-9a-f]{4} [0-9a-f]{16} [0-9a-f]{8} 00008b00 DPL=0 TSS64-busy$",
                     out, re.M), out
    assert re.search(r"^DR6=[0-9a-f]{16} DR7=[0-9a-f]{16}$", out, re.M), out
    efer = int(re.search(r"^EFER=([0-9a-f]{16})$", out, re.M).group(1), 16)
    assert efer & 0x500 == 0x500, out  # long mode enabled and active
    cr3 = int(re.search(r"CR3=([0-9a-f]{16})", out).group(1), 16)
    assert cr3 and cr3 < 128 << 20, out
    mark = len(t.out)
    t.expect(r"tick \d+ ", start=mark)
    assert m.cmd("info status").strip() == "VM status: running"
    m.cmd("stop")
    first = m.cmd("info registers")
    assert m.cmd("info registers") == first
    assert m.cmd("info status").strip() == "VM status: paused"


@pytest.mark.kvm
def test_smp_vcpus(tern, tmp_path):
    """-smp 4: a thread per vCPU, listed by info cpus. The boot CPU runs the guest; the others
    wait in the reset state for a SIPI (the test guest sends none), and info registers -a (or
    cpu N, then info registers) shows each of them."""
    t = tern(*BOOT, "-smp", "4", "-append", "ticks",
             "-monitor", "unix:%s,server,nowait" % (tmp_path / "m"))
    t.expect(r"tick 2 ")
    m = Monitor(str(tmp_path / "m"))
    cpus = m.cmd("info cpus").splitlines()
    tids = [int(re.fullmatch(r"%s CPU #%d: thread_id=(\d+)" % ("\\*" if i == 0 else " ", i),
                             line).group(1)) for i, line in enumerate(cpus)]
    assert len(tids) == 4 and len(set(tids)) == 4, cpus
    assert all(os.path.exists("/proc/%d/task/%d" % (t.proc.pid, tid)) for tid in tids), cpus
    out = m.cmd("info registers -a")
    parts = re.split(r"^CPU#(\d+)$", out, flags=re.M)
    assert parts[1::2] == ["0", "1", "2", "3"], out
    assert re.search(r"^RIP=[0-9a-f]{16} ", parts[2], re.M), out
    for ap in parts[4::2]:
        assert re.search(r"^EIP=0000fff0 ", ap, re.M), out
        assert re.search(r"^CS =f000 ffff0000 0000ffff ", ap, re.M), out
    assert "Error" in m.cmd("info registers -x")
    # QEMU's cpu N: the vCPU that info registers shows, starred in info cpus.
    assert m.cmd("cpu 2").strip() == ""
    assert m.cmd("info cpus").splitlines()[2].startswith("* CPU #2:")
    assert re.search(r"^EIP=0000fff0 ", m.cmd("info registers"), re.M)
    for bad_cpu in ("cpu 4", "cpu -1", "cpu x", "cpu"):
        assert "Error: cpu: expected a vCPU index from 0 to 3" in m.cmd(bad_cpu), bad_cpu
    t.expect(r"tick \d+ ", start=len(t.out))


@pytest.mark.kvm
def test_info_registers_before_the_first_instruction(tern, tmp_path):
    """-S -pvh: the vCPU waits at the PVH entry, in 32-bit protected mode, and QEMU's 32-bit
    layout shows it there."""
    t = tern(*BOOT, "-pvh", "-S", "-monitor", "unix:%s,server,nowait" % (tmp_path / "m"))
    m = Monitor(str(tmp_path / "m"))
    out = m.cmd("info registers")
    assert re.match(r"EAX=[0-9a-f]{8} EBX=[0-9a-f]{8} ECX=[0-9a-f]{8} EDX=[0-9a-f]{8}\n", out), out
    assert re.search(r"^EIP=[0-9a-f]{8} EFL=[0-9a-f]{8} \[[-DOSZAPC]{7}\] CPL=0 ", out, re.M), out
    assert re.search(r"^CS =[0-9a-f]{4} 00000000 ffffffff [0-9a-f]{8} DPL=0 CS32 ", out, re.M), out
    assert re.search(r"^EFER=0{16}$", out, re.M), out
    assert "Booted up" not in t.text()


@pytest.mark.kvm
def test_dash_s_waits_for_cont(tern, tmp_path):
    """-S, as QEMU: the guest does not run (prelaunch) until cont; stop leaves it so."""
    t = tern(*BOOT, "-append", "echo", "-S", "-monitor", "unix:%s,server,nowait" % (tmp_path / "m"))
    m = Monitor(str(tmp_path / "m"))
    assert m.cmd("info status").strip() == "VM status: paused (prelaunch)"
    m.cmd("stop")
    t.drain(0.5)
    assert "Booted up" not in t.text()
    assert m.cmd("info status").strip() == "VM status: paused (prelaunch)"
    assert m.cmd("cont").strip() == ""
    t.expect(r"Booted up")
    assert m.cmd("info status").strip() == "VM status: running"


@pytest.mark.kvm
def test_stop_and_cont_pause_ticks(tern):
    t = tern(*BOOT, "-append", "ticks")
    t.expect(r"tick 3 ")
    t.send(b"\x01cstop\n")
    t.drain(0.3)
    before = t.text().count("tick ")
    t.drain(0.6)
    assert t.text().count("tick ") == before, "ticks went on while stopped"
    t.send("info status\n")
    t.expect(r"VM status: paused")
    mark = len(t.out)
    t.send("cont\n")
    t.expect(r"tick \d+ ", start=mark)
    t.send("quit\n")
    assert t.wait() == 0


@pytest.mark.kvm
def test_ctrl_a_x_exits_and_restores_terminal(tern):
    t = tern(*BOOT, "-append", "echo", use_pty=True)
    t.expect(r"Booted up")
    t.send(b"\x01x")
    assert t.wait() == 0
    # The pty still holds the mode tern left behind: it must be cooked again.
    attrs = termios.tcgetattr(t.master)
    assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO


@pytest.mark.kvm
def test_quit_on_pty_restores_terminal(tern):
    t = tern(*BOOT, "-append", "ticks", use_pty=True)
    t.expect(r"Booted up")
    attrs = termios.tcgetattr(t.master)
    assert not attrs[3] & termios.ICANON, "console should be raw while running"
    t.send(b"\x01cquit\r")
    assert t.wait() == 0
    attrs = termios.tcgetattr(t.master)
    assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO


@pytest.mark.kvm
def test_crash_on_pty_restores_terminal(tern):
    t = tern(*BOOT, "-append", "crash", use_pty=True)
    assert t.wait() != 0
    attrs = termios.tcgetattr(t.master)
    assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO


@pytest.mark.kvm
def test_sigterm_exits_cleanly(tern):
    t = tern(*BOOT, "-append", "ticks", use_pty=True)
    t.expect(r"Booted up")
    t.proc.terminate()
    assert t.wait() == 0
    t.expect(r"terminating on signal 15")
    attrs = termios.tcgetattr(t.master)
    assert attrs[3] & termios.ICANON


def cooked(t):
    """Whether the pty is back in the mode it had before tern (line editing and echo)."""
    attrs = termios.tcgetattr(t.master)
    return bool(attrs[3] & termios.ICANON and attrs[3] & termios.ECHO)


@pytest.mark.kvm
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_signals_restore_terminal(tern, sig):
    t = tern(*BOOT, "-append", "ticks", use_pty=True)
    t.expect(r"Booted up")
    assert not cooked(t)
    t.proc.send_signal(sig)
    assert t.wait() == 0
    t.expect(r"terminating on signal %d" % sig)
    assert cooked(t)


@pytest.mark.kvm
def test_continued_after_a_stop_is_raw_again(tern):
    """Stopped (kill -STOP) and continued: the shell put its own mode back meanwhile, so tern
    makes the terminal raw again; and at the end it restores that mode, not the raw one."""
    t = tern(*BOOT, "-append", "echo", use_pty=True)
    t.expect(r"Booted up")
    t.proc.send_signal(signal.SIGSTOP)
    attrs = termios.tcgetattr(t.master)
    attrs[3] |= termios.ICANON | termios.ECHO  # what the shell does when its job stops
    termios.tcsetattr(t.master, termios.TCSANOW, attrs)
    t.proc.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 10
    while cooked(t):
        assert time.monotonic() < deadline, "the terminal stayed in line mode"
        time.sleep(0.05)
    t.send(b"\x01x")
    assert t.wait() == 0
    assert cooked(t)


# A shell's job control in small, for tern's command line (argv[2:]): session leader of the
# pty (stdin), tern in a process group of its own, first in the foreground; at a byte on fd
# argv[1], in the background (as after kill -STOP and bg). Then it says how tern ended.
JOB_SHELL = r"""
import fcntl, os, signal, sys, termios
signal.signal(signal.SIGTTOU, signal.SIG_IGN)
os.setsid()
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)  # an ignored signal stays so over exec
    os.execv(sys.argv[2], sys.argv[2:])
try:
    os.setpgid(pid, pid)
except PermissionError:  # the child did it itself, before its exec
    pass
os.tcsetpgrp(0, pid)
os.read(int(sys.argv[1]), 1)
os.tcsetpgrp(0, os.getpgrp())
print("in the background", flush=True)
_, status = os.waitpid(pid, os.WUNTRACED)
if os.WIFSTOPPED(status):
    print("tern stopped by signal %d" % os.WSTOPSIG(status), flush=True)
    os.kill(pid, signal.SIGKILL)
    sys.exit(1)
print("tern exited %d" % os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.mark.kvm
def test_exit_from_the_background_does_not_stop(tmp_path):
    """Put in the background (kill -STOP, bg), tern no longer owns the terminal: restoring
    its mode at exit would stop it with SIGTTOU, a quit that never ends. The shell has put
    its own mode back; tern leaves it be."""
    master, slave = pty.openpty()
    go_r, go_w = os.pipe()
    mon = str(tmp_path / "mon")
    p = subprocess.Popen([sys.executable, "-c", JOB_SHELL, str(go_r), TERN, *BOOT, "-append", "ticks",
                          "-monitor", "unix:%s,server,nowait" % mon],
                         stdin=slave, stdout=slave, stderr=slave, pass_fds=(go_r,))
    os.close(slave)
    os.close(go_r)
    out = b""

    def until(*what):
        nonlocal out
        deadline = time.monotonic() + 30
        while not any(w in out for w in what):
            assert time.monotonic() < deadline, out[-2000:]
            if select.select([master], [], [], 0.1)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:  # every end of the pty closed
                    assert False, out[-2000:]
    try:
        until(b"Booted up")
        os.write(go_w, b"x")
        until(b"in the background")
        Monitor(mon).cmd("quit")
        until(b"tern exited", b"tern stopped")
        assert p.wait(timeout=30) == 0, out[-2000:]
        assert b"tern exited 0" in out, out[-2000:]
    finally:
        if p.poll() is None:
            p.kill()
        os.close(go_w)
        os.close(master)


@pytest.mark.kvm
def test_failed_start_restores_terminal(tern, tmp_path):
    """The QMP socket cannot be made, after the console put the terminal in raw mode."""
    t = tern(*BOOT, "-qmp", "unix:%s,server,nowait" % (tmp_path / "no" / "qmp"),
             use_pty=True)
    assert t.wait() != 0
    t.expect(r"tern: .*qmp")
    assert cooked(t)


@pytest.mark.kvm
def test_hung_up_terminal_is_one_line(tmp_path):
    """The terminal goes away under a running guest (its pty's other side closed): from then
    on every write to it fails (EIO). tern says so once, not for each byte the guest prints,
    and runs on."""
    master, slave = pty.openpty()
    err = open(tmp_path / "stderr", "w+b")
    p = subprocess.Popen([TERN] + BOOT + ["-append", "ticks"], stdin=slave, stdout=slave,
                         stderr=err, start_new_session=True)
    os.close(slave)
    try:
        out = b""
        deadline = time.monotonic() + 30
        while b"tick 2 " not in out:
            assert time.monotonic() < deadline and p.poll() is None, out
            if select.select([master], [], [], 0.1)[0]:
                out += os.read(master, 65536)
        os.close(master)
        master = None
        while b"console: write" not in (tmp_path / "stderr").read_bytes():
            assert time.monotonic() < deadline and p.poll() is None, out
            time.sleep(0.05)
        time.sleep(1)  # ten more ticks, each a write that fails
        assert p.poll() is None
        lines = (tmp_path / "stderr").read_bytes().decode().splitlines()
        assert len(lines) == 1 and "Input/output error" in lines[0], lines
        p.terminate()
        assert p.wait(timeout=10) == 0
    finally:
        if master is not None:
            os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()
        err.close()


@pytest.mark.kvm
def test_monitor_socket(tern, tmp_path):
    import socket
    path = str(tmp_path / "mon.sock")
    t = tern(*BOOT, "-append", "echo", "-monitor", "unix:%s,server,nowait" % path)
    t.expect(r"Booted up")
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(5)
    buf = b""
    while b"(tern)" not in buf:
        buf += s.recv(4096)
    s.sendall(b"info status\n")
    while b"VM status: running" not in buf:
        buf += s.recv(4096)
    s.sendall(b"quit\n")
    assert t.wait() == 0
    assert not os.path.exists(path), "monitor socket left behind"


@pytest.mark.kvm
def test_monitor_socket_keeps_output_a_client_reads_late(tern, tmp_path):
    """A client that sends many commands before it reads gets every answer, whole and in
    order: tern holds what the socket cannot take and reads no more commands meanwhile,
    instead of dropping output (and prompts a script waits for)."""
    path = str(tmp_path / "mon.sock")
    t = tern(*BOOT, "-append", "echo", "-monitor", "unix:%s,server,nowait" % path)
    t.expect(r"Booted up")
    s = connect_unix(path)
    n = 400  # about 1 MB of answers, several times what a unix socket holds
    s.sendall(b"help\n" * n)
    time.sleep(1)  # tern answers into a full socket meanwhile
    buf = b""
    s.settimeout(30)
    while buf.count(b"(tern) ") < n + 1:
        d = s.recv(65536)
        assert d, "monitor closed after %d prompts" % buf.count(b"(tern) ")
        buf += d
    answers = buf.split(b"(tern) ")[1:-1]
    assert len(answers) == n
    assert len(set(answers)) == 1 and b"info migrate" in answers[0]
    s.sendall(b"quit\n")
    assert t.wait() == 0


@pytest.mark.kvm
def test_serial_file(tmp_path):
    log = tmp_path / "serial.log"
    code, out = run_tern(["-kernel", GUEST, "-nographic", "-serial", "file:%s" % log,
                          "-append", "poweroff"])
    assert code == 0, out
    assert "Booted up" in log.read_text()


# --- bad input: one clear line, non-zero exit, never a hang ------------------------------
# tern checks all of it before it opens /dev/kvm, so these run on any machine.

def bad(args, *needles):
    code, out = run_tern(args)
    assert code != 0, out
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("tern: "), out
    for n in needles:
        assert n in lines[0], out
    return lines[0]


def test_missing_kernel(tmp_path):
    bad(["-kernel", str(tmp_path / "nope.elf")], "nope.elf", "No such file")


def test_empty_kernel(tmp_path):
    f = tmp_path / "empty.elf"
    f.write_bytes(b"")
    bad(["-kernel", str(f)], "empty.elf")


def test_truncated_elf(tmp_path):
    data = open(GUEST, "rb").read()
    f = tmp_path / "trunc.elf"
    f.write_bytes(data[:200])
    bad(["-kernel", str(f)], "trunc.elf")


def test_truncated_elf_segment(tmp_path):
    data = open(GUEST, "rb").read()
    f = tmp_path / "trunc2.elf"
    f.write_bytes(data[:len(data) // 2])
    bad(["-kernel", str(f)], "trunc2.elf")


def test_not_a_kernel(tmp_path):
    f = tmp_path / "junk.bin"
    f.write_bytes(b"this is not a kernel\n" * 100)
    bad(["-kernel", str(f)], "junk.bin", "not an ELF or bzImage")


def test_elf_outside_ram(tmp_path):
    data = bytearray(open(GUEST, "rb").read())
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        if struct.unpack_from("<I", data, off)[0] == 1:  # PT_LOAD: move p_paddr to 1 GiB
            struct.pack_into("<Q", data, off + 0x18, 1 << 30)
    f = tmp_path / "far.elf"
    f.write_bytes(bytes(data))
    bad(["-kernel", str(f), "-m", "64M"], "far.elf")


def test_mem_zero():
    bad(["-kernel", GUEST, "-m", "0"], "-m")


def test_mem_too_large():
    bad(["-kernel", GUEST, "-m", "2T"], "-m")


def test_mem_not_a_size():
    bad(["-kernel", GUEST, "-m", "lots"], "-m", "lots")


def test_unknown_option():
    bad(["-kernel", GUEST, "-frobnicate"], "unknown option '-frobnicate'")


def test_nic_errors_name_the_nic():
    """-nic's errors quote what the user typed, not the -netdev tern made of it."""
    line = bad(["-kernel", GUEST, "-nic", "user"], "-nic: 'user': only tap and bridge")
    assert "_nic" not in line, line
    bad(["-kernel", GUEST, "-nic", "bridge"], "-nic bridge: missing br=")
    bad(["-kernel", GUEST, "-nic", "tap,bogus=1"], "-nic: unknown parameter 'bogus'")


def test_smp_out_of_range():
    bad(["-kernel", GUEST, "-smp", "65"], "-smp 65", "1 to 64")
    bad(["-kernel", GUEST, "-smp", "0"], "-smp 0")


def test_smp_topology_options_refused():
    bad(["-kernel", GUEST, "-smp", "2,sockets=2"], "-smp", "2,sockets=2")


def test_overlong_cmdline():
    bad(["-kernel", GUEST, "-append", "x" * 5000], "cmdline")


def test_no_kernel():
    bad([], "kernel")


@pytest.mark.kvm
def test_ignored_options_are_named():
    code, out = run_tern(["-enable-kvm", "-cpu", "host", "-kernel", GUEST, "-nographic",
                          "-append", "poweroff"])
    assert code == 0, out
    assert "-enable-kvm: ignored" in out and "-cpu" not in out


def test_ignored_options_are_named_before_kernel_errors(tmp_path):
    code, out = run_tern(["-enable-kvm", "-M", "q35", "-kernel", str(tmp_path / "nope.elf")])
    lines = out.splitlines()
    assert code != 0 and len(lines) == 3, out
    assert "-enable-kvm: ignored" in lines[0] and "-M: ignored" in lines[1], out
    assert "nope.elf" in lines[2] and "No such file" in lines[2], out


@pytest.mark.kvm
def test_invariant_tsc_only_on_request(tern):
    """invtsc is hidden unless -cpu host,+invtsc: with it Linux clocks by the TSC, whose rate
    a move to another host may change. +invtsc where KVM does not offer it is one line."""
    t = tern(*BOOT, "-append", "memtest=8")
    t.expect(r"memtest: filled")
    mark = len(t.out)
    t.send("cpuid 0x80000007\r")
    m = t.expect(r"cpuid: 80000007\.0 eax=[0-9a-f]{8} ebx=[0-9a-f]{8} ecx=[0-9a-f]{8} "
                 r"edx=([0-9a-f]{8})\r?\n", start=mark)
    assert not int(m.group(1), 16) >> 8 & 1, m.group(0)
    code, out = run_tern(BOOT + ["-cpu", "host,+invtsc", "-append", "poweroff"])
    assert code == 0 or out.strip() == "tern: -cpu: invtsc: not offered by this host's KVM", out


def test_cpu_model_and_features_checked():
    bad(["-kernel", GUEST, "-cpu", "qemu64"], "-cpu qemu64", "host")
    bad(["-kernel", GUEST, "-cpu", "host,-frobnicate"], "'frobnicate'", "not a CPU feature")
    bad(["-kernel", GUEST, "-cpu", "host,avx2=maybe"], "avx2=maybe", "on or off")


def seccomp_of_threads(pid):
    """(Seccomp mode, filters, NoNewPrivs) of each thread of pid, main thread first."""
    out = []
    for tid in sorted(os.listdir("/proc/%d/task" % pid), key=int):
        st = dict(l.split(":", 1) for l in open("/proc/%d/task/%s/status" % (pid, tid)))
        out.append(tuple(int(st[k]) for k in ("Seccomp", "Seccomp_filters", "NoNewPrivs")))
    return out


@pytest.mark.kvm
def test_process_and_thread_names(tern):
    """-name as libvirt passes it: process= names the process (and the threads it starts);
    the vCPU threads are "CPU N/KVM", as QEMU's, so that top -H tells them apart."""
    t = tern(*BOOT, "-smp", "2", "-name", "guest=vm1,process=tern-vm1,debug-threads=on",
             "-append", "echo")
    t.expect(r"Booted up")
    task = "/proc/%d/task" % t.proc.pid
    comms = [open("%s/%s/comm" % (task, tid)).read().strip()
             for tid in sorted(os.listdir(task), key=int)]
    assert comms == ["tern-vm1", "CPU 0/KVM", "CPU 1/KVM"], comms


@pytest.mark.kvm
@pytest.mark.parametrize("vcpus", [1, 3])
def test_sandbox_filters_every_thread(tern, vcpus):
    """The main (I/O) thread has its deny list, each vCPU thread that and its allow list."""
    t = tern(*BOOT, "-smp", str(vcpus), "-append", "echo")
    t.expect(r"Booted up")
    assert seccomp_of_threads(t.proc.pid) == [(2, 1, 1)] + [(2, 2, 1)] * vcpus
    t.send(b"\x01x")  # and it still exits cleanly through the filters
    assert t.wait() == 0


@pytest.mark.kvm
def test_sandbox_filters_the_disk_worker(tern, tmp_path):
    """A disk's worker thread is made before the I/O thread filters itself: it filters itself."""
    img = tmp_path / "disk.img"
    img.write_bytes(bytes(1 << 20))
    t = tern(*BOOT, "-drive", "file=%s" % img, "-append", "echo")
    t.expect(r"Booted up")
    assert seccomp_of_threads(t.proc.pid) == [(2, 1, 1), (2, 1, 1), (2, 2, 1)]


@pytest.mark.kvm
def test_sandbox_off(tern):
    t = tern(*BOOT, "-sandbox", "off", "-append", "echo")
    t.expect(r"Booted up")
    assert seccomp_of_threads(t.proc.pid) == [(0, 0, 0), (0, 0, 0)]


def test_sandbox_bad_value():
    bad(["-kernel", GUEST, "-sandbox", "maybe"], "-sandbox: 'maybe': expected on or off")


@pytest.mark.kvm
def test_config_file_boots(tmp_path):
    """-config FILE: the options as a JSON object; the command line after it wins."""
    cfg = tmp_path / "guest.json"
    cfg.write_text(json.dumps({"kernel": GUEST, "m": 128, "nographic": True, "serial": "stdio",
                               "append": "poweroff from-the-file"}))
    code, out = run_tern(["-config", str(cfg)])
    assert code == 0 and "from-the-file" in out, out
    code, out = run_tern(["-config", str(cfg), "-append", "poweroff from-the-command-line"])
    assert code == 0 and "from-the-command-line" in out and "from-the-file" not in out, out


def test_config_file_bad(tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text('{"kernel": "%s", "m": }' % GUEST)
    bad(["-config", str(cfg)], "-config %s: parse error" % cfg)
    bad(["-config", str(tmp_path / "none.json")], "none.json: No such file or directory")


def alive(pid):
    """Running, not gone and not a zombie that no one reaps (its parent has exited)."""
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while we read (ESRCH)
        return False


@pytest.mark.kvm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_while_setting_up_exits_cleanly(tern, tmp_path, sig):
    """A signal while tern still sets up (here loading a large initrd, which takes seconds on
    the nested host) ends it as one while it runs does: status 0 and the pidfile gone. It used
    to kill tern by the signal, leaving the pidfile behind."""
    initrd, pidfile = tmp_path / "initrd", tmp_path / "tern.pid"
    with open(initrd, "wb") as f:
        f.truncate(768 << 20)  # sparse: costs no disk
    t = tern("-kernel", GUEST, "-initrd", str(initrd), "-m", "2G", "-nographic",
             "-serial", "none", "-pidfile", str(pidfile))
    deadline = time.monotonic() + 10
    while not pidfile.exists():
        assert time.monotonic() < deadline and t.proc.poll() is None, t.text()
        time.sleep(0.001)
    # Still setting up, with no vCPU thread yet: else this tests a tern that runs already.
    assert len(os.listdir("/proc/%d/task" % t.proc.pid)) == 1, "tern was set up already"
    t.proc.send_signal(sig)
    assert t.wait(timeout=60) == 0, t.text()
    assert not pidfile.exists()


@pytest.mark.kvm
def test_daemonize(tmp_path):
    """-daemonize: the command returns once all is up, with the pidfile written; the guest
    runs on, filtered, and `quit` ends it and takes its pidfile away."""
    pidfile, mon, log = tmp_path / "tern.pid", tmp_path / "mon", tmp_path / "serial.log"
    code, out = run_tern(["-kernel", GUEST, "-m", "128M", "-nographic", "-append", "echo ticks",
                          "-serial", "file:%s" % log, "-daemonize", "-pidfile", str(pidfile),
                          "-monitor", "unix:%s,server,nowait" % mon])
    assert code == 0 and out == "", out
    pid = int(pidfile.read_text())
    try:
        m = Monitor(str(mon))
        assert "running" in m.cmd("info status")
        deadline = time.monotonic() + 20
        while "tick" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Booted up" in log.read_text() and "tick" in log.read_text(), log.read_text()
        # The vCPU thread filters itself as it starts: by the guest's first tick it has.
        assert seccomp_of_threads(pid) == [(2, 1, 1), (2, 2, 1)]
        # The pidfile is locked: a second tern given it is refused and leaves it as it is.
        code, out = run_tern(["-kernel", GUEST, "-nographic", "-serial", "none",
                              "-pidfile", str(pidfile)])
        assert code == 1 and "locked by another process" in out, out
        assert int(pidfile.read_text()) == pid
        m.s.sendall(b"quit\n")
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
        assert not pidfile.exists()
    finally:
        if alive(pid):
            os.kill(pid, 9)


@pytest.mark.kvm
def test_daemonize_with_stdin_closed(tmp_path):
    """Started with fd 0 closed (a supervisor that closes it): the first fds tern opens do not
    take its number and get written over, and the daemon runs on until quit."""
    pidfile, mon = tmp_path / "tern.pid", tmp_path / "mon"
    p = subprocess.run(["bash", "-c", 'exec 0<&- && exec "$@"', "tern", TERN, "-kernel", GUEST,
                        "-m", "128M", "-nographic", "-serial", "none", "-daemonize",
                        "-pidfile", str(pidfile), "-monitor", "unix:%s,server,nowait" % mon],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout
    pid = int(pidfile.read_text())
    try:
        m = Monitor(str(mon))
        time.sleep(0.5)
        assert alive(pid) and "running" in m.cmd("info status")
        m.s.sendall(b"quit\n")
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
    finally:
        if alive(pid):
            os.kill(pid, 9)


def test_pidfile_of_a_running_process_is_left_alone(tmp_path):
    """A pidfile another process holds locked is refused before anything else is made, and
    left as it is; a stale one (unlocked) is taken over, and removed when tern ends."""
    pidfile = tmp_path / "other.pid"
    with open(pidfile, "w") as f:
        f.write("4242\n")
        f.flush()
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, out = run_tern(["-kernel", str(tmp_path / "nope.elf"), "-pidfile", str(pidfile)])
        assert code == 1 and "locked by another process" in out and "nope.elf" not in out, out
        assert pidfile.read_text() == "4242\n"
    code, out = run_tern(["-kernel", str(tmp_path / "nope.elf"), "-pidfile", str(pidfile)])
    assert code == 1 and "nope.elf" in out, out
    assert not pidfile.exists()


def test_daemonize_reports_failure(tmp_path):
    """A daemon that fails to start makes the command fail, with the daemon's own line."""
    code, out = run_tern(["-kernel", str(tmp_path / "nope.elf"), "-nographic", "-serial", "none",
                          "-daemonize"])
    assert code == 1 and "nope.elf" in out and "No such file" in out, out
