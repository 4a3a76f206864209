/*
 * The incoming migration stream (-incoming tcp:/unix:/file:), which comes from the network or
 * a file and must never crash the destination: the whole destination thread (header, hello and
 * its checks, RAM records, the device-state tree through every load hook, GO) reads the input
 * as a snapshot file, into a small VM without /dev/kvm. What a load lets through is then used
 * as the guest would make the devices use it: registers read, queues popped and pushed.
 *
 * KVM: the VM's and the vCPU's fd are /dev/null and this file's ioctl() answers for them (the
 * in-kernel irqchip, the clock and the vCPU, whose load hooks check the stream before their
 * ioctls). Other fds go to the kernel.
 *
 * The first input byte picks the mode: the stream as it is, the stream with every record's
 * checksum made right (to get past them to the tree and the pages), or a bare tree (hello and
 * device state). virtio-net is left out: its backend is a real tap (test_tap.c loads one).
 *
 * FUZZ_STREAM_SEEDS=DIR writes seed streams (a real source's records) into DIR and exits.
 */
#include <stdlib.h>

#include "tests/fuzz/mig_vm.h"
#include "vmm/migration/internal.h"
#include "vmm/state.h"
#include "vmm/util.h"
#include "vmm/virtio_mmio.h"

/* Harness-local: built once, reset per input. */
static struct vm *vm;
static struct virtio_mmio tq;	/* a virtio-mmio device of two queues, kicked by the harness */

static const struct virtio_dev_ops tq_dev_ops = {
	.device_id = 0x7e57,
	.features = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_RING_EVENT_IDX |
		    1ULL << VIRTIO_F_RING_INDIRECT_DESC,
	.nqueues = 2,
};

static int tq_save(void *opaque, void *fdt)
{
	return virtio_mmio_save(opaque, fdt);
}

static int tq_load(void *opaque, const void *fdt, int node)
{
	return virtio_mmio_load(opaque, fdt, node);
}

static const struct device_ops tq_ops = { .name = "virtio-test", .save = tq_save, .load = tq_load };

static int tq_add(struct vm *vm)
{
	return virtio_mmio_init(&tq, vm, &tq_dev_ops, NULL, "virtio-test") < 0 ||
			       vm_register_device(vm, &tq_ops, &tq) < 0
		       ? -1
		       : 0;
}

/* Each input starts from the same destination: waiting, with zeroed RAM. */
static void reset(void)
{
	memset(vm->ram, 0, vm->ram_size);
	mig_vm_reset(vm, RUN_STATE_INMIGRATE);
}

/* The guest's view of what arrived: every register, every queue's chains taken and returned. */
static void use_devices(void)
{
	uint8_t b;

	for (unsigned r = 0; r < 8; r++)
		iobus_dispatch(&vm->pio, 0x3f8 + r, &b, 1, false);
	for (int d = 0; d < vm->nmmio_dev; d++) {
		uint64_t base = vm_mmio_slot(d).base;

		for (unsigned off = 0; off < 0x140; off += 4) {
			uint32_t v;

			iobus_dispatch(&vm->mmio, base + off, (uint8_t *)&v, 4, false);
		}
	}
	pthread_mutex_lock(&tq.lock);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct virtq *vq = &tq.vq[q];
		struct virtq_chain c;

		for (unsigned i = 0; vq->ready && i < 4 && virtq_pop(vm, vq, &c) == 1; i++) {
			static const uint8_t fill[64] = { 0x5a };

			virtq_copy_to_chain(vm, &c, fill, sizeof(fill));
			virtq_push(vm, vq, c.head, (uint32_t)MIN(c.in_len, sizeof(fill)));
			virtq_should_notify(vm, vq);
		}
	}
	pthread_mutex_unlock(&tq.lock);
}

static void write_seeds(const char *dir);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	vm = mig_vm_create(tq_add);
	if (!vm) {
		fprintf(stderr, "fuzz_stream: cannot set up the destination VM\n");
		abort();
	}
	if (getenv("FUZZ_STREAM_SEEDS")) {
		write_seeds(getenv("FUZZ_STREAM_SEEDS"));
		exit(0);
	}
	return 0;
}

/* The whole destination thread on a snapshot file of these bytes. */
static void receive(const uint8_t *data, size_t size)
{
	struct migration m = { .vm = vm, .in_fd = -1, .conn_fd = -1, .cancel_fd = -1 };
	int fd = memfd_create("fuzz-stream", 0);

	if (fd < 0)
		return;
	if (size && write_full(fd, data, size) < 0) {
		close(fd);
		return;
	}
	lseek(fd, 0, SEEK_SET);
	pthread_mutex_init(&m.lock, NULL);
	m.uri.kind = MIG_FILE;
	m.listen_fd = fd;
	mig_dest_thread(&m);	/* closes fd */
	if (m.status == MIG_COMPLETED)
		use_devices();
	pthread_mutex_destroy(&m.lock);
}

/* A tree as the hello and as the device state, as if it had come in a valid record. */
static void trees(const uint8_t *data, size_t size)
{
	char why[200];

	if (size > MIG_REC_MAX)
		return;
	mig_check_description(vm, data, (int)size, why, sizeof(why));
	if (mig_load_devices(vm, data, (int)size, why, sizeof(why)) == 0)
		use_devices();
}

enum { MODE_CRC = 1, MODE_TREE = 2 };

/* The first byte says how the rest is taken: a stream (its checksums fixed or not), or a tree. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	if (!size)
		return 0;
	reset();
	/* Aligned, as the destination's own copy of a record is (malloc). */
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (data[0] & MODE_TREE) {
		trees(copy, size - 1);
	} else {
		if (data[0] & MODE_CRC)
			mig_fix_checksums(copy, size - 1, 16); /* after the stream header */
		receive(copy, size - 1);
	}
	free(copy);
	return 0;
}

/* --- seeds: what a source writes ------------------------------------------------------- */

/* A ring of n entries at gpa (desc, avail, used back to back), with one request on it. */
static void seed_ring(unsigned q, uint64_t gpa, uint16_t n)
{
	struct virtq *vq = &tq.vq[q];
	uint8_t *desc = vm->ram + gpa, *avail = desc + 16 * n, *used = avail + 6 + 2 * n;
	uint64_t buf = gpa + 0x2000;
	uint32_t len = 64;
	uint16_t flags = VIRTQ_DESC_F_WRITE, one = 1, head = 0;

	memcpy(desc, &buf, 8);
	memcpy(desc + 8, &len, 4);
	memcpy(desc + 12, &flags, 2);
	memcpy(avail + 2, &one, 2);
	memcpy(avail + 4, &head, 2);
	*vq = (struct virtq){ .num = n,
			      .desc_gpa = gpa,
			      .avail_gpa = gpa + (avail - desc),
			      .used_gpa = (gpa + (used - desc) + 3) & ~3ULL };
	vq->ready = virtq_validate(vm, vq) == 0;
}

/* The pages a source sends: each in its own record, zero pages as markers. */
static void seed_pages(struct mig_stream *s)
{
	for (uint64_t p = 0; p < RAM_PAGES; p++) {
		uint8_t *pg = vm->ram + p * 4096;
		bool zero = true;

		for (unsigned i = 0; i < 4096 && zero; i++)
			zero = !pg[i];
		if (zero && p % 8 == 0) {
			uint64_t n = 1;

			stream_put(s, REC_ZERO, p * 4096, &n, sizeof(n));
		} else if (!zero) {
			stream_put(s, REC_PAGES, p * 4096, pg, 4096);
		}
	}
}

static void seed_write(const char *dir, const char *name, uint32_t version, bool with_state,
		       uint64_t go)
{
	char path[512];
	struct mig_stream s;
	void *desc, *devs;
	int fd, dlen, vlen;
	char err[200];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || stream_init(&s, fd) < 0)
		abort();
	desc = mig_describe(vm, &dlen);
	devs = mig_save_devices(vm, &vlen, err, sizeof(err));
	if (!desc || !devs)
		abort();
	s.buf[s.len++] = MODE_CRC;
	stream_put_header(&s);
	memcpy(s.buf + 9, &version, 4);
	stream_put(&s, REC_HELLO, 0, desc, dlen);
	if (with_state) {
		stream_put(&s, REC_ROUND, 0, NULL, 0);
		seed_pages(&s);
		stream_put(&s, REC_SYNC, 0, NULL, 0);
	}
	stream_put(&s, REC_DEVICES, 0, devs, vlen);
	stream_put(&s, REC_END, 0, NULL, 0);
	stream_put(&s, REC_GO, go, NULL, 0);
	stream_flush(&s);
	stream_free(&s);
	free(desc);
	free(devs);
	close(fd);
}

/* A tree on its own, for MODE_TREE. */
static void seed_tree(const char *dir, const char *name, void *tree, int len)
{
	char path[512];
	uint8_t mode = MODE_TREE;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (!tree || fd < 0 || write_full(fd, &mode, 1) < 0 || write_full(fd, tree, len) < 0)
		abort();
	close(fd);
	free(tree);
}

static void write_seeds(const char *dir)
{
	char err[200];
	int len;

	uint8_t rx[] = "hi";

	reset();
	seed_write(dir, "empty-guest", MIG_VERSION, false, GO_PAUSED);
	/* A guest that ran: a driver set up both queues, a byte waits in the UART. */
	tq.status = 0xf;
	tq.driver_features = tq_dev_ops.features;
	seed_ring(0, 0x4000, 8);
	seed_ring(1, 0x10000, 256);
	memcpy(vm->ram + 0x30000, "guest text", 10);
	serial_chr.input(serial_chr.input_opaque, rx, 2);
	seed_write(dir, "running-guest", MIG_VERSION, true, GO_RUNNING);
	seed_write(dir, "snapshot-v2", MIG_VERSION_OLDEST, true, GO_PRELAUNCH);
	seed_tree(dir, "tree-hello", mig_describe(vm, &len), len);
	seed_tree(dir, "tree-devices", mig_save_devices(vm, &len, err, sizeof(err)), len);
}
