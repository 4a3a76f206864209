/*
 * The I/O bus: devices register a port or MMIO range and one handler; the vCPU loop
 * dispatches exits to it and never learns what the device is.
 */
#ifndef TERN_IOBUS_H
#define TERN_IOBUS_H

#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>

/* data is len bytes (1, 2, 4 or 8), little endian; on a read the handler fills it. */
typedef void (*io_fn)(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

struct io_range {
	uint64_t base, len;
	io_fn fn;
	void *opaque;
};

#define IOBUS_MAX 32

struct iobus {
	struct io_range r[IOBUS_MAX];
	int n;
};

int iobus_register(struct iobus *bus, uint64_t base, uint64_t len, io_fn fn, void *opaque);
/* false if nothing is mapped there: reads then return all-ones, writes are ignored. */
bool iobus_dispatch(struct iobus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
