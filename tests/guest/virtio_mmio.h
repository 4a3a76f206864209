/*
 * virtio-mmio, driven from ring 3 (the 0xc0000000-4 GiB window is mapped uncached with the
 * U bit, tables.S). Devices are found as OSv finds them with --nopci: from
 * "virtio_mmio.device=<size>[K|M|G]@<base>:<irq>" cmdline entries, which are removed from
 * the cmdline. Only the modern register layout (Version 2) is accepted, as OSv does.
 */
#ifndef VIRTIO_MMIO_H
#define VIRTIO_MMIO_H

#include <stdint.h>

#define VIRTIO_MMIO_MAX 8

struct virtio_mmio_dev {
	uint64_t base, size;
	unsigned irq;
};
extern struct virtio_mmio_dev virtio_mmio_devs[VIRTIO_MMIO_MAX];
extern int virtio_mmio_ndevs;

/* Parses and strips the cmdline entries (before the cmdline is printed). */
void virtio_mmio_scan_cmdline(void);

/* Registers (virtio 1.x, 4.2.2). */
#define VIRTIO_MMIO_MAGIC		0x000
#define VIRTIO_MMIO_VERSION		0x004
#define VIRTIO_MMIO_DEVICE_ID		0x008
#define VIRTIO_MMIO_VENDOR_ID		0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES	0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL	0x014
#define VIRTIO_MMIO_DRIVER_FEATURES	0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL	0x024
#define VIRTIO_MMIO_QUEUE_SEL		0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX	0x034
#define VIRTIO_MMIO_QUEUE_NUM		0x038
#define VIRTIO_MMIO_QUEUE_READY		0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY	0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS	0x060
#define VIRTIO_MMIO_INTERRUPT_ACK	0x064
#define VIRTIO_MMIO_STATUS		0x070
#define VIRTIO_MMIO_QUEUE_DESC		0x080	/* low, high at +4 */
#define VIRTIO_MMIO_QUEUE_DRIVER	0x090
#define VIRTIO_MMIO_QUEUE_DEVICE	0x0a0
#define VIRTIO_MMIO_CONFIG_GENERATION	0x0fc
#define VIRTIO_MMIO_CONFIG		0x100

#define VIRTIO_STATUS_ACKNOWLEDGE	1
#define VIRTIO_STATUS_DRIVER		2
#define VIRTIO_STATUS_DRIVER_OK		4
#define VIRTIO_STATUS_FEATURES_OK	8
#define VIRTIO_STATUS_NEEDS_RESET	0x40
#define VIRTIO_STATUS_FAILED		0x80

#define VIRTIO_F_RING_INDIRECT_DESC	28
#define VIRTIO_F_RING_EVENT_IDX		29
#define VIRTIO_F_VERSION_1		32

/* Split virtqueue. */
struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2

struct vring_used_elem {
	uint32_t id, len;
};

struct virtq {
	unsigned index, num;
	volatile struct vring_desc *desc;
	volatile uint16_t *avail;	/* flags, idx, ring[num], used_event */
	volatile uint16_t *used;	/* flags, idx, then elems; avail_event after them */
	uint16_t avail_idx;		/* next avail idx we publish */
	uint16_t last_used;		/* next used idx we consume */
	uint16_t kicked_idx;		/* avail idx at the last notify decision */
};

static inline volatile struct vring_used_elem *virtq_used_elem(struct virtq *q, unsigned i)
{
	return (volatile struct vring_used_elem *)(q->used + 2) + (i % q->num);
}
static inline uint16_t virtq_used_idx(struct virtq *q) { return q->used[1]; }
static inline volatile uint16_t *virtq_used_event(struct virtq *q) { return &q->avail[2 + q->num]; }
static inline volatile uint16_t *virtq_avail_event(struct virtq *q)
{
	return (volatile uint16_t *)(q->used + 2 + 4 * q->num);
}

uint32_t vmmio_read(uint64_t base, unsigned reg);
void vmmio_write(uint64_t base, unsigned reg, uint32_t v);
uint64_t vmmio_device_features(uint64_t base);
void vmmio_driver_features(uint64_t base, uint64_t f);
/* Sets up queue q with at most max entries: 0, or -1 after printing why. */
int virtq_setup(uint64_t base, struct virtq *q, unsigned index, unsigned max);

#endif
