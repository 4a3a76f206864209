/*
 * `info registers`: a vCPU's registers in QEMU's layout (without its FPU/SSE block), the first
 * thing to look at when a guest hangs. A running vCPU is parked for the reads and goes on at
 * once, unseen by the guest and by the monitors (no STOP or RESUME).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "vmm/cpu_state.h"
#include "vmm/monitor.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define EFER_LMA (1ULL << 10)

struct regs_call {
	int fd;
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_debugregs d;
	struct kvm_vcpu_events e;
	struct kvm_mp_state mp;
	int err;
};

static void regs_read(void *arg)
{
	struct regs_call *c = arg;

	c->err = ioctl(c->fd, KVM_GET_REGS, &c->r) < 0 || ioctl(c->fd, KVM_GET_SREGS, &c->s) < 0 ||
			 ioctl(c->fd, KVM_GET_DEBUGREGS, &c->d) < 0 ||
			 ioctl(c->fd, KVM_GET_VCPU_EVENTS, &c->e) < 0 ||
			 ioctl(c->fd, KVM_GET_MP_STATE, &c->mp) < 0
		 ? errno
		 : 0;
}

/* Selector, base, limit, the descriptor's attribute bits, then those decoded, as QEMU does. */
static void print_segment(struct mon_session *s, const char *name, const struct kvm_segment *g,
			  bool wide, bool lma)
{
	static const char *const sys_type[2][16] = {
		{ "Reserved", "TSS16-avl", "LDT", "TSS16-busy", "CallGate16", "TaskGate",
		  "IntGate16", "TrapGate16", "Reserved", "TSS32-avl", "Reserved", "TSS32-busy",
		  "CallGate32", "Reserved", "IntGate32", "TrapGate32" },
		{ "<hiword>", "Reserved", "LDT", "Reserved", "Reserved", "Reserved", "Reserved",
		  "Reserved", "Reserved", "TSS64-avl", "Reserved", "TSS64-busy", "CallGate64",
		  "Reserved", "IntGate64", "TrapGate64" },
	};
	unsigned flags = g->type << 8 | g->s << 12 | g->dpl << 13 | g->present << 15 |
			 g->avl << 20 | g->l << 21 | g->db << 22 | g->g << 23;
	bool code = g->type & 8;

	if (wide)
		monitor_printf(s, "%-3s=%04x %016llx %08x %08x", name, g->selector,
			       (unsigned long long)g->base, g->limit, flags);
	else
		monitor_printf(s, "%-3s=%04x %08x %08x %08x", name, g->selector,
			       (unsigned)g->base, g->limit, flags);
	if (!g->present) {
		monitor_printf(s, "\n");
		return;
	}
	monitor_printf(s, " DPL=%u ", g->dpl);
	if (!g->s)
		monitor_printf(s, "%s\n", sys_type[lma][g->type & 15]);
	else if (code)
		monitor_printf(s, "%s [%c%c%c]\n", g->l ? "CS64" : g->db ? "CS32" : "CS16",
			       g->type & 4 ? 'C' : '-', g->type & 2 ? 'R' : '-',
			       g->type & 1 ? 'A' : '-');
	else
		monitor_printf(s, "%s [%c%c%c]\n", g->db || lma ? "DS  " : "DS16",
			       g->type & 4 ? 'E' : '-', g->type & 2 ? 'W' : '-',
			       g->type & 1 ? 'A' : '-');
}

static void print_gp(struct mon_session *s, const struct kvm_regs *r, bool wide)
{
	const unsigned long long gp[16] = { r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi,
					    r->rbp, r->rsp, r->r8,  r->r9,  r->r10, r->r11,
					    r->r12, r->r13, r->r14, r->r15 };
	static const char *const name[16] = { "AX", "BX", "CX", "DX", "SI", "DI", "BP", "SP",
					      "8 ", "9 ", "10", "11", "12", "13", "14", "15" };

	for (int i = 0; i < (wide ? 16 : 8); i++) {
		if (wide)
			monitor_printf(s, "R%s=%016llx", name[i], gp[i]);
		else
			monitor_printf(s, "E%s=%08x", name[i], (unsigned)gp[i]);
		monitor_printf(s, i % 4 == 3 ? "\n" : " ");
	}
}

static void print_regs(struct mon_session *s, const struct regs_call *c)
{
	/* RFLAGS' arithmetic bits with QEMU's letters. */
	static const struct { unsigned bit; char c; } fl[] = {
		{ 10, 'D' }, { 11, 'O' }, { 7, 'S' }, { 6, 'Z' }, { 4, 'A' }, { 2, 'P' }, { 0, 'C' },
	};
	const struct kvm_sregs *sr = &c->s;
	bool lma = sr->efer & EFER_LMA, wide = lma && sr->cs.l;
	const struct kvm_segment *seg[] = { &sr->es, &sr->cs, &sr->ss, &sr->ds,
					    &sr->fs, &sr->gs, &sr->ldt, &sr->tr };
	static const char *const seg_name[] = { "ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR" };
	char f[8];

	print_gp(s, &c->r, wide);
	for (int i = 0; i < 7; i++)
		f[i] = c->r.rflags >> fl[i].bit & 1 ? fl[i].c : '-';
	f[7] = '\0';
	if (wide)
		monitor_printf(s, "RIP=%016llx RFL=%08x", (unsigned long long)c->r.rip,
			       (unsigned)c->r.rflags);
	else
		monitor_printf(s, "EIP=%08x EFL=%08x", (unsigned)c->r.rip, (unsigned)c->r.rflags);
	monitor_printf(s, " [%s] CPL=%u II=%u A20=1 SMM=%u HLT=%u\n", f, sr->ss.dpl,
		       c->e.interrupt.shadow ? 1 : 0, c->e.smi.smm,
		       c->mp.mp_state == KVM_MP_STATE_HALTED);
	for (size_t i = 0; i < ARRAY_SIZE(seg); i++)
		print_segment(s, seg_name[i], seg[i], wide, lma);
	if (wide) {
		monitor_printf(s, "GDT=     %016llx %08x\n", (unsigned long long)sr->gdt.base,
			       sr->gdt.limit);
		monitor_printf(s, "IDT=     %016llx %08x\n", (unsigned long long)sr->idt.base,
			       sr->idt.limit);
		monitor_printf(s, "CR0=%08x CR2=%016llx CR3=%016llx CR4=%08x\n",
			       (unsigned)sr->cr0, (unsigned long long)sr->cr2,
			       (unsigned long long)sr->cr3, (unsigned)sr->cr4);
	} else {
		monitor_printf(s, "GDT=     %08x %08x\n", (unsigned)sr->gdt.base, sr->gdt.limit);
		monitor_printf(s, "IDT=     %08x %08x\n", (unsigned)sr->idt.base, sr->idt.limit);
		monitor_printf(s, "CR0=%08x CR2=%08x CR3=%08x CR4=%08x\n", (unsigned)sr->cr0,
			       (unsigned)sr->cr2, (unsigned)sr->cr3, (unsigned)sr->cr4);
	}
	for (int i = 0; i < 4; i++)
		monitor_printf(s, "DR%d=%016llx ", i, (unsigned long long)c->d.db[i]);
	monitor_printf(s, "\nDR6=%016llx DR7=%016llx\n", (unsigned long long)c->d.dr6,
		       (unsigned long long)c->d.dr7);
	monitor_printf(s, "EFER=%016llx\n", (unsigned long long)sr->efer);
}

/* Reads n vCPUs' registers, from first on, in one parked moment. */
struct regs_read {
	struct vm *vm;
	int first, n;
	struct regs_call *c;
};

static void regs_read_all(void *arg)
{
	struct regs_read *r = arg;

	for (int i = 0; i < r->n; i++) {
		r->c[i].fd = r->vm->vcpu[r->first + i].fd;
		regs_read(&r->c[i]);
	}
}

/* As QEMU: the current vCPU's registers (cpu N), or with -a every vCPU's, each under CPU#n. */
static void cmd_info_registers(struct mon_session *s, int argc, char **argv)
{
	struct vm *vm = monitor_session_vm(s);
	bool all = argc == 2 && !strcmp(argv[1], "-a");
	struct regs_read r = { vm, all ? 0 : monitor_session_cpu(s), all ? vm->nvcpu : 1, NULL };

	if (argc > 1 && !all) {
		monitor_printf(s, "Error: info registers: unknown argument '%s' (only -a)\n",
			       argv[1]);
		return;
	}
	r.c = calloc(r.n, sizeof(*r.c));
	if (!r.c) {
		monitor_printf(s, "Error: out of memory\n");
		return;
	}
	vm_with_vcpus_parked(vm, r.first, r.n, regs_read_all, &r);
	for (int i = 0; i < r.n; i++) {
		if (all)
			monitor_printf(s, "\nCPU#%d\n", r.first + i);
		if (r.c[i].err)
			monitor_printf(s, "Error: cannot read the registers: %s\n",
				       strerror(r.c[i].err));
		else
			print_regs(s, &r.c[i]);
	}
	free(r.c);
}

/* QEMU's layout: the session's current vCPU starred. */
static void cmd_info_cpus(struct mon_session *s, int argc, char **argv)
{
	struct vm *vm = monitor_session_vm(s);

	for (int i = 0; i < vm->nvcpu; i++)
		monitor_printf(s, "%c CPU #%d: thread_id=%d\n",
			       i == monitor_session_cpu(s) ? '*' : ' ', i,
			       __atomic_load_n(&vm->vcpu[i].tid, __ATOMIC_ACQUIRE));
}

/* cpu N: which vCPU info registers shows in this session. */
static void cmd_cpu(struct mon_session *s, int argc, char **argv)
{
	struct vm *vm = monitor_session_vm(s);
	char *end = NULL;
	long n = argc == 2 ? strtol(argv[1], &end, 10) : -1;

	if (!end || *end || argv[1][0] == '\0' || n < 0 || n >= vm->nvcpu) {
		monitor_printf(s, "Error: cpu: expected a vCPU index from 0 to %d\n", vm->nvcpu - 1);
		return;
	}
	monitor_session_set_cpu(s, n);
}

int cpu_info_register(struct vm *vm)
{
	return monitor_add_command(vm->monitor, "info registers", "[-a]",
				   "show the current vCPU's registers (-a: every vCPU's)",
				   cmd_info_registers) ||
	       monitor_add_command(vm->monitor, "info cpus", NULL, "show the vCPUs",
				   cmd_info_cpus) ||
	       monitor_add_command(vm->monitor, "cpu", "N", "make vCPU N the current one",
				   cmd_cpu);
}
