/*
 * Split virtqueue, device side. Guest-controlled values are read once into locals (the
 * guest may change them under us) and checked before use; barriers follow the virtio
 * spec's memory-ordering rules (2.7.13).
 */
#include <string.h>

#include "vmm/dirty.h"
#include "vmm/virtq.h"
#include "vmm/vm.h"

/* Packed: an indirect table need not be aligned (Linux with slub_debug hands 8-byte ones). */
struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
} __attribute__((packed));
_Static_assert(sizeof(struct vdesc) == 16, "a descriptor is 16 bytes in guest memory");

#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING(i) (4 + 2 * (i))
#define USED_FLAGS 0
#define USED_IDX 2
#define USED_RING(i) (4 + 8 * (i))
#define USED_F_NO_NOTIFY 1

static uint16_t rd16(volatile uint8_t *p)
{
	return *(volatile uint16_t *)p;
}

static void wr16(volatile uint8_t *p, uint16_t v)
{
	*(volatile uint16_t *)p = v;
}

static int virtq_fail(struct virtq *vq, const char *why)
{
	vq->error = why;
	return -1;
}

/* Maps [gpa, gpa+len) if it lies in RAM and is aligned as the spec requires. */
static volatile uint8_t *virtq_map(struct vm *vm, uint64_t gpa, uint64_t len, unsigned align)
{
	if (gpa & (align - 1))
		return NULL;
	return vm_gpa(vm, gpa, len);
}

int virtq_validate(struct vm *vm, struct virtq *vq)
{
	unsigned n = vq->num;

	if (!n || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return virtq_fail(vq, "queue size is not a power of 2 up to QueueNumMax");
	vq->desc = virtq_map(vm, vq->desc_gpa, 16ULL * n, 16);
	vq->avail = virtq_map(vm, vq->avail_gpa, 6 + 2ULL * n, 2);
	vq->used = virtq_map(vm, vq->used_gpa, 6 + 8ULL * n, 4);
	if (!vq->desc || !vq->avail || !vq->used)
		return virtq_fail(vq, "ring outside guest RAM or misaligned");
	return 0;
}

/* Each field read once (volatile), whatever the table's alignment (packed). */
static void virtq_read_desc(volatile uint8_t *table, unsigned i, struct vdesc *d)
{
	volatile struct vdesc *p = (volatile struct vdesc *)(table + 16ULL * i);

	d->addr = p->addr;
	d->len = p->len;
	d->flags = p->flags;
	d->next = p->next;
}

/* Adds one buffer descriptor to the chain; readable ones must all come first. */
static int virtq_add_seg(struct vm *vm, struct virtq *vq, struct virtq_chain *c,
			 const struct vdesc *d)
{
	unsigned n = c->nout + c->nin;
	void *p = vm_gpa(vm, d->addr, d->len);

	if (!p)
		return virtq_fail(vq, "descriptor buffer outside guest RAM");
	if (n == VIRTQ_MAX_SEGS)
		return virtq_fail(vq, "descriptor chain too long");
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		c->nin++;
		c->in_len += d->len;
	} else {
		if (c->nin)
			return virtq_fail(vq, "readable descriptor after a writable one");
		c->nout++;
		c->out_len += d->len;
	}
	c->iov[n] = (struct iovec){p, d->len};
	c->gpa[n] = d->addr;
	return 0;
}

/* Switches the walk into an indirect table (only from the main table, only once). */
static int virtq_indirect(struct vm *vm, struct virtq *vq, const struct vdesc *d,
			  volatile uint8_t **table, unsigned *tnum, bool *in_indirect)
{
	if (*in_indirect || (d->flags & VIRTQ_DESC_F_NEXT))
		return virtq_fail(vq, "nested or chained indirect descriptor");
	if (!d->len || d->len % 16 || d->len / 16 > VIRTQ_MAX_SEGS)
		return virtq_fail(vq, "indirect table of a bad size");
	/* The spec asks no alignment of it, unlike the rings. */
	*table = virtq_map(vm, d->addr, d->len, 1);
	if (!*table)
		return virtq_fail(vq, "indirect table outside guest RAM");
	*tnum = d->len / 16;
	*in_indirect = true;
	return 0;
}

static int virtq_walk(struct vm *vm, struct virtq *vq, struct virtq_chain *c, uint16_t head)
{
	volatile uint8_t *table = vq->desc;
	unsigned tnum = vq->num, i = head, steps = 0;
	bool in_indirect = false;
	struct vdesc d;

	memset(c, 0, offsetof(struct virtq_chain, iov));
	c->head = head;
	for (;;) {
		/* Every step consumes a descriptor: a cycle ends here, not in a hang. */
		if (++steps > VIRTQ_MAX_SEGS + 1)
			return virtq_fail(vq, "descriptor chain loops or is too long");
		virtq_read_desc(table, i, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (virtq_indirect(vm, vq, &d, &table, &tnum, &in_indirect) < 0)
				return -1;
			i = 0;
			continue;
		}
		if (virtq_add_seg(vm, vq, c, &d) < 0)
			return -1;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
		if (i >= tnum)
			return virtq_fail(vq, "descriptor next index out of range");
	}
}

int virtq_pop(struct vm *vm, struct virtq *vq, struct virtq_chain *c)
{
	uint16_t avail_idx, head;

	if (!vq->ready)
		return 0;
	avail_idx = rd16(vq->avail + AVAIL_IDX);
	if (avail_idx == vq->last_avail)
		return 0;
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->num)
		return virtq_fail(vq, "available index ran more than a queue ahead");
	/* Read the ring entry only after the index that published it. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	head = rd16(vq->avail + AVAIL_RING(vq->last_avail % vq->num));
	if (head >= vq->num)
		return virtq_fail(vq, "available ring names a descriptor beyond the queue");
	if (virtq_walk(vm, vq, c, head) < 0)
		return -1;
	vq->last_avail++;
	return 1;
}

void virtq_fill(struct vm *vm, struct virtq *vq, uint16_t off, uint16_t head, uint32_t len)
{
	unsigned slot;
	volatile uint8_t *e;

	/*
	 * The driver turned the queue off (QueueReady 0) while a device worked on the chain
	 * without its lock: size and rings may have changed since, so the chain is dropped.
	 */
	if (!vq->ready)
		return;
	slot = (uint16_t)(vq->used_idx + off) % vq->num;
	e = vq->used + USED_RING(slot);
	*(volatile uint32_t *)e = head;
	*(volatile uint32_t *)(e + 4) = len;
	vm_mark_dirty(vm, vq->used_gpa + USED_RING(slot), 8);
}

void virtq_flush(struct vm *vm, struct virtq *vq, uint16_t n)
{
	if (!vq->ready)
		return;
	/* The elements must be visible before the index that publishes them. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	vq->used_idx += n;
	wr16(vq->used + USED_IDX, vq->used_idx);
	vm_mark_dirty(vm, vq->used_gpa + USED_IDX, 2);
}

void virtq_push(struct vm *vm, struct virtq *vq, uint16_t head, uint32_t len)
{
	virtq_fill(vm, vq, 0, head, len);
	virtq_flush(vm, vq, 1);
}

bool virtq_should_notify(struct vm *vm, struct virtq *vq)
{
	uint16_t old = vq->signalled_used, new = vq->used_idx, event;

	(void)vm;
	/*
	 * A driver may set DRIVER_OK without enabling this queue, and a kick still gets it
	 * processed: the ring pointers are then unset, and nothing was pushed anyway.
	 */
	if (!vq->ready)
		return false;
	/* Our used index store must be ordered before we read the driver's wishes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(rd16(vq->avail + AVAIL_FLAGS) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	event = rd16(vq->avail + AVAIL_RING(vq->num));
	vq->signalled_used = new;
	/* vring_need_event(): did new pass event since old? */
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

bool virtq_enable_notify(struct vm *vm, struct virtq *vq)
{
	if (!vq->ready)
		return false;
	if (vq->event_idx) {
		wr16(vq->used + USED_RING(vq->num), vq->last_avail);
		vm_mark_dirty(vm, vq->used_gpa + USED_RING(vq->num), 2);
	} else {
		wr16(vq->used + USED_FLAGS, 0);
		vm_mark_dirty(vm, vq->used_gpa + USED_FLAGS, 2);
	}
	/* Publish the request before looking again, or a buffer added meanwhile is missed. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return rd16(vq->avail + AVAIL_IDX) != vq->last_avail;
}

uint64_t virtq_copy_to_chain(struct vm *vm, struct virtq_chain *c, const void *buf, uint64_t len)
{
	const uint8_t *src = buf;
	uint64_t done = 0;

	for (unsigned i = c->nout; i < c->nout + c->nin && done < len; i++) {
		uint64_t n = c->iov[i].iov_len < len - done ? c->iov[i].iov_len : len - done;

		memcpy(c->iov[i].iov_base, src + done, n);
		vm_mark_dirty(vm, c->gpa[i], n);
		done += n;
	}
	return done;
}

void virtq_reset(struct virtq *vq)
{
	memset(vq, 0, sizeof(*vq));
}
