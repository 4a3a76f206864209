"""The JSON monitor (QMP): QEMU's greeting, commands, errors and events, so QMP clients work."""
import json
import os
import signal
import socket
import time

import pytest

from conftest import GUEST, Monitor, connect_unix, free_port

pytestmark = pytest.mark.kvm


class Qmp:
    """A QMP client: replies and events as QEMU sends them, one JSON object a line."""

    def __init__(self, path, timeout=10):
        self.s = connect_unix(path, timeout)
        self.buf = b""
        self.events = []
        self.greeting = self.read()

    def read(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise AssertionError("QMP closed; got %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send_raw(self, data):
        self.s.sendall(data)

    def reply(self):
        """The next reply; events on the way are kept in self.events."""
        while True:
            m = self.read()
            if "event" not in m:
                return m
            self.events.append(m)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.send_raw(json.dumps(msg).encode())
        return self.reply()

    def ok(self, name, **args):
        r = self.cmd(name, **args)
        assert "return" in r, r
        return r["return"]

    def event(self, name, timeout=30, **data):
        """Waits for an event (with data fields equal to data) and returns it."""
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name and all(e.get("data", {}).get(k) == v
                                              for k, v in data.items()):
                    return self.events.pop(i)
            self.s.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                self.events.append(self.read())
            except socket.timeout:
                raise AssertionError("no %s %s event; got %s" % (name, data, self.events))

    def close(self):
        self.s.close()


def qmp_args(path, *extra):
    return ["-kernel", GUEST, "-nographic", "-serial", "stdio", "-m", "128M",
            "-append", "memtest=8", "-qmp", "unix:%s,server,nowait" % path] + list(extra)


def start(tern, tmp_path):
    """A booted guest and a negotiated QMP client: (tern, client)."""
    path = str(tmp_path / "q")
    t = tern(*qmp_args(path))
    t.expect(r"memtest: filled")
    q = Qmp(path)
    q.ok("qmp_capabilities")
    return t, q


def test_query_cpus_fast(tern, tmp_path):
    """-smp 2: QEMU's list of vCPUs, each a package of its own, with its thread; and
    human-monitor-command's cpu-index."""
    path = str(tmp_path / "q")
    t = tern(*qmp_args(path, "-smp", "2", "-name", "guest-a"))
    t.expect(r"memtest: filled")
    q = Qmp(path)
    q.ok("qmp_capabilities")
    assert q.ok("query-name") == {"name": "guest-a"}
    assert q.ok("human-monitor-command", **{"command-line": "info name"}) == "guest-a\n"
    cpus = q.ok("query-cpus-fast")
    assert [(c["cpu-index"], c["props"], c["target"]) for c in cpus] == \
        [(i, {"core-id": 0, "thread-id": 0, "socket-id": i}, "x86_64") for i in range(2)], cpus
    tids = [c["thread-id"] for c in cpus]
    assert len(set(tids)) == 2 and all(os.path.exists("/proc/%d/task/%d" % (t.proc.pid, tid))
                                       for tid in tids), cpus
    # human-monitor-command's cpu-index: the vCPU that info registers shows.
    hmp = "human-monitor-command"
    assert "\nRIP=" in "\n" + q.ok(hmp, **{"command-line": "info registers", "cpu-index": 0})
    assert "\nEIP=0000fff0 " in "\n" + q.ok(hmp, **{"command-line": "info registers",
                                                     "cpu-index": 1})
    r = q.cmd(hmp, **{"command-line": "info registers", "cpu-index": 2})
    assert r["error"]["desc"] == "Parameter 'cpu-index' expects a CPU number", r


def test_greeting_negotiation_and_errors(tern, tmp_path):
    path = str(tmp_path / "q")
    tern(*qmp_args(path)).expect(r"memtest: filled")
    q = Qmp(path)
    assert q.greeting["QMP"]["version"]["package"] == "tern"
    assert q.greeting["QMP"]["capabilities"] == []
    # Nothing before the negotiation, as in QEMU.
    r = q.cmd("query-status")
    assert r["error"]["class"] == "CommandNotFound", r
    assert "qmp_capabilities" in r["error"]["desc"]
    # tern offers no capability (QEMU's oob among them): asking for one negotiates nothing.
    r = q.cmd("qmp_capabilities", enable=["oob"])
    assert r["error"] == {"class": "GenericError", "desc": "Capability 'oob' not available"}, r
    q.send_raw(b'{"execute": "qmp_capabilities", "id": 7}')
    assert q.reply() == {"return": {}, "id": 7}
    assert q.ok("query-version")["package"] == "tern"
    assert q.ok("query-name") == {}
    assert q.ok("query-kvm") == {"enabled": True, "present": True}
    names = {c["name"] for c in q.ok("query-commands")}
    assert {"qmp_capabilities", "query-status", "migrate", "migrate-incoming", "query-migrate",
            "human-monitor-command", "quit"} <= names
    r = q.cmd("no-such-command")
    assert r["error"] == {"class": "CommandNotFound",
                          "desc": "The command no-such-command has not been found"}
    # Any id comes back as it was sent; an error cut short stays valid UTF-8.
    q.send_raw(b'{"execute": "query-status", "id": {"a": [1, 2.5, null, true]}}')
    assert q.reply()["id"] == {"a": [1, 2.5, None, True]}
    q.send_raw(b'{"execute": "query-status", "id": ' + b"[" * 200 + b"]" * 200 + b"}")
    assert "return" in q.reply()  # valid JSON, however deep the id
    r = q.cmd("\u00e9" * 200)
    assert r["error"]["class"] == "CommandNotFound", r
    # Bad input gets an error naming it, and the monitor goes on.
    q.send_raw(b'[1, 2]')
    assert q.reply()["error"]["desc"] == "QMP input must be a JSON object"
    q.send_raw(b'42 ')
    assert q.reply()["error"]["desc"] == "QMP input must be a JSON object"
    q.send_raw(b'{"execute": "query-status",, }')
    assert q.reply()["error"]["desc"].startswith("JSON parse error, ")  # with yajl's reason
    # Braces and escaped quotes inside strings do not end a command.
    out = q.ok("human-monitor-command", **{"command-line": 'migrate -d "}{\\"'})
    assert "'}{\\': unknown migration URI" in out, out
    q.send_raw(b'{"arguments": {}}')
    assert "lacks member 'execute'" in q.reply()["error"]["desc"]
    # As QEMU words them: a wrong type anywhere, and a second negotiation.
    q.send_raw(b'{"execute": 1}')
    assert q.reply()["error"]["desc"] == "QMP input member 'execute' must be a string"
    q.send_raw(b'{"execute": "query-status", "arguments": []}')
    assert q.reply()["error"]["desc"] == "QMP input member 'arguments' must be an object"
    r = q.cmd("migrate", uri=4444)
    assert r["error"]["desc"] == "Invalid parameter type for 'uri', expected: string", r
    r = q.cmd("qmp_capabilities")
    assert r["error"]["class"] == "CommandNotFound", r
    assert q.cmd("migrate")["error"]["desc"] == "Parameter 'uri' is missing"
    r = q.cmd("migrate-set-parameters", **{"downtime-limit": "soon"})
    assert r["error"]["desc"] == "Invalid parameter type for 'downtime-limit', expected: integer"
    assert "defer" in q.cmd("migrate-incoming", uri="tcp:127.0.0.1:1")["error"]["desc"]
    # A member or argument nothing takes is refused, as QEMU does: a misspelt one would
    # otherwise succeed without doing anything.
    q.send_raw(b'{"execute": "query-status", "bogus": 1, "id": 8}')
    assert q.reply() == {"error": {"class": "GenericError",
                                   "desc": "QMP input member 'bogus' is unexpected"}, "id": 8}
    r = q.cmd("query-status", bogus=1)
    assert r["error"]["desc"] == "Parameter 'bogus' is unexpected", r
    r = q.cmd("migrate-set-parameters", **{"max-bandwith": 1})
    assert r["error"]["desc"] == "Parameter 'max-bandwith' is unexpected", r
    r = q.cmd("migrate-set-capabilities", capabilities=[{"capability": "auto-converge",
                                                         "state": True, "x": 1}])
    assert r["error"]["desc"] == "Parameter 'capabilities[0].x' is unexpected", r
    assert q.ok("query-migrate-capabilities") == [{"capability": "auto-converge",
                                                   "state": False}]
    # \u0000 would end the string early ("stop\u0000junk" would stop): refused, as in QEMU.
    q.send_raw(b'{"execute": "stop\\u0000junk", "id": 9}')
    assert q.reply()["error"] == {"class": "GenericError",
                                  "desc": "JSON parse error, \\u0000 is not supported"}
    assert q.ok("query-status")["status"] == "running"
    # No comments, as in QEMU: yajl would take one, and the braces in it would end the command
    # early. The '/' is refused, and so is what follows it, up to the next command.
    q.send_raw(b'{"execute": "stop" /* } */ }\n{"execute": "query-status", "id": "after"}')
    errors = []
    while True:
        r = q.reply()
        if r.get("id") == "after":
            break
        errors.append(r)
    assert errors and errors[0]["error"]["desc"] == "JSON parse error, stray '/'", errors
    assert all("error" in e for e in errors), errors
    assert r["return"]["status"] == "running", r
    # Two commands in one write, and one split over two writes, with string and number ids.
    q.send_raw(b'{"execute": "query-status", "id": "a"}{"execute": "query-status", "id": 2}')
    assert [q.reply()["id"], q.reply()["id"]] == ["a", 2]
    q.send_raw(b'{"execute": "query-st')
    time.sleep(0.1)
    q.send_raw(b'atus", "arguments": {}}')
    assert q.reply()["return"]["status"] == "running"
    # A command too big for the monitor gets an error, and what follows it its answer.
    q.send_raw(b'{"execute": "stop", "arguments": {"x": "' + b'}\\"' * (40 << 10) + b'"}}')
    assert q.reply()["error"]["desc"] == "JSON parse error, object too large"
    assert q.ok("query-status")["status"] == "running"


def test_hmp_output_whole_and_monitor_line_ends(tern, tmp_path):
    """human-monitor-command's output comes back whole, however long (it was cut at 8 KB);
    help refuses words that name no command; on the monitor socket a CR LF split over two
    reads is one line end (it used to run an empty command and prompt twice)."""
    path, mon = str(tmp_path / "q"), str(tmp_path / "m")
    t = tern(*qmp_args(path, "-smp", "16", "-monitor", "unix:%s,server,nowait" % mon))
    t.expect(r"memtest: filled")
    q = Qmp(path)
    q.ok("qmp_capabilities")
    hmp = "human-monitor-command"
    out = q.ok(hmp, **{"command-line": "info registers -a"})  # about 850 bytes a vCPU
    assert len(out) > 8192, len(out)
    assert [l for l in out.splitlines() if l.startswith("CPU#")] == \
        ["CPU#%d" % i for i in range(16)], out
    assert out.splitlines()[-1].startswith("EFER="), out[-300:]
    assert q.ok(hmp, **{"command-line": "help a b"}) == \
        "Error: unknown command 'a b' (try 'help')\n"
    assert q.ok(hmp, **{"command-line": "help info status"}) == \
        "info status -- show the VM's run state\n"
    m = Monitor(mon)
    m.s.sendall(b"info status\r")
    assert m._until(b"(tern) ") == "VM status: running\n"
    time.sleep(0.2)  # the \n comes in a read of its own
    m.s.sendall(b"\n")
    time.sleep(0.2)
    assert m.cmd("info kvm") == "kvm support: enabled\n"  # not an extra prompt's ""


def test_slow_reader_and_keepalive_newlines(tern, tmp_path):
    """A client that sends many commands before reading any reply gets every reply, in order
    (they used to be dropped once the socket was full); newlines between commands never fill
    the input buffer (70 KB of them used to cost the next command its reply)."""
    t, q = start(tern, tmp_path)
    q.send_raw(b"\n" * (70 << 10) + b'{"execute": "query-status", "id": 1}')
    r = q.reply()
    assert r["id"] == 1 and r["return"]["status"] == "running", r
    n = 500  # help is 1-2 KB: far more than the socket holds
    q.send_raw(b"".join(b'{"execute": "human-monitor-command", "id": %d, '
                        b'"arguments": {"command-line": "help"}}' % i for i in range(n)))
    time.sleep(0.5)
    for i in range(n):
        r = q.reply()
        assert r["id"] == i and "migrate_cancel" in r["return"], r
    assert q.ok("query-status")["status"] == "running"


def test_shutdown_event_names_its_cause(tern, tmp_path):
    t, q = start(tern, tmp_path)
    t.proc.send_signal(signal.SIGTERM)
    q.event("SHUTDOWN", guest=False, reason="host-signal")
    assert t.wait(10) == 0


def test_guest_panic_through_pvpanic(tern, tmp_path):
    """A guest that reports a panic at QEMU's pvpanic port: GUEST_PANICKED, then SHUTDOWN with
    QEMU's reason, and tern ends with status 1 and a line that says so."""
    t, q = start(tern, tmp_path)
    t.send("panic\r")
    t.expect(r"panic: reported")
    q.event("GUEST_PANICKED", action="poweroff")
    q.event("SHUTDOWN", guest=True, reason="guest-panic")
    assert t.wait(10) == 1
    assert "tern: guest panicked (pvpanic)" in t.text()


def test_too_many_clients_are_told(tern, tmp_path):
    """The client past the last slot hears why before the socket closes."""
    path, mon = str(tmp_path / "q"), str(tmp_path / "m")
    tern(*qmp_args(path, "-monitor", "unix:%s,server,nowait" % mon)).expect(r"memtest: filled")

    def until_closed(sock):
        out = b""
        while True:
            d = sock.recv(4096)
            if not d:
                return out
            out += d

    held = [Qmp(path) for _ in range(4)]
    assert b'"desc": "too many QMP clients"' in until_closed(connect_unix(path, 10))
    held += [Monitor(mon) for _ in range(8)]  # each has its slot once it has its prompt
    assert until_closed(connect_unix(mon, 10)) == b"Error: too many monitor clients\n"
    assert held[0].ok("qmp_capabilities") == {}


def test_stop_cont_hmp_and_quit(tern, tmp_path):
    t, q = start(tern, tmp_path)
    assert q.ok("query-status") == {"status": "running", "singlestep": False, "running": True}
    q.ok("stop")
    q.event("STOP")
    assert q.ok("query-status")["status"] == "paused"
    assert q.ok("human-monitor-command", **{"command-line": "info status"}) == \
        "VM status: paused\n"
    q.ok("cont")
    q.event("RESUME")
    assert q.ok("query-status")["running"] is True
    # The guest really runs again: it answers on its console.
    mark = len(t.out)
    t.send(b"check\r")
    t.expect(r"memtest: ok", start=mark)
    out = q.ok("human-monitor-command", **{"command-line": "stop " + "x" * 2000})
    assert out == "Error: line too long (at most 1023 characters)\n", out
    out = q.ok("human-monitor-command", **{"command-line": "no_such_thing"})
    assert out.startswith("Error: unknown command 'no_such_thing'"), out
    params = {"downtime-limit": 300, "cpu-throttle-initial": 20, "cpu-throttle-increment": 10,
              "max-cpu-throttle": 99, "max-bandwidth": 0}
    assert q.ok("query-migrate-parameters") == params
    q.ok("migrate-set-parameters", **{"downtime-limit": 50, "max-bandwidth": 1 << 30,
                                      "cpu-throttle-increment": 5})
    params.update({"downtime-limit": 50, "max-bandwidth": 1 << 30, "cpu-throttle-increment": 5})
    assert q.ok("query-migrate-parameters") == params
    # All or none, as in QEMU: downtime-limit stays as it was.
    r = q.cmd("migrate-set-parameters", **{"downtime-limit": 60, "cpu-throttle-initial": 0})
    assert r["error"]["desc"] == \
        "Parameter 'cpu-throttle-initial' expects an integer in the range of 1 to 99", r
    assert q.ok("query-migrate-parameters") == params
    caps = [{"capability": "auto-converge", "state": False}]
    assert q.ok("query-migrate-capabilities") == caps
    q.ok("migrate-set-capabilities", capabilities=[{"capability": "auto-converge",
                                                    "state": True}])
    caps[0]["state"] = True
    assert q.ok("query-migrate-capabilities") == caps
    r = q.cmd("migrate-set-capabilities", capabilities=[{"capability": "xbzrle", "state": True}])
    assert r["error"]["desc"] == "Parameter 'capability' does not accept value 'xbzrle'", r
    r = q.cmd("migrate-set-capabilities", capabilities={"auto-converge": True})
    assert r["error"]["desc"] == \
        "Invalid parameter type for 'capabilities', expected: array", r
    assert q.ok("query-migrate") == {"status": "none"}
    assert q.cmd("quit") == {"return": {}}
    q.event("SHUTDOWN", guest=False, reason="host-qmp-quit")
    assert t.wait(10) == 0
    assert not os.path.exists(tmp_path / "q")


def test_migrate_over_qmp(tern, tmp_path):
    """A program drives both sides: -incoming defer, migrate-incoming, migrate, events."""
    a_path, b_path = str(tmp_path / "a"), str(tmp_path / "b")
    port = free_port()
    a = tern(*qmp_args(a_path))
    a.expect(r"memtest: filled")
    b = tern(*qmp_args(b_path, "-incoming", "defer"))
    qa, qb = Qmp(a_path), Qmp(b_path)
    qa.ok("qmp_capabilities")
    qb.ok("qmp_capabilities")
    assert qb.ok("query-status") == {"status": "inmigrate", "singlestep": False,
                                     "running": False}
    # As QEMU: stop and cont on a waiting destination choose how the guest arrives.
    qb.ok("stop")
    qb.ok("cont")
    assert qb.ok("query-status")["status"] == "inmigrate"
    qb.ok("migrate-incoming", uri="tcp:127.0.0.1:%d" % port)
    again = qb.cmd("migrate-incoming", uri="tcp:127.0.0.1:1")["error"]["desc"]
    assert again == "the incoming migration has already been started", again
    qa.ok("migrate", uri="tcp:127.0.0.1:%d" % port)
    qa.event("MIGRATION", status="setup")
    qa.event("MIGRATION", status="completed")
    qa.event("STOP")
    info = qa.ok("query-migrate")
    assert info["status"] == "completed", info
    assert info["total-time"] >= info["downtime"] >= 0
    assert info["ram"]["transferred"] > 0 and info["ram"]["normal"] > 0
    assert info["ram"]["total"] == 128 << 20
    qb.event("RESUME")
    qb.event("MIGRATION", status="completed")
    assert qb.ok("query-status")["status"] == "running"
    assert qb.ok("query-migrate")["status"] == "completed"
    # Never on both: the source refuses to go on.
    assert qa.ok("query-status") == {"status": "postmigrate", "singlestep": False,
                                     "running": False}
    r = qa.cmd("cont")
    assert "migrated away" in r["error"]["desc"], r
    # force (tern's, as the monitor's cont -f) is for a hand-over never confirmed: not this one.
    r = qa.cmd("cont", force=True)
    assert "migrated away" in r["error"]["desc"], r
    r = qa.cmd("cont", force="yes")
    assert r["error"]["desc"] == "Invalid parameter type for 'force', expected: boolean", r
    mark = len(b.out)
    b.send(b"check\r")
    b.expect(r"memtest: ok", start=mark)


def test_migrate_again_at_once_after_a_failure(tern, tmp_path):
    """A program that hears a migration failed (its MIGRATION event) and tries again at once is
    taken, not refused: the failed one was told while its thread still cleaned up, and the
    next migrate found it "already in progress"."""
    t, q = start(tern, tmp_path)
    for _ in range(10):
        q.ok("migrate", uri="file:%s" % tmp_path)
        q.event("MIGRATION", status="failed")
    info = q.ok("query-migrate")
    assert info["status"] == "failed" and "Is a directory" in info["error-desc"], info
    assert q.ok("query-status")["status"] == "running"
