/*
 * boot_params ("zero page") for the Linux 64-bit entry. OSv reads only the signature, the
 * cmdline pointer and the e820 table; Linux reads the rest. Offsets from Linux's
 * arch/x86/include/uapi/asm/bootparam.h.
 */
#include "guest-boot/internal.h"

#define ZP_ACPI_RSDP_ADDR 0x070
#define ZP_E820_ENTRIES 0x1e8
#define ZP_SETUP_HDR 0x1f1
#define ZP_BOOT_FLAG 0x1fe
#define ZP_HEADER 0x202
#define ZP_VERSION 0x206
#define ZP_TYPE_OF_LOADER 0x210
#define ZP_LOADFLAGS 0x211
#define ZP_RAMDISK_IMAGE 0x218
#define ZP_RAMDISK_SIZE 0x21c
#define ZP_HEAP_END_PTR 0x224
#define ZP_CMD_LINE_PTR 0x228
#define ZP_KERNEL_ALIGNMENT 0x230
#define ZP_CMDLINE_SIZE 0x238
#define ZP_E820_TABLE 0x2d0
#define ZP_E820_MAX 128

#define LOADER_UNDEFINED 0xff
#define CAN_USE_HEAP 0x80
/* The 16-bit heap ends where the real-mode stack would start; unused by the 64-bit entry. */
#define HEAP_END 0xfe00

static void zeropage_e820(uint8_t *zp, const struct guest_mem *mem)
{
	struct memmap_entry map[MEMMAP_MAX];
	int n = memmap_build(mem, map);

	for (int i = 0; i < n && i < ZP_E820_MAX; i++) {
		uint8_t *e = zp + ZP_E820_TABLE + i * 20;

		put64(e, map[i].addr);
		put64(e + 8, map[i].size);
		put32(e + 16, map[i].type);
	}
	put8(zp + ZP_E820_ENTRIES, n);
}

void zeropage_build(struct guest_mem *mem, const struct boot_params_in *in)
{
	uint8_t *zp = mem->base + BOOT_ZERO_PAGE_ADDR;
	const struct kernel_info *ki = in->ki;

	memset(zp, 0, 4096);
	if (ki->bzimage) {
		memcpy(zp + ZP_SETUP_HDR, ki->setup_hdr, ki->setup_hdr_len);
		/* KEEP_SEGMENTS is obsolete and only matters to the 32-bit entry: leave it clear.
		 */
		zp[ZP_LOADFLAGS] |= CAN_USE_HEAP;
		put16(zp + ZP_HEAP_END_PTR, HEAP_END);
	} else {
		/* No setup header in an ELF: fill in what a bzImage would have said. */
		put32(zp + ZP_KERNEL_ALIGNMENT, 0x01000000);
		put32(zp + ZP_CMDLINE_SIZE, ki->cmdline_max);
	}
	put16(zp + ZP_BOOT_FLAG, 0xaa55);
	memcpy(zp + ZP_HEADER, "HdrS", 4);
	put16(zp + ZP_VERSION, ki->version);
	zp[ZP_TYPE_OF_LOADER] = LOADER_UNDEFINED;
	put32(zp + ZP_CMD_LINE_PTR, BOOT_CMDLINE_ADDR);
	put32(zp + ZP_RAMDISK_IMAGE, in->initrd_addr);
	put32(zp + ZP_RAMDISK_SIZE, in->initrd_size);
	put64(zp + ZP_ACPI_RSDP_ADDR, in->rsdp);
	zeropage_e820(zp, mem);
}
