/* The in-kernel PIC pair, IOAPIC and PIT: KVM keeps them, migration moves them. */
#include <stdlib.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "vmm/cpu_state.h"
#include "vmm/state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static const struct {
	const char *name;
	uint32_t id;
} irqchips[] = {
	{ "pic-master", KVM_IRQCHIP_PIC_MASTER },
	{ "pic-slave", KVM_IRQCHIP_PIC_SLAVE },
	{ "ioapic", KVM_IRQCHIP_IOAPIC },
};

static int irqchip_save(void *opaque, void *fdt)
{
	struct vm *vm = opaque;
	struct kvm_pit_state2 pit;

	for (size_t i = 0; i < ARRAY_SIZE(irqchips); i++) {
		struct kvm_irqchip chip = { .chip_id = irqchips[i].id };

		if (ioctl(vm->fd, KVM_GET_IRQCHIP, &chip) < 0) {
			perrorf("irqchip: KVM_GET_IRQCHIP %s", irqchips[i].name);
			return -1;
		}
		if (state_put_blob(fdt, irqchips[i].name, &chip.chip, sizeof(chip.chip)) < 0)
			return -1;
	}
	if (ioctl(vm->fd, KVM_GET_PIT2, &pit) < 0) {
		perrorf("irqchip: KVM_GET_PIT2");
		return -1;
	}
	return state_put_blob(fdt, "pit", &pit, sizeof(pit));
}

static int irqchip_load(void *opaque, const void *fdt, int node)
{
	struct vm *vm = opaque;
	struct kvm_pit_state2 pit;

	for (size_t i = 0; i < ARRAY_SIZE(irqchips); i++) {
		struct kvm_irqchip chip = { .chip_id = irqchips[i].id };

		if (state_get_blob(fdt, node, irqchips[i].name, &chip.chip, sizeof(chip.chip)) < 0)
			return -1;
		if (ioctl(vm->fd, KVM_SET_IRQCHIP, &chip) < 0) {
			perrorf("irqchip: KVM_SET_IRQCHIP %s", irqchips[i].name);
			return -1;
		}
	}
	if (state_get_blob(fdt, node, "pit", &pit, sizeof(pit)) < 0)
		return -1;
	if (ioctl(vm->fd, KVM_SET_PIT2, &pit) < 0) {
		perrorf("irqchip: KVM_SET_PIT2");
		return -1;
	}
	return 0;
}

static const struct device_ops irqchip_ops = {
	.name = "irqchip",
	.save = irqchip_save,
	.load = irqchip_load,
};

int irqchip_state_register(struct vm *vm)
{
	return vm_register_device(vm, &irqchip_ops, vm);
}
