/*
 * Split virtqueues (virtio 1.x, section 2.7), as the device side sees them in guest RAM.
 *
 * Everything the guest hands over -- ring addresses, descriptor indices, addresses and
 * lengths, indirect tables, chain lengths -- is checked against guest RAM and the queue size
 * before it is used. A violation makes virtq_pop() return -1 with the reason in vq->error;
 * the transport then marks the device broken. Nothing here ever touches memory outside RAM.
 */
#ifndef TERN_VIRTQ_H
#define TERN_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct vm;

#define VIRTQ_MAX_SIZE 256
#define VIRTQ_MAX_SEGS 64 /* descriptors per chain; longer chains are refused */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq {
	/* Set up by the driver through the transport. */
	uint16_t num;
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* Host views of the three parts, set by virtq_validate(). */
	volatile uint8_t *desc, *avail, *used;
	/* Device-side positions: what travels in the migration stream with the above. */
	uint16_t last_avail;
	uint16_t used_idx;
	/* Negotiated VIRTIO_F_RING_EVENT_IDX. */
	bool event_idx;
	/* used_idx at the last interrupt decision, for EVENT_IDX. */
	uint16_t signalled_used;
	const char *error;
};

/* A popped chain: readable segments first (out), then writable ones (in). */
struct virtq_chain {
	uint16_t head;
	unsigned nout, nin;
	uint64_t out_len, in_len;
	/* Only the first nout + nin entries are set: virtq_pop() clears just the above. */
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint64_t gpa[VIRTQ_MAX_SEGS]; /* guest address of each segment, for dirty logging */
};

/* Checks the ring addresses once the driver sets QueueReady. -1 with vq->error set. */
int virtq_validate(struct vm *vm, struct virtq *vq);
/* 1: a chain was taken, 0: the ring is empty, -1: the ring is malformed (vq->error). */
int virtq_pop(struct vm *vm, struct virtq *vq, struct virtq_chain *c);
/* Returns a chain with len bytes written into its writable part. */
void virtq_push(struct vm *vm, struct virtq *vq, uint16_t head, uint32_t len);
/*
 * The same in two steps, for a packet that spans several chains: the driver must see them
 * used together (virtio 1.x 5.1.6.4). fill() writes the element off places past the used
 * index, unseen until flush() publishes n of them at once.
 */
void virtq_fill(struct vm *vm, struct virtq *vq, uint16_t off, uint16_t head, uint32_t len);
void virtq_flush(struct vm *vm, struct virtq *vq, uint16_t n);
/* After pushes: does the driver want an interrupt (flags or used_event)? */
bool virtq_should_notify(struct vm *vm, struct virtq *vq);
/*
 * Before going idle: ask the driver to notify on the next buffer (avail_event or flags).
 * Returns true when buffers arrived meanwhile, so the caller must pop again.
 */
bool virtq_enable_notify(struct vm *vm, struct virtq *vq);
/* Copies len bytes from buf into the chain's writable segments; returns bytes copied. */
uint64_t virtq_copy_to_chain(struct vm *vm, struct virtq_chain *c, const void *buf, uint64_t len);
void virtq_reset(struct virtq *vq);

#endif
