/*
 * kvmclock across a migration: the destination sets the clock to the source's value plus the
 * real time that passed meanwhile, so the guest's clock neither jumps back nor stalls and its
 * wall clock (boot wall time + kvmclock) stays on the host's time. Assumes both hosts keep
 * CLOCK_REALTIME in sync (NTP); a record that shows they do not is not followed (QEMU moves
 * no clock on at all: its guests fall behind by the downtime, or a snapshot's age).
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "vmm/cpu_state.h"
#include "vmm/state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define NSEC_PER_SEC 1000000000ULL

/* Before this, no tern saved a guest: a clock record older is its source host's clock gone
 * wrong (one left at 1970 by a board without an RTC), not a snapshot that old. */
#define REALTIME_FLOOR_NS (1577836800ULL * NSEC_PER_SEC)	/* 2020-01-01 00:00:00 UTC */
/* Two hosts' clocks kept by NTP may disagree by this much: no news. */
#define REALTIME_SLACK_NS NSEC_PER_SEC

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
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

/* A realtime for a message: "2026-11-22 10:03:01 UTC". */
static const char *realtime_text(uint64_t ns, char buf[40])
{
	time_t secs = (time_t)(ns / NSEC_PER_SEC);
	struct tm tm;

	if (!gmtime_r(&secs, &tm) || !strftime(buf, 40, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, 40, "%llu ns", (unsigned long long)ns);
	return buf;
}

/*
 * How far the guest's clock moves on: the real time since the source took it. A record
 * taken before REALTIME_FLOOR_NS, or in our future beyond the slack, says the source's clock
 * or ours is wrong: the guest's clock then goes on from where it was (as QEMU's always does),
 * said once, rather than jump by decades or go back.
 */
static uint64_t kvmclock_elapsed(uint64_t then, uint64_t now)
{
	char buf[40];

	if (then < REALTIME_FLOOR_NS) {
		errorf("kvmclock: the stream's clock was taken at %s, before 2020: the source's "
		       "clock is wrong; the guest's clock goes on from where it was",
		       realtime_text(then, buf));
		return 0;
	}
	if (then > now) {
		if (then - now > REALTIME_SLACK_NS)
			errorf("kvmclock: the stream's clock was taken at %s, in this host's future "
			       "by %.1f s: the hosts' clocks disagree; the guest's clock goes on "
			       "from where it was",
			       realtime_text(then, buf), (double)(then - now) / NSEC_PER_SEC);
		return 0;
	}
	return now - then;
}

static int kvmclock_load(void *opaque, const void *fdt, int node)
{
	struct vm *vm = opaque;
	struct kvm_clock_data c = { 0 };
	uint64_t clock, then, elapsed;

	if (state_get_u64(fdt, node, "clock", &clock) < 0 ||
	    state_get_u64(fdt, node, "realtime", &then) < 0)
		return -1;
	elapsed = kvmclock_elapsed(then, realtime_ns());
	/* Guests take kvmclock as signed nanoseconds: past INT64_MAX their time runs negative. */
	if (clock > INT64_MAX || elapsed > INT64_MAX - clock) {
		errorf("kvmclock: the stream's clock %llu ns (+%llu ns since it was taken) is "
		       "beyond any guest's",
		       (unsigned long long)clock, (unsigned long long)elapsed);
		return -1;
	}
	c.clock = clock + elapsed;
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
