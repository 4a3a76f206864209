/*
 * The guest's CPUID: what KVM supports, trimmed to one CPU per package, plus KVM's paravirt
 * leaves so that OSv and Linux find kvmclock (OSv halts without a clock source). With -smp N
 * the guest sees N packages of one CPU each (QEMU's old -smp default), APIC IDs 0 to N-1:
 * no core or thread numbering to get wrong, and nothing the host's topology leaks into.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "guest-boot/internal.h"
#include "vmm/util.h"

#define CPUID_MAX_ENTRIES 4096
#define KVM_CPUID_SIGNATURE 0x40000000u
#define KVM_CPUID_FEATURES 0x40000001u
#define LEAF1_ECX_X2APIC (1u << 21)
#define LEAF1_ECX_TSC_DEADLINE (1u << 24)
#define LEAF1_ECX_HYPERVISOR (1u << 31)
#define LEAF1_EDX_HTT (1u << 28)
/* kvmclock (old and new MSRs) and its stable bit; PV features beyond the clock stay off so
 * the guest depends on nothing more than it needs. */
#define KVM_FEATURE_CLOCKS ((1u << 0) | (1u << 3) | (1u << 24))

static struct kvm_cpuid2 *cpuid_supported(int kvm_fd)
{
	/* Room for two leaves that may have to be added after KVM's list. */
	for (unsigned n = 64; n <= CPUID_MAX_ENTRIES; n *= 2) {
		struct kvm_cpuid2 *c =
		    calloc(1, sizeof(*c) + (n + 2) * sizeof(struct kvm_cpuid_entry2));

		if (!c) {
			errorf("cpuid: out of memory");
			return NULL;
		}
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG) {
			perrorf("cpuid: KVM_GET_SUPPORTED_CPUID");
			return NULL;
		}
	}
	errorf("cpuid: KVM_GET_SUPPORTED_CPUID: more than %d entries", CPUID_MAX_ENTRIES);
	return NULL;
}

static struct kvm_cpuid_entry2 *cpuid_leaf(struct kvm_cpuid2 *c, uint32_t fn)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn)
			return &c->entries[i];
	c->entries[c->nent] = (struct kvm_cpuid_entry2){.function = fn};
	return &c->entries[c->nent++];
}

static void cpuid_trim(struct kvm_cpuid2 *c)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			/* one logical CPU (bits 23-16), APIC ID (31-24) per vCPU; keep CLFLUSH/brand */
			e->ebx = (e->ebx & 0xffff) | (1u << 16);
			e->ecx |= LEAF1_ECX_HYPERVISOR;
			e->edx &= ~LEAF1_EDX_HTT;
			break;
		case 4:
			/* one core per package, no threads sharing a cache */
			e->eax &= 0x3fff;
			break;
		case 0xb:
		case 0x1f:
			/* x2APIC topology, where KVM still reports levels: each holds just this CPU
			 * (x2APIC ID per vCPU) */
			e->eax = 0;
			e->ebx = (e->ecx & 0xff00) ? 1 : 0;
			break;
		case 0x80000008:
			/* AMD: one core per package (NC and ApicIdCoreIdSize), not the host's */
			e->ecx &= ~0xf0ffu;
			break;
		case 0x8000001d:
			/* AMD: no other CPU shares a cache (bits 25-14), as leaf 4 */
			e->eax &= 0x3fff;
			break;
		case 0x8000001e:
			/* AMD: core 0 (EBX), one thread a core, node 0 (ECX); extended APIC ID
			 * (EAX) per vCPU */
			e->ebx = e->ecx = 0;
			break;
		}
	}
}

static void cpuid_kvm_leaves(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *sig = cpuid_leaf(c, KVM_CPUID_SIGNATURE);
	struct kvm_cpuid_entry2 *feat = cpuid_leaf(c, KVM_CPUID_FEATURES);

	sig->eax = KVM_CPUID_FEATURES;
	memcpy(&sig->ebx, "KVMK", 4);
	memcpy(&sig->ecx, "VMKV", 4);
	memcpy(&sig->edx, "M\0\0\0", 4);
	/* feat came from KVM's list if KVM supports it at all: only bits KVM offers survive */
	feat->eax &= KVM_FEATURE_CLOCKS;
	feat->ebx = feat->ecx = feat->edx = 0;
}

struct kvm_cpuid2 *boot_cpuid_new(int kvm_fd)
{
	struct kvm_cpuid2 *c = cpuid_supported(kvm_fd);

	if (c) {
		cpuid_trim(c);
		cpuid_kvm_leaves(c);
		/*
		 * KVM's LAPIC emulates the TSC-deadline timer but its list leaves it out (QEMU
		 * adds it the same way): with it Linux sets its timer with one MSR write.
		 */
		if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
			cpuid_leaf(c, 1)->ecx |= LEAF1_ECX_TSC_DEADLINE;
	}
	return c;
}

struct kvm_cpuid2 *boot_cpuid_copy(const struct kvm_cpuid2 *c)
{
	size_t size = sizeof(*c) + c->nent * sizeof(c->entries[0]);
	struct kvm_cpuid2 *copy = malloc(size);

	if (copy)
		memcpy(copy, c, size);
	else
		errorf("cpuid: out of memory");
	return copy;
}

static uint32_t *cpuid_reg(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub, int reg)
{
	for (unsigned i = 0; i < c->nent; i++) {
		uint32_t *r = boot_cpuid_reg(&c->entries[i], leaf, sub, reg);

		if (r)
			return r;
	}
	return NULL;
}

uint32_t boot_cpuid_get(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub, int reg)
{
	uint32_t *r = cpuid_reg(c, leaf, sub, reg);

	return r ? *r : 0;
}

void boot_cpuid_keep(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub, int reg, uint32_t keep)
{
	uint32_t *r = cpuid_reg(c, leaf, sub, reg);

	if (r)
		*r &= keep;
}

void boot_cpuid_features(struct kvm_cpuid2 *c, struct boot_cpu *out)
{
	for (int i = 0; i < BOOT_CPU_WORDS; i++) {
		uint32_t leaf, sub;
		int reg;

		boot_cpu_word_id(i, &leaf, &sub, &reg);
		out->w[i] = boot_cpuid_get(c, leaf, sub, reg);
	}
}

void boot_cpuid_clear(struct kvm_cpuid2 *c, const struct boot_cpu *off)
{
	struct boot_cpu f;

	boot_cpuid_features(c, &f);
	for (int i = 0; i < BOOT_CPU_WORDS; i++)
		f.w[i] &= ~off->w[i];
	boot_cpu_follow(&f);
	for (int i = 0; i < BOOT_CPU_WORDS; i++) {
		uint32_t leaf, sub;
		int reg;

		boot_cpu_word_id(i, &leaf, &sub, &reg);
		boot_cpuid_keep(c, leaf, sub, reg, f.w[i]);
	}
}

void boot_cpuid_vendor(struct kvm_cpuid2 *c, char vendor[13])
{
	struct kvm_cpuid_entry2 *e = cpuid_leaf(c, 0);

	memcpy(vendor, &e->ebx, 4);
	memcpy(vendor + 4, &e->edx, 4);
	memcpy(vendor + 8, &e->ecx, 4);
	vendor[12] = '\0';
}

int boot_cpuid_set(int vcpu_fd, struct kvm_cpuid2 *c, uint32_t apic_id)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == 1)
			e->ebx = (e->ebx & 0xffffff) | apic_id << 24;
		else if (e->function == 0xb || e->function == 0x1f)
			e->edx = apic_id;
		else if (e->function == 0x8000001e)
			e->eax = apic_id;
	}
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0) {
		perrorf("cpuid: KVM_SET_CPUID2");
		return -1;
	}
	return 0;
}
