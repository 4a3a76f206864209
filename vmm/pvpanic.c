/*
 * QEMU's pvpanic device at port 0x505, which the DSDT names QEMU0001 (guest-boot/acpi.c):
 * Linux's pvpanic driver writes "panicked" from its panic notifier, so a guest that crashes
 * ends tern with status 1 and a line that says so, instead of rebooting (an exit with 0) or
 * hanging where nobody sees it. A guest that loads a crash kernel says so too, and runs on.
 */
#include <pthread.h>
#include <stdlib.h>

#include "guest-boot/boot.h"
#include "vmm/board.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define PVPANIC_PANICKED 0x01
#define PVPANIC_CRASH_LOADED 0x02

struct pvpanic {
	struct vm *vm;
	pthread_mutex_t lock;	/* any vCPU may write */
	struct ratelimit crash_lines;
};

static void pvpanic_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct pvpanic *p = opaque;
	struct vm *vm = p->vm;

	if (!is_write) {
		data[0] = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED; /* what the guest may report */
		return;
	}
	if (data[0] & PVPANIC_PANICKED) {
		vm_event(vm, "GUEST_PANICKED", "{\"action\": \"poweroff\"}");
		vm_request_exit(vm, 1, "guest-panic", "guest panicked (pvpanic)");
	} else if (data[0] & PVPANIC_CRASH_LOADED) {
		pthread_mutex_lock(&p->lock);
		if (ratelimit_pass(&p->crash_lines, "pvpanic"))
			errorf("guest panicked and runs its crash kernel (pvpanic)");
		pthread_mutex_unlock(&p->lock);
	}
}

static void pvpanic_destroy(void *opaque)
{
	struct pvpanic *p = opaque;

	pthread_mutex_destroy(&p->lock);
	free(p);
}

static const struct device_ops pvpanic_ops = {
	.name = "pvpanic@505",
	.destroy = pvpanic_destroy,
};

int pvpanic_create(struct vm *vm)
{
	struct pvpanic *p = calloc(1, sizeof(*p));

	if (!p) {
		perrorf("pvpanic: calloc");
		return -1;
	}
	p->vm = vm;
	pthread_mutex_init(&p->lock, NULL);
	if (vm_register_device(vm, &pvpanic_ops, p) < 0) {
		pvpanic_destroy(p);
		return -1;
	}
	return iobus_register(&vm->pio, BOOT_PVPANIC_PORT, 1, pvpanic_io, p);
}
