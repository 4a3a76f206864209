/*
 * The CPU the guest sees, one for all its vCPUs: KVM's, less what -cpu hides. A migration's
 * hello carries its vendor and feature words, each as (leaf, subleaf, register, value), so that
 * a destination checks even a word it has no name for. It takes the guest only if it can give
 * it every feature the guest was given (a guest that picked AVX-512 code at boot dies of #UD on
 * a host without it), and then hides what it has beyond them in the words the source sent:
 * the guest finds the same features after the move (family, model and caches are the new
 * host's).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libfdt.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "guest-boot/boot.h"
#include "vmm/cpu_state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

/* Two rates of one TSC differ by less than this; KVM does the same (tsc_tolerance_ppm). */
#define TSC_TOLERANCE_PPM 250

struct cpu_model {
	struct vm *vm;
	struct kvm_cpuid2 *cpuid;	/* what the guest gets */
	struct kvm_cpuid2 *offered;	/* what KVM offers, before -cpu */
	struct boot_cpu features;	/* cpuid's feature words */
	struct boot_cpu invtsc;		/* the invariant TSC's bit */
	char vendor[13];
	int tsc_khz;			/* the vCPUs' TSC rate */
};

static bool has_invtsc(struct cpu_model *cm)
{
	for (int i = 0; i < BOOT_CPU_WORDS; i++)
		if (cm->features.w[i] & cm->invtsc.w[i])
			return true;
	return false;
}

/* Every vCPU gets the same CPUID, with its own APIC ID. Only before a vCPU first runs. */
static int cpu_model_apply(struct cpu_model *cm)
{
	for (int i = 0; i < cm->vm->nvcpu; i++)
		if (boot_cpuid_set(cm->vm->vcpu[i].fd, cm->cpuid, i) < 0)
			return -1;
	return 0;
}

static int cpu_model_describe(void *opaque, void *fdt)
{
	struct cpu_model *cm = opaque;
	fdt32_t q[BOOT_CPU_WORDS][4];

	for (int i = 0; i < BOOT_CPU_WORDS; i++) {
		uint32_t leaf, sub;
		int reg;

		boot_cpu_word_id(i, &leaf, &sub, &reg);
		q[i][0] = cpu_to_fdt32(leaf);
		q[i][1] = cpu_to_fdt32(sub);
		q[i][2] = cpu_to_fdt32(reg);
		q[i][3] = cpu_to_fdt32(cm->features.w[i]);
	}
	return fdt_property_string(fdt, "vendor", cm->vendor) ||
	       fdt_property(fdt, "features", q, sizeof(q)) ||
	       (has_invtsc(cm) && fdt_property_u32(fdt, "tsc-khz", cm->tsc_khz));
}

/* Appends " name" to buf for each bit set in bits of that register, each name once. */
static void name_bits(char *buf, size_t len, uint32_t leaf, uint32_t sub, int reg,
		      uint32_t bits)
{
	char last[64] = "";

	for (int b = 0; b < 32; b++) {
		size_t n = strlen(buf);
		char name[64];

		if (!(bits & 1u << b) || n >= len - 1)
			continue;
		boot_cpu_bit_name(leaf, sub, reg, b, name, sizeof(name));
		if (strcmp(name, last))
			snprintf(buf + n, len - n, " %s", name);
		snprintf(last, sizeof(last), "%s", name);
	}
}

/* -cpu host,+F: the features in want the words have not, by name; empty if none. */
static void cpu_model_lacking(const struct boot_cpu *want, const struct boot_cpu *have,
			      char *buf, size_t len)
{
	buf[0] = '\0';
	for (int i = 0; i < BOOT_CPU_WORDS; i++) {
		uint32_t leaf, sub;
		int reg;

		boot_cpu_word_id(i, &leaf, &sub, &reg);
		name_bits(buf, len, leaf, sub, reg, want->w[i] & ~have->w[i]);
	}
}

/* Word i of a description: leaf, subleaf, register, value. */
static void word_at(const fdt32_t *q, int i, uint32_t w[4])
{
	for (int k = 0; k < 4; k++)
		w[k] = fdt32_to_cpu(q[4 * i + k]);
}

/* Each bit of the source's n words must be here; why names those KVM lacks or -cpu hides. */
static int cpu_model_check(struct cpu_model *cm, const fdt32_t *q, int n, char *why, size_t len)
{
	char missing[160] = "", hidden[160] = "";
	uint32_t w[4];

	for (int i = 0; i < n; i++) {
		uint32_t lack, offered;

		word_at(q, i, w);
		lack = w[3] & ~boot_cpuid_get(cm->cpuid, w[0], w[1], w[2]);
		offered = boot_cpuid_get(cm->offered, w[0], w[1], w[2]);
		name_bits(missing, sizeof(missing), w[0], w[1], w[2], lack & ~offered);
		name_bits(hidden, sizeof(hidden), w[0], w[1], w[2], lack & offered);
	}
	if (!missing[0] && !hidden[0])
		return 0;
	snprintf(why, len, "the guest uses CPU features%s%s%s%s",
		 missing[0] ? " missing here:" : "", missing,
		 !hidden[0]    ? ""
		 : missing[0] ? "; hidden here by -cpu:"
			      : " hidden here by -cpu:",
		 hidden);
	return -1;
}

/* The source's n words fit: only their bits stay on, unless -cpu here insists on more. */
static int cpu_model_take(struct cpu_model *cm, const fdt32_t *q, int n, char *why, size_t len)
{
	char names[160];
	struct boot_cpu theirs;
	uint32_t w[4];

	if (cpu_model_check(cm, q, n, why, len) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		word_at(q, i, w);
		boot_cpuid_keep(cm->cpuid, w[0], w[1], w[2], w[3]);
	}
	boot_cpuid_features(cm->cpuid, &theirs);
	cpu_model_lacking(&cm->vm->cfg->cpu_on, &theirs, names, sizeof(names));
	if (names[0]) {
		snprintf(why, len, "the guest lacks CPU features that -cpu here insists on:%s",
			 names);
		return -1;
	}
	cm->features = theirs;
	return 0;
}

/*
 * A guest with an invariant TSC reads time from it at the rate it saw at boot: keep that.
 * Without TSC scaling KVM would take a higher rate and only catch up now and then, so a
 * rate that differs needs KVM_CAP_TSC_CONTROL.
 */
static int cpu_model_tsc(struct cpu_model *cm, const void *fdt, int node, char *why, size_t len)
{
	int plen;
	const fdt32_t *p = fdt_getprop(fdt, node, "tsc-khz", &plen);
	long khz = p && plen == 4 ? (long)fdt32_to_cpu(*p) : 0;

	if (!p)
		return 0;
	if (khz <= 0) {
		snprintf(why, len, "corrupt stream: malformed TSC rate");
		return -1;
	}
	if (labs(khz - cm->tsc_khz) * 1000000 <= (long)cm->tsc_khz * TSC_TOLERANCE_PPM)
		return 0;
	if (ioctl(cm->vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) <= 0) {
		snprintf(why, len, "the guest has an invariant TSC at %ld kHz; here it runs at %d "
			 "kHz and KVM cannot scale it", khz, cm->tsc_khz);
		return -1;
	}
	for (int i = 0; i < cm->vm->nvcpu; i++) {
		if (ioctl(cm->vm->vcpu[i].fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0) {
			snprintf(why, len, "KVM_SET_TSC_KHZ %ld: %s", khz, strerror(errno));
			return -1;
		}
	}
	cm->tsc_khz = khz;
	return 0;
}

static bool registers_valid(const fdt32_t *q, int n)
{
	uint32_t w[4];

	for (int i = 0; i < n; i++) {
		word_at(q, i, w);
		if (w[2] > 3)
			return false;
	}
	return true;
}

static int cpu_model_match(void *opaque, const void *fdt, int node, char *why, size_t len)
{
	struct cpu_model *cm = opaque;
	int vlen, qlen;
	const char *vendor = fdt_getprop(fdt, node, "vendor", &vlen);
	const fdt32_t *q = fdt_getprop(fdt, node, "features", &qlen);

	/* CPUID's 12 characters at most, as cpu_model_describe sends them */
	if (vlen > 13 || !printable_string(vendor, vlen) || !q || qlen % 16 ||
	    !registers_valid(q, qlen / 16)) {
		snprintf(why, len, "corrupt stream: malformed CPU description");
		return -1;
	}
	if (strcmp(vendor, cm->vendor)) {
		snprintf(why, len, "CPU vendor %s != %s", vendor, cm->vendor);
		return -1;
	}
	if (cpu_model_take(cm, q, qlen / 16, why, len) < 0 ||
	    cpu_model_tsc(cm, fdt, node, why, len) < 0)
		return -1;
	if (cpu_model_apply(cm) < 0) {
		snprintf(why, len, "cannot give the vCPUs the source's CPUID");
		return -1;
	}
	return 0;
}

static void cpu_model_destroy(void *opaque)
{
	struct cpu_model *cm = opaque;

	free(cm->cpuid);
	free(cm->offered);
	free(cm);
}

static const struct device_ops cpu_model_ops = {
	.name = "cpuid",
	.describe = cpu_model_describe,
	.match = cpu_model_match,
	.destroy = cpu_model_destroy,
};

/*
 * What -cpu hides, and the invariant TSC unless -cpu host,+invtsc: with it, Linux prefers the
 * TSC to kvm-clock, and a TSC keeps its host's rate, so after a move to a host whose TSC runs
 * at another rate the guest's clock would run fast or slow. QEMU's migratable host CPU leaves
 * it out for the same reason. With +invtsc, the hello carries the rate and a destination that
 * cannot keep it refuses.
 */
static void cpu_model_hidden(struct cpu_model *cm, struct boot_cpu *off)
{
	const struct tern_config *cfg = cm->vm->cfg;

	for (int i = 0; i < BOOT_CPU_WORDS; i++)
		off->w[i] = cfg->cpu_off.w[i] | (cm->invtsc.w[i] & ~cfg->cpu_on.w[i]);
}

/* -cpu host,+F: the guest must have F, so KVM must offer it; +invtsc needs a known rate. */
static int cpu_model_check_wanted(struct cpu_model *cm)
{
	char names[192];

	cpu_model_lacking(&cm->vm->cfg->cpu_on, &cm->features, names, sizeof(names));
	if (names[0]) {
		errorf("-cpu:%s: not offered by this host's KVM", names);
		return -1;
	}
	if (has_invtsc(cm) && cm->tsc_khz <= 0) {
		errorf("-cpu: +invtsc: KVM_GET_TSC_KHZ: %s",
		       cm->tsc_khz < 0 ? strerror(errno) : "no rate");
		return -1;
	}
	return 0;
}

int cpu_model_create(struct vm *vm)
{
	struct cpu_model *cm = calloc(1, sizeof(*cm));
	struct boot_cpu off;

	if (!cm) {
		perrorf("cpu: calloc");
		return -1;
	}
	cm->vm = vm;
	boot_cpu_feature("invtsc", &cm->invtsc);
	cm->tsc_khz = ioctl(vm->vcpu[0].fd, KVM_GET_TSC_KHZ, 0);
	cm->offered = boot_cpuid_new(vm->kvm_fd);
	cm->cpuid = cm->offered ? boot_cpuid_copy(cm->offered) : NULL;
	if (!cm->cpuid)
		goto fail;
	cpu_model_hidden(cm, &off);
	boot_cpuid_clear(cm->cpuid, &off);
	boot_cpuid_features(cm->cpuid, &cm->features);
	boot_cpuid_vendor(cm->cpuid, cm->vendor);
	if (cpu_model_check_wanted(cm) < 0 || cpu_model_apply(cm) < 0 ||
	    vm_register_device(vm, &cpu_model_ops, cm) < 0)
		goto fail;
	return 0;
fail:
	cpu_model_destroy(cm);
	return -1;
}
