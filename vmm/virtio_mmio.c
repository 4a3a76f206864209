/*
 * virtio-mmio transport. OSv's drivers accept only Version 2 but never acknowledge
 * VIRTIO_F_VERSION_1, so FEATURES_OK is accepted without it (the device then follows the
 * legacy rules, e.g. virtio-net's shorter header); Linux acknowledges it as usual.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>

#include "vmm/state.h"
#include "vmm/util.h"
#include "vmm/virtio_mmio.h"
#include "vmm/vm.h"

#define VIRTIO_MMIO_MAGIC 0x74726976 /* "virt" */
#define VIRTIO_VENDOR_ID 0x4e524554  /* "TERN" */

#define ISR_USED 1
#define ISR_CONFIG 2

bool virtio_mmio_has(struct virtio_mmio *v, unsigned feature)
{
	return v->driver_features & (1ULL << feature);
}

bool virtio_mmio_running(struct virtio_mmio *v)
{
	return (v->status & VIRTIO_STATUS_DRIVER_OK) && !(v->status & VIRTIO_STATUS_NEEDS_RESET);
}

const char *virtio_mmio_state(struct virtio_mmio *v)
{
	return v->status & VIRTIO_STATUS_NEEDS_RESET ? "broken (needs reset)"
	       : virtio_mmio_running(v)		     ? "running"
						     : "not started by the guest";
}

static void virtio_mmio_interrupt(struct virtio_mmio *v, uint32_t why)
{
	uint64_t one = 1;

	v->isr |= why;
	if (write(v->irqfd, &one, sizeof(one)) != sizeof(one))
		perrorf("%s: write irqfd", v->name);
}

void virtio_mmio_used(struct virtio_mmio *v, unsigned q)
{
	if (virtq_should_notify(v->vm, &v->vq[q]))
		virtio_mmio_interrupt(v, ISR_USED);
}

void virtio_mmio_serve(struct virtio_mmio *v, unsigned q, unsigned budget,
		       int (*serve)(void *opaque, struct virtq_chain *c), struct virtq_chain *c)
{
	struct virtq *vq = &v->vq[q];
	int r = 0, len;

	do {
		while (budget && (r = virtq_pop(v->vm, vq, c)) > 0) {
			budget--;
			len = serve(v->opaque, c);
			if (len < 0) {
				r = -1;
				break;
			}
			virtq_push(v->vm, vq, c->head, len);
		}
		if (r < 0) {
			virtio_mmio_broken(v, q);
			return;
		}
		virtio_mmio_used(v, q);
		if (!budget) {
			virtio_mmio_kick(v, q);
			return;
		}
	} while (virtq_enable_notify(v->vm, vq));
}

void virtio_mmio_kick(struct virtio_mmio *v, unsigned q)
{
	uint64_t one = 1;

	if (write(v->kick[q].fd, &one, sizeof(one)) != sizeof(one))
		perrorf("%s: write ioeventfd of queue %u", v->name, q);
}

void virtio_mmio_config_changed(struct virtio_mmio *v)
{
	v->config_gen++;
	virtio_mmio_interrupt(v, ISR_CONFIG);
}

void virtio_mmio_broken(struct virtio_mmio *v, unsigned q)
{
	if (v->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	if (ratelimit_pass(&v->broken_lines, v->name))
		errorf("%s: queue %u: %s; device marked NEEDS_RESET", v->name, q,
		       v->vq[q].error ? v->vq[q].error : "malformed ring");
	v->status |= VIRTIO_STATUS_NEEDS_RESET;
	v->ops->reset(v->opaque);
	virtio_mmio_config_changed(v);
}

static void virtio_mmio_reset(struct virtio_mmio *v)
{
	v->ops->reset(v->opaque);
	v->status = v->isr = 0;
	v->dev_features_sel = v->drv_features_sel = v->queue_sel = 0;
	v->driver_features = 0;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		virtq_reset(&v->vq[q]);
}

static void virtio_mmio_set_status(struct virtio_mmio *v, uint32_t status)
{
	uint32_t was = v->status;

	if (!status) {
		virtio_mmio_reset(v);
		return;
	}
	/*
	 * Features the device never offered cannot be accepted; accepted ones are final until a
	 * reset (FEATURES_OK stays, so DriverFeatures stays read-only).
	 */
	if (was & VIRTIO_STATUS_FEATURES_OK)
		status |= VIRTIO_STATUS_FEATURES_OK;
	else if ((status & VIRTIO_STATUS_FEATURES_OK) && (v->driver_features & ~v->ops->features))
		status &= ~VIRTIO_STATUS_FEATURES_OK;
	/* Without agreed features the device cannot run (virtio 1.x 3.1.1): it needs a reset. */
	if ((status & VIRTIO_STATUS_DRIVER_OK) && !(status & VIRTIO_STATUS_FEATURES_OK)) {
		if (!(was & VIRTIO_STATUS_NEEDS_RESET) && ratelimit_pass(&v->broken_lines, v->name))
			errorf("%s: DRIVER_OK without FEATURES_OK; device marked NEEDS_RESET",
			       v->name);
		status = (status & ~VIRTIO_STATUS_DRIVER_OK) | VIRTIO_STATUS_NEEDS_RESET;
	}
	v->status = status | (was & VIRTIO_STATUS_NEEDS_RESET);
	if ((status & VIRTIO_STATUS_DRIVER_OK) && !(was & VIRTIO_STATUS_DRIVER_OK) &&
	    !(was & VIRTIO_STATUS_NEEDS_RESET) && v->ops->start)
		v->ops->start(v->opaque);
}

static void virtio_mmio_queue_ready(struct virtio_mmio *v, struct virtq *vq, uint32_t on)
{
	if (!on) {
		if (!vq->ready)
			return;
		/*
		 * The driver reuses the buffers once it reads 0 back: nothing new is taken from
		 * here on, and the device finishes (or drops) what it holds before we return.
		 */
		vq->ready = false;
		if (v->ops->queue_stop)
			v->ops->queue_stop(v->opaque, vq - v->vq);
		return;
	}
	if (vq->ready)
		return;
	/* Turned on again, it is a new ring, as after a reset: its indices start at 0. */
	vq->last_avail = vq->used_idx = vq->signalled_used = 0;
	vq->event_idx = virtio_mmio_has(v, VIRTIO_F_RING_EVENT_IDX);
	if (virtq_validate(v->vm, vq) < 0) {
		virtio_mmio_broken(v, vq - v->vq);
		return;
	}
	vq->ready = true;
}

static void set_half(uint64_t *p, bool high, uint32_t val)
{
	*p = high ? (*p & 0xffffffffULL) | (uint64_t)val << 32 : (*p & ~0xffffffffULL) | val;
}

/* Writes to a queue's registers; ignored while it is live, as the spec says. */
static void virtio_mmio_queue_write(struct virtio_mmio *v, unsigned reg, uint32_t val)
{
	struct virtq *vq;

	if (v->queue_sel >= v->ops->nqueues)
		return;
	vq = &v->vq[v->queue_sel];
	if (reg == REG_QUEUE_READY) {
		virtio_mmio_queue_ready(v, vq, val);
		return;
	}
	if (vq->ready)
		return;
	switch (reg) {
	case REG_QUEUE_NUM:
		/* Above QueueNumMax it must not wrap into a valid size: QueueReady refuses 0. */
		vq->num = val <= VIRTQ_MAX_SIZE ? val : 0;
		break;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
		set_half(&vq->desc_gpa, reg == REG_QUEUE_DESC_HIGH, val);
		break;
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
		set_half(&vq->avail_gpa, reg == REG_QUEUE_DRIVER_HIGH, val);
		break;
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		set_half(&vq->used_gpa, reg == REG_QUEUE_DEVICE_HIGH, val);
		break;
	}
}

static void virtio_mmio_write(struct virtio_mmio *v, unsigned reg, uint32_t val)
{
	switch (reg) {
	case REG_DEVICE_FEATURES_SEL:
		v->dev_features_sel = val;
		break;
	case REG_DRIVER_FEATURES_SEL:
		v->drv_features_sel = val;
		break;
	case REG_DRIVER_FEATURES:
		if (v->drv_features_sel < 2 && !(v->status & VIRTIO_STATUS_FEATURES_OK))
			set_half(&v->driver_features, v->drv_features_sel, val);
		break;
	case REG_QUEUE_SEL:
		v->queue_sel = val;
		break;
	case REG_QUEUE_NOTIFY:
		/* Normally caught by the ioeventfd; pass strays to the I/O thread the same way. */
		if (val < v->ops->nqueues)
			virtio_mmio_kick(v, val);
		break;
	case REG_INTERRUPT_ACK:
		v->isr &= ~val;
		break;
	case REG_STATUS:
		virtio_mmio_set_status(v, val);
		break;
	default:
		virtio_mmio_queue_write(v, reg, val);
	}
}

static uint32_t virtio_mmio_read(struct virtio_mmio *v, unsigned reg)
{
	struct virtq *vq = v->queue_sel < v->ops->nqueues ? &v->vq[v->queue_sel] : NULL;

	switch (reg) {
	case REG_MAGIC:
		return VIRTIO_MMIO_MAGIC;
	case REG_VERSION:
		return 2;
	case REG_DEVICE_ID:
		return v->ops->device_id;
	case REG_VENDOR_ID:
		return VIRTIO_VENDOR_ID;
	case REG_DEVICE_FEATURES:
		return v->dev_features_sel < 2 ? v->ops->features >> (32 * v->dev_features_sel) : 0;
	case REG_QUEUE_NUM_MAX:
		return vq ? VIRTQ_MAX_SIZE : 0;
	case REG_QUEUE_READY:
		return vq && vq->ready;
	case REG_INTERRUPT_STATUS:
		return v->isr;
	case REG_STATUS:
		return v->status;
	case REG_CONFIG_GENERATION:
		return v->config_gen;
	default:
		return 0;
	}
}

static void virtio_mmio_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_mmio *v = opaque;
	unsigned off = addr - v->base;
	uint32_t val = 0;

	pthread_mutex_lock(&v->lock);
	if (off >= REG_CONFIG) {
		off -= REG_CONFIG;
		if (off + len > v->ops->config_size)
			memset(data, 0, is_write ? 0 : len);
		else if (!is_write)
			v->ops->config_read(v->opaque, off, data, len);
		else if (v->ops->config_write)
			v->ops->config_write(v->opaque, off, data, len);
	} else if (len != 4 || (off & 3)) {
		/* Registers are 32-bit: other accesses read 0 and write nothing. */
		memset(data, 0, is_write ? 0 : len);
	} else if (is_write) {
		memcpy(&val, data, 4);
		virtio_mmio_write(v, off, val);
	} else {
		val = virtio_mmio_read(v, off);
		memcpy(data, &val, 4);
	}
	pthread_mutex_unlock(&v->lock);
}

static void virtio_mmio_kicked(void *opaque, uint32_t events)
{
	struct virtio_kick *k = opaque;
	struct virtio_mmio *v = k->v;
	uint64_t n;

	if (read(k->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		perrorf("%s: read ioeventfd", v->name);
	pthread_mutex_lock(&v->lock);
	if (virtio_mmio_running(v))
		v->ops->notify(v->opaque, k->q);
	pthread_mutex_unlock(&v->lock);
}

static struct kvm_ioeventfd virtio_mmio_ioeventfd(struct virtio_mmio *v, unsigned q)
{
	return (struct kvm_ioeventfd){
	    .datamatch = q,
	    .addr = v->base + REG_QUEUE_NOTIFY,
	    .len = 4,
	    .fd = v->kick[q].fd,
	    .flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
	};
}

static int virtio_mmio_eventfds(struct virtio_mmio *v)
{
	struct kvm_irqfd irqfd = {.gsi = v->irq};
	/* A VM without KVM (unit tests): the eventfds, wired to nothing. */
	bool kvm = v->vm->fd >= 0;

	v->irqfd = irqfd.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->irqfd < 0 || (kvm && ioctl(v->vm->fd, KVM_IRQFD, &irqfd) < 0)) {
		perrorf("%s: irqfd for IRQ %u", v->name, v->irq);
		return -1;
	}
	for (unsigned q = 0; q < v->ops->nqueues; q++) {
		struct virtio_kick *k = &v->kick[q];
		struct kvm_ioeventfd io;

		*k = (struct virtio_kick){v, q, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
		io = virtio_mmio_ioeventfd(v, q);
		if (k->fd < 0 || (kvm && ioctl(v->vm->fd, KVM_IOEVENTFD, &io) < 0)) {
			perrorf("%s: ioeventfd for queue %u", v->name, q);
			return -1;
		}
		if (evloop_add(&v->vm->loop, k->fd, EPOLLIN, virtio_mmio_kicked, k) < 0)
			return -1;
	}
	return 0;
}

int virtio_mmio_init(struct virtio_mmio *v, struct vm *vm, const struct virtio_dev_ops *ops,
		     void *opaque, const char *kind)
{
	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->ops = ops;
	v->opaque = opaque;
	v->irqfd = -1;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		v->kick[q].fd = -1;
	pthread_mutex_init(&v->lock, NULL);
	if (vm_alloc_mmio(vm, &v->base, &v->irq) < 0)
		return -1;
	snprintf(v->name, sizeof(v->name), "%s@%#llx", kind, (unsigned long long)v->base);
	if (iobus_register(&vm->mmio, v->base, VM_MMIO_SIZE, virtio_mmio_io, v) < 0)
		return -1;
	return virtio_mmio_eventfds(v);
}

void virtio_mmio_destroy(struct virtio_mmio *v)
{
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct kvm_ioeventfd io = virtio_mmio_ioeventfd(v, q);

		if (v->kick[q].fd < 0)
			continue;
		/* The VM may outlive us (tests, a failed start): KVM must drop its reference. */
		io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
		if (v->vm->fd >= 0)
			(void)ioctl(v->vm->fd, KVM_IOEVENTFD,
				    &io); /* teardown: nothing to do on error */
		evloop_del(&v->vm->loop, v->kick[q].fd);
		close(v->kick[q].fd);
	}
	if (v->irqfd >= 0)
		close(v->irqfd);
	pthread_mutex_destroy(&v->lock);
}

/* What travels per queue; host pointers are rebuilt by virtq_validate() on load. */
struct virtq_saved {
	uint64_t desc, avail, used;
	uint16_t num, last_avail, used_idx, signalled_used;
	uint8_t ready, event_idx, pad[6];
};

struct virtio_mmio_saved {
	uint64_t driver_features;
	uint32_t status, isr, dev_features_sel, drv_features_sel, queue_sel, config_gen;
	struct virtq_saved vq[VIRTIO_MAX_QUEUES];
};

int virtio_mmio_save(struct virtio_mmio *v, void *fdt)
{
	struct virtio_mmio_saved s = {
	    .driver_features = v->driver_features,
	    .status = v->status,
	    .isr = v->isr,
	    .dev_features_sel = v->dev_features_sel,
	    .drv_features_sel = v->drv_features_sel,
	    .queue_sel = v->queue_sel,
	    .config_gen = v->config_gen,
	};

	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct virtq *vq = &v->vq[q];

		s.vq[q] = (struct virtq_saved){.desc = vq->desc_gpa,
					       .avail = vq->avail_gpa,
					       .used = vq->used_gpa,
					       .num = vq->num,
					       .last_avail = vq->last_avail,
					       .used_idx = vq->used_idx,
					       .signalled_used = vq->signalled_used,
					       .ready = vq->ready,
					       .event_idx = vq->event_idx};
	}
	return state_put_blob(fdt, "virtio-mmio", &s, sizeof(s)) ? -1 : 0;
}

/*
 * A stream is trusted no more than the guest: a state the registers could never reach (which
 * the device would then run with) is refused. Ready queues get virtq_validate() on top.
 */
static int virtio_mmio_check_saved(struct virtio_mmio *v, const struct virtio_mmio_saved *s)
{
	if (s->driver_features & ~v->ops->features) {
		errorf("%s: the stream's driver features %#llx are beyond the device's %#llx",
		       v->name, (unsigned long long)s->driver_features,
		       (unsigned long long)v->ops->features);
		return -1;
	}
	if ((s->status & VIRTIO_STATUS_DRIVER_OK) && !(s->status & VIRTIO_STATUS_FEATURES_OK)) {
		errorf("%s: the stream's status %#x has DRIVER_OK without FEATURES_OK", v->name,
		       s->status);
		return -1;
	}
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (s->vq[q].ready && q >= v->ops->nqueues) {
			errorf("%s: the stream has queue %u ready; the device has %u", v->name, q,
			       v->ops->nqueues);
			return -1;
		}
		if (s->vq[q].num > VIRTQ_MAX_SIZE) {
			errorf("%s: the stream's queue %u has %u entries, above QueueNumMax %u",
			       v->name, q, s->vq[q].num, VIRTQ_MAX_SIZE);
			return -1;
		}
	}
	return 0;
}

int virtio_mmio_load(struct virtio_mmio *v, const void *fdt, int node)
{
	struct virtio_mmio_saved s;

	if (state_get_blob(fdt, node, "virtio-mmio", &s, sizeof(s)) < 0 ||
	    virtio_mmio_check_saved(v, &s) < 0)
		return -1;
	v->driver_features = s.driver_features;
	v->status = s.status;
	v->isr = s.isr;
	v->dev_features_sel = s.dev_features_sel;
	v->drv_features_sel = s.drv_features_sel;
	v->queue_sel = s.queue_sel;
	v->config_gen = s.config_gen;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct virtq *vq = &v->vq[q];
		struct virtq_saved *sq = &s.vq[q];

		*vq = (struct virtq){.num = sq->num,
				     .desc_gpa = sq->desc,
				     .avail_gpa = sq->avail,
				     .used_gpa = sq->used,
				     .last_avail = sq->last_avail,
				     .used_idx = sq->used_idx,
				     .event_idx = sq->event_idx,
				     .signalled_used = sq->signalled_used};
		if (sq->ready && virtq_validate(v->vm, vq) < 0) {
			errorf("%s: queue %u in the stream: %s", v->name, q, vq->error);
			return -1;
		}
		vq->ready = sq->ready;
	}
	return 0;
}
