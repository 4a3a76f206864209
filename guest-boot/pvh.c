/*
 * hvm_start_info for the PVH entry (Xen's arch-x86/hvm/start_info.h, version 1), with its
 * memory map and, when there is an initrd, a one-module list, all in the page at
 * BOOT_PVH_INFO_ADDR.
 */
#include "guest-boot/internal.h"

#define PVH_MAGIC 0x336ec578
#define PVH_MODLIST_OFF 0x40 /* hvm_modlist_entry: paddr, size, cmdline_paddr, reserved */
#define PVH_MEMMAP_OFF 0x80  /* hvm_memmap_table_entry: addr, size, type, reserved */

void pvh_build(struct guest_mem *mem, const struct boot_params_in *in)
{
	uint8_t *si = mem->base + BOOT_PVH_INFO_ADDR;
	struct memmap_entry map[MEMMAP_MAX];
	int n = memmap_build(mem, map);

	memset(si, 0, 4096);
	put32(si + 0, PVH_MAGIC);
	put32(si + 4, 1); /* version */
	if (in->initrd_size) {
		uint8_t *mod = si + PVH_MODLIST_OFF;

		put32(si + 12, 1); /* nr_modules */
		put64(si + 16, BOOT_PVH_INFO_ADDR + PVH_MODLIST_OFF);
		put64(mod, in->initrd_addr);
		put64(mod + 8, in->initrd_size);
	}
	put64(si + 24, BOOT_CMDLINE_ADDR); /* cmdline_paddr */
	put64(si + 32, in->rsdp);	   /* rsdp_paddr */
	put64(si + 40, BOOT_PVH_INFO_ADDR + PVH_MEMMAP_OFF);
	put32(si + 48, n); /* memmap_entries */
	for (int i = 0; i < n; i++) {
		uint8_t *e = si + PVH_MEMMAP_OFF + i * 24;

		put64(e, map[i].addr);
		put64(e + 8, map[i].size);
		put32(e + 16, map[i].type);
	}
}
