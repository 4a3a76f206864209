/*
 * tern's test unikernel, ring 3 from here on. kmain sets up the interrupt controllers and
 * the clock (MSR accesses are system calls), prints OSv's boot lines, acts on the cmdline
 * words and runs the services.
 *
 * Cmdline words: echo, ticks, poweroff, crash, memtest=MIB, dirty=MIBPS, and for the network
 * (net.c): --ip=eth0,ADDR,NETMASK --defaultgw=GW --nameserver=NS (else DHCP),
 * netgarbage[=MS], netversion1; virtio_mmio.device= entries are taken off the cmdline as OSv
 * does (unknown words are ignored). Console commands (a line on COM1): help, time, check,
 * uptime, cpuid, net, blk, fault, bench, serialbench, irqs.
 */
#include "apic.h"
#include "bootinfo.h"
#include "kvmclock.h"
#include "lib.h"
#include "net.h"
#include "serial.h"
#include "service.h"
#include "sys.h"
#include "virtio_mmio.h"

void idt_init(void);
extern uint64_t tsc_entry;	/* rdtsc at the first instruction (boot64.S, pvh.S) */
void kmain(uint64_t kind, uint64_t info) __attribute__((noreturn));

static int echo;
/* COM1 interrupts seen: input also arrives by the timer's polling, which would hide their loss. */
static uint64_t com1_irqs;

static void print_ms(const char *prefix, uint64_t ns, const char *suffix)
{
	printf("%s%lu.%02lu%s", prefix, ns / 1000000, ns / 10000 % 100, suffix);
}

__attribute__((noreturn)) static void poweroff(void)
{
	outb(0x64, 0xfe);	/* i8042 reset, as OSv; then a triple fault if still here */
	crash();
}

/* --- console: input, echo, commands ---------------------------------------------------- */

static void cmd_help(const char *args);

static void cmd_time(const char *args)
{
	(void)args;
	kvmclock_refresh_wall();
	printf("time: wall_ns=%lu now_ns=%lu\n", wall_ns(), now_ns());
}

/* cpuid LEAF [SUBLEAF]: the CPU as this guest sees it (hex or decimal). */
static void cmd_cpuid(const char *args)
{
	char *end;
	uint32_t leaf = strtoul(args, &end, 0), sub = strtoul(end, NULL, 0), r[4];

	cpuid(leaf, sub, r);
	printf("cpuid: %x.%x eax=%08x ebx=%08x ecx=%08x edx=%08x\n", leaf, sub, r[0], r[1], r[2],
	       r[3]);
}

static void cmd_monotonic(const char *args)
{
	(void)args;
	kvmclock_monotonic();
}

static void cmd_uptime(const char *args)
{
	(void)args;
	print_ms("uptime: ", now_ns(), " ms\n");
}

/* How long the console takes per byte: every byte is an LSR read and a THR write (exits). */
static void cmd_serialbench(const char *args)
{
	unsigned long n = strtoul(args, NULL, 0);
	uint64_t t0, t1;

	if (!n)
		n = 1000;
	t0 = now_ns();
	for (unsigned long i = 0; i < n; i++)
		serial_putc(i % 64 == 63 ? '\n' : '.');
	t1 = now_ns();
	printf("\nserialbench: %lu bytes in %lu us, %lu ns/byte\n", n, (t1 - t0) / 1000,
	       (t1 - t0) / n);
}

/* What the platform's paths cost: port I/O, a system call (ring 0), MMIO, clock reads. */
static void cmd_bench(const char *args)
{
	uint64_t t0, t1;
	volatile uint32_t sink = 0;
	static const char dots[] = "...............................................................\n";

	(void)args;
#define BENCH(label, n, expr)                                                             \
	do {                                                                              \
		t0 = now_ns();                                                            \
		for (int i_ = 0; i_ < (n); i_++)                                          \
			expr;                                                             \
		t1 = now_ns();                                                            \
		printf("bench: %-24s %6lu ns\n", label, (t1 - t0) / (n));                   \
	} while (0)
	BENCH("inb(0x3fd)", 200, sink += inb(0x3fd));
	BENCH("outb(0x3f0) (marker)", 200, outb(0x3f0, 0));
	BENCH("syscall (read cr2)", 200, sink += read_cr2());
	BENCH("syscall serial write 64B", 10, sys_serial_write(dots, 64));
	BENCH("ioapic mmio read", 200, sink += mmio_read32(0xfec00010));
	BENCH("kvmclock read", 100000, sink += now_ns());
	BENCH("rdtsc", 100000, sink += rdtsc());
#undef BENCH
}

/* Deliberate faults, to see the exception report (and tern's view of the triple fault). */
static void cmd_fault(const char *args)
{
	if (!strcmp(args, "ud"))
		asm volatile("ud2");
	else if (!strcmp(args, "gp"))
		asm volatile("mov %%cr0, %%rax" ::: "rax");	/* privileged in ring 3 */
	else if (!strcmp(args, "msr"))
		wrmsr(0xdeadbeef, 0);	/* #GP in ring 0, inside the system call */
	else if (!strcmp(args, "de"))
		asm volatile("xor %%ecx, %%ecx; div %%ecx" ::: "eax", "ecx", "edx");
	else
		*(volatile uint64_t *)0x100000000000ULL = 1;	/* #PF: above what we map */
}

/* A panic as Linux reports one: "panicked" to QEMU's pvpanic port, if the VMM has it. */
static void cmd_panic(const char *args)
{
	if (!(inb(0x505) & 1)) {
		printf("panic: no pvpanic device\n");
		return;
	}
	printf("panic: reported\n");
	outb(0x505, 1);
}

static void cmd_irqs(const char *args)
{
	(void)args;
	printf("irqs: com1 %lu\n", com1_irqs);
}

static const struct command commands[] = {
	{ "help", "list commands", cmd_help },
	{ "time", "print wall clock and kvmclock (ns)", cmd_time },
	{ "uptime", "print kvmclock in ms", cmd_uptime },
	{ "monotonic", "count the clock's steps back (polled)", cmd_monotonic },
	{ "cpuid", "LEAF [SUBLEAF] print what CPUID says", cmd_cpuid },
	{ "check", "verify the memtest pattern", memtest_check_cmd },
	{ "zero", "clear the memtest's odd pages (check wants them zero)", memtest_zero_cmd },
	{ "net", "network address and link", net_info_cmd },
	{ "blk", "[read S N|write S N SEED|flush|id] use the virtio-blk disk", virtio_blk_cmd },
	{ "fault", "[pf|gp|ud|de|msr] raise an exception (the guest dies)", cmd_fault },
	{ "irqs", "count the serial port's interrupts", cmd_irqs },
	{ "panic", "report a panic through pvpanic (port 0x505)", cmd_panic },
	{ "bench", "time port I/O, system calls, MMIO, clock reads", cmd_bench },
	{ "serialbench", "[N] write N bytes, print the time per byte", cmd_serialbench },
};

static void cmd_help(const char *args)
{
	(void)args;
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		printf("  %-8s %s\n", commands[i].name, commands[i].help);
}

static void run_line(char *line)
{
	char *args = strchr(line, ' ');

	if (args)
		*args++ = '\0';
	else
		args = line + strlen(line);
	if (!*line)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (!strcmp(line, commands[i].name)) {
			commands[i].run(args);
			return;
		}
	}
	printf("unknown command '%s' (try help)\n", line);
}

static int console_start(void)
{
	return 1;
}

static int console_poll(uint64_t pending)
{
	static char line[256];
	static size_t len;
	int c;

	/* IRQ 4 normally; the timer tick doubles as a polled fallback. */
	if (pending & IRQ_BIT(VEC_IRQ(COM1_IRQ)))
		com1_irqs++;
	if (!(pending & (IRQ_BIT(VEC_IRQ(COM1_IRQ)) | IRQ_BIT(VEC_TIMER))))
		return 0;
	serial_poll();
	while ((c = serial_getc()) >= 0) {
		if (c == '\r' || c == '\n') {
			if (echo)
				serial_write("\n", 1);
			line[len] = '\0';
			len = 0;
			run_line(line);
		} else if (c == 0x7f || c == '\b') {
			if (len) {
				len--;
				if (echo)
					serial_write("\b \b", 3);
			}
		} else {
			if (echo)
				serial_putc((char)c);
			if (len < sizeof(line) - 1)
				line[len++] = (char)c;
		}
	}
	return 0;
}

/* --- ticks: "tick N T ms" every 100 ms of kvmclock ------------------------------------- */

static uint64_t tick_next, tick_n;

static int ticks_start(void)
{
	if (!cmdline_has("ticks"))
		return 0;
	tick_next = now_ns() + 100000000ULL;
	return 1;
}

static int ticks_poll(uint64_t pending)
{
	uint64_t t;

	(void)pending;
	t = now_ns();
	if (t < tick_next)
		return 0;
	printf("tick %lu %lu ms\n", ++tick_n, t / 1000000);
	tick_next += 100000000ULL;
	if (tick_next <= t)	/* we were stopped: do not print a burst */
		tick_next = t + 100000000ULL;
	return 0;
}

static int clock_start(void)
{
	return 1;
}

/* Add new services here; they are polled in this order. */
static struct {
	struct service s;
	int active;
} services[] = {
	{ { "console", console_start, console_poll }, 0 },
	{ { "kvmclock", clock_start, kvmclock_poll }, 0 },
	{ { "ticks", ticks_start, ticks_poll }, 0 },
	{ { "memtest", memtest_start, memtest_poll }, 0 },
	{ { "net", net_start, net_poll }, 0 },
};

void kmain(uint64_t kind, uint64_t info)
{
	int have_clock, have_apic;
	uint64_t booted, entry_to_booted;
	uint32_t mhz, measured = 0;

	idt_init();		/* first: system calls are #UD exceptions */
	serial_init();
	if (bootinfo_parse(kind, info) < 0) {
		printf("boot: giving up\n");
		crash();
	}
	virtio_mmio_scan_cmdline();	/* OSv strips these from the cmdline it shows */
	have_clock = kvmclock_init() == 0;
	if (!have_clock)
		tscclock_init();	/* e.g. QEMU with TCG */
	alloc_init();
	have_apic = apic_init() == 0;
	ioapic_init();
	irq_enable(1);
	ioapic_route(COM1_IRQ, VEC_IRQ(COM1_IRQ));
	serial_enable_irq();

	outb(PORT_MARKER, 123);
	booted = now_ns();
	entry_to_booted = tsc_to_ns(rdtsc() - tsc_entry);
	print_ms("Booted up in ", booted, " ms\n");
	printf("Cmdline: %s\n", cmdline);

	if (cmdline_has("crash"))
		crash();
	if (cmdline_has("poweroff"))
		poweroff();

	/* The timer (and its calibration against kvmclock) is not needed to boot. */
	if (have_apic)
		apic_timer_start(TIMER_PERIOD_US);
	mhz = have_apic ? apic_timer_mhz(&measured) : 0;
	printf("guest: %s entry, %lu MiB free RAM, %s, apic timer %u MHz (measured %u)\n",
	       boot_protocol, alloc_free_bytes() >> 20, have_clock ? "kvmclock" : "no kvmclock",
	       mhz, measured);
	print_ms("guest: first instruction to booted ", entry_to_booted, " ms\n");
	echo = cmdline_has("echo");
	for (size_t i = 0; i < ARRAY_SIZE(services); i++)
		services[i].active = services[i].s.start();

	for (;;) {
		uint64_t pending = irq_take();
		int busy = 0;

		for (size_t i = 0; i < ARRAY_SIZE(services); i++)
			if (services[i].active)
				busy |= services[i].s.poll(pending);
		if (!busy)
			sys_halt();
	}
}
