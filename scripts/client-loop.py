#!/usr/bin/env python3
"""A client loop like OSv's cli `loop`: GET /os/date on one keep-alive connection at a fixed
interval, printing the guest's date, a counter, the client's time and the delta since the last
answer. It never reconnects silently: a reset is counted and reported.

usage: client-loop.py HOST [--port 8000] [--interval-ms 100] [--duration S] [--summary FILE]
"""
import argparse
import http.client
import json
import math
import signal
import sys
import time

DAY = 86400  # seconds: more than any loop needs, less than time.sleep's limit


def number(low, high=math.inf, kind=float, above=False):
    """An argparse type: a finite number from low (above it, with above) to high, else a usage
    error, not a traceback from time.sleep or the socket later."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            v = None
        if v is None or not math.isfinite(v) or not low <= v <= high or (above and v == low):
            raise argparse.ArgumentTypeError("%r: not a number %s %s%s" % (
                text, ">" if above else ">=", low, "" if high == math.inf else " and <= %s" % high))
        return v
    return parse


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("--port", type=number(1, 65535, int), default=8000)
    ap.add_argument("--interval-ms", type=number(0, DAY * 1000), default=100)
    ap.add_argument("--duration", type=number(0), default=0,
                    help="seconds; 0 = until SIGINT/SIGTERM")
    ap.add_argument("--timeout", type=number(0, DAY, above=True), default=5,
                    help="seconds one request may take")
    ap.add_argument("--summary", help="write the summary as JSON here")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    conn = None
    count = errors = resets = 0
    max_delta = 0.0
    last = None
    start = time.monotonic()
    while not stop and (not a.duration or time.monotonic() - start < a.duration):
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(a.host, a.port, timeout=a.timeout)
                conn.connect()
                # A connection the server closed fails the next request: http.client would
                # otherwise open a new one unseen.
                conn.auto_open = 0
            conn.request("GET", "/os/date")
            r = conn.getresponse()
            body = r.read().decode(errors="replace")
            if r.status != 200:
                raise http.client.HTTPException("status %d" % r.status)
            date = json.loads(body)
        except (ConnectionError, http.client.HTTPException, OSError, ValueError) as e:
            errors += 1
            if isinstance(e, ConnectionResetError) or "reset" in str(e).lower():
                resets += 1
            why = "the server closed the connection (Connection: close)" \
                if isinstance(e, http.client.NotConnected) else str(e) or type(e).__name__
            print("error: %s" % why, flush=True)
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(a.interval_ms / 1000)
            continue
        now = time.monotonic()
        delta = (now - last) * 1000 if last is not None else 0.0
        if last is not None:
            max_delta = max(max_delta, delta)
        last = now
        count += 1
        if not a.quiet:
            print("%s  #%d  %s  delta %.1f ms" % (date, count, time.strftime("%H:%M:%S"), delta),
                  flush=True)
        time.sleep(max(0, a.interval_ms / 1000 - (time.monotonic() - t0)))
    summary = {"requests": count, "errors": errors, "resets": resets,
               "max_delta_ms": round(max_delta, 1), "interval_ms": a.interval_ms}
    print("client: %d requests, %d errors, %d resets, largest delta %.1f ms"
          % (count, errors, resets, max_delta), flush=True)
    if a.summary:
        try:
            with open(a.summary, "w") as f:
                json.dump(summary, f)
        except OSError as e:
            print("client-loop: --summary %s: %s" % (a.summary, e.strerror), file=sys.stderr)
            return 1
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
