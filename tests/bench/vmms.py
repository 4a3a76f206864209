"""What the Python benchmarks share: whether this machine's KVM runs a guest, QEMU's command
line for the test guest (microvm: virtio-mmio devices, which QEMU announces on the guest's
cmdline as tern does), and how a benchmark ends when it is stopped."""
import os
import shutil
import signal
import sys

GUEST = "build/guest/guest.elf"


def kvm_ok():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


def qemu_microvm(*devices):
    """QEMU on the test guest with 128M and devices, with KVM where it can, else under TCG."""
    accel = ["-enable-kvm", "-cpu", "host"] if kvm_ok() else ["-accel", "tcg"]
    return [shutil.which("qemu-system-x86_64"), "-M", "microvm,acpi=off,x-option-roms=off",
            *accel, "-m", "128M", "-nodefaults", "-no-user-config", "-nographic",
            "-serial", "stdio", "-global", "virtio-mmio.force-legacy=false", "-kernel", GUEST,
            *devices]


def bench_main(main):
    """Runs main so that SIGTERM and SIGHUP (a kill, a closed terminal) unwind as Ctrl-C does:
    the finally blocks stop the guests and the temporary files go (killed outright, they
    stayed); and Ctrl-C ends it with 130, without a traceback."""
    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
