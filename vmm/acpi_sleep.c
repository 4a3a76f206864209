/*
 * ACPI's hardware-reduced sleep registers, as the FADT describes them (guest-boot/acpi.c): a
 * guest powers off by writing sleep type 5 (\_S5) with SLP_EN to the control register, and
 * tern exits, as QEMU does on an ACPI power-off. This is how Linux's and OSv's poweroff end;
 * without it they halt with interrupts off, which the in-kernel irqchip never reports, and
 * tern would wait for ever.
 */
#include "guest-boot/boot.h"
#include "vmm/board.h"
#include "vmm/vm.h"

#define SLP_EN 0x20
#define SLP_TYP(v) (((v) >> 2) & 7)

static void acpi_sleep_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len,
			  bool is_write)
{
	struct vm *vm = opaque;

	if (!is_write) {
		data[0] = 0; /* status: no wake event */
		return;
	}
	if (addr == BOOT_SLEEP_CONTROL_PORT && (data[0] & SLP_EN) &&
	    SLP_TYP(data[0]) == BOOT_SLP_TYP_S5)
		vm_request_exit(vm, 0, "guest-shutdown", NULL);
}

int acpi_sleep_create(struct vm *vm)
{
	return iobus_register(&vm->pio, BOOT_SLEEP_CONTROL_PORT, 1, acpi_sleep_io, vm) ||
	       iobus_register(&vm->pio, BOOT_SLEEP_STATUS_PORT, 1, acpi_sleep_io, vm) ? -1 : 0;
}
