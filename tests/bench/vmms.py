"""What the Python benchmarks share: whether this machine's KVM runs a guest, and QEMU's command
line for the test guest (microvm: virtio-mmio devices, which QEMU announces on the guest's
cmdline as tern does)."""
import os
import shutil

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
