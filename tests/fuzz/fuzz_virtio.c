/*
 * The guest's side of virtio: one input is a guest (64 KiB of RAM it writes as it likes) and
 * what it does to a virtio-net and a virtio-blk device through the MMIO bus, as the vCPU loop
 * dispatches it (iobus), with the queue work the I/O thread and the disk's worker would do
 * run here, in order, after each access: the transport, the split rings (chains, indirect
 * tables, event-idx), receive and transmit, and disk requests on a memfd image.
 *
 * Both devices' sources are included here rather than linked: their request handlers are
 * static, virtio-blk serves on a thread of its own (not deterministic) and virtio-net needs a
 * tap. Here the disk is served on this thread and the NIC's tap is one end of a datagram
 * socketpair, whose other end feeds frames in and takes frames out.
 *
 * Input: one flag byte, then operations, each an opcode byte and its arguments (see run_op).
 * Missing bytes read as zero. Nothing outlives one input.
 */
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

/* The linked objects define these already: the included copies take other names. */
#define virtio_blk_check_drives fz_blk_check_drives
#define virtio_blk_create_all fz_blk_create_all
#define virtio_net_create fz_net_create
#define virtio_net_of fz_net_of
#define virtio_net_announce fz_net_announce
/* A socketpair is no tap: its header length and offloads are set without a word. */
#define tap_set_vnet_hdr_len fz_tap_set_vnet_hdr_len
#define tap_set_offload fz_tap_set_offload

#include "vmm/virtio_blk.c"
#include "net/virtio_net.c"

int fz_tap_set_vnet_hdr_len(int fd, const char *name, int len)
{
	return 0;
}

int fz_tap_set_offload(int fd, const char *name, unsigned flags)
{
	return 0;
}

#define FZ_RAM (64 << 10)
#define FZ_IMAGE (16 << 10) /* 32 sectors */
/* Where the quick set-up puts queue q of device d: desc, avail at +0x1000, used at +0x1400. */
#define FZ_RING(d, q) (0x2000 * (2 * (d) + (q)))
#define FZ_AVAIL 0x1000
#define FZ_USED 0x1400

enum { DEV_NET, DEV_BLK, NDEV };

struct fz {
	struct vm vm;
	struct tern_config cfg;
	struct drive_cfg drive;
	struct virtio_net *net;
	struct virtio_blk *blk;
	int peer; /* the other end of the NIC's "tap" */
	const uint8_t *in;
	size_t left;
};

/* Input bytes, zero once it runs out. */
static uint64_t take(struct fz *f, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n && f->left; i++, f->left--)
		v |= (uint64_t)*f->in++ << (8 * i);
	return v;
}

static struct virtio_mmio *mmio_of(struct fz *f, unsigned d)
{
	return d == DEV_NET ? &f->net->v : &f->blk->v;
}

static int net_make(struct fz *f)
{
	static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	struct virtio_net *n = calloc(1, sizeof(*n));
	int sv[2];

	if (!n)
		return -1;
	n->vm = &f->vm;
	n->announce.timerfd = -1;
	n->tap = -1;
	memcpy(n->config.mac, mac, 6);
	n->config.status = NET_S_LINK_UP;
	n->config.max_virtqueue_pairs = 1;
	f->net = n;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	n->tap = sv[0];
	f->peer = sv[1];
	snprintf(n->ifname, sizeof(n->ifname), "fuzz0");
	return virtio_mmio_init(&n->v, &f->vm, &virtio_net_dev_ops, n, "virtio-net");
}

/* As virtio_blk_create(), with no worker: this thread serves, and quiesces nothing. */
static int blk_make(struct fz *f, uint8_t flags)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));

	if (!b)
		return -1;
	f->blk = b;
	b->fd = -1;
	b->vm = &f->vm;
	f->drive.readonly = flags & 2;
	f->drive.sync_writes = flags & 4;
	f->drive.no_flush = flags & 8;
	snprintf(f->drive.file, sizeof(f->drive.file), "memfd:fuzz");
	b->drive = &f->drive;
	pthread_cond_init(&b->wake, NULL);
	pthread_cond_init(&b->idle, NULL);
	b->ops = virtio_blk_dev_ops;
	if (f->drive.readonly)
		b->ops.features |= BIT(F_RO);
	memcpy(b->serial, "fuzz-serial-01234567", BLK_ID_BYTES);
	b->locked = true;
	b->fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
	if (b->fd < 0 || ftruncate(b->fd, FZ_IMAGE) < 0)
		return -1;
	b->size = FZ_IMAGE;
	b->config.capacity = b->size / SECTOR;
	b->config.seg_max = VIRTQ_MAX_SEGS - 2;
	b->config.blk_size = SECTOR;
	/* virtio_blk_quiesce() returns at once on the worker: that is us. */
	b->worker = pthread_self();
	b->has_worker = true;
	return virtio_mmio_init(&b->v, &f->vm, &b->ops, b, "virtio-blk");
}

static void teardown(struct fz *f)
{
	if (f->net)
		virtio_net_destroy(f->net);
	if (f->blk) {
		f->blk->has_worker = false; /* nothing to join */
		virtio_blk_destroy(f->blk);
	}
	if (f->peer >= 0)
		close(f->peer);
	evloop_destroy(&f->vm.loop);
	dirty_free(&f->vm.dirty);
	free(f->vm.ram);
}

static void mmio(struct fz *f, unsigned d, unsigned off, uint8_t *data, unsigned len, bool wr)
{
	iobus_dispatch(&f->vm.mmio, mmio_of(f, d)->base + off, data, len, wr);
}

static void reg_write(struct fz *f, unsigned d, unsigned reg, uint32_t val)
{
	mmio(f, d, reg, (uint8_t *)&val, 4, true);
}

/*
 * What the I/O thread and the disk's worker would do next: the queues' kicks (as
 * virtio_mmio_kicked), frames on the tap, the disk's requests. Rounds are bounded: a device
 * that used up its budget kicks itself again, as it would in the loop.
 */
static void pump(struct fz *f)
{
	for (int round = 0; round < 8; round++) {
		bool busy = false;

		for (unsigned d = 0; d < NDEV; d++) {
			struct virtio_mmio *v = mmio_of(f, d);

			for (unsigned q = 0; q < v->ops->nqueues; q++) {
				uint64_t n;

				if (read(v->kick[q].fd, &n, sizeof(n)) != sizeof(n))
					continue;
				busy = true;
				pthread_mutex_lock(&v->lock);
				if (virtio_mmio_running(v))
					v->ops->notify(v->opaque, q);
				pthread_mutex_unlock(&v->lock);
			}
		}
		pthread_mutex_lock(&f->blk->v.lock);
		if (f->blk->kicked) {
			busy = true;
			virtio_blk_serve(f->blk);
		}
		pthread_mutex_unlock(&f->blk->v.lock);
		if (f->net->polling) {
			struct pollfd p = {f->net->tap, POLLIN, 0};

			if (poll(&p, 1, 0) == 1) {
				busy = true;
				virtio_net_tap_ready(f->net, EPOLLIN);
			}
		}
		if (!busy)
			break;
	}
	/* What the NIC sent: gone, so that the socket never fills. */
	while (recv(f->peer, f->net->frame, 0, MSG_TRUNC) >= 0)
		;
}

/* A frame for the guest: len bytes (header included) from the input, zeros past its end. */
static void inject(struct fz *f)
{
	unsigned len = take(f, 2) % (NET_FRAME_MAX + 64);
	uint8_t *buf = calloc(1, len + 1);

	if (!buf)
		return;
	for (unsigned i = 0; i < len && f->left; i++)
		buf[i] = take(f, 1);
	(void)!send(f->peer, buf, len, 0);
	free(buf);
}

/* A driver's usual start: features, every queue at FZ_RING, DRIVER_OK. */
static void quick_start(struct fz *f, unsigned d, uint64_t features, unsigned num)
{
	const uint32_t st = 1 | 2 | VIRTIO_STATUS_FEATURES_OK;
	struct virtio_mmio *v = mmio_of(f, d);

	reg_write(f, d, REG_STATUS, 0);
	reg_write(f, d, REG_STATUS, 1 | 2);
	reg_write(f, d, REG_DRIVER_FEATURES_SEL, 0);
	reg_write(f, d, REG_DRIVER_FEATURES, features);
	reg_write(f, d, REG_DRIVER_FEATURES_SEL, 1);
	reg_write(f, d, REG_DRIVER_FEATURES, features >> 32);
	reg_write(f, d, REG_STATUS, st);
	for (unsigned q = 0; q < v->ops->nqueues; q++) {
		reg_write(f, d, REG_QUEUE_SEL, q);
		reg_write(f, d, REG_QUEUE_NUM, num);
		reg_write(f, d, REG_QUEUE_DESC_LOW, FZ_RING(d, q));
		reg_write(f, d, REG_QUEUE_DRIVER_LOW, FZ_RING(d, q) + FZ_AVAIL);
		reg_write(f, d, REG_QUEUE_DEVICE_LOW, FZ_RING(d, q) + FZ_USED);
		reg_write(f, d, REG_QUEUE_READY, 1);
	}
	reg_write(f, d, REG_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
}

/* Offers head on queue q of device d (at FZ_RING, size num), as a driver does. */
static void offer(struct fz *f, unsigned d, unsigned q, uint16_t head)
{
	struct virtq *vq = &mmio_of(f, d)->vq[q];
	uint8_t *avail = f->vm.ram + FZ_RING(d, q) + FZ_AVAIL;
	unsigned num = vq->num ? vq->num : 1;
	uint16_t idx;

	memcpy(&idx, avail + 2, 2);
	memcpy(avail + 4 + 2 * (idx % num), &head, 2);
	idx++;
	memcpy(avail + 2, &idx, 2);
}

/*
 * Opcodes: 0 MMIO write (device, offset, width, value), 1 MMIO read, 2 bytes into RAM,
 * 3 memset RAM, 4 a descriptor into a table, 5 a frame on the tap, 6 quick start,
 * 7 offer a head (and notify), 8 dirty tracking on/off.
 */
static void run_op(struct fz *f, uint8_t op)
{
	static const unsigned widths[4] = {1, 2, 4, 8};
	unsigned d = take(f, 1) % NDEV;

	switch (op % 9) {
	case 0:
	case 1: {
		unsigned off = take(f, 2) % VM_MMIO_SIZE, len = widths[take(f, 1) % 4];
		uint64_t val = op % 9 == 0 ? take(f, len) : 0;

		mmio(f, d, off, (uint8_t *)&val, len, op % 9 == 0);
		break;
	}
	case 2: {
		unsigned at = take(f, 2), len = take(f, 1);

		for (unsigned i = 0; i < len && at + i < FZ_RAM; i++)
			f->vm.ram[at + i] = take(f, 1);
		break;
	}
	case 3: {
		unsigned at = take(f, 2), len = take(f, 2);

		memset(f->vm.ram + at, take(f, 1), MIN(len, FZ_RAM - at));
		break;
	}
	case 4: {
		/* table (in RAM), index, addr, len, flags, next */
		unsigned table = take(f, 2), i = take(f, 1);
		uint8_t desc[16];

		for (unsigned k = 0; k < 16; k++)
			desc[k] = take(f, 1);
		if (table + 16 * i + 16 <= FZ_RAM)
			memcpy(f->vm.ram + table + 16 * i, desc, 16);
		break;
	}
	case 5:
		inject(f);
		break;
	case 6: {
		uint64_t features = take(f, 8);
		unsigned num = 1u << (take(f, 1) % 9);

		quick_start(f, d, features, num);
		break;
	}
	case 7: {
		unsigned q = take(f, 1) % mmio_of(f, d)->ops->nqueues;

		offer(f, d, q, take(f, 2));
		reg_write(f, d, REG_QUEUE_NOTIFY, q);
		break;
	}
	case 8:
		dirty_set_tracking(&f->vm.dirty, d);
		break;
	}
	pump(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz *f = calloc(1, sizeof(*f));
	uint8_t flags;

	if (!f)
		return 0;
	f->peer = -1;
	f->in = data;
	f->left = size;
	flags = take(f, 1);
	f->vm.fd = -1;
	f->vm.cfg = &f->cfg;
	f->cfg.no_sandbox = true;
	f->vm.ram_size = FZ_RAM;
	f->vm.ram = calloc(1, FZ_RAM);
	if (!f->vm.ram || dirty_init(&f->vm.dirty, FZ_RAM) < 0 || evloop_init(&f->vm.loop) < 0)
		abort();
	if (net_make(f) < 0 || blk_make(f, flags) < 0)
		abort();
	dirty_set_tracking(&f->vm.dirty, flags & 1);
	for (int ops = 0; f->left && ops < 512; ops++)
		run_op(f, take(f, 1));
	teardown(f);
	free(f);
	return 0;
}
