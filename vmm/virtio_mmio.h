/*
 * The virtio-mmio transport (virtio 1.x, 4.2.2, Version 2 register layout), shared by every
 * virtio device. A device gives its ID, features, queues and config space through
 * virtio_dev_ops; the transport owns the registers, the feature handshake, the queues'
 * addresses, ioeventfd notifications and irqfd interrupts.
 *
 * Threads: registers are accessed from the vCPU threads, queues are processed on the I/O
 * thread. Both hold v->lock; device callbacks are always called with it held.
 */
#ifndef TERN_VIRTIO_MMIO_H
#define TERN_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/util.h"
#include "vmm/virtq.h"

struct vm;

#define VIRTIO_MAX_QUEUES 2

#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_NEEDS_RESET 0x40

struct virtio_mmio;

/* The transport's registers (virtio 1.x, 4.2.2): offsets in the device's MMIO window. */
enum {
	REG_MAGIC = 0x000,
	REG_VERSION = 0x004,
	REG_DEVICE_ID = 0x008,
	REG_VENDOR_ID = 0x00c,
	REG_DEVICE_FEATURES = 0x010,
	REG_DEVICE_FEATURES_SEL = 0x014,
	REG_DRIVER_FEATURES = 0x020,
	REG_DRIVER_FEATURES_SEL = 0x024,
	REG_QUEUE_SEL = 0x030,
	REG_QUEUE_NUM_MAX = 0x034,
	REG_QUEUE_NUM = 0x038,
	REG_QUEUE_READY = 0x044,
	REG_QUEUE_NOTIFY = 0x050,
	REG_INTERRUPT_STATUS = 0x060,
	REG_INTERRUPT_ACK = 0x064,
	REG_STATUS = 0x070,
	REG_QUEUE_DESC_LOW = 0x080,
	REG_QUEUE_DESC_HIGH = 0x084,
	REG_QUEUE_DRIVER_LOW = 0x090,
	REG_QUEUE_DRIVER_HIGH = 0x094,
	REG_QUEUE_DEVICE_LOW = 0x0a0,
	REG_QUEUE_DEVICE_HIGH = 0x0a4,
	REG_CONFIG_GENERATION = 0x0fc,
	REG_CONFIG = 0x100,
};

struct virtio_dev_ops {
	uint32_t device_id;
	uint64_t features;
	unsigned nqueues;
	unsigned config_size;
	/* Config space accesses; off + len <= config_size. Without config_write, writes are
	 * ignored. */
	void (*config_read)(void *opaque, unsigned off, uint8_t *data, unsigned len);
	void (*config_write)(void *opaque, unsigned off, const uint8_t *data, unsigned len);
	/* The driver kicked queue q (I/O thread). */
	void (*notify)(void *opaque, unsigned q);
	/* DRIVER_OK: features are final, queues are set up (optional). */
	void (*start)(void *opaque);
	/* Status written 0, or the device was found broken: stop using the queues. */
	void (*reset)(void *opaque);
	/*
	 * The driver turned queue q off (QueueReady 0) and may reuse its buffers once it reads
	 * that back: finish or drop what is in flight on it (optional; vCPU thread, lock held).
	 */
	void (*queue_stop)(void *opaque, unsigned q);
};

struct virtio_mmio {
	struct vm *vm;
	const struct virtio_dev_ops *ops;
	void *opaque;
	char name[40]; /* for error lines: "virtio-net@0xd0000000" */
	uint64_t base;
	uint32_t irq;
	pthread_mutex_t lock;
	struct ratelimit broken_lines;	/* a driver may break the device in a loop */

	/* Registers; these and vq[] are what a migration saves. */
	uint32_t status, isr, dev_features_sel, drv_features_sel, queue_sel, config_gen;
	uint64_t driver_features;
	struct virtq vq[VIRTIO_MAX_QUEUES];

	int irqfd;
	struct virtio_kick {
		struct virtio_mmio *v;
		unsigned q;
		int fd;
	} kick[VIRTIO_MAX_QUEUES];
};

/* Takes the next MMIO slot, registers it on the bus, sets up ioeventfds and the irqfd. */
int virtio_mmio_init(struct virtio_mmio *v, struct vm *vm, const struct virtio_dev_ops *ops,
		     void *opaque, const char *kind);
void virtio_mmio_destroy(struct virtio_mmio *v);

bool virtio_mmio_has(struct virtio_mmio *v, unsigned feature);
bool virtio_mmio_running(struct virtio_mmio *v);
/* Its state in words, for info commands: running, broken (needs reset), not started. */
const char *virtio_mmio_state(struct virtio_mmio *v);
/* Used buffers were returned on queue q: interrupt the guest if it wants one. */
void virtio_mmio_used(struct virtio_mmio *v, unsigned q);
/* Has queue q processed on the I/O thread, as if the driver had notified it. */
void virtio_mmio_kick(struct virtio_mmio *v, unsigned q);
/* The config space changed (e.g. link status). */
void virtio_mmio_config_changed(struct virtio_mmio *v);
/*
 * Serves queue q: pops each chain into *c, has serve(opaque, c) handle it (it returns the
 * bytes written into the chain, or -1 if the request is malformed) and returns it to the
 * guest, until the ring stays empty. At most budget chains a call: the rest waits for our
 * own kick, after the I/O loop's other work, so a busy guest cannot hold the loop.
 */
void virtio_mmio_serve(struct virtio_mmio *v, unsigned q, unsigned budget,
		       int (*serve)(void *opaque, struct virtq_chain *c), struct virtq_chain *c);
/* The guest broke a ring: one line, NEEDS_RESET, no further processing until reset. */
void virtio_mmio_broken(struct virtio_mmio *v, unsigned q);

/* Migration: transport state as FDT properties of the device's node. Lock held by caller. */
int virtio_mmio_save(struct virtio_mmio *v, void *fdt);
int virtio_mmio_load(struct virtio_mmio *v, const void *fdt, int node);

#endif
