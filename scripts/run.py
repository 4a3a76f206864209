#!/usr/bin/env python3
"""Run a guest on tern with OSv's scripts/run.py flags, so that OSv habits carry over.

The guest's console is this terminal (-nographic -serial stdio; C-a x exits, C-a c is the
monitor). Differences from OSv's run.py, all on purpose:
  -m/--memsize   default 512M (OSv: 2G); K/M/G suffixes as QEMU takes them
  -c/--vcpus     default 1 (OSv: 4): a small unikernel rarely needs more, and each vCPU adds
                 a little to a migration's stop
  -p/--hypervisor  kvm only ('auto' means kvm); anything else is an error
  -b/--bridge    default osvbr0, the lab's bridge (scripts/lab.sh; OSv: virbr0). tern attaches
                 its own tap to it, no qemu-bridge-helper: run inside the lab namespace, e.g.
                 ip netns exec ternlab scripts/run.py -n --mac 52:54:30:30:30:30
  -t/--tap TAP   use that tap (implies -n); with an explicit -b, tern also puts it on BRIDGE
  -k/--kernel    accepted: tern always boots the kernel directly (--kernel-path, default
                 build/guest/guest.elf, the test guest)
  -V/--verbose   puts --verbose before the guest's command line, as OSv's does
  -v/--vhost     accepted, with a note: tern has no vhost-net (its I/O thread serves the tap)
  -w/--wait      the guest waits for gdb (tern's -S, and its gdb stub on 127.0.0.1:1234:
                 gdb loader.elf -ex 'target remote :1234', then continue), or for cont in the
                 monitor (C-a c); --nogdb leaves the stub out. OSv's run.py always starts one
                 on port 1234; here only -w or --gdb PORT does, so that several guests can run
                 at once
  -i/--image IMG the guest's disk, as virtio-blk; a raw image (OSv's usr.img is qcow2:
                 qemu-img convert -O raw usr.img usr.raw). No default: without -i, no disk
  --novnc        accepted; tern has no VNC
  -d, -r, -H, -D, -s, -S, -A, -I, -3, -g, --vnc, --api, --forward, --qemu-path
                 refused, each with what to do instead
Networking without -n/-t: none (tern has no user-mode networking).
"""
import argparse
import os
import re
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TERN = os.path.join(ROOT, "build", "tern")
DEFAULT_KERNEL = os.path.join(ROOT, "build", "guest", "guest.elf")
DEFAULT_MEMSIZE = "512M"
DEFAULT_BRIDGE = "osvbr0"
NETDEV_ID = "n0"
# What tern's -m takes (vmm/util.c parse_size): so both accept and refuse the same sizes.
MEMSIZE = r"(size=)?(0[xX][0-9a-fA-F]+|[0-9]+)([kKmMgGtT]([iI]?[bB])?|[bB])?"
NO_USER_NET = "tern has no user-mode networking: use -n on the lab's bridge (scripts/lab.sh)"
NOT_AN_IMAGE = "tern boots kernels, not OSv build trees: use --kernel-path (and -i for the disk)"
ONLY_VIRTIO_BLK = "tern's disk is virtio-blk (what -i gives)"
NO_DISPLAY = "tern has no display: the console is this terminal"
# OSv's flags that mean nothing on tern: (flags, takes a value, what to do instead).
REFUSED = [
    (("--api",), False, NO_USER_NET),
    (("--forward",), True, NO_USER_NET),
    (("-d", "--debug"), False, NOT_AN_IMAGE),
    (("-r", "--release"), False, NOT_AN_IMAGE),
    (("-H", "--no-shutdown"), False, "tern exits when the guest crashes (naming its RIP); "
                                      "to look around first, set a breakpoint with -w and gdb"),
    (("-D", "--detach"), False, "the console is this terminal; run tern itself with "
                                 "-daemonize -serial none"),
    (("-s", "--with-signals"), False, "Ctrl-C goes to the guest; C-a x quits tern"),
    (("-S", "--scsi"), False, ONLY_VIRTIO_BLK),
    (("-A", "--sata"), False, ONLY_VIRTIO_BLK),
    (("-I", "--ide"), False, ONLY_VIRTIO_BLK),
    (("-3", "--vmxnet3"), False, "tern's NIC is virtio-net (what -n gives)"),
    (("-g", "--graphics"), False, NO_DISPLAY),
    (("--vnc",), True, NO_DISPLAY),
    (("--qemu-path",), True, "tern runs no QEMU: --tern PATH names the tern binary"),
]
OTHER_HYPERVISORS = ("qemu", "none", "xen", "xenpv", "firecracker", "qemu_microvm", "vmware",
                     "virtualbox", "hyperkit", "cloud-hypervisor")


class Refuse(argparse.Action):
    """An OSv flag with no meaning here: an error that says what to use instead."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error("%s: %s" % (option_string, self.help))


def parser():
    ap = argparse.ArgumentParser(
        prog="run.py", description=__doc__.split("\n\n")[0],
        epilog="\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--memsize", default=DEFAULT_MEMSIZE,
                    help="guest memory, e.g. 128M, 1G (default %s)" % DEFAULT_MEMSIZE)
    ap.add_argument("-c", "--vcpus", default="1", help="number of vCPUs (default 1)")
    ap.add_argument("-p", "--hypervisor", default="kvm",
                    help="hypervisor: kvm (the only one tern is; 'auto' means kvm)")
    ap.add_argument("-n", "--networking", action="store_true",
                    help="tap networking: a tap on BRIDGE (needs root; see -b, -t)")
    ap.add_argument("-b", "--bridge", default=None,
                    help="bridge for tap networking (default %s)" % DEFAULT_BRIDGE)
    ap.add_argument("-t", "--tap", default=None, help="use this tap interface (implies -n)")
    ap.add_argument("-v", "--vhost", action="store_true",
                    help="accepted (OSv's -nv); tern has no vhost-net")
    ap.add_argument("--mac", default=None, help="MAC address of the NIC, e.g. 52:54:30:30:30:30")
    ap.add_argument("-e", "--execute", default=None, metavar="CMD",
                    help="kernel command line (tern's -append)")
    ap.add_argument("-k", "--kernel", action="store_true",
                    help="boot the kernel directly (what tern always does)")
    ap.add_argument("--kernel-path", default=DEFAULT_KERNEL, metavar="PATH",
                    help="kernel to boot (default: the test guest, build/guest/guest.elf)")
    ap.add_argument("-V", "--verbose", action="store_true",
                    help="put --verbose before the guest's command line (OSv's verbose boot)")
    ap.add_argument("-w", "--wait", action="store_true",
                    help="do not start the guest until gdb continues it (gdb stub on "
                    "127.0.0.1:1234) or 'cont' in the monitor (tern's -S)")
    ap.add_argument("-i", "--image", default=None, metavar="IMG",
                    help="a raw disk image for the guest (virtio-blk)")
    ap.add_argument("--novnc", action="store_true", help="accepted; tern has no VNC")
    ap.add_argument("--nogdb", action="store_true", help="no gdb stub, even with -w or --gdb")
    ap.add_argument("--gdb", default=None, metavar="PORT",
                    help="a gdb stub on 127.0.0.1:PORT (with -w: instead of 1234)")
    ap.add_argument("--pass-args", action="append", default=[], metavar="ARGS",
                    help="more arguments for tern, split like a shell does; may repeat. "
                         "ARGS starting with '-' need a leading space or '=' "
                         "(--pass-args ' -incoming tcp:0:4444', --pass-args='-name vm')")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the tern command line and exit")
    ap.add_argument("--tern", default=DEFAULT_TERN, metavar="PATH",
                    help="the tern binary (default build/tern)")
    for flags, value, why in REFUSED:
        ap.add_argument(*flags, action=Refuse, nargs=1 if value else 0, help=why)
    return ap


def tern_command(a, ap):
    """The tern argv for the parsed options; errors go through ap.error (exit 2)."""
    hv = a.hypervisor.lower()
    if hv == "auto":
        hv = "kvm"
    if hv != "kvm":
        known = " (it runs OSv on %s; this launcher only on tern)" % hv \
            if hv in OTHER_HYPERVISORS else ""
        ap.error("-p %s: tern is a KVM VMM, use -p kvm%s" % (a.hypervisor, known))
    if not re.fullmatch(MEMSIZE, a.memsize):
        ap.error("-m %s: not a memory size (e.g. 512M, 1G)" % a.memsize)
    if not re.fullmatch("[0-9]+", a.vcpus) or int(a.vcpus) < 1:
        ap.error("-c %s: not a number of vCPUs" % a.vcpus)
    # Not empty: execvp('') raises ValueError, a traceback rather than one line.
    for flag, path in (("--tern", a.tern), ("--kernel-path", a.kernel_path)):
        if not path:
            ap.error("%s '': not a path" % flag)

    cmd = [a.tern, "-kernel", a.kernel_path, "-m", a.memsize, "-smp", a.vcpus,
           "-nographic", "-serial", "stdio"]
    execute = a.execute
    if a.verbose:
        execute = "--verbose" + (" " + execute if execute else "")
    if execute is not None:
        cmd += ["-append", execute]
    if a.gdb is not None and not (re.fullmatch("[0-9]{1,5}", a.gdb) and 0 < int(a.gdb) < 65536):
        ap.error("--gdb %s: not a TCP port" % a.gdb)
    if a.wait:
        cmd.append("-S")
    if (a.wait or a.gdb is not None) and not a.nogdb:
        cmd += ["-gdb", "tcp:127.0.0.1:%d" % int(a.gdb or 1234)]
    if a.image is not None:
        # tern's -drive splits at commas (QEMU doubles them to escape; tern does not).
        if not a.image or "," in a.image:
            ap.error("-i %r: not a usable image path (empty, or with a ',')" % a.image)
        cmd += ["-drive", "file=%s,if=virtio" % a.image]

    networking = a.networking or a.tap is not None
    for flag, name in (("-t", a.tap), ("-b", a.bridge)):
        if name is not None and not re.fullmatch(r"[^\s,=/]{1,15}", name):
            ap.error("%s %r: not an interface name (1-15 characters, no ',', '=' or '/')"
                     % (flag, name))
    if networking:
        if a.tap is not None:
            netdev = "tap,id=%s,ifname=%s,script=no,downscript=no" % (NETDEV_ID, a.tap)
            if a.bridge is not None:
                netdev += ",br=%s" % a.bridge
        else:
            netdev = "bridge,id=%s,br=%s" % (NETDEV_ID, a.bridge or DEFAULT_BRIDGE)
        device = "virtio-net,netdev=%s" % NETDEV_ID
        if a.mac is not None:
            if not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", a.mac) or \
                    int(a.mac[:2], 16) & 1:
                ap.error("--mac %s: not a unicast MAC address like 52:54:00:12:34:56" % a.mac)
            if int(a.mac.replace(":", ""), 16) == 0:
                ap.error("--mac %s: the all-zero address cannot be a NIC's" % a.mac)
            device += ",mac=%s" % a.mac
        cmd += ["-netdev", netdev, "-device", device]
    elif a.mac is not None or a.bridge is not None:
        ap.error("--mac/--bridge need tap networking (-n or -t TAP)")

    for extra in a.pass_args:
        try:
            cmd += shlex.split(extra)
        except ValueError as e:
            ap.error("--pass-args %r: %s" % (extra, e))
    return cmd


def main(argv=None):
    ap = parser()
    a = ap.parse_args(argv)
    cmd = tern_command(a, ap)
    if a.vhost:
        print("run.py: note: -v: tern has no vhost-net; its I/O thread serves the tap",
              file=sys.stderr)
    if a.dry_run:
        print(shlex.join(cmd))
        return 0
    if not os.access(a.tern, os.X_OK) and os.sep in a.tern:
        print("run.py: %s: no tern binary there (build it with make, or use --tern)" % a.tern,
              file=sys.stderr)
        return 1
    if not os.path.exists(a.kernel_path):
        print("run.py: %s: no such kernel (make guest builds the test guest, or use "
              "--kernel-path)" % a.kernel_path, file=sys.stderr)
        return 1
    sys.stdout.flush()
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        print("run.py: cannot run %s: %s" % (cmd[0], e.strerror), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
