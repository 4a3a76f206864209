/*
 * x2APIC through MSRs (rdmsr/wrmsr are system calls: ring 0 only), IOAPIC through MMIO
 * from ring 3 (its page is mapped with the U bit), PIC through ports (IOPL=3).
 * Without x2APIC (QEMU 7.2 with TCG offers none) the local APIC is used in xAPIC mode
 * through its MMIO page from ring 3, and the interrupt stubs EOI through MMIO (entry.S).
 */
#include "apic.h"
#include "kvmclock.h"
#include "lib.h"
#include "sys.h"

#define MSR_APIC_BASE	0x1b
#define APIC_BASE_EN	(1 << 11)
#define APIC_BASE_EXTD	(1 << 10)
#define X2APIC_ID	0x802
#define X2APIC_SVR	0x80f
#define X2APIC_LVT_TIMER 0x832
#define X2APIC_LVT_LINT0 0x835
#define X2APIC_LVT_LINT1 0x836
#define X2APIC_TMICT	0x838
#define X2APIC_TMCCT	0x839
#define X2APIC_TDCR	0x83e
#define LVT_MASKED	(1 << 16)
#define LVT_PERIODIC	(1 << 17)

#define IOAPIC_BASE	0xfec00000ULL
#define IOAPIC_REGSEL	(IOAPIC_BASE + 0x00)
#define IOAPIC_WIN	(IOAPIC_BASE + 0x10)

#define XAPIC_BASE	0xfee00000ULL

static uint32_t apic_id;
static int xapic;			/* 1: MMIO (xAPIC) mode instead of x2APIC */
extern uint64_t apic_eoi_mmio;		/* entry.S: 0 = EOI through the x2APIC MSR */

/* x2APIC MSR 0x800 + n is the xAPIC register at offset n << 4. */
static uint64_t apic_read(uint32_t msr)
{
	if (xapic)
		return mmio_read32(XAPIC_BASE + ((msr - 0x800) << 4));
	return rdmsr(msr);
}

static void apic_write(uint32_t msr, uint64_t v)
{
	if (xapic)
		mmio_write32(XAPIC_BASE + ((msr - 0x800) << 4), (uint32_t)v);
	else
		wrmsr(msr, v);
}

static uint32_t timer_mhz = 1000;	/* KVM's APIC bus: 1 GHz */
static uint32_t measured_mhz;

int apic_init(void)
{
	uint32_t r[4];
	/* The PIC would deliver through LINT0 (ExtINT) with vectors we never set up. */
	static const uint32_t pic_mask[] = { OUTB_ENTRY(0x21, 0xff), OUTB_ENTRY(0xa1, 0xff) };

	sys_outb_list(pic_mask, 2);

	cpuid(1, 0, r);
	if (!(r[2] & (1 << 21))) {
		if (!(r[3] & (1 << 9))) {
			printf("apic: no local APIC in cpuid 1 (ecx=%#x edx=%#x)\n", r[2], r[3]);
			return -1;
		}
		printf("apic: no x2APIC in cpuid 1 (ecx=%#x), using the xAPIC through MMIO\n",
		       r[2]);
		uint64_t base = rdmsr(MSR_APIC_BASE);

		if ((base & ~0xfffULL) != XAPIC_BASE || !(base & APIC_BASE_EN))
			wrmsr(MSR_APIC_BASE, XAPIC_BASE | APIC_BASE_EN | (base & 0x100));
		xapic = 1;
		apic_eoi_mmio = XAPIC_BASE + 0xb0;
		apic_id = mmio_read32(XAPIC_BASE + 0x20) >> 24;
	} else {
		wrmsr(MSR_APIC_BASE, (rdmsr(MSR_APIC_BASE) & ~0xfffULL) | 0xfee00000ULL |
				     APIC_BASE_EN | APIC_BASE_EXTD);
		apic_id = (uint32_t)rdmsr(X2APIC_ID);
	}
	apic_write(X2APIC_SVR, 0x100 | VEC_SPURIOUS);	/* software enable */
	apic_write(X2APIC_LVT_LINT0, LVT_MASKED);
	return 0;
}

/* KVM's APIC timer counts at 1 GHz; measure against kvmclock in case a VMM differs. */
static void timer_calibrate(void)
{
	uint64_t ta, tb, c0, c1, t0, t1;

	if (!now_ns())
		return;
	apic_write(X2APIC_TDCR, 0xb);		/* divide by 1 */
	apic_write(X2APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
	apic_write(X2APIC_TMICT, 0xffffffff);
	/* Each rdmsr is a trip through ring 0 (tens of us here): time its midpoint. */
	ta = now_ns();
	c0 = apic_read(X2APIC_TMCCT);
	tb = now_ns();
	t0 = (ta + tb) / 2;
	while (now_ns() - t0 < 500000)
		cpu_relax();
	ta = now_ns();
	c1 = apic_read(X2APIC_TMCCT);
	tb = now_ns();
	t1 = (ta + tb) / 2;
	apic_write(X2APIC_TMICT, 0);
	if (c1 < c0 && t1 > t0) {
		uint64_t mhz = (c0 - c1) * 1000 / (t1 - t0);

		measured_mhz = (uint32_t)mhz;
		/* Within 10% of 1 GHz: exit latencies, not a different clock. */
		if (mhz && (mhz < 900 || mhz > 1100))
			timer_mhz = (uint32_t)mhz;
	}
}

void apic_timer_start(uint32_t period_us)
{
	timer_calibrate();
	apic_write(X2APIC_TDCR, 0xb);
	apic_write(X2APIC_LVT_TIMER, LVT_PERIODIC | VEC_TIMER);
	apic_write(X2APIC_TMICT, (uint64_t)period_us * timer_mhz);
}

uint32_t apic_timer_mhz(uint32_t *measured)
{
	if (measured)
		*measured = measured_mhz;
	return timer_mhz;
}

static uint32_t ioapic_read(uint32_t reg)
{
	mmio_write32(IOAPIC_REGSEL, reg);
	return mmio_read32(IOAPIC_WIN);
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(IOAPIC_REGSEL, reg);
	mmio_write32(IOAPIC_WIN, v);
}

static unsigned ioapic_lines;

/* Entries come out of reset masked; masking them again would cost two exits each. */
void ioapic_init(void)
{
	ioapic_lines = ((ioapic_read(1) >> 16) & 0xff) + 1;
}

void ioapic_route(unsigned irq, unsigned vector)
{
	if (irq >= ioapic_lines) {
		printf("ioapic: no line %u (%u lines)\n", irq, ioapic_lines);
		return;
	}
	/* Physical destination = our APIC id; fixed delivery, edge, active high, unmasked. */
	ioapic_write(0x11 + 2 * irq, apic_id << 24);
	ioapic_write(0x10 + 2 * irq, vector & 0xff);
}

void ioapic_mask(unsigned irq)
{
	ioapic_write(0x10 + 2 * irq, 1 << 16);
}
