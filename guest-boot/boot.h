/*
 * Direct kernel boot: load an ELF (with or without a PVH note) or a bzImage into guest RAM,
 * build the boot tables (zero page + e820 or PVH start_info, cmdline, initrd, page tables,
 * GDT, ACPI) and describe the vCPU state the kernel must start in.
 *
 * guest-boot/ knows nothing of the VM object: it writes into a plain guest_mem, so its pieces
 * can be unit-tested on a malloc'ed buffer.
 */
#ifndef TERN_BOOT_H
#define TERN_BOOT_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

struct guest_mem {
	uint8_t *base;		/* guest physical 0 */
	uint64_t size;
};

/* A virtio-mmio device, announced on the cmdline (OSv) and in the DSDT (Linux). */
struct boot_dev {
	uint64_t base, size;
	uint32_t irq;
};

#define BOOT_MAX_DEVS 16
/*
 * ACPI's hardware-reduced sleep registers (FADT), one byte each in I/O space: the guest writes
 * SLP_TYP << 2 | SLP_EN to the control register to enter a sleep state; _S5 (soft off) is
 * BOOT_SLP_TYP_S5. Linux and OSv's ACPICA power off this way.
 */
/*
 * The i8042's command port and its pulse-reset command (vmm/i8042.c): how the FADT's reset
 * register and the reset vector's code reboot.
 */
#define BOOT_RESET_PORT 0x64
#define BOOT_RESET_VALUE 0xfe
#define BOOT_SLEEP_CONTROL_PORT 0x3c0
#define BOOT_SLEEP_STATUS_PORT 0x3c1
#define BOOT_SLP_TYP_S5 5
/* QEMU's pvpanic port (vmm/pvpanic.c), described as ACPI device QEMU0001. */
#define BOOT_PVPANIC_PORT 0x505
#define BOOT_CMDLINE_MAX 2048	/* including the terminating NUL */

struct boot_cfg {
	const char *kernel;	/* path */
	const char *initrd;	/* path or NULL */
	const char *cmdline;	/* user's -append, may be NULL */
	bool force_pvh;		/* enter through the PVH note even if a 64-bit entry exists */
	unsigned ncpus;
	struct boot_dev devs[BOOT_MAX_DEVS];
	int ndevs;
};

enum boot_mode {
	BOOT_LINUX64,		/* long mode, paging on, RSI = zero page */
	BOOT_PVH32,		/* 32-bit protected mode, paging off, EBX = hvm_start_info */
};

struct boot_entry {
	enum boot_mode mode;
	uint64_t rip;
	uint64_t rsi, rbx, rsp;
	uint64_t cr3;		/* BOOT_LINUX64 only */
	uint64_t gdt_base;
	uint16_t gdt_limit;
};

/*
 * Loads cfg->kernel into mem and builds everything the kernel reads at boot.
 * On error prints one line naming the problem ("kernel: FILE: ...") and returns -1.
 */
int boot_load(struct guest_mem *mem, const struct boot_cfg *cfg, struct boot_entry *out);

/* Puts a vCPU into the state described by e (sregs, regs, FPU). -1 with a printed error. */
int boot_setup_vcpu(int vcpu_fd, const struct boot_entry *e);

/*
 * The CPU the guest sees (cpuid.c): KVM's supported CPUID, each vCPU alone in its package, with
 * KVM's paravirt leaves (kvmclock). Its feature words (cpu_features.c) are what a migration
 * compares and what -cpu host,-FEATURE clears.
 */
#define BOOT_CPU_WORDS 17
struct boot_cpu {
	uint32_t w[BOOT_CPU_WORDS];
};
struct kvm_cpuid2;

/* NULL with a printed error. The caller frees it. */
struct kvm_cpuid2 *boot_cpuid_new(int kvm_fd);
struct kvm_cpuid2 *boot_cpuid_copy(const struct kvm_cpuid2 *c);
void boot_cpuid_features(struct kvm_cpuid2 *c, struct boot_cpu *out);
/* Hides the features in off, those that need them, and the XSAVE state that goes with them. */
void boot_cpuid_clear(struct kvm_cpuid2 *c, const struct boot_cpu *off);
/* Register reg (0 eax .. 3 edx) of leaf.sub, 0 where there is none; keep only the bits keep. */
uint32_t boot_cpuid_get(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub, int reg);
void boot_cpuid_keep(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub, int reg, uint32_t keep);
void boot_cpuid_vendor(struct kvm_cpuid2 *c, char vendor[13]);
/* Sets c, with this APIC ID, on a vCPU. -1 with a printed error. */
int boot_cpuid_set(int vcpu_fd, struct kvm_cpuid2 *c, uint32_t apic_id);
/* The bits of a feature named as QEMU's -cpu does ("avx2", "sse4_2"); -1 if unknown. */
int boot_cpu_feature(const char *name, struct boot_cpu *mask);
/* Where feature word i lies: leaf, subleaf and register (0 eax .. 3 edx). */
void boot_cpu_word_id(int i, uint32_t *leaf, uint32_t *sub, int *reg);
/* The name of a bit, or where it lies when it has none. */
void boot_cpu_bit_name(uint32_t leaf, uint32_t sub, int reg, int bit, char *buf, size_t len);

/* Fixed layout of low memory (GUEST-ABI.md: never use 0x1000-0x2fff). */
#define BOOT_GDT_ADDR		0x500ULL
#define BOOT_PVH_INFO_ADDR	0x6000ULL	/* hvm_start_info + memmap */
#define BOOT_ZERO_PAGE_ADDR	0x7000ULL
#define BOOT_STACK_TOP		0x8ff0ULL
#define BOOT_PML4_ADDR		0x9000ULL
#define BOOT_PDPT_ADDR		0xa000ULL
#define BOOT_PD_ADDR		0xb000ULL
#define BOOT_ACPI_ADDR		0xe0000ULL	/* RSDP where the BIOS area search finds it */
#define BOOT_CMDLINE_ADDR	0x20000ULL
#define BOOT_KERNEL_ADDR	0x100000ULL	/* bzImage protected-mode code */
#define BOOT_RESET_VECTOR	0xffff0ULL	/* f000:fff0, where a CPU reset starts */
#define BOOT_HIMEM_START	0x100000ULL
#define BOOT_IDENT_MAP_END	(1ULL << 30)	/* the 64-bit entry's page tables map this much */

#endif
