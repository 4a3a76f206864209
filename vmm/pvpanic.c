/*
 * QEMU's pvpanic device at port 0x505, which the DSDT names QEMU0001 (guest-boot/acpi.c):
 * Linux's pvpanic driver writes "panicked" from its panic notifier, so a guest that crashes
 * ends tern with status 1 and a line that says so, instead of rebooting (an exit with 0) or
 * hanging where nobody sees it. A guest that loads a crash kernel says so too, and runs on.
 */
#include "guest-boot/boot.h"
#include "vmm/board.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define PVPANIC_PANICKED 0x01
#define PVPANIC_CRASH_LOADED 0x02

static void pvpanic_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct vm *vm = opaque;

	if (!is_write) {
		data[0] = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED; /* what the guest may report */
		return;
	}
	if (data[0] & PVPANIC_PANICKED) {
		vm_event(vm, "GUEST_PANICKED", "{\"action\": \"poweroff\"}");
		vm_request_exit(vm, 1, "guest-panic", "guest panicked (pvpanic)");
	} else if (data[0] & PVPANIC_CRASH_LOADED) {
		errorf("guest panicked and runs its crash kernel (pvpanic)");
	}
}

int pvpanic_create(struct vm *vm)
{
	return iobus_register(&vm->pio, BOOT_PVPANIC_PORT, 1, pvpanic_io, vm);
}
