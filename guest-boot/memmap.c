/*
 * The guest's physical memory map, written as e820 (zero page) and as the PVH memmap:
 * conventional RAM below the EBDA, the EBDA/BIOS area (where the ACPI tables live) reserved,
 * then RAM from 1 MiB to the end. RAM is one slot from 0 and never reaches the 32-bit I/O
 * hole (boot_load refuses more than 3 GiB), so there is no hole to describe.
 */
#include "guest-boot/internal.h"

int memmap_build(const struct guest_mem *mem, struct memmap_entry *map)
{
	map[0] = (struct memmap_entry){0, BOOT_EBDA_START, E820_RAM};
	map[1] = (struct memmap_entry){BOOT_EBDA_START, BOOT_HIMEM_START - BOOT_EBDA_START,
				       E820_RESERVED};
	map[2] = (struct memmap_entry){BOOT_HIMEM_START, mem->size - BOOT_HIMEM_START, E820_RAM};
	return 3;
}
