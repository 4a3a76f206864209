"""A TCP proxy between a migration source and destination that understands tern's stream
format, so tests can cut the connection or flip a byte at a chosen record."""
import socket
import struct
import threading
import time

REC = {1: "HELLO", 2: "ACCEPT", 3: "REFUSE", 4: "PAGES", 5: "ZERO", 6: "ROUND", 7: "DEVICES",
       8: "END", 9: "READY", 10: "GO", 11: "ERROR", 12: "FRAME", 13: "SYNC", 14: "SYNCED",
       15: "TAKEN"}


class MigProxy:
    """Listens on 127.0.0.1:port, forwards to target. action(kind, nbytes) for the source's
    records decides: 'pass', 'cut' (close both sides before forwarding this record) or 'flip'
    (flip one payload byte). What the destination answers passes while .back_gate is set (it
    is at first): clear it to hold the answers back."""

    def __init__(self, target_port, action=None):
        self.target = ("127.0.0.1", target_port)
        self.action = action or (lambda kind, n: "pass")
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.seen = []
        self.done = threading.Event()
        self.back_gate = threading.Event()
        self.back_gate.set()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            a, _ = self.lsock.accept()
            b = socket.create_connection(self.target)
        except OSError:
            self.done.set()
            return
        self.conns = (a, b)
        threading.Thread(target=self._back, args=(b, a), daemon=True).start()
        try:
            self._forward(a, b)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.done.set()

    def _back(self, b, a):
        try:
            while True:
                d = b.recv(65536)
                if not d:
                    break
                self.back_gate.wait()
                a.sendall(d)
        except OSError:
            pass
        try:
            a.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def wait_seen(self, kind, timeout=20):
        """Until the source has sent a record of kind."""
        deadline = time.monotonic() + timeout
        while kind not in self.seen:
            assert time.monotonic() < deadline, self.seen
            time.sleep(0.02)

    def hang_up(self):
        """Ends both connections at once, as a relay (ssh -L, socat) that dies does: each
        side hears the end of the stream, though the other side said nothing."""
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def _read(s, n):
        buf = b""
        while len(buf) < n:
            d = s.recv(n - len(buf))
            if not d:
                raise OSError("eof")
            buf += d
        return buf

    def _forward(self, a, b):
        b.sendall(self._read(a, 16))  # stream header
        while True:
            hdr = self._read(a, 16)
            rtype, length, _arg = struct.unpack("<IIQ", hdr)
            body = bytearray(self._read(a, length + 4))
            kind = REC.get(rtype, str(rtype))
            self.seen.append(kind)
            act = self.action(kind, length)
            if act == "cut":
                return
            if act == "flip" and length:
                body[length // 2] ^= 0x40
            b.sendall(hdr + bytes(body))


def holding(target_port, kind, timeout=60):
    """A proxy that holds the source's first record of kind, and all after it, until its
    .release is set."""
    release = threading.Event()

    def hold(k, n):
        if k == kind:
            release.wait(timeout)
        return "pass"
    proxy = MigProxy(target_port, hold)
    proxy.release = release
    return proxy


def holding_answers(target_port, kind):
    """A proxy that passes every record, and holds the destination's answers from the source's
    first record of kind on, until its .back_gate is set."""
    proxy = MigProxy(target_port)

    def hold(k, n):
        if k == kind:
            proxy.back_gate.clear()
        return "pass"
    proxy.action = hold
    return proxy


def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 & -(crc & 1))
    return crc ^ 0xffffffff


def _fdt_prop(fdt, node, prop):
    """Offset and length of property prop of node (a child of the root) in a state tree."""
    _magic, _size, off_struct, off_strings = struct.unpack(">IIII", fdt[:16])
    pos, path = off_struct, []
    while True:
        (tag,) = struct.unpack(">I", fdt[pos:pos + 4])
        pos += 4
        if tag == 1:  # BEGIN_NODE
            end = fdt.index(b"\0", pos)
            path.append(fdt[pos:end].decode())
            pos = (end + 1 + 3) & ~3
        elif tag == 2:  # END_NODE
            path.pop()
        elif tag == 3:  # PROP
            length, nameoff = struct.unpack(">II", fdt[pos:pos + 8])
            pos += 8
            name_at = off_strings + nameoff
            name = fdt[name_at:fdt.index(b"\0", name_at)].decode()
            if path == ["", node] and name == prop:
                return pos, length
            pos = (pos + length + 3) & ~3
        elif tag == 9:  # END
            raise KeyError("%s/%s" % (node, prop))


def patch_device_state(src, dst, node, prop, at, value):
    """Copies snapshot file src to dst with byte at of the device state's node/prop set to
    value, its record's checksum made right again: a stream that is well formed but carries
    a state the device must refuse."""
    data = bytearray(open(src, "rb").read())
    pos = 16
    while pos < len(data):
        rtype, length, _arg = struct.unpack("<IIQ", data[pos:pos + 16])
        if REC.get(rtype) == "DEVICES":
            fdt = pos + 16
            off, plen = _fdt_prop(bytes(data[fdt:fdt + length]), node, prop)
            assert at < plen, (node, prop, plen)
            data[fdt + off + at] = value
            crc = crc32c(bytes(data[pos:fdt + length]))
            data[fdt + length:fdt + length + 4] = struct.pack("<I", crc)
            open(dst, "wb").write(bytes(data))
            return
        pos += 16 + length + 4
    raise KeyError("no DEVICES record in %s" % src)


def record(rtype, payload=b"", arg=0):
    """One record as tern writes it: header, payload, CRC32C over both."""
    hdr = struct.pack("<IIQ", rtype, len(payload), arg)
    return hdr + payload + struct.pack("<I", crc32c(hdr + payload))


class FakeDestination:
    """A destination that is only a socket on 127.0.0.1:port: it reads the source's records
    and answers each one of a kind in answers (e.g. {"HELLO": record(2)}) with those bytes as
    they are, torn or wrong as a test wants them. It keeps the connection open until the
    source closes it."""

    def __init__(self, answers):
        self.answers = answers
        self.seen = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            s, _ = self.lsock.accept()
            MigProxy._read(s, 16)  # stream header
            while True:
                rtype, length, _arg = struct.unpack("<IIQ", MigProxy._read(s, 16))
                MigProxy._read(s, length + 4)
                kind = REC.get(rtype, str(rtype))
                self.seen.append(kind)
                if kind in self.answers:
                    s.sendall(self.answers[kind])
        except OSError:
            pass
