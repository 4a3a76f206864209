"""scripts/run.py (OSv's launcher flags, checked with --dry-run) and scripts/lab.sh (the lab
network: namespace, bridge, dnsmasq), including a DHCP lease for the pinned MAC from a second
namespace. The lab tests need root, iproute2 and dnsmasq, and use a private namespace name; every
namespace they create is deleted again, whatever the asserts say."""
import glob
import http.server
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_PY = os.path.join(ROOT, "scripts", "run.py")
LAB_SH = os.path.join(ROOT, "scripts", "lab.sh")
DHCP_CLIENT = os.path.join(ROOT, "scripts", "dhcp-client.py")
CLIENT_LOOP = os.path.join(ROOT, "scripts", "client-loop.py")
MONITOR_PY = os.path.join(ROOT, "scripts", "monitor.py")
TERN = os.path.join(ROOT, "build", "tern")
GUEST = os.path.join(ROOT, "build", "guest", "guest.elf")
PINNED_MAC = "52:54:30:30:30:30"
PINNED_IP = "192.168.123.10"


# ---- run.py --------------------------------------------------------------------------------

def dry_run(*args):
    p = subprocess.run([sys.executable, RUN_PY, "--dry-run", *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def command_of(*args):
    code, out, err = dry_run(*args)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1, out
    return shlex.split(out)


BASE = [TERN, "-kernel", GUEST, "-m", "512M", "-smp", "1", "-nographic", "-serial", "stdio"]


def test_run_py_defaults():
    assert command_of() == BASE


def test_run_py_memory_vcpus_cmdline_kernel():
    cmd = command_of("-m", "1G", "-c", "1", "-e", "hello  'quoted' world", "-k",
                     "--kernel-path", "/some/loader.elf", "-p", "kvm")
    assert cmd == [TERN, "-kernel", "/some/loader.elf", "-m", "1G", "-smp", "1", "-nographic",
                   "-serial", "stdio", "-append", "hello  'quoted' world"]
    assert command_of("-c", "4")[5:7] == ["-smp", "4"]
    assert command_of("--memsize", "128M", "--vcpus", "1", "--execute", "x") == \
        [TERN, "-kernel", GUEST, "-m", "128M", "-smp", "1", "-nographic", "-serial", "stdio",
         "-append", "x"]


def test_run_py_accepted_noops():
    assert command_of("--novnc", "--nogdb", "-k", "--kernel", "-p", "auto") == BASE
    assert command_of("-w") == command_of("--wait") == BASE + ["-S", "-gdb", "tcp:127.0.0.1:1234"]
    assert command_of("-w", "--nogdb") == BASE + ["-S"]


def test_run_py_gdb_port():
    assert command_of("--gdb", "1235") == BASE + ["-gdb", "tcp:127.0.0.1:1235"]
    assert command_of("-w", "--gdb", "1235") == BASE + ["-S", "-gdb", "tcp:127.0.0.1:1235"]
    assert command_of("-w", "--gdb", "1235", "--nogdb") == BASE + ["-S"]


def test_run_py_vhost_is_a_note():
    """OSv's habit, run.py -nv: tap networking, with one line saying tern has no vhost-net."""
    code, out, err = dry_run("-nv")
    assert code == 0, err
    assert shlex.split(out) == command_of("-n")
    assert err.count("\n") == 1 and "vhost" in err, err
    assert command_of("--vhost") == BASE


def test_run_py_verbose_and_sizes_as_tern_takes_them():
    assert command_of("-V") == BASE + ["-append", "--verbose"]
    assert command_of("--verbose", "-e", "/hello") == BASE + ["-append", "--verbose /hello"]
    assert command_of("-m", "512MiB")[4] == "512MiB"
    assert command_of("-m", "0x20000000")[4] == "0x20000000"


def test_run_py_image_is_the_disk():
    assert command_of("-i", "usr.raw") == command_of("--image", "usr.raw") == BASE + [
        "-drive", "file=usr.raw,if=virtio"]


def test_run_py_bridge_networking():
    assert command_of("-n") == BASE + ["-netdev", "bridge,id=n0,br=osvbr0",
                                       "-device", "virtio-net,netdev=n0"]
    assert command_of("-n", "-b", "br7", "--mac", PINNED_MAC) == BASE + [
        "-netdev", "bridge,id=n0,br=br7", "-device", "virtio-net,netdev=n0,mac=" + PINNED_MAC]
    assert command_of("--networking", "--bridge", "osvbr0") == BASE + [
        "-netdev", "bridge,id=n0,br=osvbr0", "-device", "virtio-net,netdev=n0"]


def test_run_py_tap_networking():
    tap = ["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"]
    assert command_of("-n", "-t", "tap0") == BASE + tap + ["-device", "virtio-net,netdev=n0"]
    # -t alone implies -n; with an explicit bridge tern puts the tap on it.
    assert command_of("--tap", "tap0", "--mac", PINNED_MAC) == BASE + tap + [
        "-device", "virtio-net,netdev=n0,mac=" + PINNED_MAC]
    assert command_of("-t", "tap0", "-b", "osvbr0") == BASE + [
        "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no,br=osvbr0",
        "-device", "virtio-net,netdev=n0"]


def test_run_py_pass_args():
    # OSv's spelling: a leading space keeps argparse from taking them as run.py's own flags.
    assert command_of("--pass-args", " -incoming tcp:0:4444") == BASE + [
        "-incoming", "tcp:0:4444"]
    assert command_of("--pass-args", " -incoming tcp:0:4444", "--pass-args=-name 'my vm'",
                      "-e", "echo") == BASE + ["-append", "echo", "-incoming", "tcp:0:4444",
                                               "-name", "my vm"]


def test_run_py_tern_path_and_quoting():
    code, out, _ = dry_run("--tern", "/opt/my tern/tern", "-e", "a b")
    assert code == 0
    assert out.startswith("'/opt/my tern/tern' -kernel ")
    assert shlex.split(out)[0] == "/opt/my tern/tern"


@pytest.mark.parametrize("args, words", [
    (["-p", "xen"], "-p xen"),
    (["-p", "qemu"], "-p qemu"),
    (["--hypervisor", "firecracker"], "firecracker"),
    (["-c", "0"], "-c 0"),
    (["-c", "x"], "-c x"),
    (["-m", "lots"], "-m lots"),
    (["-m", "1.5G"], "-m 1.5G"),
    (["-m", "512 M"], "-m 512 M"),
    (["-n", "-b", ""], "not an interface name"),
    (["-t", "tap0,br=x"], "not an interface name"),
    (["-n", "--mac", "01:00:5e:00:00:01"], "not a unicast MAC"),
    (["-n", "--mac", "00:00:00:00:00:00"], "all-zero address"),
    (["--api"], "no user-mode networking"),
    (["--forward", "tcp:8000::8000"], "no user-mode networking"),
    (["-i", "a,b.img"], "not a usable image path"),
    (["-d"], "use --kernel-path"),
    (["-H"], "tern exits when the guest crashes"),
    (["-D"], "-daemonize"),
    (["-s"], "Ctrl-C goes to the guest"),
    (["-S"], "virtio-blk"),
    (["--vnc", ":1"], "no display"),
    (["--qemu-path", "/usr/bin/qemu-system-x86_64"], "tern runs no QEMU"),
    (["--gdb", "0"], "--gdb 0: not a TCP port"),
    (["--gdb", "65536"], "not a TCP port"),
    (["--mac", PINNED_MAC], "--mac"),
    (["-n", "--mac", "52:54:30"], "--mac 52:54:30"),
    (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    (["--pass-args", " -append 'unbalanced"], "--pass-args"),
    (["-3"], "virtio-net"),
    (["--tern", ""], "--tern '': not a path"),
    (["--kernel-path", ""], "--kernel-path '': not a path"),
])
def test_run_py_errors(args, words):
    code, out, err = dry_run(*args)
    assert code == 2, (out, err)
    assert out == ""
    assert "run.py: error:" in err and words in err, err


def test_run_py_empty_tern_is_one_line():
    """Not only with --dry-run: execvp('') raised ValueError, a traceback."""
    p = subprocess.run([sys.executable, RUN_PY, "--tern", ""], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.splitlines()[-1] == "run.py: error: --tern '': not a path", p.stderr


def test_run_py_missing_tern_is_one_line():
    p = subprocess.run([sys.executable, RUN_PY, "--tern", "/nonexistent/tern"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and "/nonexistent/tern" in p.stderr, p.stderr


@pytest.mark.kvm
@pytest.mark.skipif(not (os.path.exists(TERN) and os.path.exists(GUEST)),
                    reason="needs build/tern and build/guest/guest.elf")
def test_run_py_execs_tern():
    p = subprocess.run([sys.executable, RUN_PY, "-m", "128M", "-e", "poweroff"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert p.returncode == 0, p.stdout
    assert "Booted up" in p.stdout and "Cmdline: poweroff" in p.stdout, p.stdout


# ---- client-loop.py -------------------------------------------------------------------------

class DateHandler(http.server.BaseHTTPRequestHandler):
    """GET /os/date over HTTP/1.1; with close set, every answer ends the connection."""
    protocol_version = "HTTP/1.1"
    close = False

    def do_GET(self):
        body = b'"Mon Jan  1 00:00:00 2024"'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if self.close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("close", [False, True])
def test_client_loop_never_reconnects_silently(close):
    """One keep-alive connection: a server that closes it (Connection: close) is an error,
    not a new connection opened unseen."""
    handler = type("H", (DateHandler,), {"close": close})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        p = subprocess.run([sys.executable, CLIENT_LOOP, "127.0.0.1", "--port",
                            str(srv.server_address[1]), "--interval-ms", "20", "--duration",
                            "0.5", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
    finally:
        srv.shutdown()
        srv.server_close()
    if close:
        assert p.returncode == 1 and "the server closed the connection" in p.stdout, p.stdout
    else:
        assert p.returncode == 0 and ", 0 errors, 0 resets" in p.stdout, p.stdout


@pytest.mark.parametrize("args, words", [
    (["--interval-ms", "-5"], "--interval-ms: '-5'"),
    (["--interval-ms", "nan"], "--interval-ms: 'nan'"),
    (["--interval-ms", "1e300"], "--interval-ms: '1e300'"),
    (["--timeout", "0"], "--timeout: '0'"),
    (["--port", "70000"], "--port: '70000'"),
    (["--duration", "-1"], "--duration: '-1'"),
])
def test_client_loop_bad_numbers_are_one_line(args, words):
    """A usage error at once, not a traceback from time.sleep after the first failure."""
    p = subprocess.run([sys.executable, CLIENT_LOOP, "127.0.0.1", "--port", "1",
                        "--duration", "0.3", *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stdout == "" and words in p.stderr.splitlines()[-1], p.stderr


def test_client_loop_unwritable_summary_is_one_line(tmp_path):
    p = subprocess.run([sys.executable, CLIENT_LOOP, "127.0.0.1", "--port", "1", "--duration",
                        "0.2", "--quiet", "--summary", str(tmp_path / "no" / "s.json")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "--summary" in p.stderr, \
        p.stderr


# ---- monitor.py ----------------------------------------------------------------------------

def fake_monitor(path, answer):
    """A monitor on unix socket path that answers each command line with answer and a prompt,
    in a thread; the lines it got go into the list returned with it."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = []

    def serve():
        c, _ = srv.accept()
        with c:
            c.sendall(b"tern monitor\n(tern) ")
            data = b""
            while True:
                chunk = c.recv(1024)
                if not chunk:
                    return
                data += chunk
                while b"\n" in data:
                    line, data = data.split(b"\n", 1)
                    got.append(line)
                    c.sendall(answer + b"(tern) ")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t, got


def test_monitor_py_sends_argv_bytes_as_given(tmp_path):
    """A word that is not UTF-8 goes to the monitor as the shell gave it, not a traceback
    (UnicodeEncodeError); the monitor's answer is printed."""
    path = str(tmp_path / "mon")
    srv, t, got = fake_monitor(path, b"Error: unknown info item\n")
    try:
        p = subprocess.run([sys.executable, MONITOR_PY, path.encode(), b"info \xff"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        t.join(timeout=10)
    finally:
        srv.close()
    assert b"Traceback" not in p.stderr, p.stderr
    assert got == [b"info \xff"], got
    assert p.returncode == 1 and p.stdout == b"Error: unknown info item\n", p


def test_monitor_py_reader_gone_is_quiet(tmp_path):
    """monitor.py ... | head: the commands still all go, and no traceback or noise at exit
    (stdout's BrokenPipeError)."""
    path = str(tmp_path / "mon")
    srv, t, got = fake_monitor(path, b"an answer longer than a pipe holds\n" * 10000)
    try:
        p = subprocess.run("%s %s %s 'info status' 'info version' | head -1" % (
            shlex.quote(sys.executable), shlex.quote(MONITOR_PY), shlex.quote(path)),
            shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        t.join(timeout=10)
    finally:
        srv.close()
    assert p.stderr == b"", p.stderr
    assert got == [b"info status", b"info version"], got
    assert p.stdout == b"an answer longer than a pipe holds\n", p.stdout


# ---- lab.sh --------------------------------------------------------------------------------

LAB_NS = "ternlab-test-%d" % os.getpid()
CLIENT_NS = LAB_NS + "-c"
STATE = "/run/tern-lab/" + LAB_NS

needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("dnsmasq"),
    reason="the lab needs root, iproute2 and dnsmasq")


def lab(*args, check=True, env_ns=LAB_NS):
    env = dict(os.environ, TERN_LAB_NS=env_ns)
    p = subprocess.run([LAB_SH, *args], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    if check:
        assert p.returncode == 0, "lab.sh %s: rc %d\n%s%s" % (args, p.returncode, p.stdout,
                                                              p.stderr)
    return p


def sh(*cmd, check=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60)
    if check:
        assert p.returncode == 0, "%s: rc %d\n%s%s" % (cmd, p.returncode, p.stdout, p.stderr)
    return p


def netns_list():
    return [l.split()[0] for l in sh("ip", "netns", "list").stdout.splitlines() if l.strip()]


def lab_dnsmasqs():
    """Pids of dnsmasq processes whose command line points at this lab's state dir."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"dnsmasq" and \
                any((STATE + "/").encode() in a for a in argv):
            pids.append(int(d))
    return pids


def force_cleanup():
    """What the finalizer does whatever state the tests left: lab.sh down, then by hand."""
    client_ns_cleanup()
    lab("down", check=False)
    for pid in lab_dnsmasqs():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    sh("ip", "netns", "del", LAB_NS, check=False)
    shutil.rmtree(STATE, ignore_errors=True)


@pytest.fixture(scope="module")
def lab_up():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("dnsmasq"):
        pytest.skip("the lab needs root, iproute2 and dnsmasq")
    try:
        lab("up")
        yield LAB_NS
    finally:
        force_cleanup()


def client_ns_cleanup():
    """Deletes the veth pair, then the client namespace. Deleting the namespace alone is not
    enough: the kernel destroys a namespace's devices later, from a work queue, so the lab's
    end vlab0 can outlive `ip netns del` long enough for the next test's `link add vlab0` to
    fail with "File exists". Deleting one end of a veth deletes both, synchronously."""
    sh("ip", "-n", LAB_NS, "link", "del", "vlab0", check=False)
    sh("ip", "netns", "del", CLIENT_NS, check=False)


@pytest.fixture
def client_ns(lab_up):
    """A second namespace with a veth whose other end is on the lab's bridge."""
    client_ns_cleanup()  # whatever an interrupted run left
    try:
        sh("ip", "netns", "add", CLIENT_NS)
        sh("ip", "-n", LAB_NS, "link", "add", "vlab0", "type", "veth",
           "peer", "name", "vcli0", "netns", CLIENT_NS)
        sh("ip", "-n", LAB_NS, "link", "set", "vlab0", "master", "osvbr0", "up")
        sh("ip", "-n", CLIENT_NS, "link", "set", "vcli0", "address", PINNED_MAC)
        sh("ip", "-n", CLIENT_NS, "link", "set", "lo", "up")
        sh("ip", "-n", CLIENT_NS, "link", "set", "vcli0", "up")
        yield CLIENT_NS
    finally:
        client_ns_cleanup()


@needs_lab
def test_lab_up_creates_namespace_bridge_dnsmasq(lab_up):
    assert LAB_NS in netns_list()
    link = sh("ip", "-n", LAB_NS, "-d", "link", "show", "osvbr0").stdout
    # Up, with an address of its own (no carrier: no port has joined yet).
    assert "bridge" in link and ",UP" in link.split("\n")[0], link
    assert "link/ether 52:54:30:00:00:01 " in link, link
    addr = sh("ip", "-n", LAB_NS, "-4", "addr", "show", "dev", "osvbr0").stdout
    assert "inet 192.168.123.1/24" in addr, addr
    assert "UP" in sh("ip", "-n", LAB_NS, "-br", "link", "show", "lo").stdout
    pids = lab_dnsmasqs()
    assert len(pids) == 1, pids
    assert sh("ip", "netns", "identify", str(pids[0])).stdout.strip() == LAB_NS
    assert os.path.isfile(os.path.join(STATE, "dnsmasq.pid"))


@needs_lab
def test_lab_up_twice_is_fine(lab_up):
    before = lab_dnsmasqs()
    p = lab("up")
    assert "up" in p.stdout
    assert lab_dnsmasqs() == before
    addr = sh("ip", "-n", LAB_NS, "-4", "-o", "addr", "show", "dev", "osvbr0").stdout
    assert addr.count("inet ") == 1, addr


@needs_lab
def test_lab_up_restarts_a_dead_dnsmasq(lab_up):
    (pid,) = lab_dnsmasqs()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while pid in lab_dnsmasqs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "dnsmasq: not running" in lab("status", check=False).stdout
    lab("up")
    assert len(lab_dnsmasqs()) == 1
    assert lab("status").returncode == 0


@needs_lab
def test_lab_status(lab_up):
    out = lab("status").stdout
    assert "namespace %s: present" % LAB_NS in out, out
    assert "bridge osvbr0:" in out and "192.168.123.1/24" in out, out
    assert "dnsmasq: running, pid %d" % lab_dnsmasqs()[0] in out, out
    assert "leases" in out, out


@needs_lab
def test_dhcp_pinned_lease(client_ns):
    p = sh("ip", "netns", "exec", client_ns, sys.executable, DHCP_CLIENT, "vcli0",
           "--timeout", "15", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("vcli0: %s/24 from 192.168.123.1 lease infinite" % PINNED_IP), \
        p.stdout
    out = lab("status").stdout
    assert "%s %s" % (PINNED_MAC, PINNED_IP) in out and "infinite" in out, out
    # The same lease again: a pinned host keeps its address.
    p = sh("ip", "netns", "exec", client_ns, sys.executable, DHCP_CLIENT, "vcli0", "--json")
    assert '"address": "%s"' % PINNED_IP in p.stdout, p.stdout


@needs_lab
def test_dhcp_other_mac_gets_range_address(client_ns):
    sh("ip", "-n", client_ns, "link", "set", "vcli0", "address", "52:54:00:12:34:99")
    p = sh("ip", "netns", "exec", client_ns, sys.executable, DHCP_CLIENT, "vcli0",
           "--timeout", "15")
    addr = p.stdout.split()[1].split("/")[0]
    assert addr.startswith("192.168.123.") and 100 <= int(addr.rsplit(".", 1)[1]) <= 200, \
        p.stdout


def udhcpc_command():
    if shutil.which("udhcpc"):
        return ["udhcpc"]
    if shutil.which("busybox"):
        return ["busybox", "udhcpc"]
    return None


@needs_lab
@pytest.mark.skipif(udhcpc_command() is None, reason="no udhcpc (busybox) installed")
def test_dhcp_with_udhcpc(client_ns):
    # -s /bin/true: take the lease, configure nothing.
    p = sh("ip", "netns", "exec", client_ns, *udhcpc_command(), "-i", "vcli0", "-f", "-q",
           "-n", "-t", "5", "-T", "2", "-s", "/bin/true", check=False)
    assert p.returncode == 0 and "lease of %s obtained" % PINNED_IP in p.stdout + p.stderr, \
        p.stdout + p.stderr


@needs_lab
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_lab_not_root_is_one_line():
    # A copy nobody can reach: the checkout (and pytest's tmp_path) may sit below a
    # directory only root enters.
    d = tempfile.mkdtemp(prefix="tern-lab-")
    try:
        os.chmod(d, 0o755)
        script = shutil.copy(LAB_SH, os.path.join(d, "lab.sh"))
        env = dict(os.environ, TERN_LAB_NS=LAB_NS)
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            script, "status"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30, cwd=d)
    finally:
        shutil.rmtree(d)
    assert p.returncode == 1
    assert p.stderr.strip() == \
        "lab.sh: must run as root (network namespaces need CAP_NET_ADMIN)", p.stderr


@needs_lab
def test_lab_usage_and_bad_name():
    p = lab("bogus", check=False)
    assert p.returncode == 2 and "usage:" in p.stderr
    # . and ..: /run/netns/.. exists (status said "present"), and ip refuses both names.
    for name in ("bad name", ".", ".."):
        for cmd in ("up", "status", "down"):
            p = lab(cmd, check=False, env_ns=name)
            assert p.returncode == 1 and p.stderr.count("\n") == 1 and \
                "TERN_LAB_NS" in p.stderr, (name, cmd, p.stdout, p.stderr)


@needs_lab
def test_lab_down_from_inside_refuses(lab_up):
    """From a shell inside the lab, down would stop that shell and itself half-way."""
    env = dict(os.environ, TERN_LAB_NS=LAB_NS)
    p = subprocess.run(["ip", "netns", "exec", LAB_NS, LAB_SH, "down"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 1 and "from outside namespace" in p.stderr, p.stderr
    assert LAB_NS in sh("ip", "netns", "list").stdout


@needs_lab
def test_demo_refuses_an_existing_lab(lab_up):
    """The demo's clean-up takes its namespaces down: never someone's own lab. Nothing of the
    demo's is left either (its work directory)."""
    env = dict(os.environ, TERN_LAB_NS=LAB_NS)
    before = set(glob.glob("/tmp/tern-demo.*"))
    p = subprocess.run([os.path.join(ROOT, "scripts", "demo-intra-host.sh")], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 1 and "exists already" in p.stderr, p.stderr
    assert lab("status", check=False).returncode == 0
    assert set(glob.glob("/tmp/tern-demo.*")) <= before


# `ip netns list` on a host with many namespaces, the demo's first among them: a grep -q that
# quit at the match killed awk with SIGPIPE on the rest, and pipefail made that "not there".
FAKE_IP = """#!/bin/sh
if [ "$1 $2" = "netns list" ]; then
	echo "$FAKE_NS (id: 0)"
	i=1
	while [ $i -le 3000 ]; do
		echo "cni-$i-0123456789abcdef0123456789abcdef (id: $i)"
		i=$((i + 1))
	done
	exit 0
fi
echo "fake ip: $*" >&2
exit 1
"""


@pytest.mark.parametrize("demo", ["intra-host", "inter-host"])
def test_demo_sees_its_namespace_in_a_long_list(tmp_path, demo):
    """The demo refuses a namespace that exists however long the list: else its clean-up
    would take someone's lab down. (Only the fake ip below is run: nothing is made.)"""
    fake = tmp_path / "ip"
    fake.write_text(FAKE_IP)
    fake.chmod(0o755)
    ns = "terndemo-fake-%d" % os.getpid()
    env = dict(os.environ, TERN_LAB_NS=ns, FAKE_NS=ns,
               PATH="%s:%s" % (tmp_path, os.environ["PATH"]))
    for _ in range(3):
        p = subprocess.run([os.path.join(ROOT, "scripts", "demo-%s.sh" % demo)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        assert p.returncode == 1 and "namespace %s exists already" % ns in p.stderr, p.stderr
        assert "fake ip" not in p.stderr, p.stderr


def lab_up_with_fake_dnsmasq(tmp_path, ns, script):
    """The environment for a lab.sh up in namespace ns whose dnsmasq is the shell script."""
    fake = tmp_path / "dnsmasq"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    return dict(os.environ, TERN_LAB_NS=ns, PATH="%s:%s" % (tmp_path, os.environ["PATH"]))


def assert_lab_gone(ns):
    assert ns not in netns_list()
    assert not os.path.exists("/run/tern-lab/" + ns)


def remove_lab(ns, p=None):
    """What a lab.sh up (p, if still running) may have left when its test failed."""
    if p is not None and p.poll() is None:
        p.kill()
        p.wait()
    for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    sh("ip", "netns", "del", ns, check=False)
    shutil.rmtree("/run/tern-lab/" + ns, ignore_errors=True)


@needs_lab
def test_lab_up_interrupted_twice_leaves_nothing(tmp_path):
    """Ctrl-C in lab.sh up takes down what it made; a second Ctrl-C while it does so must not
    cut that short. The fake dnsmasq leaves a process in the lab that outlives SIGTERM (so
    that the clean-up takes a while) and never writes its pid file."""
    ns = LAB_NS + "-i"
    mark = tmp_path / "mark"
    mark.mkdir()
    env = lab_up_with_fake_dnsmasq(
        tmp_path, ns, "sh -c 'trap \"touch %s/term\" TERM; touch %s/started; "
        "while :; do sleep 0.1; done' </dev/null >/dev/null 2>&1 &\nexit 0\n" % (mark, mark))

    def interrupt_once(path, proc):
        """SIGINT once path exists, unless lab.sh has ended by then (a slow host)."""
        while not path.exists() and proc.poll() is None:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    p = subprocess.Popen([LAB_SH, "up"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        interrupt_once(mark / "started", p)
        interrupt_once(mark / "term", p)  # while the clean-up stops what runs in the lab
        out, err = p.communicate(timeout=60)
        assert p.returncode != 0, (out, err)
        assert_lab_gone(ns)
    finally:
        remove_lab(ns, p)


@needs_lab
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_lab_up_killed_leaves_nothing(tmp_path, sig):
    """A terminal closed (SIGHUP) or a kill during lab.sh up takes down what it made, as Ctrl-C
    does: the EXIT trap alone saw the last command's status (0), not the signal, and left the
    namespace. The fake dnsmasq never writes its pid file, so up waits for it."""
    ns = LAB_NS + "-k"
    mark = tmp_path / "started"
    env = lab_up_with_fake_dnsmasq(tmp_path, ns, "touch %s\nexit 0\n" % mark)
    # A session of its own, signalled as a whole, as a terminal does its foreground job.
    p = subprocess.Popen([LAB_SH, "up"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while not mark.exists() and p.poll() is None:
            time.sleep(0.01)
        assert p.poll() is None, p.communicate()
        os.killpg(p.pid, sig)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 128 + sig, (p.returncode, out, err)
        assert_lab_gone(ns)
    finally:
        remove_lab(ns, p)


@needs_lab
def test_lab_up_that_fails_leaves_nothing(tmp_path):
    """A dnsmasq that will not start: lab.sh up says so and takes down what it made."""
    ns = LAB_NS + "-f"
    env = lab_up_with_fake_dnsmasq(tmp_path, ns, "echo fake dnsmasq fails >&2\nexit 1\n")
    try:
        p = subprocess.run([LAB_SH, "up"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        assert p.returncode == 1 and "dnsmasq failed to start" in p.stderr, p.stderr
        assert_lab_gone(ns)
    finally:
        remove_lab(ns)


@pytest.mark.skipif(not shutil.which("ip"), reason="needs iproute2")
def test_dhcp_client_refuses_the_machines_own_network():
    """Outside an ip netns namespace it would broadcast to the real network: one line, rc 2.
    (lo, should the check ever fail: nothing leaves the machine.)"""
    if subprocess.run(["ip", "netns", "identify"], stdout=subprocess.PIPE, text=True,
                      stderr=subprocess.DEVNULL).stdout.strip():
        pytest.skip("this test already runs in a namespace of ip netns")
    p = subprocess.run([sys.executable, DHCP_CLIENT, "lo", "--timeout", "1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "ip netns exec" in p.stderr, \
        p.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2")
def test_dhcp_client_refuses_the_machines_own_network_by_name():
    """`ip netns attach NAME 1` names the machine's own namespace: still refused. (lo again:
    should the check fail, nothing leaves the machine.)"""
    try:
        os.stat("/proc/1/ns/net")
    except OSError as e:
        pytest.skip("pid 1's namespace cannot be seen here: %s" % e.strerror)
    ns = "ternself%d" % os.getpid()
    sh("ip", "netns", "attach", ns, "1")
    try:
        p = sh("ip", "netns", "exec", ns, sys.executable, DHCP_CLIENT, "lo", "--timeout", "1",
               check=False)
    finally:
        sh("ip", "netns", "del", ns, check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "ip netns exec" in p.stderr, \
        p.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2")
def test_dhcp_client_interface_without_a_mac_is_one_line():
    ns = "terndhcp%d" % os.getpid()
    sh("ip", "netns", "add", ns)
    try:
        p = sh("ip", "netns", "exec", ns, sys.executable, DHCP_CLIENT, "lo", "--timeout", "1",
               check=False)
    finally:
        sh("ip", "netns", "del", ns, check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no Ethernet address" in p.stderr, \
        p.stderr


@needs_lab
def test_lab_down_leaves_nothing(lab_up):
    # Something else still running in the lab (as tern would) is stopped too.
    sleeper = subprocess.Popen(["ip", "netns", "exec", LAB_NS, "sleep", "300"])
    try:
        # In the lab before down looks (a fixed wait could be too short on a slow host).
        while str(sleeper.pid) not in sh("ip", "netns", "pids", LAB_NS).stdout.split():
            assert sleeper.poll() is None
            time.sleep(0.01)
        p = lab("down")
        assert "down" in p.stdout
        assert sleeper.wait(timeout=10) != 0
        assert LAB_NS not in netns_list()
        assert not os.path.exists("/run/netns/" + LAB_NS)
        assert lab_dnsmasqs() == []
        assert not os.path.exists(STATE)
        p = lab("status", check=False)
        assert p.returncode == 3 and "absent" in p.stdout
        lab("down")  # twice is fine
        assert LAB_NS not in netns_list()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def session_argvs(sid):
    """The command lines of the processes in session sid."""
    argvs = []
    for pid in sh("pgrep", "-s", str(sid), check=False).stdout.split():
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argvs.append(f.read())
        except OSError:
            pass  # gone meanwhile
    return argvs


@pytest.mark.kvm
@needs_lab
@pytest.mark.parametrize("bench,sig,moment", [
    ("migrate", signal.SIGTERM, b"-incoming"), ("migrate", signal.SIGHUP, b"-incoming"),
    ("disk", signal.SIGTERM, b"guest.elf")])
def test_bench_killed_leaves_nothing(tmp_path, bench, sig, moment):
    """A benchmark stopped by a kill or a closed terminal, during a migration or while its
    guest boots: its guests, its lab and its temporary files all go, as at Ctrl-C. The Python
    drivers were killed outright: their temporary directory (the monitors' sockets, the disk
    image) stayed."""
    tmp = tmp_path / "t"
    tmp.mkdir()
    ns = "ternbt%d" % os.getpid()
    env = dict(os.environ, N="1", SIZES="128M", TMPDIR=str(tmp), TERN_LAB_NS=ns)
    p = subprocess.Popen([os.path.join(ROOT, "tests", "bench", bench + ".sh")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(moment in argv for argv in session_argvs(p.pid)):
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.05)
        os.killpg(p.pid, sig)
        out, _ = p.communicate(timeout=120)
        assert p.returncode != 0, out
        assert sh("pgrep", "-s", str(p.pid), check=False).stdout == ""
        assert ns not in netns_list()
        assert os.listdir(tmp) == [], out
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        sh("ip", "netns", "del", ns, check=False)
