/*
 * virtio-blk without KVM (a VM whose fd is -1): requests laid out in RAM as a driver (or a
 * hostile guest) would, kicked through QueueNotify and served by the device's own thread with
 * the I/O loop on another. Checks what the guest gets back (status byte, used length), what
 * lands in the image, and when the image is synced to the disk.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "tests/unit/unit.h"
#include "vmm/config.h"
#include "vmm/dirty.h"
#include "vmm/evloop.h"
#include "vmm/monitor.h"
#include "vmm/util.h"
#include "vmm/virtio_blk.h"
#include "vmm/virtio_mmio.h"
#include "vmm/vm.h"

#define RAM (1 << 20)
#define NUM 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define HDR 0x4000
#define STATUS 0x5000
#define DATA 0x10000
#define SECTORS 128 /* the image: 64 KiB */
#define SERIAL "tern-serial-0123456"

#define F_FLUSH (1ULL << 9)
#define F_VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define W VIRTQ_DESC_F_WRITE

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11 };
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };

static struct vm vm;
static struct tern_config cfg;
static uint64_t base; /* the device's MMIO window */
static int img;	      /* the test's own fd on the image */
static uint16_t avail_idx;
static unsigned n_syncs;

/* The device's fdatasync comes here (the executable's own definition goes first): counted. */
int fdatasync(int fd)
{
	__atomic_add_fetch(&n_syncs, 1, __ATOMIC_RELAXED);
	return syscall(SYS_fdatasync, fd);
}

static unsigned syncs(void)
{
	return __atomic_load_n(&n_syncs, __ATOMIC_RELAXED);
}

static void wr(unsigned reg, uint32_t val)
{
	iobus_dispatch(&vm.mmio, base + reg, (uint8_t *)&val, 4, true);
}

static uint32_t rd(unsigned reg)
{
	uint32_t val = 0;

	iobus_dispatch(&vm.mmio, base + reg, (uint8_t *)&val, 4, false);
	return val;
}

static void *ram(uint64_t gpa)
{
	return vm.ram + gpa;
}

/* Reset, and a running device with the features given and queue 0 on a zeroed ring. */
static void start(uint64_t features)
{
	uint32_t st = 1 | 2 | VIRTIO_STATUS_FEATURES_OK;

	wr(REG_STATUS, 0);
	memset(vm.ram, 0, RAM);
	avail_idx = 0;
	wr(REG_STATUS, 1 | 2);
	wr(REG_DRIVER_FEATURES_SEL, 0);
	wr(REG_DRIVER_FEATURES, features);
	wr(REG_DRIVER_FEATURES_SEL, 1);
	wr(REG_DRIVER_FEATURES, features >> 32);
	wr(REG_STATUS, st);
	wr(REG_QUEUE_SEL, 0);
	wr(REG_QUEUE_NUM, NUM);
	wr(REG_QUEUE_DESC_LOW, DESC);
	wr(REG_QUEUE_DRIVER_LOW, AVAIL);
	wr(REG_QUEUE_DEVICE_LOW, USED);
	wr(REG_QUEUE_READY, 1);
	wr(REG_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags;
};

/* Puts the header at HDR and the chain of segs (in order, from descriptor 0) on the ring and
 * kicks. The used index before it, for answer(). */
static uint16_t kick(uint32_t type, uint64_t sector, const struct seg *segs, unsigned n)
{
	uint16_t before = *(volatile uint16_t *)ram(USED + 2);
	uint8_t *desc = ram(DESC);

	memcpy(ram(HDR), &type, 4);
	memset(ram(HDR + 4), 0, 4);
	memcpy(ram(HDR + 8), &sector, 8);
	for (unsigned i = 0; i < n; i++) {
		uint16_t flags = segs[i].flags | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
		uint16_t next = i + 1;

		memcpy(desc + 16 * i, &segs[i].gpa, 8);
		memcpy(desc + 16 * i + 8, &segs[i].len, 4);
		memcpy(desc + 16 * i + 12, &flags, 2);
		memcpy(desc + 16 * i + 14, &next, 2);
	}
	*(uint16_t *)ram(AVAIL + 4 + 2 * (avail_idx % NUM)) = 0;
	__atomic_store_n((uint16_t *)ram(AVAIL + 2), ++avail_idx, __ATOMIC_RELEASE);
	wr(REG_QUEUE_NOTIFY, 0);
	return before;
}

static uint16_t used_idx(void)
{
	return __atomic_load_n((uint16_t *)ram(USED + 2), __ATOMIC_ACQUIRE);
}

/* The used length of the request kicked at used index before, or -1 if the device returned
 * nothing (a broken ring, say). */
static long answer(uint16_t before)
{
	struct timespec t0, now;

	/* Not a timed check: a bound on waiting for an answer that never comes. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (used_idx() == before) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 10 || (rd(REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET))
			return -1;
		usleep(1000);
	}
	return *(uint32_t *)ram(USED + 4 + 8 * ((uint16_t)(used_idx() - 1) % NUM) + 4);
}

static long request(uint32_t type, uint64_t sector, const struct seg *segs, unsigned n)
{
	return answer(kick(type, sector, segs, n));
}

/* The usual layout: header, data (if any), status byte. */
static long simple(uint32_t type, uint64_t sector, uint32_t len, uint16_t data_flags)
{
	struct seg s[3] = {{HDR, 16, 0}};
	unsigned n = 1;

	if (len)
		s[n++] = (struct seg){DATA, len, data_flags};
	s[n++] = (struct seg){STATUS, 1, W};
	*(uint8_t *)ram(STATUS) = 0xff;
	return request(type, sector, s, n);
}

static uint8_t status(void)
{
	return *(uint8_t *)ram(STATUS);
}

static void fill(uint64_t gpa, uint8_t v, size_t len)
{
	memset(ram(gpa), v, len);
}

/* Whether sector s of the image holds byte v throughout. */
static bool image_is(uint64_t s, uint8_t v)
{
	uint8_t buf[512];

	if (pread(img, buf, sizeof(buf), s * 512) != sizeof(buf))
		return false;
	for (unsigned i = 0; i < sizeof(buf); i++)
		if (buf[i] != v)
			return false;
	return true;
}

static void test_read_write_flush(void)
{
	unsigned before;

	start(F_VERSION_1 | F_FLUSH);
	fill(DATA, 0xa1, 1024);
	before = syncs();
	CHECK_EQ(simple(T_OUT, 4, 1024, 0), 1);
	CHECK_EQ(status(), S_OK);
	CHECK(image_is(4, 0xa1) && image_is(5, 0xa1) && image_is(6, 0));
	/* The driver flushes when it wants the writes on the disk: not before. */
	CHECK_EQ(syncs(), before);
	CHECK_EQ(simple(T_FLUSH, 0, 0, 0), 1);
	CHECK_EQ(status(), S_OK);
	CHECK_EQ(syncs(), before + 1);
	fill(DATA, 0, 1024);
	CHECK_EQ(simple(T_IN, 5, 512, W), 513);
	CHECK_EQ(status(), S_OK);
	CHECK_EQ(*(uint8_t *)ram(DATA + 511), 0xa1);
}

/* A driver that did not take F_FLUSH cannot flush: its writes are on the disk when done. */
static void test_no_flush_feature_writes_through(void)
{
	unsigned before;

	start(F_VERSION_1);
	fill(DATA, 0xb2, 512);
	before = syncs();
	CHECK_EQ(simple(T_OUT, 8, 512, 0), 1);
	CHECK_EQ(status(), S_OK);
	CHECK(image_is(8, 0xb2));
	CHECK_EQ(syncs(), before + 1);
	/* Reads need none. */
	CHECK_EQ(simple(T_IN, 8, 512, W), 513);
	CHECK_EQ(syncs(), before + 1);
}

/* cache=unsafe: the guest's flushes, and the writethrough for a driver without, are skipped. */
static void test_cache_unsafe_does_not_sync(void)
{
	unsigned before = syncs();

	cfg.drive[0].no_flush = true;
	start(F_VERSION_1 | F_FLUSH);
	fill(DATA, 0xc3, 512);
	CHECK_EQ(simple(T_OUT, 9, 512, 0), 1);
	CHECK_EQ(simple(T_FLUSH, 0, 0, 0), 1);
	CHECK_EQ(status(), S_OK);
	start(F_VERSION_1);
	fill(DATA, 0xc3, 512);
	CHECK_EQ(simple(T_OUT, 10, 512, 0), 1);
	CHECK_EQ(status(), S_OK);
	CHECK(image_is(9, 0xc3) && image_is(10, 0xc3));
	CHECK_EQ(syncs(), before);
	cfg.drive[0].no_flush = false;
}

/* Outside the disk, wrapping sector * 512, or not whole sectors: IOERR, nothing written. */
static void test_bounds(void)
{
	static const uint64_t bad[] = {SECTORS, SECTORS + 1, 1ULL << 55, (1ULL << 55) + 1,
				       UINT64_MAX, UINT64_MAX / 512 + 1};

	start(F_VERSION_1 | F_FLUSH);
	fill(DATA, 0xc3, 1024);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(simple(T_OUT, bad[i], 512, 0), 1);
		CHECK_EQ(status(), S_IOERR);
		CHECK_EQ(simple(T_IN, bad[i], 512, W), 1);
		CHECK_EQ(status(), S_IOERR);
	}
	CHECK(image_is(0, 0) && image_is(1, 0));
	/* The last sector is in; two from it are not. */
	CHECK_EQ(simple(T_OUT, SECTORS - 1, 1024, 0), 1);
	CHECK_EQ(status(), S_IOERR);
	CHECK_EQ(simple(T_OUT, SECTORS - 1, 512, 0), 1);
	CHECK_EQ(status(), S_OK);
	CHECK(image_is(SECTORS - 1, 0xc3));
	/* Nothing at the end is still inside. */
	CHECK_EQ(simple(T_IN, SECTORS, 0, 0), 1);
	CHECK_EQ(status(), S_OK);
	CHECK_EQ(simple(T_OUT, 0, 100, 0), 1);
	CHECK_EQ(status(), S_IOERR);
	CHECK(image_is(0, 0));
}

static void test_unknown_types_and_get_id(void)
{
	static const uint32_t unknown[] = {2, 3, T_DISCARD, 13, 0x80000001, UINT32_MAX};
	char id[24];

	start(F_VERSION_1 | F_FLUSH);
	for (unsigned i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		CHECK_EQ(simple(unknown[i], 0, 512, W), 1);
		CHECK_EQ(status(), S_UNSUPP);
	}
	fill(DATA, 0xee, 32);
	CHECK_EQ(simple(T_GET_ID, 0, 20, W), 21);
	CHECK_EQ(status(), S_OK);
	memcpy(id, ram(DATA), 20);
	id[20] = '\0';
	CHECK_STR(id, SERIAL);
	CHECK_EQ(*(uint8_t *)ram(DATA + 20), 0xee);
	/* A short buffer gets what fits, and nothing past it. */
	fill(DATA, 0xee, 32);
	CHECK_EQ(simple(T_GET_ID, 0, 4, W), 5);
	CHECK_EQ(status(), S_OK);
	CHECK(!memcmp(ram(DATA), "tern", 4) && *(uint8_t *)ram(DATA + 4) == 0xee);
}

/* The driver may lay the parts out over the descriptors as it likes; the status is the in
 * part's last byte. */
static void test_layouts(void)
{
	struct seg split[] = {
	    {HDR, 5, 0}, {HDR + 5, 11, 0}, {DATA, 300, W}, {DATA + 300, 212, W}, {STATUS, 1, W}};
	struct seg joined[] = {{HDR, 16, 0}, {DATA, 513, W}};
	struct seg empty_status[] = {{HDR, 16, 0}, {DATA, 512, W}, {STATUS, 0, W}};

	start(F_VERSION_1 | F_FLUSH);
	fill(DATA, 0xd4, 512);
	CHECK_EQ(simple(T_OUT, 10, 512, 0), 1);
	fill(DATA, 0, 1024);
	*(uint8_t *)ram(STATUS) = 0xff;
	CHECK_EQ(request(T_IN, 10, split, 5), 513);
	CHECK_EQ(status(), S_OK);
	CHECK(*(uint8_t *)ram(DATA) == 0xd4 && *(uint8_t *)ram(DATA + 511) == 0xd4);
	fill(DATA, 0, 1024);
	CHECK_EQ(request(T_IN, 10, joined, 2), 513);
	CHECK(*(uint8_t *)ram(DATA + 511) == 0xd4 && *(uint8_t *)ram(DATA + 512) == S_OK);
	/* A status descriptor of length 0: the last in byte is the data's, 511 bytes are left. */
	fill(DATA, 0, 1024);
	CHECK_EQ(request(T_IN, 10, empty_status, 3), 1);
	CHECK_EQ(*(uint8_t *)ram(DATA + 511), S_IOERR);
	/* Zero-length data: nothing to do, done. */
	CHECK_EQ(simple(T_OUT, 0, 0, 0), 1);
	CHECK_EQ(status(), S_OK);
}

/* No header, or no byte for the status: no answer is possible; the device needs a reset, and
 * works again after one. */
static void test_broken_requests(void)
{
	struct seg hdr_in[] = {{HDR, 16, W}, {STATUS, 1, W}};
	struct seg short_hdr[] = {{HDR, 8, 0}, {STATUS, 1, W}};
	struct seg no_status[] = {{HDR, 16, 0}, {DATA, 512, 0}};
	struct seg status_out[] = {{HDR, 16, 0}, {DATA, 512, W}, {STATUS, 1, 0}};
	const struct seg *bad[] = {hdr_in, short_hdr, no_status, status_out};
	unsigned n[] = {2, 2, 2, 3};

	for (unsigned i = 0; i < 4; i++) {
		start(F_VERSION_1 | F_FLUSH);
		CHECK_EQ(request(T_IN, 0, bad[i], n[i]), -1);
		CHECK(rd(REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	}
	start(F_VERSION_1 | F_FLUSH);
	CHECK_EQ(simple(T_IN, 0, 512, W), 513);
	CHECK_EQ(status(), S_OK);
}

/* A stopped guest's memory stays as it was, as in QEMU: a request it kicked waits for cont. */
static void test_stopped_guest_waits_for_cont(void)
{
	struct seg s[] = {{HDR, 16, 0}, {DATA, 512, W}, {STATUS, 1, W}};
	char err[128];
	uint16_t before;

	start(F_VERSION_1);
	fill(DATA, 0x5a, 512);
	vm_stop(&vm);
	before = kick(T_IN, 0, s, 3);
	usleep(200000);
	CHECK_EQ(used_idx(), before);
	CHECK_EQ(*(uint8_t *)ram(DATA), 0x5a);
	CHECK_EQ(vm_cont(&vm, false, err, sizeof(err)), 0);
	CHECK_EQ(answer(before), 513);
	CHECK_EQ(*(uint8_t *)ram(DATA), 0);
}

static void *io_thread(void *arg)
{
	evloop_run(&vm.loop);
	return NULL;
}

int main(void)
{
	char path[] = "/tmp/tern-test-blk-XXXXXX", drive[128];
	char *argv[] = {"tern", "-kernel", "none", "-sandbox", "off", "-drive", drive,
			"-device", "virtio-blk,drive=d0,serial=" SERIAL, NULL};
	pthread_t io;

	img = mkstemp(path);
	if (img < 0 || ftruncate(img, SECTORS * 512) < 0)
		return 1;
	snprintf(drive, sizeof(drive), "file=%s,if=none,id=d0", path);
	vm.fd = -1;
	vm.cfg = &cfg;
	vm.ram = calloc(1, RAM);
	vm.ram_size = RAM;
	if (!vm.ram || dirty_init(&vm.dirty, RAM) < 0 || evloop_init(&vm.loop) < 0 ||
	    config_parse(&cfg, 9, argv) != 0 || !monitor_create(&vm) ||
	    virtio_blk_create_all(&vm) < 0)
		return 1;
	base = vm_mmio_slot(0).base;
	pthread_create(&io, NULL, io_thread, NULL);
	test_read_write_flush();
	test_no_flush_feature_writes_through();
	test_cache_unsafe_does_not_sync();
	test_bounds();
	test_unknown_types_and_get_id();
	test_layouts();
	test_broken_requests();
	test_stopped_guest_waits_for_cont();
	evloop_stop(&vm.loop);
	pthread_join(io, NULL);
	unlink(path);
	return unit_summary();
}
