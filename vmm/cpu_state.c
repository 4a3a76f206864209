/*
 * vCPU state for migration and snapshots. Only called while the vCPU threads are parked.
 * Restore order follows what KVM needs: sregs (APIC base) before the LAPIC, MSRs before
 * events and MP state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "vmm/cpu_state.h"
#include "vmm/state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define MAX_MSRS 512
#define MSR_IA32_TSC_DEADLINE 0x6e0

struct msr_list {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[MAX_MSRS];
};

struct cpu_state {
	struct vm *vm;
	int fd;		/* the vCPU's */
	uint32_t msr_index[MAX_MSRS];	/* the MSRs this vCPU can read, found once */
	int nmsr;
};

/*
 * KVM lists MSRs the host knows; a vCPU may still refuse some. Keep the readable ones. Runs
 * before the vCPU does: vCPU ioctls wait for KVM_RUN to return, and a guest spinning in ring 0
 * may take its time about that.
 */
static int cpu_find_msrs(struct cpu_state *cs)
{
	struct { struct kvm_msr_list l; uint32_t idx[MAX_MSRS]; } list = { .l.nmsrs = MAX_MSRS };
	struct msr_list m;
	uint32_t i = 0;

	if (ioctl(cs->vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0) {
		perrorf("cpu: KVM_GET_MSR_INDEX_LIST");
		return -1;
	}
	cs->nmsr = 0;
	/* KVM_GET_MSRS stops at the first MSR it refuses: skip that one and go on. */
	while (i < list.l.nmsrs) {
		int n;

		m.hdr.nmsrs = list.l.nmsrs - i;
		for (uint32_t k = 0; k < m.hdr.nmsrs; k++)
			m.e[k] = (struct kvm_msr_entry){ .index = list.l.indices[i + k] };
		n = ioctl(cs->fd, KVM_GET_MSRS, &m);
		if (n < 0) {
			perrorf("cpu: KVM_GET_MSRS");
			return -1;
		}
		for (int k = 0; k < n; k++)
			cs->msr_index[cs->nmsr++] = list.l.indices[i + k];
		i += n + 1;
	}
	return 0;
}

static int cpu_save_msrs(struct cpu_state *cs, void *fdt)
{
	struct msr_list m;
	int n;

	for (;;) {
		m.hdr.nmsrs = cs->nmsr;
		for (int i = 0; i < cs->nmsr; i++)
			m.e[i] = (struct kvm_msr_entry){ .index = cs->msr_index[i] };
		n = ioctl(cs->fd, KVM_GET_MSRS, &m);
		if (n < 0) {
			perrorf("cpu: KVM_GET_MSRS");
			return -1;
		}
		if (n == cs->nmsr)
			return state_put_blob(fdt, "msrs", m.e, n * sizeof(m.e[0]));
		/* KVM stopped at an MSR this vCPU no longer has: the CPUID changed since they were
		 * found (a migration's destination hides what its source did). Forget it. */
		memmove(&cs->msr_index[n], &cs->msr_index[n + 1],
			(cs->nmsr - n - 1) * sizeof(cs->msr_index[0]));
		cs->nmsr--;
	}
}

static int cpu_set_msrs(struct cpu_state *cs, const struct kvm_msr_entry *e, int n)
{
	struct msr_list m;
	int r;

	m.hdr.nmsrs = n;
	memcpy(m.e, e, n * sizeof(e[0]));
	r = ioctl(cs->fd, KVM_SET_MSRS, &m);
	if (r < 0) {
		perrorf("cpu: KVM_SET_MSRS");
		return -1;
	}
	/*
	 * KVM stops at the first MSR it refuses. Both sides have the same CPU model (the hello
	 * checked it), so this is state the guest would lose: refuse the stream, as QEMU does,
	 * while the source can still resume.
	 */
	if (r < n) {
		errorf("cpu: KVM refused MSR %#x = %#llx", e[r].index, (unsigned long long)e[r].data);
		return -1;
	}
	return 0;
}

static int cpu_get_msrs(const void *fdt, int node, struct kvm_msr_entry *all)
{
	int len = state_get_var(fdt, node, "msrs", all, MAX_MSRS * sizeof(all[0]));

	if (len < 0 || len % sizeof(all[0])) {
		errorf("cpu: malformed MSR list");
		return -1;
	}
	return len / sizeof(all[0]);
}

static int cpu_load_msrs(struct cpu_state *cs, const void *fdt, int node)
{
	struct kvm_msr_entry all[MAX_MSRS];
	int n = cpu_get_msrs(fdt, node, all);

	return n < 0 ? -1 : cpu_set_msrs(cs, all, n);
}

/*
 * KVM ignores a TSC deadline written while the LAPIC is not in deadline mode, which a new
 * vCPU's is not: written again once the LAPIC is back (QEMU's kvm_put_tscdeadline_msr), or a
 * guest that armed its timer so would never see it fire.
 */
static int cpu_load_tsc_deadline(struct cpu_state *cs, const void *fdt, int node)
{
	struct kvm_msr_entry all[MAX_MSRS];
	int n = cpu_get_msrs(fdt, node, all);

	for (int i = 0; i < n; i++)
		if (all[i].index == MSR_IA32_TSC_DEADLINE)
			return cpu_set_msrs(cs, &all[i], 1);
	return n < 0 ? -1 : 0;
}

/* The fixed-size pieces, in restore order; MSRs go between the two groups. */
struct cpu_piece {
	const char *name;
	unsigned long get, set;
	size_t size;
};

static const struct cpu_piece cpu_early[] = {
	{ "sregs", KVM_GET_SREGS, KVM_SET_SREGS, sizeof(struct kvm_sregs) },
	{ "regs", KVM_GET_REGS, KVM_SET_REGS, sizeof(struct kvm_regs) },
	{ "xsave", KVM_GET_XSAVE, KVM_SET_XSAVE, sizeof(struct kvm_xsave) },
	{ "xcrs", KVM_GET_XCRS, KVM_SET_XCRS, sizeof(struct kvm_xcrs) },
};

static const struct cpu_piece cpu_late[] = {
	{ "lapic", KVM_GET_LAPIC, KVM_SET_LAPIC, sizeof(struct kvm_lapic_state) },
	{ "events", KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, sizeof(struct kvm_vcpu_events) },
	{ "mp_state", KVM_GET_MP_STATE, KVM_SET_MP_STATE, sizeof(struct kvm_mp_state) },
	{ "debugregs", KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, sizeof(struct kvm_debugregs) },
};

static int cpu_save_pieces(int fd, void *fdt, const struct cpu_piece *p, size_t n)
{
	uint8_t buf[sizeof(struct kvm_xsave)];

	for (size_t i = 0; i < n; i++) {
		if (ioctl(fd, p[i].get, buf) < 0) {
			perrorf("cpu: get %s", p[i].name);
			return -1;
		}
		if (state_put_blob(fdt, p[i].name, buf, p[i].size) < 0)
			return -1;
	}
	return 0;
}

static int cpu_load_pieces(int fd, const void *fdt, int node, const struct cpu_piece *p,
			   size_t n)
{
	uint8_t buf[sizeof(struct kvm_xsave)];

	for (size_t i = 0; i < n; i++) {
		if (state_get_blob(fdt, node, p[i].name, buf, p[i].size) < 0)
			return -1;
		if (ioctl(fd, p[i].set, buf) < 0) {
			perrorf("cpu: set %s", p[i].name);
			return -1;
		}
	}
	return 0;
}

static int cpu_save(void *opaque, void *fdt)
{
	struct cpu_state *cs = opaque;
	int fd = cs->fd;

	if (cpu_save_pieces(fd, fdt, cpu_early, ARRAY_SIZE(cpu_early)) < 0 ||
	    cpu_save_msrs(cs, fdt) < 0 ||
	    cpu_save_pieces(fd, fdt, cpu_late, ARRAY_SIZE(cpu_late)) < 0)
		return -1;
	return 0;
}

static int cpu_load(void *opaque, const void *fdt, int node)
{
	struct cpu_state *cs = opaque;
	int fd = cs->fd;

	if (cpu_load_pieces(fd, fdt, node, cpu_early, ARRAY_SIZE(cpu_early)) < 0 ||
	    cpu_load_msrs(cs, fdt, node) < 0 ||
	    cpu_load_pieces(fd, fdt, node, cpu_late, ARRAY_SIZE(cpu_late)) < 0 ||
	    cpu_load_tsc_deadline(cs, fdt, node) < 0)
		return -1;
	/*
	 * Tells the guest it was stopped (soft-lockup watchdogs) when it next runs; EINVAL if it
	 * has no kvmclock. Here rather than at resume, which is then one call shorter.
	 */
	ioctl(fd, KVM_KVMCLOCK_CTRL, 0);
	return 0;
}

static void cpu_destroy(void *opaque)
{
	free(opaque);
}

static const struct device_ops cpu_ops = {
	.name = "cpu",	/* one node per vCPU: cpu, cpu-1, cpu-2... */
	.save = cpu_save,
	.load = cpu_load,
	.destroy = cpu_destroy,
};

int cpu_state_register(struct vm *vm)
{
	struct cpu_state first = { .vm = vm, .fd = vm->vcpu[0].fd };

	/* Every vCPU has the same CPUID, so the same MSRs: found once. */
	if (cpu_find_msrs(&first) < 0)
		return -1;
	for (int i = 0; i < vm->nvcpu; i++) {
		struct cpu_state *cs = malloc(sizeof(*cs));

		if (!cs) {
			perrorf("cpu: malloc");
			return -1;
		}
		*cs = first;
		cs->fd = vm->vcpu[i].fd;
		if (vm_register_device(vm, &cpu_ops, cs) < 0) {
			free(cs);
			return -1;
		}
	}
	return 0;
}
