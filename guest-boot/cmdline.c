/*
 * The kernel command line: the user's -append, then one virtio_mmio.device= entry per device
 * for OSv (which strips them) and for Linux kernels built with that parameter.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "guest-boot/internal.h"
#include "vmm/util.h"

/* OSv's parser takes <size>[K|M]@<base>:<irq>; a size that is no whole K stays in bytes. */
int cmdline_format_dev(char *buf, size_t cap, const struct boot_dev *d)
{
	uint64_t size = d->size;
	const char *unit = "";

	if (size && size % (1 << 20) == 0) {
		size >>= 20;
		unit = "M";
	} else if (size && size % (1 << 10) == 0) {
		size >>= 10;
		unit = "K";
	}
	return snprintf(buf, cap, "virtio_mmio.device=%" PRIu64 "%s@0x%" PRIx64 ":%" PRIu32, size,
			unit, d->base, d->irq);
}

/* Appends to buf as snprintf would, counting the full length even past the end. */
static void cmdline_add(char *buf, size_t cap, size_t *len, const char *s)
{
	size_t n = strlen(s);

	if (*len < cap)
		snprintf(buf + *len, cap - *len, "%s", s);
	*len += n;
}

int cmdline_build(struct guest_mem *mem, const struct boot_cfg *cfg)
{
	char line[BOOT_CMDLINE_MAX];
	char dev[96];
	size_t len = 0;

	line[0] = '\0';
	if (cfg->cmdline)
		cmdline_add(line, sizeof(line), &len, cfg->cmdline);
	for (int i = 0; i < cfg->ndevs && i < BOOT_MAX_DEVS; i++) {
		if (len)
			cmdline_add(line, sizeof(line), &len, " ");
		cmdline_format_dev(dev, sizeof(dev), &cfg->devs[i]);
		cmdline_add(line, sizeof(line), &len, dev);
	}
	if (len > BOOT_CMDLINE_MAX - 1) {
		errorf(
		    "cmdline: %zu bytes (with %d virtio_mmio.device= entries) is longer than the "
		    "limit of %d",
		    len, cfg->ndevs, BOOT_CMDLINE_MAX - 1);
		return -1;
	}
	if (!mem_fits(mem, BOOT_CMDLINE_ADDR, BOOT_CMDLINE_MAX)) {
		errorf("cmdline: guest RAM of %" PRIu64 " KiB has no room for it", mem->size >> 10);
		return -1;
	}
	memset(mem->base + BOOT_CMDLINE_ADDR, 0, BOOT_CMDLINE_MAX);
	memcpy(mem->base + BOOT_CMDLINE_ADDR, line, len);
	return len;
}
