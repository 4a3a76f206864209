#!/usr/bin/env bash
# Boot benchmark: median of N boots of the test guest, measured from the exec of tern to
#   - the guest's first instruction (it writes 1 to port 0x3F0, tern stamps the moment)
#   - the guest's "Booted up" marker (port 0x3F0 = 123, as OSv)
# plus tern's peak RSS. Figures are printed, never asserted.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10}
exec /usr/bin/python3 - "$N" <<'PY'
import os, re, resource, statistics, subprocess, sys, time
n = int(sys.argv[1])
entry, booted, rss = [], [], []
for _ in range(n):
    t0 = time.time_ns()
    p = subprocess.Popen(["build/tern", "-kernel", "build/guest/guest.elf", "-nographic",
                          "-serial", "none", "-m", "128M", "-append", "poweroff"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=dict(os.environ, TERN_BOOT_TRACE="1"))
    out, _ = p.communicate(timeout=30)
    marks = dict(re.findall(rb"boot-trace (\w+) (\d+)", out))
    if b"entry" not in marks or b"booted" not in marks:
        sys.exit("boot.sh: no boot-trace marks in tern's output:\n" + out.decode(errors="replace"))
    entry.append((int(marks[b"entry"]) - t0) / 1e6)
    booted.append((int(marks[b"booted"]) - t0) / 1e6)
    rss.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print("boot benchmark: %d boots of build/guest/guest.elf, 128M" % n)
print("  exec -> first guest instruction: median %.2f ms (min %.2f, max %.2f)"
      % (statistics.median(entry), min(entry), max(entry)))
print("  exec -> 'Booted up':             median %.2f ms (min %.2f, max %.2f)"
      % (statistics.median(booted), min(booted), max(booted)))
print("  tern peak RSS (largest of the runs): %d KiB" % max(rss))
PY
