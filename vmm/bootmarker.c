#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "vmm/board.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define BOOTMARKER_PORT 0x3f0
#define BOOTMARKER_ENTRY 1
#define BOOTMARKER_BOOTED 123

struct bootmarker {
	int trace;
};

static void bootmarker_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len,
			  bool is_write)
{
	struct bootmarker *b = opaque;
	struct timespec ts;

	if (!is_write) {
		data[0] = 0xff;
		return;
	}
	if (!b->trace || (data[0] != BOOTMARKER_ENTRY && data[0] != BOOTMARKER_BOOTED))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	dprintf(STDERR_FILENO, "tern: boot-trace %s %lld\n",
		data[0] == BOOTMARKER_ENTRY ? "entry" : "booted",
		(long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

static void bootmarker_destroy(void *opaque)
{
	free(opaque);
}

static const struct device_ops bootmarker_ops = {
	.name = "bootmarker@3f0",
	.destroy = bootmarker_destroy,
};

int bootmarker_create(struct vm *vm, int trace)
{
	struct bootmarker *b = calloc(1, sizeof(*b));

	if (!b) {
		perrorf("bootmarker: calloc");
		return -1;
	}
	b->trace = trace;
	if (vm_register_device(vm, &bootmarker_ops, b) < 0) {
		free(b);
		return -1;
	}
	return iobus_register(&vm->pio, BOOTMARKER_PORT, 1, bootmarker_io, b);
}
