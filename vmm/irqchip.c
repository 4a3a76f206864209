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

/*
 * KVM_SET_IRQCHIP takes the whole chip, also what the guest can never write: where the IOAPIC
 * answers (a stream could move it off 0xfec00000, under the guest's feet) and which PIC lines
 * may be level-triggered. A stream is trusted no more than the guest: those must be ours.
 */
static int irqchip_check(struct vm *vm, const struct kvm_irqchip *theirs, const char *name)
{
	struct kvm_irqchip ours = { .chip_id = theirs->chip_id };

	if (ioctl(vm->fd, KVM_GET_IRQCHIP, &ours) < 0) {
		perrorf("irqchip: KVM_GET_IRQCHIP %s", name);
		return -1;
	}
	if (theirs->chip_id == KVM_IRQCHIP_IOAPIC &&
	    theirs->chip.ioapic.base_address != ours.chip.ioapic.base_address) {
		errorf("irqchip: the stream's IOAPIC is at %#llx, not %#llx",
		       (unsigned long long)theirs->chip.ioapic.base_address,
		       (unsigned long long)ours.chip.ioapic.base_address);
		return -1;
	}
	if (theirs->chip_id != KVM_IRQCHIP_IOAPIC &&
	    theirs->chip.pic.elcr_mask != ours.chip.pic.elcr_mask) {
		errorf("irqchip: the stream's %s ELCR mask is %#x, not %#x", name,
		       theirs->chip.pic.elcr_mask, ours.chip.pic.elcr_mask);
		return -1;
	}
	return 0;
}

static int irqchip_load(void *opaque, const void *fdt, int node)
{
	struct vm *vm = opaque;
	struct kvm_pit_state2 pit;

	for (size_t i = 0; i < ARRAY_SIZE(irqchips); i++) {
		struct kvm_irqchip chip = { .chip_id = irqchips[i].id };

		if (state_get_blob(fdt, node, irqchips[i].name, &chip.chip, sizeof(chip.chip)) < 0 ||
		    irqchip_check(vm, &chip, irqchips[i].name) < 0)
			return -1;
		if (ioctl(vm->fd, KVM_SET_IRQCHIP, &chip) < 0) {
			perrorf("irqchip: KVM_SET_IRQCHIP %s", irqchips[i].name);
			return -1;
		}
	}
	if (state_get_blob(fdt, node, "pit", &pit, sizeof(pit)) < 0)
		return -1;
	/* Only an HPET in legacy mode silences the PIT, and this board has none. */
	if (pit.flags & KVM_PIT_FLAGS_HPET_LEGACY) {
		errorf("irqchip: the stream's PIT is silenced by an HPET (flags %#x)", pit.flags);
		return -1;
	}
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
