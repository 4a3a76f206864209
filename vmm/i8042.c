#include "guest-boot/boot.h"
#include "vmm/board.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define I8042_DATA 0x60
#define I8042_CMD BOOT_RESET_PORT
#define I8042_CMD_RESET BOOT_RESET_VALUE
#define I8042_STATUS_SYS 0x04	/* self-test passed; input and output buffers empty */

static void i8042_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct vm *vm = opaque;

	if (!is_write) {
		data[0] = addr == I8042_CMD ? I8042_STATUS_SYS : 0;
		return;
	}
	if (addr == I8042_CMD && data[0] == I8042_CMD_RESET)
		vm_request_exit(vm, 0, "guest-reset", NULL);
}

int i8042_create(struct vm *vm)
{
	return iobus_register(&vm->pio, I8042_DATA, 1, i8042_io, vm) ||
	       iobus_register(&vm->pio, I8042_CMD, 1, i8042_io, vm) ? -1 : 0;
}
