/*
 * boot_load: the order matters only where one piece needs another's result: the kernel's
 * end and initrd_addr_max place the initrd; the RSDP address goes into the zero page or
 * start_info; the kernel's entries pick the boot mode.
 */
#include <inttypes.h>

#include "guest-boot/internal.h"
#include "vmm/util.h"

/* Above this the single RAM slot from 0 would cover the 32-bit I/O hole (MMIO, IOAPIC). */
#define BOOT_RAM_MAX (3ULL << 30)
/* Low tables plus at least some memory above 1 MiB for the kernel. */
#define BOOT_RAM_MIN (2ULL << 20)

static int boot_check_mem(const struct guest_mem *mem)
{
	if (mem->size > BOOT_RAM_MAX) {
		errorf("memory: %" PRIu64
		       " MiB is more than the %llu MiB tern maps below the 32-bit "
		       "I/O hole",
		       mem->size >> 20, BOOT_RAM_MAX >> 20);
		return -1;
	}
	if (mem->size < BOOT_RAM_MIN) {
		errorf("memory: %" PRIu64 " KiB is too small to boot (at least %llu MiB)",
		       mem->size >> 10, BOOT_RAM_MIN >> 20);
		return -1;
	}
	return 0;
}

static int boot_kernel(struct guest_mem *mem, const struct boot_cfg *cfg, struct kernel_info *ki)
{
	struct boot_file f;
	int r;

	if (!cfg->kernel) {
		errorf("kernel: no kernel given");
		return -1;
	}
	if (file_open(&f, "kernel", cfg->kernel) < 0)
		return -1;
	if (elf_detect(&f)) {
		r = elf_load(mem, &f, ki);
	} else if (bzimage_detect(&f)) {
		r = bzimage_load(mem, &f, ki);
	} else {
		errorf("kernel: %s: not an ELF or bzImage kernel", cfg->kernel);
		r = -1;
	}
	file_close(&f);
	return r;
}

static int boot_mode(const struct boot_cfg *cfg, const struct kernel_info *ki, enum boot_mode *mode,
		     uint64_t *rip)
{
	if (ki->has_pvh && (cfg->force_pvh || !ki->has_entry64)) {
		*mode = BOOT_PVH32;
		*rip = ki->pvh_entry;
		return 0;
	}
	if (cfg->force_pvh) {
		errorf(
		    "kernel: %s: no PVH entry (ELF note XEN_ELFNOTE_PHYS32_ENTRY inside a loaded "
		    "segment) for -pvh",
		    cfg->kernel);
		return -1;
	}
	if (!ki->has_entry64) {
		errorf("kernel: %s: entry point 0x%" PRIx64 " is outside the loaded segments (or "
		       "in their .bss) and there is no PVH note",
		       cfg->kernel, ki->entry64);
		return -1;
	}
	/* The boot protocol wants the kernel identity-mapped; past the map it would fault. */
	if (ki->end > BOOT_IDENT_MAP_END) {
		errorf("kernel: %s: ends at 0x%" PRIx64 ", above the first 1 GiB that the 64-bit "
		       "entry's page tables map",
		       cfg->kernel, ki->end);
		return -1;
	}
	*mode = BOOT_LINUX64;
	*rip = ki->entry64;
	return 0;
}

/*
 * There is no BIOS: the reset vector pulses the i8042 reset line instead, which ends tern as
 * a reboot. Linux jumps there to reboot when its ACPI is hardware-reduced: it then tries EFI,
 * then the BIOS, before the keyboard controller, and would run zeros for ever.
 */
static void boot_reset_vector(struct guest_mem *mem)
{
	/* mov al, BOOT_RESET_VALUE; out BOOT_RESET_PORT, al; 1: hlt; jmp 1b */
	static const uint8_t code[] = { 0xb0, BOOT_RESET_VALUE, 0xe6, BOOT_RESET_PORT,
					0xf4, 0xeb, 0xfd };

	memcpy(mem->base + BOOT_RESET_VECTOR, code, sizeof(code));
}

int boot_load(struct guest_mem *mem, const struct boot_cfg *cfg, struct boot_entry *out)
{
	struct kernel_info ki;
	struct boot_params_in in = {.ki = &ki};
	enum boot_mode mode;
	uint64_t rip;
	int len;

	if (boot_check_mem(mem) < 0 || boot_kernel(mem, cfg, &ki) < 0 ||
	    boot_mode(cfg, &ki, &mode, &rip) < 0)
		return -1;
	len = cmdline_build(mem, cfg);
	if (len < 0)
		return -1;
	if ((uint32_t)len > ki.cmdline_max) {
		errorf("cmdline: %d bytes is longer than the kernel's limit of %" PRIu32, len,
		       ki.cmdline_max);
		return -1;
	}
	in.cmdline_len = len;
	if (cfg->initrd && initrd_load(mem, cfg->initrd, &ki, &in.initrd_addr, &in.initrd_size) < 0)
		return -1;
	if (acpi_build(mem, cfg, &in.rsdp) < 0)
		return -1;
	boot_reset_vector(mem);
	if (mode == BOOT_PVH32)
		pvh_build(mem, &in);
	else
		zeropage_build(mem, &in);
	entry_build(mem, mode, rip, out);
	return 0;
}
