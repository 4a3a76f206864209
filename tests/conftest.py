"""Shared helpers for tern's tests: start tern on the test guest and talk to it.

Tests that boot a guest carry the `kvm` marker: where /dev/kvm cannot run a VM they are
skipped, with the reason, rather than failed (TERN_REQUIRE_KVM=1 makes that a failure, for
machines that must have KVM). Everything else, bad input included, runs everywhere."""
import fcntl
import functools
import os
import pty
import re
import select
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TERN = os.path.join(ROOT, "build", "tern")
GUEST = os.path.join(ROOT, "build", "guest", "guest.elf")
UNIT_DIR = os.path.join(ROOT, "build", "unit")


KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO, 0x00)
KVM_CREATE_VM = 0xAE01  # _IO(KVMIO, 0x01)
KVM_API_VERSION = 12


@functools.lru_cache(maxsize=None)
def kvm_unusable():
    """Why this machine cannot run a KVM guest ("/dev/kvm: ..."), or None if it can.

    The same steps as tern's own start: open, API version, create (and drop) a VM."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return "/dev/kvm: " + e.strerror
    try:
        ver = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        if ver != KVM_API_VERSION:
            return "/dev/kvm: API version %d, not %d" % (ver, KVM_API_VERSION)
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM))
    except OSError as e:
        return "/dev/kvm: %s" % (e.strerror or e)
    finally:
        os.close(fd)
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "kvm: boots a guest, so needs a usable /dev/kvm")


def pytest_runtest_setup(item):
    why = kvm_unusable() if item.get_closest_marker("kvm") else None
    if why:
        reason = "no usable /dev/kvm on this machine (%s)" % why
        if os.environ.get("TERN_REQUIRE_KVM") == "1":
            pytest.fail(reason + " and TERN_REQUIRE_KVM=1", pytrace=False)
        pytest.skip(reason)


_started = []  # every Tern of the current test, for no_sandbox_refusals


class Tern:
    """A running tern whose console is a pipe (or a pty) we can read and type into."""

    def __init__(self, args, use_pty=False, env=None, netns=None, prog=TERN):
        """prog: what to run with args (a launcher such as scripts/run.py, say)."""
        self.args = [prog] + list(args)
        cmd = self.args if not netns else ["ip", "netns", "exec", netns] + self.args
        self.out = b""
        self.master = None
        e = dict(os.environ)
        e.update(env or {})
        if use_pty:
            self.master, slave = pty.openpty()
            self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                                         env=e, start_new_session=True)
            os.close(slave)
            self.rfd = self.master
            self.wfd = self.master
        else:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, env=e)
            self.rfd = self.proc.stdout.fileno()
            self.wfd = self.proc.stdin.fileno()
        os.set_blocking(self.rfd, False)
        _started.append(self)

    def _pump(self, timeout):
        r, _, _ = select.select([self.rfd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.rfd, 65536)
        except OSError:  # pty closed
            data = b""
        if not data:
            time.sleep(min(timeout, 0.01))
            return False
        self.out += data
        return True

    def text(self):
        return self.out.decode(errors="replace")

    def expect(self, pattern, timeout=10, start=0):
        """Waits until pattern (regex) appears in the output after byte offset start."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.out, start)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not self._pump(0.05)):
                raise AssertionError("timed out waiting for %r; output so far:\n%s"
                                     % (pattern, self.text()[-3000:]))
            self._pump(min(left, 0.1))

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        os.write(self.wfd, data)

    def wait(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.05)
        try:
            code = self.proc.wait(timeout=max(0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError("tern did not exit; output:\n" + self.text()[-3000:])
        while self._pump(0):
            pass
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if self.master is not None:
            try:
                os.close(self.master)
            except OSError:
                pass
            self.master = None


SANDBOX_REFUSED = b"sandbox: refused"


@pytest.fixture(autouse=True)
def no_sandbox_refusals():
    """A call the sandbox refuses is a hole in its lists, whatever the test itself checks."""
    _started.clear()
    yield
    for t in _started:
        try:
            while t._pump(0):
                pass
        except (OSError, ValueError):  # its console is closed: what it said is in t.out
            pass
        assert SANDBOX_REFUSED not in t.out, t.text()[-2000:]


@pytest.fixture
def tern():
    """Factory: tern(args...) starts one; all are killed after the test."""
    started = []

    def start(*args, **kw):
        t = Tern(args, **kw)
        started.append(t)
        return t

    yield start
    for t in started:
        t.kill()


def run_tern(args, timeout=10, **kw):
    """Runs tern to completion with stdin closed; returns (exit code, combined output)."""
    p = subprocess.run([TERN] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, **kw)
    assert SANDBOX_REFUSED not in p.stdout, p.stdout.decode(errors="replace")
    return p.returncode, p.stdout.decode(errors="replace")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect_unix(path, timeout=10):
    """A socket connected to tern's unix socket at path, waiting for tern to make it."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            s.settimeout(timeout)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Monitor:
    """The HMP monitor on a unix socket."""

    def __init__(self, path, timeout=10):
        self.s = connect_unix(path, timeout)
        self.buf = b""
        self._until(b"(tern) ")

    def _until(self, marker):
        while marker not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise AssertionError("monitor closed; got: %r" % self.buf)
            self.buf += d
        i = self.buf.index(marker)
        out, self.buf = self.buf[:i], self.buf[i + len(marker):]
        return out.decode(errors="replace")

    def cmd(self, line, timeout=30):
        self.s.settimeout(timeout)
        self.s.sendall(line.encode() + b"\n")
        if line.strip() in ("quit", "q"):
            return self._until_closed()  # as QEMU's: no prompt after it, tern goes
        return self._until(b"(tern) ")

    def _until_closed(self):
        while True:
            d = self.s.recv(65536)
            if not d:
                out, self.buf = self.buf, b""
                return out.decode(errors="replace")
            self.buf += d

    def info(self, what):
        """`info migrate` and the like as a dict of 'key: value' lines."""
        out = self.cmd("info " + what)
        d = {}
        for line in out.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                d[k.strip()] = v.strip()
        return d

    def close(self):
        self.s.close()
