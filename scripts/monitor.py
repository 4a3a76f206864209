#!/usr/bin/env python3
"""Send monitor (HMP) commands to a tern started with -monitor unix:PATH,server,nowait, and
print their answers: the scripted form of Ctrl-A c.

usage: monitor.py PATH 'info status' ['migrate "tcp:127.0.0.1:4444"' ...]
A blocking `migrate` waits for the migration to end. Exit status 1 when an answer starts with
"Error:", a blocking migrate ends failed or cancelled, or the monitor cannot be reached.
"""
import os
import re
import socket
import sys

PROMPT = re.compile(rb"\(tern\) ")


class Monitor:
    def __init__(self, path, timeout=60):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        self._until_prompt()  # the banner

    def _until_prompt(self):
        while not PROMPT.search(self.buf):
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("the monitor closed the connection")
            self.buf += data
        m = PROMPT.search(self.buf)
        out, self.buf = self.buf[:m.start()], self.buf[m.end():]
        return out.decode(errors="replace")

    def cmd(self, line):
        # As the shell gave it: fsencode takes back the bytes that argv could not decode.
        self.s.sendall(os.fsencode(line) + b"\n")
        if line.strip() in ("quit", "q"):
            return ""  # tern exits; the connection just closes
        return self._until_prompt()


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) > 1 else 2
    try:
        mon = Monitor(argv[1])
        failed = False
        for line in argv[2:]:
            out = mon.cmd(line)
            try:
                sys.stdout.write(out)
                sys.stdout.flush()
            except BrokenPipeError:
                # A reader that has gone (monitor.py ... | head): the commands still go, their
                # answers nowhere, and no traceback at exit.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            failed |= bool(re.match(r"\s*Error:", out) or
                           re.search(r"^migrate: (failed|cancelled):", out, re.M))
    except OSError as e:
        print("monitor.py: %s: %s" % (argv[1], e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
