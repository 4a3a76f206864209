/*
 * kvmclock: the host fills a pvclock structure we register with MSR 0x4b564d01; ring 3
 * reads it with rdtsc (CR4.TSD stays clear). The wall clock base (MSR 0x4b564d00) is only
 * written by the host when we write the MSR, so it is refreshed every second, as OSv does:
 * after a migration or a clock adjustment the base may have moved.
 *
 * Without kvmclock (e.g. QEMU with TCG, to test the guest where there is no KVM), the clock
 * falls back to the TSC calibrated against PIT channel 0, counting from the first
 * instruction, and the wall clock to the CMOS RTC read once at boot (one-second resolution).
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
static uint64_t mono_last, mono_reads, mono_backs, mono_max_back;	/* kvmclock_monotonic */
static uint64_t tsc_mul;	/* fallback: ns = tsc delta * tsc_mul >> 32; 0 if unused */
extern uint64_t tsc_entry;	/* rdtsc at the first instruction (boot64.S, pvh.S) */

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
		return (uint64_t)(((unsigned __int128)delta * tsc_mul) >> 32);
	if (shift < 0)
		delta >>= -shift;
	else
		delta <<= shift;
	return (uint64_t)(((unsigned __int128)delta * ti.tsc_to_system_mul) >> 32);
}

uint64_t now_ns(void)
{
	if (enabled)
		return read_system_time();
	return tsc_mul ? tsc_to_ns(rdtsc() - tsc_entry) : 0;
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

/* Every poll reads the clock: a reading below the one before is a step back, which a guest
 * clock must never take (a migration, a snapshot restored, a stop and cont included). */
static void kvmclock_watch(void)
{
	uint64_t t = now_ns();

	mono_reads++;
	if (t < mono_last) {
		mono_backs++;
		if (mono_last - t > mono_max_back)
			mono_max_back = mono_last - t;
	}
	mono_last = t;
}

void kvmclock_monotonic(void)
{
	kvmclock_watch();
	printf("monotonic: reads=%lu backs=%lu max_back_ns=%lu\n", mono_reads, mono_backs,
	       mono_max_back);
}

int kvmclock_poll(uint64_t pending)
{
	(void)pending;
	kvmclock_watch();
	if (enabled && now_ns() - last_refresh >= 1000000000ULL)
		kvmclock_refresh_wall();
	return 0;
}

/* --- fallback without kvmclock: TSC against the PIT, wall clock from the CMOS RTC ------ */

#define PIT_HZ 1193182

static uint16_t pit_read0(void)
{
	uint8_t lo, hi;

	outb(0x43, 0x00);	/* latch channel 0 */
	lo = inb(0x40);
	hi = inb(0x40);
	return (uint16_t)(lo | hi << 8);
}

/*
 * Channel 0 counts down from 65536 (mode 2, ~55 ms a period) and we follow its wraps for
 * 50 ms; its IRQ 0 stays masked (PIC masked, IOAPIC line not routed). Ports 0x61/channel 2
 * are not used: QEMU's microvm has no PC speaker port.
 */
static uint64_t tsc_hz_from_pit(void)
{
	uint64_t t0, t1, ticks = 0;
	uint16_t prev, c;

	outb(0x43, 0x34);	/* channel 0, lo/hi, mode 2, binary */
	outb(0x40, 0);
	outb(0x40, 0);		/* 65536 */
	prev = pit_read0();
	t0 = rdtsc();
	while (ticks < PIT_HZ / 20) {
		c = pit_read0();
		ticks += (uint16_t)(prev - c);	/* counts down; wraps modulo 65536 */
		prev = c;
	}
	t1 = rdtsc();
	return (t1 - t0) * PIT_HZ / ticks;
}

static uint8_t cmos(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static uint64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return (uint64_t)(era * 146097 + doe - 719468);
}

/* Seconds since the epoch from the RTC (UTC, as QEMU's default -rtc base=utc), or 0. */
static uint64_t rtc_read(void)
{
	uint8_t v[6], w[6], b;
	static const uint8_t regs[6] = { 0, 2, 4, 7, 8, 9 };	/* s m h D M Y */

	for (int tries = 0; tries < 1000; tries++) {
		while (cmos(0x0a) & 0x80)	/* update in progress */
			cpu_relax();
		for (int i = 0; i < 6; i++)
			v[i] = cmos(regs[i]);
		for (int i = 0; i < 6; i++)
			w[i] = cmos(regs[i]);
		if (!memcmp(v, w, sizeof(v)))
			break;
	}
	b = cmos(0x0b);
	unsigned pm = !(b & 0x02) && (v[2] & 0x80);

	v[2] &= 0x7f;
	if (!(b & 0x04))	/* BCD */
		for (int i = 0; i < 6; i++)
			v[i] = (uint8_t)((v[i] >> 4) * 10 + (v[i] & 15));
	if (!(b & 0x02))	/* 12-hour clock */
		v[2] = (uint8_t)(v[2] % 12 + (pm ? 12 : 0));
	if (!v[4] || v[4] > 12 || !v[3] || v[3] > 31)
		return 0;
	return days_from_civil(2000 + v[5], v[4], v[3]) * 86400 + v[2] * 3600u + v[1] * 60u + v[0];
}

int tscclock_init(void)
{
	uint64_t hz = tsc_hz_from_pit(), secs;

	if (hz < 1000000) {
		printf("clock: TSC calibration against the PIT failed (%lu Hz)\n", hz);
		return -1;
	}
	tsc_mul = (uint64_t)(((unsigned __int128)1000000000ULL << 32) / hz);
	secs = rtc_read();
	if (secs)
		wall_base = secs * 1000000000ULL - now_ns();
	printf("clock: no kvmclock: TSC %lu kHz (calibrated against the PIT), wall clock from "
	       "the RTC\n", hz / 1000);
	return 0;
}
