/*
 * Split virtqueues on a plain buffer standing in for guest RAM: chains, indirect tables,
 * the used ring, interrupt suppression, dirty logging, and every malformed ring we refuse.
 * Also the RARP announcement frame and its schedule.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/announce.h"
#include "tests/unit/unit.h"
#include "vmm/dirty.h"
#include "vmm/evloop.h"
#include "vmm/util.h"
#include "vmm/virtq.h"
#include "vmm/vm.h"

#define RAM (1 << 20)
#define NUM 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define INDIRECT 0x4000
#define BUF 0x10000

static struct vm vm;

static void desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *p = vm.ram + table + 16 * i;

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static uint16_t get16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, vm.ram + gpa, 2);
	return v;
}

static uint32_t get32(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, vm.ram + gpa, 4);
	return v;
}

static void put16(uint64_t gpa, uint16_t v)
{
	memcpy(vm.ram + gpa, &v, 2);
}

/* Publishes head in the next avail slot. */
static void offer(uint16_t head)
{
	uint16_t idx = get16(AVAIL + 2);

	put16(AVAIL + 4 + 2 * (idx % NUM), head);
	put16(AVAIL + 2, idx + 1);
}

static void fresh(struct virtq *vq, bool event_idx)
{
	memset(vm.ram, 0, RAM);
	virtq_reset(vq);
	vq->num = NUM;
	vq->desc_gpa = DESC;
	vq->avail_gpa = AVAIL;
	vq->used_gpa = USED;
	vq->event_idx = event_idx;
	CHECK_EQ(virtq_validate(&vm, vq), 0);
	vq->ready = true;
}

static void test_chain(void)
{
	struct virtq vq;
	struct virtq_chain c;

	fresh(&vq, false);
	CHECK_EQ(virtq_pop(&vm, &vq, &c), 0);
	desc(DESC, 3, BUF, 10, VIRTQ_DESC_F_NEXT, 5);
	desc(DESC, 5, BUF + 0x1000, 100, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 6);
	desc(DESC, 6, BUF + 0x2000, 50, VIRTQ_DESC_F_WRITE, 0);
	offer(3);
	CHECK_EQ(virtq_pop(&vm, &vq, &c), 1);
	CHECK_EQ(c.head, 3);
	CHECK_EQ(c.nout, 1);
	CHECK_EQ(c.nin, 2);
	CHECK_EQ(c.out_len, 10);
	CHECK_EQ(c.in_len, 150);
	CHECK(c.iov[1].iov_base == vm.ram + BUF + 0x1000);
	CHECK_EQ(virtq_pop(&vm, &vq, &c), 0);

	/* The copy spills from the first writable segment into the second. */
	{
		uint8_t data[120];

		memset(data, 0x5a, sizeof(data));
		CHECK_EQ(virtq_copy_to_chain(&vm, &c, data, sizeof(data)), 120);
		CHECK_EQ(vm.ram[BUF + 0x1000 + 99], 0x5a);
		CHECK_EQ(vm.ram[BUF + 0x2000 + 19], 0x5a);
		CHECK_EQ(vm.ram[BUF + 0x2000 + 20], 0);
	}
	virtq_push(&vm, &vq, c.head, 120);
	CHECK_EQ(get16(USED + 2), 1);
	CHECK_EQ(get32(USED + 4), 3);
	CHECK_EQ(get32(USED + 8), 120);
}

static void test_indirect(void)
{
	struct virtq vq;
	struct virtq_chain c;

	fresh(&vq, false);
	desc(DESC, 0, INDIRECT, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(INDIRECT, 0, BUF, 12, VIRTQ_DESC_F_NEXT, 2);
	desc(INDIRECT, 2, BUF + 100, 1500, VIRTQ_DESC_F_NEXT, 1);
	desc(INDIRECT, 1, BUF + 0x1000, 1514, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	CHECK_EQ(virtq_pop(&vm, &vq, &c), 1);
	CHECK_EQ(c.nout, 2);
	CHECK_EQ(c.nin, 1);
	CHECK_EQ(c.out_len, 1512);
}

/*
 * The spec asks no alignment of an indirect table: Linux with slub_debug hands 8-byte aligned
 * ones, and nothing forbids less.
 */
static void test_indirect_unaligned(void)
{
	static const unsigned offs[] = { 8, 2, 1 };
	struct virtq vq;
	struct virtq_chain c;

	for (unsigned k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
		uint64_t t = INDIRECT + offs[k];

		fresh(&vq, false);
		desc(DESC, 0, t, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
		desc(t, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
		desc(t, 1, BUF + 0x1000, 0x1234, VIRTQ_DESC_F_WRITE, 0);
		offer(0);
		CHECK_EQ(virtq_pop(&vm, &vq, &c), 1);
		CHECK_EQ(c.nout, 1);
		CHECK_EQ(c.nin, 1);
		CHECK_EQ(c.in_len, 0x1234);
		CHECK(c.iov[1].iov_base == vm.ram + BUF + 0x1000);
		CHECK(!vq.error);
	}
}

/* Builds one bad ring with setup() and checks that pop refuses it with an error. */
static void refused(void (*setup)(void), const char *what)
{
	struct virtq vq;
	struct virtq_chain c;

	fresh(&vq, false);
	setup();
	if (virtq_pop(&vm, &vq, &c) != -1 || !vq.error) {
		unit_failed++;
		printf("FAIL %s:%d: not refused: %s\n", __FILE__, __LINE__, what);
	} else {
		unit_passed++;
	}
}

static void bad_addr(void)
{
	desc(DESC, 0, RAM - 8, 16, 0, 0);
	offer(0);
}

static void bad_len_wrap(void)
{
	desc(DESC, 0, BUF, 0xffffffff, 0, 0);
	offer(0);
}

static void bad_head(void)
{
	offer(NUM);
}

static void bad_avail_jump(void)
{
	put16(AVAIL + 2, NUM + 1);
}

static void bad_loop(void)
{
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(DESC, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	offer(0);
}

static void bad_next(void)
{
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, NUM);
	offer(0);
}

static void bad_order(void)
{
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(DESC, 1, BUF, 16, 0, 0);
	offer(0);
}

static void bad_nested_indirect(void)
{
	desc(DESC, 0, INDIRECT, 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(INDIRECT, 0, INDIRECT, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
}

static void bad_indirect_size(void)
{
	desc(DESC, 0, INDIRECT, 20, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
}

static void bad_indirect_addr(void)
{
	desc(DESC, 0, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
}

/* Unaligned, the table is still checked against RAM to its last byte. */
static void bad_indirect_unaligned_end(void)
{
	desc(DESC, 0, RAM - 24, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
}

static void bad_indirect_loop(void)
{
	desc(DESC, 0, INDIRECT, 32, VIRTQ_DESC_F_INDIRECT, 0);
	desc(INDIRECT, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(INDIRECT, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	offer(0);
}

static void test_refusals(void)
{
	refused(bad_addr, "buffer past the end of RAM");
	refused(bad_len_wrap, "length that wraps");
	refused(bad_head, "head beyond the queue");
	refused(bad_avail_jump, "avail index far ahead");
	refused(bad_loop, "descriptor loop");
	refused(bad_next, "next beyond the queue");
	refused(bad_order, "readable after writable");
	refused(bad_nested_indirect, "nested indirect");
	refused(bad_indirect_size, "indirect size not a multiple of 16");
	refused(bad_indirect_addr, "indirect table outside RAM");
	refused(bad_indirect_unaligned_end, "unaligned indirect table running past RAM");
	refused(bad_indirect_loop, "loop inside an indirect table");
}

static void test_validate(void)
{
	struct virtq vq = { .num = NUM, .desc_gpa = DESC + 8, .avail_gpa = AVAIL,
			    .used_gpa = USED };

	CHECK_EQ(virtq_validate(&vm, &vq), -1);
	vq.desc_gpa = DESC;
	vq.used_gpa = RAM - 16;
	CHECK_EQ(virtq_validate(&vm, &vq), -1);
	vq.used_gpa = USED;
	vq.num = 6;
	CHECK_EQ(virtq_validate(&vm, &vq), -1);
	vq.num = 512;
	CHECK_EQ(virtq_validate(&vm, &vq), -1);
	vq.num = NUM;
	CHECK_EQ(virtq_validate(&vm, &vq), 0);
}

static void test_notify(void)
{
	struct virtq vq;
	struct virtq_chain c;

	/* Without EVENT_IDX: the avail flags decide. */
	fresh(&vq, false);
	virtq_push(&vm, &vq, 0, 0);
	CHECK(virtq_should_notify(&vm, &vq));
	put16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	CHECK(!virtq_should_notify(&vm, &vq));

	/* With EVENT_IDX: interrupt only when used_idx passes used_event. */
	fresh(&vq, true);
	put16(AVAIL + 4 + 2 * NUM, 0);	/* used_event: after the first buffer */
	virtq_push(&vm, &vq, 0, 0);
	CHECK(virtq_should_notify(&vm, &vq));
	virtq_push(&vm, &vq, 1, 0);
	CHECK(!virtq_should_notify(&vm, &vq));
	put16(AVAIL + 4 + 2 * NUM, 2);
	virtq_push(&vm, &vq, 2, 0);
	CHECK(virtq_should_notify(&vm, &vq));

	/* enable_notify publishes avail_event and reports buffers that raced in. */
	desc(DESC, 0, BUF, 16, 0, 0);
	offer(0);
	CHECK(virtq_enable_notify(&vm, &vq));
	CHECK_EQ(virtq_pop(&vm, &vq, &c), 1);
	CHECK(!virtq_enable_notify(&vm, &vq));
	CHECK_EQ(get16(USED + 4 + 8 * NUM), 1);
}

/* A packet over several chains (MRG_RXBUF): the used index moves once, past all of them. */
static void test_fill_flush(void)
{
	struct virtq vq;

	fresh(&vq, false);
	vq.used_idx = NUM - 1; /* the second element wraps to slot 0 */
	put16(USED + 2, NUM - 1);
	virtq_fill(&vm, &vq, 0, 4, 100);
	virtq_fill(&vm, &vq, 1, 6, 50);
	CHECK_EQ(get16(USED + 2), NUM - 1);
	virtq_flush(&vm, &vq, 2);
	CHECK_EQ(get16(USED + 2), NUM + 1);
	CHECK_EQ(get32(USED + 4 + 8 * (NUM - 1)), 4);
	CHECK_EQ(get32(USED + 8 + 8 * (NUM - 1)), 100);
	CHECK_EQ(get32(USED + 4), 6);
	CHECK_EQ(get32(USED + 8), 50);
}

/* DRIVER_OK with a queue never enabled: a kick must find nothing to do, and not crash. */
static void test_not_ready(void)
{
	struct virtq vq;
	struct virtq_chain c;

	for (int ev = 0; ev < 2; ev++) {
		virtq_reset(&vq);
		vq.event_idx = ev;
		CHECK_EQ(virtq_pop(&vm, &vq, &c), 0);
		CHECK(!virtq_should_notify(&vm, &vq));
		CHECK(!virtq_enable_notify(&vm, &vq));
	}
}

static void test_dirty(void)
{
	struct virtq vq;
	struct virtq_chain c;
	uint64_t bitmap[RAM / 4096 / 64] = { 0 };
	uint8_t data[8] = { 1 };

	fresh(&vq, false);
	desc(DESC, 0, BUF + 0x5000, 8, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	CHECK_EQ(virtq_pop(&vm, &vq, &c), 1);
	dirty_set_tracking(&vm.dirty, true);
	virtq_copy_to_chain(&vm, &c, data, sizeof(data));
	virtq_push(&vm, &vq, c.head, 8);
	dirty_set_tracking(&vm.dirty, false);
	dirty_collect(&vm.dirty, bitmap);
	CHECK(bitmap[0] & (1ULL << (USED >> 12)));
	CHECK(bitmap[0] & (1ULL << ((BUF + 0x5000) >> 12)));
	CHECK(!(bitmap[0] & (1ULL << (DESC >> 12))));
}

static void test_rarp(void)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x30, 0x30, 0x30, 0x30 };
	static const uint8_t want[42] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x30, 0x30, 0x30, 0x30,
		0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x03,
		0x52, 0x54, 0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0,
		0x52, 0x54, 0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0,
	};
	uint8_t f[ANNOUNCE_FRAME_LEN];
	unsigned t = 0, times[ANNOUNCE_ROUNDS] = { 0 };

	announce_rarp_frame(mac, f);
	CHECK(!memcmp(f, want, sizeof(want)));
	CHECK_EQ(f[ANNOUNCE_FRAME_LEN - 1], 0);
	for (unsigned r = 1; r < ANNOUNCE_ROUNDS; r++)
		times[r] = t += announce_gap_ms(r - 1);
	CHECK_EQ(times[1], 50);
	CHECK_EQ(times[2], 200);
	CHECK_EQ(times[3], 450);
	CHECK_EQ(times[4], 800);
}

/* The schedule on a real loop: when each frame went, in ms from the first. */
struct sched {
	struct evloop loop;
	struct announce a;
	int restart_fd, stop_fd;
	unsigned n;
	uint64_t t0, at[8];
};

static void sched_send(void *opaque)
{
	struct sched *s = opaque;

	if (s->n < 8)
		s->at[s->n] = (now_ns() - s->t0) / 1000000;
	s->n++;
}

static void sched_restart(void *opaque, uint32_t events)
{
	struct sched *s = opaque;
	uint64_t x;

	if (read(s->restart_fd, &x, sizeof(x)) == sizeof(x))
		announce_start(&s->a);
}

static void sched_stop(void *opaque, uint32_t events)
{
	evloop_stop(&((struct sched *)opaque)->loop);
}

/*
 * announce_self again just as the schedule's timer fired, in the same turn of the loop (both
 * timers due before it runs; the earlier one's handler comes first): the timer re-armed by the
 * restart has nothing to read, and must not count as a round. Then the 4 rounds after it
 * come 50, 200, 450 and 800 ms after the restart.
 */
static void test_announce_restart(void)
{
	static struct sched s;

	CHECK_EQ(evloop_init(&s.loop), 0);
	CHECK_EQ(announce_init(&s.a, &s.loop, sched_send, &s), 0);
	s.t0 = now_ns();
	announce_start(&s.a);
	s.restart_fd = evloop_add_timer(&s.loop, 40, 0, sched_restart, &s);
	s.stop_fd = evloop_add_timer(&s.loop, 1500, 0, sched_stop, &s);
	CHECK(s.restart_fd >= 0 && s.stop_fd >= 0);
	usleep(100 * 1000);
	evloop_run(&s.loop);
	CHECK_EQ(s.n, 1 + ANNOUNCE_ROUNDS);
	CHECK(s.at[0] < 50 && s.at[1] >= 100);
	for (unsigned r = 2, want = 50; r < 6; want += announce_gap_ms(r - 1), r++)
		CHECK(s.at[r] - s.at[1] + 5 >= want && s.at[r] - s.at[1] < want + 300);
	announce_destroy(&s.a);
	evloop_destroy(&s.loop);
}

int main(void)
{
	vm.ram = calloc(1, RAM);
	vm.ram_size = RAM;
	if (!vm.ram || dirty_init(&vm.dirty, RAM) < 0)
		return 1;
	test_chain();
	test_indirect();
	test_indirect_unaligned();
	test_refusals();
	test_validate();
	test_notify();
	test_fill_flush();
	test_not_ready();
	test_dirty();
	test_rarp();
	test_announce_restart();
	return unit_summary();
}
