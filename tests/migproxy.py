"""A TCP proxy between a migration source and destination that understands tern's stream
format, so tests can cut the connection or flip a byte at a chosen record."""
import socket
import struct
import threading

REC = {1: "HELLO", 2: "ACCEPT", 3: "REFUSE", 4: "PAGES", 5: "ZERO", 6: "ROUND", 7: "DEVICES",
       8: "END", 9: "READY", 10: "GO", 11: "ERROR", 12: "FRAME", 13: "SYNC", 14: "SYNCED"}


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
