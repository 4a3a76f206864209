/*
 * kvmclock across a migration: the destination sets the clock to the source's value plus the
 * real time that passed meanwhile, so the guest's clock neither jumps back nor stalls and its
 * wall clock (boot wall time + kvmclock) stays on the host's time. Assumes both hosts keep
 * CLOCK_REALTIME in sync (NTP), as QEMU does.
 */
#include <time.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "vmm/cpu_state.h"
#include "vmm/state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int kvmclock_save(void *opaque, void *fdt)
{
	struct vm *vm = opaque;
	struct kvm_clock_data c = { 0 };

	if (ioctl(vm->fd, KVM_GET_CLOCK, &c) < 0) {
		perrorf("kvmclock: KVM_GET_CLOCK");
		return -1;
	}
	return state_put_u64(fdt, "clock", c.clock) || state_put_u64(fdt, "realtime", realtime_ns())
		       ? -1
		       : 0;
}

static int kvmclock_load(void *opaque, const void *fdt, int node)
{
	struct vm *vm = opaque;
	struct kvm_clock_data c = { 0 };
	uint64_t clock, then, now = realtime_ns();

	if (state_get_u64(fdt, node, "clock", &clock) < 0 ||
	    state_get_u64(fdt, node, "realtime", &then) < 0)
		return -1;
	/* A source clock ahead of ours must not move the guest's time backwards. */
	c.clock = clock + (now > then ? now - then : 0);
	if (ioctl(vm->fd, KVM_SET_CLOCK, &c) < 0) {
		perrorf("kvmclock: KVM_SET_CLOCK");
		return -1;
	}
	return 0;
}

static const struct device_ops kvmclock_ops = {
	.name = "kvmclock",
	.save = kvmclock_save,
	.load = kvmclock_load,
};

int kvmclock_register(struct vm *vm)
{
	return vm_register_device(vm, &kvmclock_ops, vm);
}
