/*
 * The CPUID words that say what a guest may use, and their bits' names as QEMU's -cpu spells
 * them. A migration compares these words (a guest must find every feature it was given on the
 * far side), and -cpu host,-FEATURE clears bits in them.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <linux/kvm.h>

#include "guest-boot/internal.h"
#include "vmm/util.h"

enum { EAX, EBX, ECX, EDX };

static const struct boot_cpu_word {
	uint32_t leaf, sub;
	int reg;
} words[BOOT_CPU_WORDS] = {
	{ 0x1, 0, ECX },	{ 0x1, 0, EDX },	{ 0x7, 0, EBX },	{ 0x7, 0, ECX },
	{ 0x7, 0, EDX },	{ 0x7, 1, EAX },	{ 0x7, 1, EDX },	{ 0x7, 2, EDX },
	{ 0xd, 0, EAX },	{ 0xd, 0, EDX },	/* XSAVE state components */
	{ 0xd, 1, EAX },	{ 0x80000001, 0, ECX }, { 0x80000001, 0, EDX },
	{ 0x80000007, 0, EDX }, { 0x80000008, 0, EBX }, { 0x80000021, 0, EAX },
	{ 0x40000001, 0, EAX },
};

/* Word indexes, in the order above. */
enum { W1C, W1D, W7B, W7C, W7D, W71A, W71D, W72D, WD0A, WD0D, WD1A, W81C, W81D, W87D, W88B,
       W821A, WKVM };

static const struct {
	const char *name;
	uint8_t word, bit;
} features[] = {
	{ "sse3", W1C, 0 },	    { "pni", W1C, 0 },		{ "pclmulqdq", W1C, 1 },
	{ "ssse3", W1C, 9 },	    { "fma", W1C, 12 },		{ "cx16", W1C, 13 },
	{ "pcid", W1C, 17 },	    { "sse4.1", W1C, 19 },	{ "sse4.2", W1C, 20 },
	{ "x2apic", W1C, 21 },	    { "movbe", W1C, 22 },	{ "popcnt", W1C, 23 },
	{ "tsc-deadline", W1C, 24 }, { "aes", W1C, 25 },	{ "xsave", W1C, 26 },
	{ "avx", W1C, 28 },	    { "f16c", W1C, 29 },	{ "rdrand", W1C, 30 },
	{ "mtrr", W1D, 12 },	    { "pat", W1D, 16 },		{ "clflush", W1D, 19 },
	{ "ss", W1D, 27 },	    { "fsgsbase", W7B, 0 },	{ "bmi1", W7B, 3 },
	{ "hle", W7B, 4 },	    { "avx2", W7B, 5 },		{ "smep", W7B, 7 },
	{ "bmi2", W7B, 8 },	    { "erms", W7B, 9 },		{ "invpcid", W7B, 10 },
	{ "rtm", W7B, 11 },	    { "avx512f", W7B, 16 },	{ "avx512dq", W7B, 17 },
	{ "rdseed", W7B, 18 },	    { "adx", W7B, 19 },		{ "smap", W7B, 20 },
	{ "avx512ifma", W7B, 21 },  { "clflushopt", W7B, 23 },	{ "clwb", W7B, 24 },
	{ "avx512cd", W7B, 28 },    { "sha-ni", W7B, 29 },	{ "avx512bw", W7B, 30 },
	{ "avx512vl", W7B, 31 },    { "avx512vbmi", W7C, 1 },	{ "umip", W7C, 2 },
	{ "pku", W7C, 3 },	    { "waitpkg", W7C, 5 },	{ "avx512vbmi2", W7C, 6 },
	{ "gfni", W7C, 8 },	    { "vaes", W7C, 9 },		{ "vpclmulqdq", W7C, 10 },
	{ "avx512vnni", W7C, 11 },  { "avx512bitalg", W7C, 12 }, { "avx512-vpopcntdq", W7C, 14 },
	{ "la57", W7C, 16 },	    { "rdpid", W7C, 22 },	{ "movdiri", W7C, 27 },
	{ "movdir64b", W7C, 28 },   { "fsrm", W7D, 4 },		{ "md-clear", W7D, 10 },
	{ "serialize", W7D, 14 },   { "amx-bf16", W7D, 22 },	{ "avx512-fp16", W7D, 23 },
	{ "amx-tile", W7D, 24 },    { "amx-int8", W7D, 25 },	{ "spec-ctrl", W7D, 26 },
	{ "stibp", W7D, 27 },	    { "arch-capabilities", W7D, 29 }, { "ssbd", W7D, 31 },
	{ "avx-vnni", W71A, 4 },    { "avx512-bf16", W71A, 5 }, { "avx-vnni-int8", W71D, 4 },
	{ "avx-ne-convert", W71D, 5 }, { "avx-vnni-int16", W71D, 10 }, { "prefetchiti", W71D, 14 },
	{ "avx10", W71D, 19 },	    { "xsaveopt", WD1A, 0 },
	{ "xsavec", WD1A, 1 },	    { "xgetbv1", WD1A, 2 },	{ "xsaves", WD1A, 3 },
	{ "lahf-lm", W81C, 0 },	    { "svm", W81C, 2 },		{ "abm", W81C, 5 },
	{ "sse4a", W81C, 6 },	    { "misalignsse", W81C, 7 }, { "3dnowprefetch", W81C, 8 },
	{ "xop", W81C, 11 },	    { "fma4", W81C, 16 },	{ "tbm", W81C, 21 },
	{ "topoext", W81C, 22 },    { "syscall", W81D, 11 },	{ "nx", W81D, 20 },
	{ "mmxext", W81D, 22 },	    { "pdpe1gb", W81D, 26 },	{ "rdtscp", W81D, 27 },
	{ "lm", W81D, 29 },	    { "invtsc", W87D, 8 },	{ "clzero", W88B, 0 },
	{ "xsaveerptr", W88B, 2 },  { "wbnoinvd", W88B, 9 },	{ "ibpb", W88B, 12 },
	{ "amd-ssbd", W88B, 24 },   { "virt-ssbd", W88B, 25 },	{ "kvmclock", WKVM, 0 },
	{ "kvmclock", WKVM, 3 },    { "kvmclock-stable-bit", WKVM, 24 },
};

/*
 * Features that make no sense without another (their instructions use its registers): hidden
 * with it, so that -avx512f takes AVX10 along, and -amx-tile the AMX instructions.
 */
static const struct {
	uint8_t word, bit, needs_word, needs_bit;
} needs[] = {
	{ W7B, 5, W1C, 28 },			/* avx2: avx */
	{ W1C, 12, W1C, 28 },			/* fma: avx */
	{ W1C, 29, W1C, 28 },			/* f16c: avx */
	{ W7B, 16, W1C, 28 },			/* avx512f: avx (as Linux has it) */
	{ W71D, 19, W7B, 16 },			/* avx10: avx512f */
	{ W7D, 25, W7D, 24 },			/* amx-int8: amx-tile */
	{ W7D, 22, W7D, 24 },			/* amx-bf16: amx-tile */
};

/*
 * The XSAVE state components that go with a feature: a guest without the feature must not be
 * able to enable its state in XCR0 either (KVM takes what XCR0 may hold from leaf 0xd).
 */
static const struct {
	uint8_t word, bit;
	uint32_t components;
} xsave_of[] = {
	{ W1C, 28, 1u << 2 },			/* avx: YMM */
	{ W7B, 16, 7u << 5 },			/* avx512f: opmask, ZMM_Hi256, Hi16_ZMM */
	{ W7C, 3, 1u << 9 },			/* pku: PKRU */
	{ W7D, 24, 3u << 17 },			/* amx-tile: XTILECFG, XTILEDATA */
};

_Static_assert(WKVM + 1 == BOOT_CPU_WORDS, "a word index for every word");

/* QEMU takes sse4_1, sse4-1 and sse4.1 alike. */
static bool feature_name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (*a != *b && !(strchr("-_.", *a) && strchr("-_.", *b)))
			return false;
	return *a == *b;
}

int boot_cpu_feature(const char *name, struct boot_cpu *mask)
{
	bool found = false;

	memset(mask, 0, sizeof(*mask));
	for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
		if (feature_name_eq(features[i].name, name)) {
			mask->w[features[i].word] |= 1u << features[i].bit;
			found = true;
		}
	}
	return found ? 0 : -1;
}

void boot_cpu_follow(struct boot_cpu *f)
{
	/* In table order, so that a chain (avx, avx512f, avx10) falls in one pass. */
	for (size_t i = 0; i < ARRAY_SIZE(needs); i++)
		if (!(f->w[needs[i].needs_word] & 1u << needs[i].needs_bit))
			f->w[needs[i].word] &= ~(1u << needs[i].bit);
	for (size_t i = 0; i < ARRAY_SIZE(xsave_of); i++)
		if (!(f->w[xsave_of[i].word] & 1u << xsave_of[i].bit))
			f->w[WD0A] &= ~xsave_of[i].components;
}

void boot_cpu_word_id(int i, uint32_t *leaf, uint32_t *sub, int *reg)
{
	*leaf = words[i].leaf;
	*sub = words[i].sub;
	*reg = words[i].reg;
}

void boot_cpu_bit_name(uint32_t leaf, uint32_t sub, int reg, int bit, char *buf, size_t len)
{
	static const char regs[] = "abcd";

	for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
		const struct boot_cpu_word *w = &words[features[i].word];

		if (w->leaf == leaf && w->sub == sub && w->reg == reg && features[i].bit == bit) {
			snprintf(buf, len, "%s", features[i].name);
			return;
		}
	}
	if (leaf == 0xd && sub == 0 && (reg == EAX || reg == EDX))
		snprintf(buf, len, "XSAVE state component %d", bit + (reg == EDX ? 32 : 0));
	else
		snprintf(buf, len, "cpuid 0x%x.%u e%cx bit %d", leaf, sub, regs[reg & 3], bit);
}

uint32_t *boot_cpuid_reg(struct kvm_cpuid_entry2 *e, uint32_t leaf, uint32_t sub, int reg)
{
	uint32_t *r[] = { &e->eax, &e->ebx, &e->ecx, &e->edx };

	return e->function == leaf && e->index == sub && reg >= 0 && reg < 4 ? r[reg] : NULL;
}
