/*
 * `info registers`: the vCPU's registers in QEMU's layout, the first thing to look at when a
 * guest hangs. A running vCPU is parked for the two reads and goes on at once, unseen by the
 * guest and by the monitors (no STOP or RESUME).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "vmm/cpu_state.h"
#include "vmm/monitor.h"
#include "vmm/vm.h"

struct regs_call {
	int fd;
	struct kvm_regs r;
	struct kvm_sregs s;
	int err;
};

static void regs_read(void *arg)
{
	struct regs_call *c = arg;

	c->err = ioctl(c->fd, KVM_GET_REGS, &c->r) < 0 || ioctl(c->fd, KVM_GET_SREGS, &c->s) < 0
			 ? errno
			 : 0;
}

/* Selector, base, limit and the descriptor's attribute bits, as QEMU prints them. */
static void print_segment(struct mon_session *s, const char *name, const struct kvm_segment *g)
{
	unsigned flags = g->type << 8 | g->s << 12 | g->dpl << 13 | g->present << 15 |
			 g->avl << 20 | g->l << 21 | g->db << 22 | g->g << 23;

	monitor_printf(s, "%-3s=%04x %016llx %08x %08x\n", name, g->selector,
		       (unsigned long long)g->base, g->limit, flags);
}

static void print_regs(struct mon_session *s, const struct kvm_regs *r, const struct kvm_sregs *sr)
{
	const unsigned long long gp[16] = { r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi,
					    r->rbp, r->rsp, r->r8,  r->r9,  r->r10, r->r11,
					    r->r12, r->r13, r->r14, r->r15 };
	static const char *const gp_name[16] = { "RAX", "RBX", "RCX", "RDX", "RSI", "RDI",
						 "RBP", "RSP", "R8 ", "R9 ", "R10", "R11",
						 "R12", "R13", "R14", "R15" };
	/* RFLAGS' arithmetic bits, QEMU's letters: D(F) O(F) S Z A P C. */
	static const struct { unsigned bit; char c; } fl[] = {
		{ 10, 'D' }, { 11, 'O' }, { 7, 'S' }, { 6, 'Z' }, { 4, 'A' }, { 2, 'P' }, { 0, 'C' },
	};
	char f[8];

	for (int i = 0; i < 16; i++)
		monitor_printf(s, "%s=%016llx%s", gp_name[i], gp[i], i % 4 == 3 ? "\n" : " ");
	for (int i = 0; i < 7; i++)
		f[i] = r->rflags >> fl[i].bit & 1 ? fl[i].c : '-';
	f[7] = '\0';
	monitor_printf(s, "RIP=%016llx RFL=%08llx [%s] CPL=%u\n", (unsigned long long)r->rip,
		       (unsigned long long)r->rflags, f, sr->ss.dpl);
	print_segment(s, "ES", &sr->es);
	print_segment(s, "CS", &sr->cs);
	print_segment(s, "SS", &sr->ss);
	print_segment(s, "DS", &sr->ds);
	print_segment(s, "FS", &sr->fs);
	print_segment(s, "GS", &sr->gs);
	print_segment(s, "LDT", &sr->ldt);
	print_segment(s, "TR", &sr->tr);
	monitor_printf(s, "GDT=     %016llx %08x\n", (unsigned long long)sr->gdt.base,
		       sr->gdt.limit);
	monitor_printf(s, "IDT=     %016llx %08x\n", (unsigned long long)sr->idt.base,
		       sr->idt.limit);
	monitor_printf(s, "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx\n",
		       (unsigned long long)sr->cr0, (unsigned long long)sr->cr2,
		       (unsigned long long)sr->cr3, (unsigned long long)sr->cr4);
	monitor_printf(s, "EFER=%016llx\n", (unsigned long long)sr->efer);
}

static void cmd_info_registers(struct mon_session *s, int argc, char **argv)
{
	struct vm *vm = monitor_session_vm(s);
	struct regs_call c = { .fd = vm->vcpu.fd };

	vm_with_vcpu_parked(vm, regs_read, &c);
	if (c.err)
		monitor_printf(s, "Error: cannot read the registers: %s\n", strerror(c.err));
	else
		print_regs(s, &c.r, &c.s);
}

int cpu_info_register(struct vm *vm)
{
	return monitor_add_command(vm->monitor, "info registers", NULL,
				   "show the vCPU's registers", cmd_info_registers);
}
