/*
 * The CPU the guest sees, one for all its vCPUs: KVM's, less what -cpu hides. A migration's
 * hello carries its vendor and feature words. A destination takes the guest only if it can
 * give it every feature the guest was given (a guest that picked AVX-512 code at boot dies of
 * #UD on a host without it), and then hides what it has beyond them, so that the guest finds
 * the same CPU after the move as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libfdt.h>
#include <linux/kvm.h>

#include "guest-boot/boot.h"
#include "vmm/cpu_state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

struct cpu_model {
	struct vm *vm;
	struct kvm_cpuid2 *cpuid;
	struct boot_cpu features;	/* what cpuid gives the guest */
	char vendor[13];
};

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
	fdt32_t w[BOOT_CPU_WORDS];

	for (int i = 0; i < BOOT_CPU_WORDS; i++)
		w[i] = cpu_to_fdt32(cm->features.w[i]);
	return fdt_property_string(fdt, "vendor", cm->vendor) ||
	       fdt_property(fdt, "features", w, sizeof(w));
}

/* The names of the features in want but not in have, each after a space; how many. */
static int features_missing(const struct boot_cpu *want, const struct boot_cpu *have, char *buf,
			    size_t len)
{
	int n = 0, count = 0;

	buf[0] = '\0';
	for (int i = 0; i < BOOT_CPU_WORDS; i++)
		for (int b = 0; b < 32; b++) {
			char name[64];

			if (!(want->w[i] & ~have->w[i] & 1u << b))
				continue;
			boot_cpu_feature_name(i, b, name, sizeof(name));
			if (n < (int)len)
				n += snprintf(buf + n, len - n, " %s", name);
			count++;
		}
	return count;
}

static int cpu_model_match(void *opaque, const void *fdt, int node, char *why, size_t len)
{
	struct cpu_model *cm = opaque;
	const char *vendor = fdt_getprop(fdt, node, "vendor", NULL);
	int wlen;
	const fdt32_t *w = fdt_getprop(fdt, node, "features", &wlen);
	struct boot_cpu theirs, extra;
	char names[192];

	if (!vendor || !w || wlen != sizeof(theirs.w)) {
		snprintf(why, len, "the source's CPU description is not one this tern reads");
		return -1;
	}
	if (strcmp(vendor, cm->vendor)) {
		snprintf(why, len, "CPU vendor %s != %s", vendor, cm->vendor);
		return -1;
	}
	for (int i = 0; i < BOOT_CPU_WORDS; i++)
		theirs.w[i] = fdt32_to_cpu(w[i]);
	if (features_missing(&theirs, &cm->features, names, sizeof(names))) {
		snprintf(why, len, "the guest uses CPU features missing here:%s", names);
		return -1;
	}
	for (int i = 0; i < BOOT_CPU_WORDS; i++)
		extra.w[i] = cm->features.w[i] & ~theirs.w[i];
	boot_cpuid_clear(cm->cpuid, &extra);
	cm->features = theirs;
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
	free(cm);
}

static const struct device_ops cpu_model_ops = {
	.name = "cpuid",
	.describe = cpu_model_describe,
	.match = cpu_model_match,
	.destroy = cpu_model_destroy,
};

int cpu_model_create(struct vm *vm)
{
	struct cpu_model *cm = calloc(1, sizeof(*cm));
	char names[192];

	if (!cm) {
		perrorf("cpu: calloc");
		return -1;
	}
	cm->vm = vm;
	cm->cpuid = boot_cpuid_new(vm->kvm_fd);
	if (!cm->cpuid)
		goto fail;
	boot_cpuid_clear(cm->cpuid, &vm->cfg->cpu_off);
	boot_cpuid_features(cm->cpuid, &cm->features);
	boot_cpuid_vendor(cm->cpuid, cm->vendor);
	/* -cpu host,+F: the guest must have F, so KVM must offer it. */
	if (features_missing(&vm->cfg->cpu_on, &cm->features, names, sizeof(names))) {
		errorf("-cpu:%s: not offered by this host's KVM", names);
		goto fail;
	}
	if (cpu_model_apply(cm) < 0 || vm_register_device(vm, &cpu_model_ops, cm) < 0)
		goto fail;
	return 0;
fail:
	cpu_model_destroy(cm);
	return -1;
}
