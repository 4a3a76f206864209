/*
 * Pieces of guest-boot/ that boot.c ties together. Each writes into a plain guest_mem and
 * reports its own errors through errorf(), so each can be unit-tested alone.
 */
#ifndef TERN_BOOT_INTERNAL_H
#define TERN_BOOT_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "guest-boot/boot.h"

/* Little-endian accessors into guest memory or file images (x86 is little-endian too). */
static inline uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void put8(uint8_t *p, uint8_t v)
{
	*p = v;
}

static inline void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* True when [addr, addr + len) lies inside guest RAM (overflow-safe). */
static inline bool mem_fits(const struct guest_mem *mem, uint64_t addr, uint64_t len)
{
	return addr <= mem->size && len <= mem->size - addr;
}

/*
 * file.c: a kernel file, its headers read (the first BOOT_FILE_HEAD bytes), the rest read
 * only where a loader has checked it is needed: a file of many GiB costs no more than a small
 * one, and is refused as soon as it does not fit.
 */
#define BOOT_FILE_HEAD 4096

struct boot_file {
	const char *what; /* "kernel", "initrd": the start of every error line */
	const char *path;
	int fd;
	uint64_t size;	  /* the file's */
	uint64_t len;	  /* of data: min(size, BOOT_FILE_HEAD) */
	uint8_t data[BOOT_FILE_HEAD];
};

int file_open(struct boot_file *f, const char *what, const char *path);
/* len bytes at off into buf, all of them or -1 with a line naming the file. */
int file_pread(const struct boot_file *f, void *buf, uint64_t len, uint64_t off);
void file_close(struct boot_file *f);
/* Opens path and returns its size in *size; rejects empty and non-regular files. fd or -1. */
int file_open_sized(const char *what, const char *path, uint64_t *size);
/* A read that found the end of the file early (read_full's EPIPE) says so. */
void file_read_error(const char *what, const char *path);

/* What a kernel loader found out about the image it placed in guest memory. */
struct kernel_info {
	bool bzimage;
	bool has_entry64;
	uint64_t entry64; /* Linux 64-bit boot protocol entry */
	bool has_pvh;
	uint32_t pvh_entry;   /* XEN_ELFNOTE_PHYS32_ENTRY */
	uint64_t end;	      /* first byte above the kernel: the initrd goes higher */
	uint64_t initrd_max;  /* highest address the initrd may touch (inclusive) */
	uint16_t version;     /* boot protocol version written to the zero page */
	uint32_t cmdline_max; /* longest cmdline the kernel takes, without the NUL */
	/* bzImage: its setup header, copied into the zero page from 0x1f1 */
	uint8_t setup_hdr[0x290 - 0x1f1];
	size_t setup_hdr_len;
};

/* elf.c, bzimage.c: load f into mem. 0 or -1 with a printed error. */
bool elf_detect(const struct boot_file *f);
int elf_load(struct guest_mem *mem, const struct boot_file *f, struct kernel_info *ki);
bool bzimage_detect(const struct boot_file *f);
int bzimage_load(struct guest_mem *mem, const struct boot_file *f, struct kernel_info *ki);

/* initrd.c: loads path as high as ki allows. */
int initrd_load(struct guest_mem *mem, const char *path, const struct kernel_info *ki,
		uint64_t *addr, uint64_t *size);

/* cmdline.c: writes cmdline + virtio_mmio.device= entries at BOOT_CMDLINE_ADDR. Length or -1. */
int cmdline_build(struct guest_mem *mem, const struct boot_cfg *cfg);
/* Formats one device as OSv parses it; returns the length snprintf would. */
int cmdline_format_dev(char *buf, size_t cap, const struct boot_dev *d);

/* The guest's physical memory map, shared by e820 and the PVH memmap. */
#define E820_RAM 1
#define E820_RESERVED 2
#define BOOT_EBDA_START 0x9fc00ULL
#define MEMMAP_MAX 4

struct memmap_entry {
	uint64_t addr, size;
	uint32_t type;
};

int memmap_build(const struct guest_mem *mem, struct memmap_entry *map);

/* zeropage.c: boot_params for the Linux 64-bit entry. */
struct boot_params_in {
	const struct kernel_info *ki;
	uint32_t cmdline_len;
	uint64_t initrd_addr, initrd_size;
	uint64_t rsdp;
};

void zeropage_build(struct guest_mem *mem, const struct boot_params_in *in);

/* pvh.c: hvm_start_info (+ memmap and module list) at BOOT_PVH_INFO_ADDR. */
void pvh_build(struct guest_mem *mem, const struct boot_params_in *in);

/* acpi.c: RSDP, XSDT, FADT, MADT, DSDT from BOOT_ACPI_ADDR; returns the RSDP address. */
/* cpu_features.c: register reg (0 eax .. 3 edx) of e if e is leaf.sub, else NULL; and out of
 * f, the features that need one f lacks, and the XSAVE state of those it lacks. */
struct kvm_cpuid_entry2;
uint32_t *boot_cpuid_reg(struct kvm_cpuid_entry2 *e, uint32_t leaf, uint32_t sub, int reg);
void boot_cpu_follow(struct boot_cpu *f);

int acpi_build(struct guest_mem *mem, const struct boot_cfg *cfg, uint64_t *rsdp);

/* entry.c: GDT and (64-bit) page tables, and the entry state in out. */
void entry_build(struct guest_mem *mem, enum boot_mode mode, uint64_t rip, struct boot_entry *out);

#endif
