/*
 * virtio-blk driver in ring 3 (virtio 1.x 5.2), for the console command "blk": one request
 * at a time, three descriptors (header, data, status), waiting for the used ring with the CPU
 * halted between interrupts. Like OSv's drivers it does not acknowledge VERSION_1.
 *
 *   blk                       capacity, features, serial, counters
 *   blk read SECTOR COUNT     "blk: read S+N sum=FNV status N": FNV-1a 32 of the bytes read
 *   blk write SECTOR COUNT SEED   writes byte o of the range as (SEED + 7*o + o/512) & 0xff
 *   blk sum COUNT             the same checksum of the buffer as it is, without a request: what
 *                             the device last wrote into guest memory (after a migration too)
 *   blk flush | blk id
 *   blk bench MIB             reads, then writes, MIB MiB from sector 0 on (64 KiB requests, one
 *                             at a time), and prints how long each took (tests/bench/disk.sh)
 *
 * The host computes the same checksum and pattern (tests/integration/test_block.py).
 */
#include "apic.h"
#include "kvmclock.h"
#include "lib.h"
#include "sys.h"
#include "virtio_mmio.h"

#define VIRTIO_ID_BLOCK		2
#define VIRTIO_BLK_F_RO		5
#define VIRTIO_BLK_F_FLUSH	9
#define VIRTIO_BLK_T_IN		0
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_T_FLUSH	4
#define VIRTIO_BLK_T_GET_ID	8
#define SECTOR			512
#define CHUNK_SECTORS		128	/* 64 KiB a request */
#define BIT(n)			(1ULL << (n))
#define TIMEOUT_NS		5000000000ULL

struct blk_req {
	uint32_t type, reserved;
	uint64_t sector;
	uint8_t status;
};

static struct vblk {
	uint64_t base;
	unsigned irq;
	uint64_t features, capacity;
	struct virtq q;
	struct blk_req *req;
	uint8_t *buf;
	int up;
} vblk;

static int vblk_init(struct vblk *b, struct virtio_mmio_dev *d)
{
	uint32_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	volatile uint32_t *cfg = (volatile uint32_t *)(d->base + VIRTIO_MMIO_CONFIG);

	b->base = d->base;
	b->irq = d->irq;
	vmmio_write(b->base, VIRTIO_MMIO_STATUS, 0);
	vmmio_write(b->base, VIRTIO_MMIO_STATUS, st);
	b->features = vmmio_device_features(b->base) &
		      (BIT(VIRTIO_BLK_F_RO) | BIT(VIRTIO_BLK_F_FLUSH));
	vmmio_driver_features(b->base, b->features);
	st |= VIRTIO_STATUS_FEATURES_OK;
	vmmio_write(b->base, VIRTIO_MMIO_STATUS, st);
	if (!(vmmio_read(b->base, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK) ||
	    virtq_setup(b->base, &b->q, 0, 16) < 0) {
		printf("virtio-blk@%#lx: setup failed\n", b->base);
		return -1;
	}
	b->capacity = cfg[0] | (uint64_t)cfg[1] << 32;
	b->req = alloc_pages(1);
	b->buf = alloc_pages(CHUNK_SECTORS * SECTOR / 4096);
	if (!b->req || !b->buf)
		return -1;
	ioapic_route(b->irq, VEC_IRQ(b->irq));
	vmmio_write(b->base, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
	b->up = 1;
	printf("virtio-blk@%#lx: %lu sectors, features %#lx\n", b->base, b->capacity, b->features);
	return 0;
}

static struct vblk *vblk_get(void)
{
	for (int i = 0; i < virtio_mmio_ndevs && !vblk.up; i++)
		if (vmmio_read(virtio_mmio_devs[i].base, VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_BLOCK &&
		    vblk_init(&vblk, &virtio_mmio_devs[i]) < 0)
			return NULL;
	if (!vblk.up)
		printf("blk: no virtio-blk device\n");
	return vblk.up ? &vblk : NULL;
}

static void set_desc(struct virtq *q, unsigned i, void *p, uint32_t len, uint16_t flags)
{
	q->desc[i].addr = (uint64_t)(uintptr_t)p;
	q->desc[i].len = len;
	q->desc[i].flags = flags;
	q->desc[i].next = i + 1;
}

/* One request; returns its status byte, or -1 if the device never answered. */
static int vblk_request(struct vblk *b, uint32_t type, uint64_t sector, uint32_t len, int in)
{
	struct virtq *q = &b->q;
	uint16_t used = q->last_used;
	uint64_t deadline = now_ns() + TIMEOUT_NS;
	unsigned n = 0;

	b->req->type = type;
	b->req->reserved = 0;
	b->req->sector = sector;
	b->req->status = 0xff;
	set_desc(q, n++, b->req, 16, VRING_DESC_F_NEXT);
	if (len)
		set_desc(q, n++, b->buf, len, VRING_DESC_F_NEXT | (in ? VRING_DESC_F_WRITE : 0));
	set_desc(q, n++, &b->req->status, 1, VRING_DESC_F_WRITE);
	q->avail[2 + q->avail_idx % q->num] = 0;
	barrier();
	q->avail[1] = ++q->avail_idx;
	asm volatile("mfence" ::: "memory");
	vmmio_write(b->base, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	while (virtq_used_idx(q) == used) {
		if (now_ns() > deadline) {
			printf("blk: no answer from the device\n");
			return -1;
		}
		sys_halt();	/* its interrupt, or the next timer tick */
	}
	q->last_used++;
	vmmio_write(b->base, VIRTIO_MMIO_INTERRUPT_ACK,
		    vmmio_read(b->base, VIRTIO_MMIO_INTERRUPT_STATUS));
	return b->req->status;
}

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n)
{
	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* SECTOR COUNT [SEED]: reads (or writes, with write set) in 64 KiB requests. */
static void vblk_rw(struct vblk *b, const char *args, int write)
{
	char *end;
	uint64_t sector = strtoul(args, &end, 0), count = strtoul(end, &end, 0), o = 0;
	uint8_t seed = strtoul(end, NULL, 0);
	uint32_t sum = 2166136261u;
	int st = 0;

	for (uint64_t done = 0; done < count && st == 0; done += CHUNK_SECTORS) {
		uint32_t len = (count - done < CHUNK_SECTORS ? count - done : CHUNK_SECTORS) * SECTOR;

		for (uint32_t i = 0; write && i < len; i++, o++)
			b->buf[i] = seed + 7 * o + o / SECTOR;
		st = vblk_request(b, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector + done, len,
				  !write);
		if (!write)
			sum = fnv(sum, b->buf, len);
	}
	if (write)
		printf("blk: wrote %lu+%lu status %d\n", sector, count, st);
	else
		printf("blk: read %lu+%lu sum=%08x status %d\n", sector, count, sum, st);
}

/* Sequential reads, then writes, of mib MiB in 64 KiB requests: the time of each pass. */
static void vblk_bench(struct vblk *b, unsigned long mib)
{
	uint64_t chunks = (mib << 20) / (CHUNK_SECTORS * SECTOR), ns[2];
	uint64_t span = b->capacity / CHUNK_SECTORS; /* whole chunks on the disk */
	int st = 0;

	if (!span) {
		printf("blk: bench needs a disk of at least 64 KiB\n");
		return;
	}
	for (int write = 0; write < 2; write++) {
		uint64_t t0 = now_ns();

		for (uint64_t i = 0; i < chunks && !st; i++)
			st = vblk_request(b, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
					  i % span * CHUNK_SECTORS, CHUNK_SECTORS * SECTOR, !write);
		ns[write] = now_ns() - t0;
	}
	printf("blk: bench %lu MiB read %lu us write %lu us status %d\n", mib, ns[0] / 1000,
	       ns[1] / 1000, st);
}

void virtio_blk_cmd(const char *args)
{
	struct vblk *b = vblk_get();
	int st;

	if (!b)
		return;
	if (!strncmp(args, "read ", 5) || !strncmp(args, "write ", 6)) {
		vblk_rw(b, strchr(args, ' ') + 1, args[0] == 'w');
	} else if (!strncmp(args, "sum ", 4)) {
		unsigned long n = strtoul(args + 4, NULL, 0);

		n = n < CHUNK_SECTORS ? n : CHUNK_SECTORS;
		printf("blk: buffer %lu sum=%08x\n", n, fnv(2166136261u, b->buf, n * SECTOR));
	} else if (!strncmp(args, "bench ", 6)) {
		vblk_bench(b, strtoul(args + 6, NULL, 0));
	} else if (!strcmp(args, "flush")) {
		printf("blk: flush status %d\n", vblk_request(b, VIRTIO_BLK_T_FLUSH, 0, 0, 0));
	} else if (!strcmp(args, "id")) {
		memset(b->buf, 0, 21);
		st = vblk_request(b, VIRTIO_BLK_T_GET_ID, 0, 20, 1);
		printf("blk: id '%s' status %d\n", (char *)b->buf, st);
	} else {
		printf("blk: %lu sectors, features %#lx%s\n", b->capacity, b->features,
		       b->features & BIT(VIRTIO_BLK_F_RO) ? ", read-only" : "");
	}
}
