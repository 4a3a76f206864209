#include <string.h>

#include "vmm/iobus.h"
#include "vmm/util.h"

int iobus_register(struct iobus *bus, uint64_t base, uint64_t len, io_fn fn, void *opaque)
{
	for (int i = 0; i < bus->n; i++) {
		struct io_range *r = &bus->r[i];

		if (base < r->base + r->len && r->base < base + len) {
			errorf("iobus: range 0x%llx+0x%llx overlaps 0x%llx+0x%llx",
			       (unsigned long long)base, (unsigned long long)len,
			       (unsigned long long)r->base, (unsigned long long)r->len);
			return -1;
		}
	}
	if (bus->n == IOBUS_MAX) {
		errorf("iobus: more than %d ranges", IOBUS_MAX);
		return -1;
	}
	bus->r[bus->n++] = (struct io_range){ base, len, fn, opaque };
	return 0;
}

bool iobus_dispatch(struct iobus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	/* Registration happens before the vCPU starts, so the table is read without a lock. */
	for (int i = 0; i < bus->n; i++) {
		struct io_range *r = &bus->r[i];

		if (addr >= r->base && addr - r->base < r->len) {
			/* A device that fills fewer bytes (inw from a byte-wide UART) leaves the
			 * rest floating, as on a bus, not the run page's stale bytes. */
			if (!is_write)
				memset(data, 0xff, len);
			r->fn(r->opaque, addr, data, len, is_write);
			return true;
		}
	}
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
