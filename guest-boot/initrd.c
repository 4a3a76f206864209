/* The initrd goes as high as RAM and the kernel's initrd_addr_max allow, page aligned. */
#include <errno.h>
#include <inttypes.h>
#include <unistd.h>

#include "guest-boot/internal.h"
#include "vmm/util.h"

#define PAGE_SIZE 4096ULL

int initrd_load(struct guest_mem *mem, const char *path, const struct kernel_info *ki,
		uint64_t *addr, uint64_t *size)
{
	uint64_t top = MIN(mem->size, ki->initrd_max + 1);
	/* Never below 1M, even after a kernel that ends lower: the cmdline, EBDA and ACPI
	 * tables live there. */
	uint64_t bottom = ALIGN_UP(MAX(ki->end, BOOT_HIMEM_START), PAGE_SIZE);
	int fd = file_open_sized("initrd", path, size);

	if (fd < 0)
		return -1;
	if (*size > top || ((top - *size) & ~(PAGE_SIZE - 1)) < bottom) {
		errorf("initrd: %s: %" PRIu64
		       " KiB does not fit between the kernel's end (0x%" PRIx64 ") and 0x%" PRIx64
		       " (guest RAM %" PRIu64 " MiB)",
		       path, *size >> 10, bottom, top, mem->size >> 20);
		close(fd);
		return -1;
	}
	*addr = (top - *size) & ~(PAGE_SIZE - 1);
	/* Straight into guest RAM: an initrd can be far larger than anything worth copying twice.
	 */
	if (read_full(fd, mem->base + *addr, *size) < 0) {
		file_read_error("initrd", path);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}
