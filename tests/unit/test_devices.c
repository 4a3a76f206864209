/*
 * Devices without KVM (a VM whose fd is -1), driven through the buses as a vCPU would:
 * the virtio-mmio transport (its eventfds wired to nothing): the feature handshake, QueueNum
 * and QueueReady, and the state it accepts from a migration stream; the UART's output to a
 * slow backend. Also the I/O loop's slots and evloop_call() at shutdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <libfdt.h>

#include "tests/unit/unit.h"
#include "vmm/chardev.h"
#include "vmm/dirty.h"
#include "vmm/evloop.h"
#include "vmm/serial.h"
#include "vmm/util.h"
#include "vmm/virtio_mmio.h"
#include "vmm/vm.h"

#define RAM (1 << 20)
#define NUM 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define BUF 0x10000

#define S_ACK 1
#define S_DRIVER 2
#define BIT(f) (1ULL << (f))
#define OFFERED (BIT(0) | BIT(VIRTIO_F_RING_EVENT_IDX) | BIT(VIRTIO_F_VERSION_1))

static struct vm vm;
static unsigned n_start, n_reset, n_stop, stop_q;

static void t_config_read(void *opaque, unsigned off, uint8_t *data, unsigned len)
{
	memset(data, 0, len);
}

static void t_notify(void *opaque, unsigned q)
{
}

static void t_start(void *opaque)
{
	n_start++;
}

static void t_reset(void *opaque)
{
	n_reset++;
}

static void t_queue_stop(void *opaque, unsigned q)
{
	n_stop++;
	stop_q = q;
}

static const struct virtio_dev_ops ops = {
	.device_id = 2,
	.features = OFFERED,
	.nqueues = 1,
	.config_size = 8,
	.config_read = t_config_read,
	.notify = t_notify,
	.start = t_start,
	.reset = t_reset,
	.queue_stop = t_queue_stop,
};

static void wr(struct virtio_mmio *v, unsigned reg, uint32_t val)
{
	iobus_dispatch(&vm.mmio, v->base + reg, (uint8_t *)&val, 4, true);
}

static uint32_t rd(struct virtio_mmio *v, unsigned reg)
{
	uint32_t val = 0;

	iobus_dispatch(&vm.mmio, v->base + reg, (uint8_t *)&val, 4, false);
	return val;
}

/* Reset, then the driver's side of the handshake up to the status it writes last. */
static void handshake(struct virtio_mmio *v, uint64_t features, uint32_t status)
{
	wr(v, REG_STATUS, 0);
	wr(v, REG_STATUS, S_ACK | S_DRIVER);
	wr(v, REG_DRIVER_FEATURES_SEL, 0);
	wr(v, REG_DRIVER_FEATURES, features);
	wr(v, REG_DRIVER_FEATURES_SEL, 1);
	wr(v, REG_DRIVER_FEATURES, features >> 32);
	wr(v, REG_STATUS, status);
}

static void queue_setup(struct virtio_mmio *v, uint32_t num)
{
	wr(v, REG_QUEUE_SEL, 0);
	wr(v, REG_QUEUE_NUM, num);
	wr(v, REG_QUEUE_DESC_LOW, DESC);
	wr(v, REG_QUEUE_DRIVER_LOW, AVAIL);
	wr(v, REG_QUEUE_DEVICE_LOW, USED);
	wr(v, REG_QUEUE_READY, 1);
}

/* A running device with queue 0 ready on a zeroed ring. */
static void running(struct virtio_mmio *v)
{
	uint32_t ok = S_ACK | S_DRIVER | VIRTIO_STATUS_FEATURES_OK;

	memset(vm.ram, 0, RAM);
	handshake(v, BIT(0) | BIT(VIRTIO_F_VERSION_1), ok);
	queue_setup(v, NUM);
	wr(v, REG_STATUS, ok | VIRTIO_STATUS_DRIVER_OK);
}

static void test_features(struct virtio_mmio *v)
{
	uint32_t ok = S_ACK | S_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	unsigned started = n_start;

	/* FEATURES_OK refused (a feature never offered) and DRIVER_OK in the same write. */
	handshake(v, OFFERED | BIT(1), ok | VIRTIO_STATUS_DRIVER_OK);
	CHECK_EQ(rd(v, REG_STATUS), S_ACK | S_DRIVER | VIRTIO_STATUS_NEEDS_RESET);
	CHECK(!virtio_mmio_running(v));
	CHECK_EQ(n_start, started);

	/* DRIVER_OK with FEATURES_OK never asked for. */
	handshake(v, OFFERED, S_ACK | S_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	CHECK_EQ(rd(v, REG_STATUS), S_ACK | S_DRIVER | VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(n_start, started);

	/* Only a reset clears NEEDS_RESET. */
	wr(v, REG_STATUS, 0);
	CHECK_EQ(rd(v, REG_STATUS), 0);

	/* As Linux does; then the features are final while it runs. */
	handshake(v, OFFERED, ok);
	CHECK_EQ(rd(v, REG_STATUS), ok);
	wr(v, REG_STATUS, ok | VIRTIO_STATUS_DRIVER_OK);
	CHECK(virtio_mmio_running(v));
	CHECK_EQ(n_start, started + 1);
	wr(v, REG_DRIVER_FEATURES_SEL, 0);
	wr(v, REG_DRIVER_FEATURES, 0);
	CHECK_EQ(v->driver_features, OFFERED);
	/* Clearing FEATURES_OK (against the spec) does not reopen them. */
	wr(v, REG_STATUS, S_ACK | S_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	CHECK_EQ(rd(v, REG_STATUS), ok | VIRTIO_STATUS_DRIVER_OK);
	wr(v, REG_DRIVER_FEATURES, 0);
	CHECK_EQ(v->driver_features, OFFERED);
	CHECK_EQ(n_start, started + 1);

	/* As OSv does: no VERSION_1, and FEATURES_OK must stay. */
	handshake(v, BIT(0) | BIT(VIRTIO_F_RING_EVENT_IDX), ok);
	CHECK_EQ(rd(v, REG_STATUS), ok);
	wr(v, REG_STATUS, ok | VIRTIO_STATUS_DRIVER_OK);
	CHECK(virtio_mmio_running(v));
}

static void test_queue_num(struct virtio_mmio *v)
{
	uint32_t ok = S_ACK | S_DRIVER | VIRTIO_STATUS_FEATURES_OK;

	handshake(v, OFFERED, ok);
	CHECK_EQ(rd(v, REG_QUEUE_NUM_MAX), VIRTQ_MAX_SIZE);
	/* 0x10008 must not pass as 8. */
	queue_setup(v, 0x10000 + NUM);
	CHECK_EQ(rd(v, REG_QUEUE_READY), 0);
	CHECK(rd(v, REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_STR(v->vq[0].error, "queue size is not a power of 2 up to QueueNumMax");

	handshake(v, OFFERED, ok);
	queue_setup(v, VIRTQ_MAX_SIZE);
	CHECK_EQ(rd(v, REG_QUEUE_READY), 1);
	CHECK_EQ(v->vq[0].num, VIRTQ_MAX_SIZE);
	CHECK(!(rd(v, REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET));
}

static void put16(uint64_t gpa, uint16_t val)
{
	memcpy(vm.ram + gpa, &val, 2);
}

static void test_queue_ready(struct virtio_mmio *v)
{
	struct virtq *vq = &v->vq[0];
	struct virtq_chain c;
	unsigned stops = n_stop;

	running(v);
	/* Where the device had got to on the old ring. */
	vq->last_avail = vq->used_idx = 5;
	vq->signalled_used = 4;

	/* Written 1 again while on: nothing changes. */
	wr(v, REG_QUEUE_READY, 1);
	CHECK_EQ(vq->last_avail, 5);
	CHECK_EQ(n_stop, stops);

	/* Off: the device's hook runs before the driver can read 0 back. */
	wr(v, REG_QUEUE_READY, 0);
	CHECK_EQ(n_stop, stops + 1);
	CHECK_EQ(stop_q, 0);
	CHECK_EQ(rd(v, REG_QUEUE_READY), 0);
	CHECK_EQ(virtq_pop(&vm, vq, &c), 0);
	wr(v, REG_QUEUE_READY, 0);
	CHECK_EQ(n_stop, stops + 1);

	/* On again over a new ring: from index 0, so its first buffer is found. */
	memset(vm.ram, 0, RAM);
	wr(v, REG_QUEUE_READY, 1);
	CHECK_EQ(rd(v, REG_QUEUE_READY), 1);
	CHECK_EQ(vq->last_avail, 0);
	CHECK_EQ(vq->used_idx, 0);
	CHECK_EQ(vq->signalled_used, 0);
	memcpy(vm.ram + DESC, &(uint64_t){ BUF }, 8);
	memcpy(vm.ram + DESC + 8, &(uint32_t){ 16 }, 4);
	put16(AVAIL + 4, 0);
	put16(AVAIL + 2, 1);
	CHECK_EQ(virtq_pop(&vm, vq, &c), 1);
	CHECK(!(rd(v, REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET));
}

/* Saves from's state and loads it into to, as a migration would: to's verdict. */
static int migrate(struct virtio_mmio *from, struct virtio_mmio *to)
{
	static char fdt[8192];
	int node;

	if (fdt_create(fdt, sizeof(fdt)) || fdt_finish_reservemap(fdt) ||
	    fdt_begin_node(fdt, "") || fdt_begin_node(fdt, "dev") || virtio_mmio_save(from, fdt) ||
	    fdt_end_node(fdt) || fdt_end_node(fdt) || fdt_finish(fdt))
		return -2;
	node = fdt_path_offset(fdt, "/dev");
	return node < 0 ? -2 : virtio_mmio_load(to, fdt, node);
}

/* What test_load() tampers with, to put back. */
struct regs {
	uint64_t driver_features;
	uint32_t status;
	struct virtq vq[VIRTIO_MAX_QUEUES];
};

static void regs_save(struct virtio_mmio *v, struct regs *r)
{
	r->driver_features = v->driver_features;
	r->status = v->status;
	memcpy(r->vq, v->vq, sizeof(r->vq));
}

static void regs_restore(struct virtio_mmio *v, const struct regs *r)
{
	v->driver_features = r->driver_features;
	v->status = r->status;
	memcpy(v->vq, r->vq, sizeof(r->vq));
}

static void test_load(struct virtio_mmio *v, struct virtio_mmio *v2)
{
	struct regs saved;

	running(v);
	v->vq[0].last_avail = 3;
	CHECK_EQ(migrate(v, v2), 0);
	CHECK(virtio_mmio_running(v2));
	CHECK(v2->vq[0].ready);
	CHECK_EQ(v2->vq[0].last_avail, 3);
	CHECK(v2->vq[0].desc == vm.ram + DESC);

	/* Crafted (but well-formed) streams: a state the registers could never reach. */
	regs_save(v, &saved);
	v->driver_features |= BIT(40);
	CHECK_EQ(migrate(v, v2), -1);
	regs_restore(v, &saved);
	v->status &= ~VIRTIO_STATUS_FEATURES_OK;
	CHECK_EQ(migrate(v, v2), -1);
	regs_restore(v, &saved);
	v->vq[1] = v->vq[0]; /* a queue the device does not have */
	CHECK_EQ(migrate(v, v2), -1);
	regs_restore(v, &saved);
	v->vq[1].num = 2 * VIRTQ_MAX_SIZE;
	CHECK_EQ(migrate(v, v2), -1);
	regs_restore(v, &saved);
	v->vq[0].num = 6;
	CHECK_EQ(migrate(v, v2), -1);
	regs_restore(v, &saved);
	v->vq[0].num = 2 * VIRTQ_MAX_SIZE;
	CHECK_EQ(migrate(v, v2), -1);
	regs_restore(v, &saved);
	CHECK_EQ(migrate(v, v2), 0);
}

/* --- the I/O loop --------------------------------------------------------------------- */

struct slot_test {
	struct evloop l;
	int a, b, c;
	unsigned ran_ab, ran_c;
};

static void slot_c(void *opaque, uint32_t events)
{
	struct slot_test *t = opaque;

	t->ran_c++;
	evloop_stop(&t->l);
}

/*
 * a and b are ready in the same batch: whichever runs first drops the other and adds c,
 * which takes the other's slot. The other's event, still in the batch, must not reach c.
 */
static void slot_first(struct slot_test *t, int self, int other)
{
	if (t->ran_ab++)
		return;
	evloop_del(&t->l, other);
	CHECK_EQ(evloop_add(&t->l, t->c, EPOLLIN, slot_c, t), 0);
	evloop_del(&t->l, self);
	evloop_stop(&t->l);
}

static void slot_a(void *opaque, uint32_t events)
{
	struct slot_test *t = opaque;

	slot_first(t, t->a, t->b);
}

static void slot_b(void *opaque, uint32_t events)
{
	struct slot_test *t = opaque;

	slot_first(t, t->b, t->a);
}

static void stop_loop(void *opaque, uint32_t events)
{
	evloop_stop(opaque);
}

static void test_evloop_slots(void)
{
	struct slot_test t = { .ran_ab = 0 };
	uint64_t one = 1;

	CHECK_EQ(evloop_init(&t.l), 0);
	t.a = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	t.b = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	t.c = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_EQ(evloop_add(&t.l, t.a, EPOLLIN, slot_a, &t), 0);
	CHECK_EQ(evloop_add(&t.l, t.b, EPOLLIN, slot_b, &t), 0);
	evloop_run(&t.l);
	CHECK_EQ(t.ran_ab, 1);
	CHECK_EQ(t.ran_c, 0);

	/* c's own events still arrive. */
	CHECK_EQ(write(t.c, &one, 8), 8);
	t.l.stop = false;
	CHECK(evloop_add_timer(&t.l, 2000, 0, stop_loop, &t.l) >= 0); /* if c never came */
	evloop_run(&t.l);
	CHECK(t.ran_c > 0);
	evloop_destroy(&t.l);
	close(t.a);
	close(t.b);
	close(t.c);
}

struct call_test {
	struct evloop l;
	int block;
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool in, release;
	unsigned ran_a, ran_b;
};

/* Holds the loop in a handler until told, then stops it: calls meanwhile wait unserved. */
static void call_block(void *opaque, uint32_t events)
{
	struct call_test *t = opaque;
	uint64_t n;

	if (read(t->block, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&t->m);
	t->in = true;
	pthread_cond_broadcast(&t->cv);
	while (!t->release)
		pthread_cond_wait(&t->cv, &t->m);
	pthread_mutex_unlock(&t->m);
	evloop_stop(&t->l);
}

static void *call_loop(void *arg)
{
	evloop_run(&((struct call_test *)arg)->l);
	return NULL;
}

static void call_fn_a(void *arg)
{
	__atomic_fetch_add(&((struct call_test *)arg)->ran_a, 1, __ATOMIC_RELAXED);
}

static void call_fn_b(void *arg)
{
	__atomic_fetch_add(&((struct call_test *)arg)->ran_b, 1, __ATOMIC_RELAXED);
}

static void *call_a(void *arg)
{
	evloop_call(&((struct call_test *)arg)->l, call_fn_a, arg);
	return NULL;
}

static void *call_b(void *arg)
{
	evloop_call(&((struct call_test *)arg)->l, call_fn_b, arg);
	return NULL;
}

static bool joined(pthread_t th)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	return pthread_timedjoin_np(th, NULL, &ts) == 0;
}

static bool pending(struct evloop *l)
{
	bool p;

	pthread_mutex_lock(&l->call_lock);
	p = l->call_pending;
	pthread_mutex_unlock(&l->call_lock);
	return p;
}

/* Two calls in the queue when the loop stops: both run, once each, and nobody hangs. */
static void test_evloop_call_at_stop(void)
{
	static struct call_test t;
	pthread_t loop, a, b;
	uint64_t one = 1;

	CHECK_EQ(evloop_init(&t.l), 0);
	pthread_mutex_init(&t.m, NULL);
	pthread_cond_init(&t.cv, NULL);
	t.block = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_EQ(evloop_add(&t.l, t.block, EPOLLIN, call_block, &t), 0);
	pthread_create(&loop, NULL, call_loop, &t);
	CHECK_EQ(write(t.block, &one, 8), 8);
	pthread_mutex_lock(&t.m);
	while (!t.in)
		pthread_cond_wait(&t.cv, &t.m);
	pthread_mutex_unlock(&t.m);

	pthread_create(&a, NULL, call_a, &t);
	while (!pending(&t.l))
		usleep(1000);
	pthread_create(&b, NULL, call_b, &t);
	usleep(50000); /* b waits its turn behind a */
	pthread_mutex_lock(&t.m);
	t.release = true;
	pthread_cond_broadcast(&t.cv);
	pthread_mutex_unlock(&t.m);

	CHECK(joined(loop));
	CHECK(joined(a));
	CHECK(joined(b));
	CHECK_EQ(t.ran_a, 1);
	CHECK_EQ(t.ran_b, 1);
	CHECK(t.l.finished);
}

/*
 * A call from another thread before the loop runs (an incoming migration while tern still
 * sets up) waits for the loop; one whose loop never comes (set-up failed) runs at the finish.
 */
static void test_evloop_call_before_run(void)
{
	static struct call_test t, u;
	pthread_t loop, a;

	CHECK_EQ(evloop_init(&t.l), 0);
	pthread_create(&a, NULL, call_a, &t);
	usleep(50000);
	CHECK_EQ(__atomic_load_n(&t.ran_a, __ATOMIC_RELAXED), 0);
	pthread_create(&loop, NULL, call_loop, &t);
	CHECK(joined(a));
	CHECK_EQ(t.ran_a, 1);
	evloop_stop(&t.l);
	CHECK(joined(loop));
	evloop_destroy(&t.l);

	CHECK_EQ(evloop_init(&u.l), 0);
	pthread_create(&a, NULL, call_a, &u);
	usleep(50000);
	evloop_finish(&u.l);
	CHECK(joined(a));
	CHECK_EQ(u.ran_a, 1);
	evloop_destroy(&u.l);
}

/* --- the UART ------------------------------------------------------------------------- */

#define COM1 0x3f8
#define TX_BYTES 5000 /* more than the UART buffers: a writer also waits for room */

/* A backend whose write blocks while hold is set, as a stdout nobody reads. */
struct slow_chr {
	struct chardev chr;
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool hold, held;
	uint8_t log[2 * TX_BYTES];
	size_t len;
};

static struct slow_chr slow;

static int slow_write(struct chardev *c, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&slow.m);
	slow.held = slow.hold;
	pthread_cond_broadcast(&slow.cv);
	while (slow.hold)
		pthread_cond_wait(&slow.cv, &slow.m);
	if (len <= sizeof(slow.log) - slow.len) {
		memcpy(slow.log + slow.len, buf, len);
		slow.len += len;
	}
	pthread_mutex_unlock(&slow.m);
	return 0;
}

static void uart_out(uint8_t b)
{
	iobus_dispatch(&vm.pio, COM1, &b, 1, true);
}

static void uart_out_reg(unsigned reg, uint8_t b)
{
	iobus_dispatch(&vm.pio, COM1 + reg, &b, 1, true);
}

static uint8_t uart_in(unsigned reg)
{
	uint8_t b = 0;

	iobus_dispatch(&vm.pio, COM1 + reg, &b, 1, false);
	return b;
}

static void *vcpu_one(void *arg)
{
	uart_out('A');
	return NULL;
}

static void *vcpu_many(void *arg)
{
	for (unsigned i = 0; i < TX_BYTES; i++)
		uart_out(i % 251);
	return NULL;
}

static void *io_input(void *arg)
{
	slow.chr.input(slow.chr.input_opaque, (const uint8_t *)"x", 1);
	return NULL;
}

/*
 * One vCPU is stuck in the backend's write, another keeps writing: the I/O thread's input
 * goes through meanwhile, and the output comes out whole and in order once the write ends.
 */
static void test_serial_slow_output(void)
{
	pthread_t one, many, in;
	bool ordered = true;

	pthread_mutex_init(&slow.m, NULL);
	pthread_cond_init(&slow.cv, NULL);
	slow.chr.write = slow_write;
	slow.chr.fd = -1;
	slow.hold = true;
	CHECK(serial_create(&vm, &slow.chr) != NULL);
	pthread_create(&one, NULL, vcpu_one, NULL);
	pthread_mutex_lock(&slow.m);
	while (!slow.held)
		pthread_cond_wait(&slow.cv, &slow.m);
	pthread_mutex_unlock(&slow.m);
	pthread_create(&many, NULL, vcpu_many, NULL);
	usleep(50000); /* the buffer fills up */
	pthread_create(&in, NULL, io_input, NULL);
	CHECK(joined(in));

	pthread_mutex_lock(&slow.m);
	slow.hold = false;
	pthread_cond_broadcast(&slow.cv);
	pthread_mutex_unlock(&slow.m);
	CHECK(joined(one));
	CHECK(joined(many));
	CHECK_EQ(slow.len, 1 + TX_BYTES);
	CHECK_EQ(slow.log[0], 'A');
	for (unsigned i = 0; i < TX_BYTES && ordered; i++)
		ordered = slow.log[1 + i] == i % 251;
	CHECK(ordered);
	/* What the guest sees: THR empty as ever, and the input byte. */
	CHECK(uart_in(5) & 0x20);
	CHECK(uart_in(5) & 0x01);
	CHECK_EQ(uart_in(0), 'x');
}

/*
 * MCR's loopback, as Linux's autoconfig tests it without UPF_SKIP_TEST (setserial) and as
 * QEMU and kvmtool do it: MSR shows DTR/RTS/OUT1/OUT2 as DSR/CTS/RI/DCD, and a byte written
 * to THR comes back on RBR, not out to the backend. MCR's top three bits do not exist.
 */
static void test_serial_loopback(void)
{
	size_t sent = slow.len;

	uart_out_reg(4, 0x10 | 0x0a); /* loop, OUT2 | RTS */
	CHECK_EQ(uart_in(6) & 0xf0, 0x90);
	uart_out_reg(4, 0x10 | 0x05); /* loop, OUT1 | DTR */
	CHECK_EQ(uart_in(6) & 0xf0, 0x60);
	uart_out('q');
	CHECK(uart_in(5) & 0x01);
	CHECK_EQ(uart_in(0), 'q');
	CHECK(!(uart_in(5) & 0x01));
	CHECK_EQ(slow.len, sent);
	uart_out_reg(4, 0xff);
	CHECK_EQ(uart_in(4), 0x1f);
	uart_out_reg(4, 0x0b);
	CHECK_EQ(uart_in(6), 0xb0); /* out of loopback: the lines the backend "has" */
	uart_out('r');
	CHECK(!(uart_in(5) & 0x01));
	CHECK_EQ(slow.len, sent + 1);
}

/* inw from the byte-wide UART: its register, and the other byte floating, not what was there. */
static void test_serial_wide_read(void)
{
	uint8_t w[2] = { 0x5a, 0x5a };

	uart_out_reg(7, 0x42);
	iobus_dispatch(&vm.pio, COM1 + 7, w, 2, false);
	CHECK_EQ(w[0], 0x42);
	CHECK_EQ(w[1], 0xff);
}

static const struct device *device_named(const char *name)
{
	for (int i = 0; i < vm.ndev; i++)
		if (!strcmp(vm.dev[i].ops->name, name))
			return &vm.dev[i];
	return NULL;
}

/* A state tree with one node, "serial@3f8", holding regs (8 bytes) and rx_len bytes of rx. */
static void *serial_tree(const uint8_t regs[8], const uint8_t *rx, unsigned rx_len)
{
	static uint8_t fdt[80 << 10];

	if (fdt_create(fdt, sizeof(fdt)) || fdt_finish_reservemap(fdt) ||
	    fdt_begin_node(fdt, "") || fdt_begin_node(fdt, "serial@3f8") ||
	    fdt_property(fdt, "regs", regs, 8) || fdt_property(fdt, "rx", rx, rx_len) ||
	    fdt_end_node(fdt) || fdt_end_node(fdt) || fdt_finish(fdt))
		return NULL;
	return fdt;
}

static int serial_load_tree(const uint8_t regs[8], const uint8_t *rx, unsigned rx_len)
{
	const struct device *d = device_named("serial@3f8");
	void *fdt = serial_tree(regs, rx, rx_len);

	if (!d || !fdt)
		return -2;
	return d->ops->load(d->opaque, fdt, fdt_subnode_offset(fdt, 0, "serial@3f8"));
}

/*
 * A paste into a guest that reads slowly: 20000 bytes arrive whole and in order; of 70000, the
 * first 64 KiB, and the rest is dropped rather than held up (Ctrl-A must still reach tern).
 */
static void test_serial_paste(void)
{
	static uint8_t buf[70000];
	size_t n, sizes[] = { 20000, 70000 }, want[] = { 20000, 64 << 10 };
	bool in_order;

	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		for (size_t i = 0; i < sizes[k]; i++)
			buf[i] = i % 253;
		slow.chr.input(slow.chr.input_opaque, buf, sizes[k]);
		in_order = true;
		for (n = 0; uart_in(5) & 0x01; n++)
			in_order &= uart_in(0) == n % 253;
		CHECK_EQ(n, want[k]);
		CHECK(in_order);
	}
}

/*
 * Ctrl-A b: a NUL behind what waits, flagged by LSR.BI (and the line-status interrupt) only
 * once it is next to read, as Linux's 8250 driver expects for magic SysRq; one at a time.
 */
static void test_serial_break(void)
{
	slow.chr.input(slow.chr.input_opaque, (const uint8_t *)"ab", 2);
	uart_out_reg(1, 0x05); /* IER: RDI | RLSI */
	slow.chr.brk(slow.chr.input_opaque);
	slow.chr.brk(slow.chr.input_opaque);
	CHECK_EQ(uart_in(5) & 0x11, 0x01);
	CHECK_EQ(uart_in(2) & 0x0f, 0x04); /* data, not yet the break */
	CHECK_EQ(uart_in(0), 'a');
	CHECK_EQ(uart_in(0), 'b');
	CHECK_EQ(uart_in(2) & 0x0f, 0x06);
	CHECK_EQ(uart_in(5) & 0x11, 0x11);
	/*
	 * As a 16550's: reading LSR ends BI and the line-status interrupt, the NUL stays as data.
	 * A driver that answers that interrupt by reading LSR alone, as the datasheet says, is
	 * not interrupted again and again.
	 */
	CHECK_EQ(uart_in(2) & 0x0f, 0x04);
	CHECK_EQ(uart_in(5) & 0x11, 0x01);
	CHECK_EQ(uart_in(0), 0);
	CHECK_EQ(uart_in(5) & 0x11, 0x00); /* the second break came while one waited */
	CHECK_EQ(uart_in(2) & 0x0f, 0x01);
	slow.chr.brk(slow.chr.input_opaque);
	uart_out_reg(2, 0x02); /* FCR: clear the receive FIFO, the break's NUL with it */
	CHECK_EQ(uart_in(5) & 0x11, 0x00);
	uart_out_reg(1, 0);
}

/* IIR's bits 7-6 say whether the FIFOs are on, as FCR set them: Linux's probe reads them. */
static void test_serial_fifo_bits(void)
{
	uart_out_reg(2, 0x00);
	CHECK_EQ(uart_in(2), 0x01);
	uart_out_reg(2, 0x01);
	CHECK_EQ(uart_in(2), 0xc1);
}

/*
 * A stream is trusted no more than the guest: registers the guest could never have set (IER's
 * or MCR's missing bits, a THR-empty flag other than 0 or 1) are refused, and a refused state
 * leaves the device as it was. A good one brings the registers and the receive FIFO.
 */
static void test_serial_load(void)
{
	/* ier, lcr, mcr, scr, fcr, dll, dlm, thri_pending */
	const uint8_t good[8] = { 0x00, 0x03, 0x0b, 0x5a, 0x01, 0x01, 0x00, 0 };
	const uint8_t bad_ier[8] = { 0xf1, 0x03, 0x0b, 0x77, 0x01, 0x01, 0x00, 0 };
	const uint8_t bad_mcr[8] = { 0x00, 0x03, 0xeb, 0x77, 0x01, 0x01, 0x00, 0 };
	const uint8_t bad_thri[8] = { 0x00, 0x03, 0x0b, 0x77, 0x01, 0x01, 0x00, 7 };
	static uint8_t big[(64 << 10) + 1]; /* one byte over the FIFO */

	CHECK_EQ(serial_load_tree(good, (const uint8_t *)"abc", 3), 0);
	CHECK_EQ(uart_in(7), 0x5a);
	CHECK_EQ(uart_in(4), 0x0b);
	CHECK_EQ(serial_load_tree(bad_ier, (const uint8_t *)"x", 1), -1);
	CHECK_EQ(serial_load_tree(bad_mcr, (const uint8_t *)"x", 1), -1);
	CHECK_EQ(serial_load_tree(bad_thri, (const uint8_t *)"x", 1), -1);
	CHECK_EQ(serial_load_tree(good, big, sizeof(big)), -1);
	/* Nothing of the refused states stuck: the good one's SCR and FIFO are still there. */
	CHECK_EQ(uart_in(1), 0x00);
	CHECK_EQ(uart_in(7), 0x5a);
	CHECK_EQ(uart_in(0), 'a');
	CHECK_EQ(uart_in(0), 'b');
	CHECK_EQ(uart_in(0), 'c');
	CHECK(!(uart_in(5) & 0x01));
}

static bool stop_now;

static bool give_up_when_told(void *arg)
{
	return __atomic_load_n(&stop_now, __ATOMIC_ACQUIRE);
}

static void *tell_stop(void *arg)
{
	usleep(150000);
	__atomic_store_n(&stop_now, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A stdout nobody reads (a full pipe) holds a vCPU's write only until the vCPUs must stop:
 * then the write gives up, where a kick that came before it blocked could not free it.
 */
static void test_write_gives_up(void)
{
	static uint8_t big[1 << 20];
	int p[2];
	pthread_t t;
	uint64_t t0;

	CHECK_EQ(pipe(p), 0);
	CHECK_EQ(write_full_unless(p[1], "ok", 2, give_up_when_told, NULL), 0);
	pthread_create(&t, NULL, tell_stop, NULL);
	t0 = now_ns();
	CHECK_EQ(write_full_unless(p[1], big, sizeof(big), give_up_when_told, NULL), -1);
	CHECK_EQ(errno, EINTR);
	CHECK(now_ns() - t0 < 1000000000ULL);
	CHECK(joined(t));
	close(p[0]);
	close(p[1]);
}

/* What fn wrote on stderr, into buf (a temporary file stands in for stderr meanwhile). */
static const char *stderr_of(void (*fn)(void *), void *arg, char *buf, size_t len)
{
	char path[] = "/tmp/tern-test-devices-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	ssize_t n;

	unlink(path);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	fn(arg);
	fflush(stderr);
	n = pread(fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	return buf;
}

static void break_in_a_loop(void *arg)
{
	struct virtio_mmio *v = arg;

	for (int i = 0; i < 50; i++) {
		handshake(v, OFFERED, S_ACK | S_DRIVER | VIRTIO_STATUS_DRIVER_OK);
		wr(v, REG_STATUS, 0);
	}
}

/* A driver that breaks its device in a loop cannot flood stderr (often a log file). */
static void test_broken_lines_limited(struct virtio_mmio *v)
{
	char err[2048], *p = err;
	int lines = 0;

	v->broken_lines = (struct ratelimit){ 0 };
	stderr_of(break_in_a_loop, v, err, sizeof(err));
	while ((p = strchr(p, '\n')) && ++p)
		lines++;
	CHECK_EQ(lines, RATELIMIT_BURST + 1);
	CHECK(strstr(err, "tern: test@0xd0000000: more such lines in the next 10 s are not shown\n"));
}

static void three_writes(void *arg)
{
	struct chardev *c = arg;

	for (int i = 0; i < 3; i++)
		CHECK_EQ(c->write(c, (const uint8_t *)"booted\n", 7), -1);
}

static void one_write(void *arg)
{
	struct chardev *c = arg;

	CHECK_EQ(c->write(c, (const uint8_t *)"booted\n", 7), 0);
}

/*
 * -serial file: on a full disk every write fails: one line that names the file, not one per
 * write; said again only after a write has worked in between.
 */
static void test_serial_file_full(void)
{
	static const char want[] = "tern: -serial file:/dev/full: write (output is dropped until "
				   "a write works again): No space left on device\n";
	struct chardev *c = chardev_file_open("/dev/full");
	int full, null = open("/dev/null", O_WRONLY);
	char err[1024];

	CHECK(c != NULL && null >= 0);
	if (!c || null < 0)
		return;
	full = dup(c->fd);
	CHECK_STR(stderr_of(three_writes, c, err, sizeof(err)), want);
	dup2(null, c->fd);
	CHECK_STR(stderr_of(one_write, c, err, sizeof(err)), "");
	dup2(full, c->fd);
	CHECK_STR(stderr_of(three_writes, c, err, sizeof(err)), want);
	close(full);
	close(null);
	chardev_close(c);
}

int main(void)
{
	struct virtio_mmio v, v2;

	vm.fd = -1;
	vm.ram = calloc(1, RAM);
	vm.ram_size = RAM;
	if (!vm.ram || dirty_init(&vm.dirty, RAM) < 0 || evloop_init(&vm.loop) < 0 ||
	    virtio_mmio_init(&v, &vm, &ops, NULL, "test") < 0 ||
	    virtio_mmio_init(&v2, &vm, &ops, NULL, "test2") < 0)
		return 1;
	test_features(&v);
	test_queue_num(&v);
	test_queue_ready(&v);
	test_load(&v, &v2);
	test_serial_slow_output();
	test_serial_loopback();
	test_serial_wide_read();
	test_serial_paste();
	test_serial_break();
	test_serial_fifo_bits();
	test_serial_load();
	test_write_gives_up();
	test_serial_file_full();
	test_broken_lines_limited(&v);
	test_evloop_slots();
	test_evloop_call_at_stop();
	test_evloop_call_before_run();
	return unit_summary();
}
