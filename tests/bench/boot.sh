#!/usr/bin/env bash
# Boot benchmark: medians of N boots of the test guest (128 MiB), figures printed, never asserted.
#   tern, from its exec to the guest's first instruction (the guest writes 1 to port 0x3F0 and
#   tern stamps the moment) and to its "Booted up" marker (port 0x3F0 = 123, as OSv);
#   tern and QEMU (Debian's qemu-system-x86, microvm, the same guest by PVH), from the exec to the
#   "Booted up" line on the serial console, and the resident memory of the VMM beyond the guest's
#   own pages (/proc/PID/smaps once the guest is up), with the ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10}
exec /usr/bin/python3 - "$N" <<'PY'
import os, re, shutil, statistics, subprocess, sys, time
n = int(sys.argv[1])
GUEST, MEM_KIB = "build/guest/guest.elf", 128 * 1024
QEMU = shutil.which("qemu-system-x86_64")
CMDS = {"tern": ["build/tern", "-kernel", GUEST, "-nographic", "-m", "128M"],
        "qemu": [QEMU, "-enable-kvm", "-cpu", "host", "-M", "microvm,acpi=off,x-option-roms=off",
                 "-m", "128M", "-kernel", GUEST, "-display", "none", "-nodefaults",
                 "-no-user-config"]}


def med(xs):
    return "median %.2f (min %.2f, max %.2f)" % (statistics.median(xs), min(xs), max(xs))


def trace_marks():
    """tern's own stamps of the first instruction and of 'Booted up', in ms after the exec."""
    t0 = time.time_ns()
    p = subprocess.run(CMDS["tern"] + ["-serial", "none", "-append", "poweroff"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=dict(os.environ, TERN_BOOT_TRACE="1"), timeout=30)
    marks = dict(re.findall(rb"boot-trace (\w+) (\d+)", p.stdout))
    if b"entry" not in marks or b"booted" not in marks:
        sys.exit("boot.sh: no boot-trace marks in tern's output:\n"
                 + p.stdout.decode(errors="replace"))
    return [(int(marks[k]) - t0) / 1e6 for k in (b"entry", b"booted")]


def extra_rss_kib(pid):
    """Resident KiB of the process beyond its largest mapping of guest RAM's size or more."""
    total = guest = size = 0
    for line in open("/proc/%d/smaps" % pid):
        f = line.split()
        if f[0] == "Size:":
            size = int(f[1])
        elif f[0] == "Rss:":
            total += int(f[1])
            if size >= MEM_KIB:
                guest = max(guest, int(f[1]))
    return total - guest


def serial_boot(vmm):
    """ms from the exec to the 'Booted up' line on the serial console, and the extra RSS."""
    t0 = time.monotonic()
    p = subprocess.Popen(CMDS[vmm] + ["-serial", "stdio"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for line in p.stdout:
            if line.startswith(b"Booted up"):
                booted = (time.monotonic() - t0) * 1e3
                time.sleep(0.5)  # the guest idles; the VMM has set up all it will
                return booted, extra_rss_kib(p.pid)
        sys.exit("boot.sh: %s ended before 'Booted up'" % vmm)
    finally:
        p.kill()
        p.wait()


marks = [trace_marks() for _ in range(n)]
print("boot benchmark: %d boots of %s, 128M" % (n, GUEST))
print("  tern exec -> first guest instruction: %s ms" % med([m[0] for m in marks]))
print("  tern exec -> 'Booted up' marker:      %s ms" % med([m[1] for m in marks]))
res = {}
for vmm in ("tern", "qemu") if QEMU else ("tern",):
    runs = [serial_boot(vmm) for _ in range(n)]
    res[vmm] = [statistics.median(r[i] for r in runs) for i in (0, 1)]
    print("  %-4s exec -> 'Booted up' on serial:   %s ms; memory beyond guest RAM: median %d KiB"
          % (vmm, med([r[0] for r in runs]), res[vmm][1]))
if "qemu" in res:
    print("  ratio tern/qemu: boot %.3f, memory %.3f"
          % tuple(res["tern"][i] / res["qemu"][i] for i in (0, 1)))
PY
