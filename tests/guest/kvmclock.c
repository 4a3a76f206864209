/*
 * kvmclock: the host fills a pvclock structure we register with MSR 0x4b564d01; ring 3
 * reads it with rdtsc (CR4.TSD stays clear). The wall clock base (MSR 0x4b564d00) is only
 * written by the host when we write the MSR, so it is refreshed every second, as OSv does:
 * after a migration or a clock adjustment the base may have moved.
 */
#include "kvmclock.h"
#include "lib.h"
#include "sys.h"

#define MSR_KVM_WALL_CLOCK_NEW	0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW	0x4b564d01
#define KVM_FEATURE_CLOCKSOURCE		(1 << 0)
#define KVM_FEATURE_CLOCKSOURCE2	(1 << 3)

struct pvclock_vcpu_time_info {
	uint32_t version;
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time;
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	uint8_t flags;
	uint8_t pad[2];
} __attribute__((packed));

struct pvclock_wall_clock {
	uint32_t version;
	uint32_t sec;
	uint32_t nsec;
} __attribute__((packed));

static volatile struct pvclock_vcpu_time_info ti __attribute__((aligned(64)));
static volatile struct pvclock_wall_clock wc __attribute__((aligned(64)));
static uint32_t enabled;	/* the system-time MSR in use, 0 without kvmclock */
static uint32_t wall_msr;
static uint64_t wall_base, last_refresh;

int kvmclock_init(void)
{
	uint32_t r[4];
	uint32_t msr_sys = MSR_KVM_SYSTEM_TIME_NEW, msr_wall = MSR_KVM_WALL_CLOCK_NEW;

	cpuid(0x40000000, 0, r);
	if (memcmp(&r[1], "KVMKVMKVM\0\0\0", 12)) {
		printf("kvmclock: no KVM signature at cpuid 0x40000000\n");
		return -1;
	}
	cpuid(0x40000001, 0, r);
	if (!(r[0] & KVM_FEATURE_CLOCKSOURCE2)) {
		if (!(r[0] & KVM_FEATURE_CLOCKSOURCE)) {
			printf("kvmclock: not offered (cpuid 0x40000001 eax=%#x)\n", r[0]);
			return -1;
		}
		msr_sys = 0x12;		/* the old MSR numbers */
		msr_wall = 0x11;
	}
	wrmsr(msr_sys, (uint64_t)(uintptr_t)&ti | 1);
	enabled = msr_sys;
	wall_msr = msr_wall;
	kvmclock_refresh_wall();
	return 0;
}

static uint64_t read_system_time(void)
{
	uint32_t v;
	uint64_t t;

	do {
		v = ti.version;
		barrier();
		uint64_t delta = rdtsc() - ti.tsc_timestamp;
		int8_t shift = ti.tsc_shift;

		if (shift < 0)
			delta >>= -shift;
		else
			delta <<= shift;
		t = ti.system_time + (uint64_t)(((unsigned __int128)delta * ti.tsc_to_system_mul) >> 32);
		barrier();
	} while ((v & 1) || v != ti.version);
	return t;
}

uint64_t tsc_to_ns(uint64_t delta)
{
	int8_t shift = ti.tsc_shift;

	if (!enabled)
		return 0;
	if (shift < 0)
		delta >>= -shift;
	else
		delta <<= shift;
	return (uint64_t)(((unsigned __int128)delta * ti.tsc_to_system_mul) >> 32);
}

uint64_t now_ns(void)
{
	return enabled ? read_system_time() : 0;
}

void kvmclock_refresh_wall(void)
{
	uint32_t v;
	uint64_t base;

	if (!enabled)
		return;
	wrmsr(wall_msr, (uint64_t)(uintptr_t)&wc);
	do {
		v = wc.version;
		barrier();
		base = (uint64_t)wc.sec * 1000000000ULL + wc.nsec;
		barrier();
	} while ((v & 1) || v != wc.version);
	wall_base = base;
	last_refresh = read_system_time();
}

uint64_t wall_ns(void)
{
	return wall_base + now_ns();
}

int kvmclock_poll(uint64_t pending)
{
	(void)pending;
	if (enabled && now_ns() - last_refresh >= 1000000000ULL)
		kvmclock_refresh_wall();
	return 0;
}
