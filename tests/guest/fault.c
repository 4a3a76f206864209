/*
 * Exceptions: runs in ring 0 (so it is slow, and it must not use SSE: the whole guest is
 * built with -mgeneral-regs-only). Print what happened, then triple fault so the VMM sees
 * a shutdown and names the RIP.
 */
#include "lib.h"
#include "sys.h"

struct trapframe {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

static const char *const names[32] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
	"#BR bound range", "#UD invalid opcode", "#NM no FPU", "#DF double fault",
	"coprocessor overrun", "#TS invalid TSS", "#NP segment not present",
	"#SS stack fault", "#GP general protection", "#PF page fault", "reserved",
	"#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
	"#VE virtualization", "#CP control protection",
};

void fault(struct trapframe *f) __attribute__((noreturn));

/* Ring 0 cannot use the system calls (their iretq would return to ring 0): plain port I/O. */
static void report(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	for (int i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			while (!(inb(0x3fd) & 0x20))
				;
			outb(0x3f8, '\r');
		}
		while (!(inb(0x3fd) & 0x20))
			;
		outb(0x3f8, buf[i]);
	}
}

void fault(struct trapframe *f)
{
	uint64_t cr2;
	const char *name = f->vector < 32 && names[f->vector] ? names[f->vector] : "?";

	asm volatile("mov %%cr2, %0" : "=r"(cr2));
	report("\nFATAL: exception %lu (%s) error %#lx in ring %lu\n"
	       "  rip %#lx cr2 %#lx rsp %#lx rflags %#lx\n"
	       "  rax %#lx rbx %#lx rcx %#lx rdx %#lx\n"
	       "  rsi %#lx rdi %#lx rbp %#lx\n",
	       f->vector, name, f->error, f->cs & 3, f->rip, cr2, f->rsp, f->rflags,
	       f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi, f->rbp);
	asm volatile("lidt null_idt_desc; ud2");
	__builtin_unreachable();
}
