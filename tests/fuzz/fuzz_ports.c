/*
 * The guest's port I/O: the board's port devices (COM1's 16550A, the i8042 reset port,
 * pvpanic, ACPI sleep, the boot marker) registered as the VMM registers them, and a guest's
 * IN and OUT of any width dispatched through the port bus as the vCPU loop does, with the
 * console's input arriving in between. A VM without KVM (fd -1): the UART's interrupt line
 * goes nowhere.
 *
 * Input: one flag byte (bit 0: the boot marker traces), then operations: 0 OUT, 1 IN (a port
 * of the board's, or any, a width and a value), 2 console input (a length and its bytes),
 * 3 a paste (a byte, repeated up to 64 KiB: the FIFO fills and wraps), 4 the UART migrated
 * onto itself (its save hook's state tree into its load hook). Missing bytes read as zero.
 * Nothing outlives one input.
 */
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "vmm/board.h"
#include "vmm/chardev.h"
#include "vmm/serial.h"
#include "vmm/vm.h"

struct fz {
	struct vm vm;
	struct tern_config cfg;
	struct chardev chr;
	const uint8_t *in;
	size_t left;
};

static uint64_t take(struct fz *f, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n && f->left; i++, f->left--)
		v |= (uint64_t)*f->in++ << (8 * i);
	return v;
}

/* The console: output is dropped (the UART's own buffering is what is tested). */
static int chr_write(struct chardev *c, const uint8_t *buf, size_t len)
{
	return 0;
}

static const uint16_t ports[] = {0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe,
				 0x3ff, 0x60,  0x64,  0x505, 0x3c0, 0x3c1, 0x3f0};

/* As a migration carries it: a node of its own in a state tree, saved then loaded. */
static void serial_migrate(struct fz *f)
{
	static uint8_t fdt[80 << 10];
	const struct device *d = &f->vm.dev[0]; /* serial_create() registers first */
	int node;

	if (fdt_create(fdt, sizeof(fdt)) || fdt_finish_reservemap(fdt) || fdt_begin_node(fdt, "") ||
	    fdt_begin_node(fdt, d->ops->name) || d->ops->save(d->opaque, fdt) ||
	    fdt_end_node(fdt) || fdt_end_node(fdt) || fdt_finish(fdt))
		abort();
	node = fdt_subnode_offset(fdt, 0, d->ops->name);
	if (node < 0 || d->ops->load(d->opaque, fdt, node) < 0)
		abort();
}

static void paste(struct fz *f)
{
	unsigned n = take(f, 2) + 1;
	uint8_t *buf = malloc(n + 1);

	if (!buf)
		return;
	memset(buf, take(f, 1), n);
	f->chr.input(f->chr.input_opaque, buf, n);
	free(buf);
}

static void run_op(struct fz *f, uint8_t op)
{
	static const unsigned widths[4] = {1, 2, 4, 1};
	uint8_t data[8] = {0}, buf[256];
	unsigned sel, port, len, n;
	uint64_t val;

	switch (op % 5) {
	case 0:
	case 1:
		sel = take(f, 1);
		port = sel < 0xf0 ? ports[sel % (sizeof(ports) / sizeof(ports[0]))] : take(f, 2);
		len = widths[take(f, 1) % 4];
		val = op % 5 == 0 ? take(f, len) : 0;
		memcpy(data, &val, len);
		iobus_dispatch(&f->vm.pio, port, data, len, op % 5 == 0);
		break;
	case 2:
		n = take(f, 1);
		for (len = 0; len < n && f->left; len++)
			buf[len] = take(f, 1);
		f->chr.input(f->chr.input_opaque, buf, len);
		break;
	case 3:
		paste(f);
		break;
	case 4:
		serial_migrate(f);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz *f = calloc(1, sizeof(*f));
	uint8_t flags;

	if (!f)
		return 0;
	f->in = data;
	f->left = size;
	flags = take(f, 1);
	f->vm.fd = -1;
	f->vm.cfg = &f->cfg;
	f->chr.write = chr_write;
	f->chr.fd = -1;
	pthread_mutex_init(&f->vm.lock, NULL);
	if (evloop_init(&f->vm.loop) < 0 || !serial_create(&f->vm, &f->chr) ||
	    i8042_create(&f->vm) < 0 || pvpanic_create(&f->vm) < 0 ||
	    acpi_sleep_create(&f->vm) < 0 || bootmarker_create(&f->vm, flags & 1) < 0)
		abort();
	for (int ops = 0; f->left && ops < 4096; ops++)
		run_op(f, take(f, 1));
	for (int i = 0; i < f->vm.ndev; i++)
		f->vm.dev[i].ops->destroy(f->vm.dev[i].opaque);
	evloop_destroy(&f->vm.loop);
	pthread_mutex_destroy(&f->vm.lock);
	free(f);
	return 0;
}
