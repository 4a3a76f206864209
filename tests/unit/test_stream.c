/* The migration stream format, URIs, dirty bitmaps and state properties. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libfdt.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "tests/unit/unit.h"
#include "vmm/dirty.h"
#include "vmm/migration/ram.h"
#include "vmm/migration/stream.h"
#include "vmm/migration/transport.h"
#include "vmm/state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

/* Writes records into a temp file and returns an fd positioned at its start. */
static int records_file(uint8_t flip_at, size_t truncate_by)
{
	char path[] = "/tmp/tern-unit-XXXXXX";
	int fd = mkstemp(path);
	struct mig_stream s;
	uint8_t page[4096];
	off_t size;

	unlink(path);
	memset(page, 0xab, sizeof(page));
	stream_init(&s, fd);
	stream_put_header(&s);
	stream_put(&s, REC_HELLO, 0, "hi", 3);
	stream_put(&s, REC_PAGES, 0x1000, page, sizeof(page));
	stream_put(&s, REC_END, 0, NULL, 0);
	stream_flush(&s);
	stream_free(&s);
	size = lseek(fd, 0, SEEK_END);
	if (flip_at) {
		uint8_t b;

		pread(fd, &b, 1, flip_at);
		b ^= 0x10;
		pwrite(fd, &b, 1, flip_at);
	}
	if (truncate_by)
		ftruncate(fd, size - truncate_by);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void test_roundtrip(void)
{
	int fd = records_file(0, 0);
	struct mig_stream s;
	struct rec_hdr h;
	uint8_t buf[4096];

	stream_init(&s, fd);
	CHECK_EQ(stream_get_header(&s), 0);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(h.type, REC_HELLO);
	CHECK_EQ(h.len, 3);
	CHECK_EQ(stream_get_payload(&s, &h, buf), 0);
	CHECK_STR((char *)buf, "hi");
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(h.type, REC_PAGES);
	CHECK_EQ(h.arg, 0x1000);
	CHECK_EQ(stream_get_payload(&s, &h, buf), 0);
	CHECK_EQ(buf[4095], 0xab);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(h.type, REC_END);
	CHECK_EQ(stream_get_payload(&s, &h, NULL), 0);
	/* The end of the file is a clean "ends early", never a hang or garbage. */
	CHECK_EQ(stream_get(&s, &h), -1);
	CHECK(strstr(s.err, "ends early") != NULL);
	stream_free(&s);
	close(fd);
}

/* The last record type is read; one past it is refused as corrupt, not taken for a record. */
static void test_record_types(void)
{
	int fds[2];
	struct mig_stream s;
	struct rec_hdr h;

	socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
	stream_init(&s, fds[0]);
	stream_put(&s, REC_SYNCED, 0, NULL, 0);
	stream_put(&s, REC_COUNT, 0, NULL, 0);
	stream_flush(&s);
	stream_free(&s);
	stream_init(&s, fds[1]);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(h.type, REC_SYNCED);
	CHECK_EQ(stream_get_payload(&s, &h, NULL), 0);
	CHECK_EQ(stream_get(&s, &h), -1);
	CHECK(strstr(s.err, "corrupt stream: record 2 has type") != NULL);
	stream_free(&s);
	close(fds[0]);
	close(fds[1]);
}

static void test_flipped_payload(void)
{
	/* 16 header + 16 rec + 3 + 4 crc + 16 rec header = 55: inside the page payload. */
	int fd = records_file(100, 0);
	struct mig_stream s;
	struct rec_hdr h;
	uint8_t buf[4096];

	stream_init(&s, fd);
	CHECK_EQ(stream_get_header(&s), 0);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(stream_get_payload(&s, &h, buf), 0);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(stream_get_payload(&s, &h, buf), -1);
	CHECK(strstr(s.err, "checksum mismatch") != NULL);
	stream_free(&s);
	close(fd);
}

static void test_flipped_header_and_magic(void)
{
	struct mig_stream s;
	struct rec_hdr h;
	int fd = records_file(2, 0);

	stream_init(&s, fd);
	CHECK_EQ(stream_get_header(&s), -1);
	CHECK(strstr(s.err, "not a tern migration stream") != NULL);
	stream_free(&s);
	close(fd);
	/* A flipped bit in a record's length: bounded, then caught by the checksum. */
	fd = records_file(16 + 4 + 2, 0);
	stream_init(&s, fd);
	CHECK_EQ(stream_get_header(&s), 0);
	CHECK_EQ(stream_get(&s, &h) == -1 || h.len > 3, 1);
	stream_free(&s);
	close(fd);
}

static void test_truncated(void)
{
	int fd = records_file(0, 30);
	struct mig_stream s;
	struct rec_hdr h;
	uint8_t buf[4096];

	stream_init(&s, fd);
	CHECK_EQ(stream_get_header(&s), 0);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(stream_get_payload(&s, &h, buf), 0);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(stream_get_payload(&s, &h, buf), -1);
	CHECK(strstr(s.err, "ends early") != NULL);
	stream_free(&s);
	close(fd);
}

/*
 * The reader buffers what arrives: records that straddle reads, a payload bigger than the
 * read-ahead buffer (read straight to its place), and a record that must be empty but is not.
 */
static void test_trickle(void)
{
	static uint8_t big[600 << 10], got[600 << 10];
	int fds[2];
	struct mig_stream s;
	struct rec_hdr h;
	uint8_t small[8];
	pid_t pid;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	pid = fork();
	if (pid == 0) {
		uint8_t *p;

		close(fds[1]);
		stream_init(&s, fds[0]);
		stream_put(&s, REC_ROUND, 1, NULL, 0);
		stream_put(&s, REC_PAGES, 0, big, sizeof(big));
		stream_put(&s, REC_SYNC, 0, "x", 1);
		/* In pieces of 3 bytes at first, so that headers straddle reads. */
		p = s.buf;
		for (int i = 0; i < 20; i++, p += 3) {
			write(fds[0], p, 3);
			usleep(1000);
		}
		write_full(fds[0], p, s.len - (p - s.buf));
		_exit(0);
	}
	close(fds[0]);
	stream_init(&s, fds[1]);
	CHECK_EQ(stream_wait(&s, 5000), 0);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(h.type, REC_ROUND);
	CHECK_EQ(stream_get_payload(&s, &h, NULL), 0);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(h.len, sizeof(big));
	CHECK_EQ(stream_get_payload(&s, &h, got), 0);
	CHECK_EQ(memcmp(big, got, sizeof(big)), 0);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(h.type, REC_SYNC);
	CHECK_EQ(stream_get_payload(&s, &h, NULL), -1);
	CHECK(strstr(s.err, "carries 1 bytes, expected none") != NULL);
	CHECK_EQ(stream_get_payload(&s, &h, small), 0);
	CHECK_EQ(s.received, 3 * sizeof(h) + sizeof(big) + 1 + 3 * 4);
	CHECK_EQ(stream_get(&s, &h), -1);
	CHECK(strstr(s.err, "ends early") != NULL);
	stream_free(&s);
	close(fds[1]);
	waitpid(pid, NULL, 0);
}

static void test_crc32c(void)
{
	/* The standard check value of CRC-32C. */
	CHECK_EQ(crc32c(0, "123456789", 9), 0xe3069283);
	CHECK_EQ(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
}

static void test_uri(void)
{
	struct mig_uri u;
	char err[200];

	CHECK_EQ(mig_uri_parse("tcp:0:4444", &u, err, sizeof(err)), 0);
	CHECK_EQ(u.kind, MIG_TCP);
	CHECK_STR(u.host, "0");
	CHECK_STR(u.port, "4444");
	CHECK_EQ(mig_uri_parse("tcp:192.168.123.1:5555", &u, err, sizeof(err)), 0);
	CHECK_STR(u.host, "192.168.123.1");
	CHECK_EQ(mig_uri_parse("unix:/tmp/m.sock", &u, err, sizeof(err)), 0);
	CHECK_EQ(u.kind, MIG_UNIX);
	CHECK_STR(u.path, "/tmp/m.sock");
	CHECK_EQ(mig_uri_parse("file:/tmp/snap", &u, err, sizeof(err)), 0);
	CHECK_EQ(u.kind, MIG_FILE);
	CHECK_EQ(mig_uri_parse("tcp:host", &u, err, sizeof(err)), -1);
	CHECK_EQ(mig_uri_parse("tcp:host:port", &u, err, sizeof(err)), -1);
	CHECK_EQ(mig_uri_parse("exec:cat", &u, err, sizeof(err)), -1);
	CHECK(strstr(err, "unknown migration URI") != NULL);
	CHECK_EQ(mig_uri_parse("unix:", &u, err, sizeof(err)), -1);
}

static void test_dirty(void)
{
	struct vm vm;
	uint64_t bits[2] = { 0, 0 };

	memset(&vm, 0, sizeof(vm));
	CHECK_EQ(dirty_init(&vm.dirty, 128 * 4096), 0);
	vm_mark_dirty(&vm, 0x1000, 10);		/* not tracking: ignored */
	dirty_collect(&vm.dirty, bits);
	CHECK_EQ(bits[0], 0);
	dirty_set_tracking(&vm.dirty, true);
	vm_mark_dirty(&vm, 0x1ff0, 0x20);	/* straddles pages 1 and 2 */
	vm_mark_dirty(&vm, 127 * 4096, 4096);
	vm_mark_dirty(&vm, 200 * 4096, 4096);	/* outside RAM: ignored */
	dirty_collect(&vm.dirty, bits);
	CHECK_EQ(bits[0], 0x6);
	CHECK_EQ(bits[1], 1ULL << 63);
	bits[0] = bits[1] = 0;
	dirty_collect(&vm.dirty, bits);		/* collecting clears */
	CHECK_EQ(bits[0] | bits[1], 0);
	dirty_free(&vm.dirty);
}

/* Round 0's pages: those written or read, never the untouched ones. */
static void test_touched_pages(void)
{
	struct vm vm;
	struct mig_ram r;
	char err[128] = "";
	volatile uint8_t sink;

	memset(&vm, 0, sizeof(vm));
	vm.ram_size = 100 * 4096;
	vm.ram = mmap(NULL, vm.ram_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(vm.ram != MAP_FAILED);
	vm.ram[3 * 4096] = 1;
	vm.ram[64 * 4096 + 17] = 2;
	sink = vm.ram[99 * 4096]; /* read: the zero page, still sent (as a marker) */
	(void)sink;
	CHECK_EQ(ram_init(&r, &vm), 0);
	CHECK_EQ(ram_add_touched(&r, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_EQ(ram_todo_count(&r), 3);
	CHECK_EQ(r.todo[0], 1ULL << 3);
	CHECK_EQ(r.todo[1], 1ULL | 1ULL << (99 - 64));
	ram_free(&r);
	munmap(vm.ram, vm.ram_size);
}

/* More separate ranges than one PAGEMAP_SCAN call returns (256), every one found. */
static void test_touched_many(void)
{
	enum { PAGES = 16384, EVERY = 3 }; /* 64M, every third page: 5462 ranges */
	struct vm vm;
	struct mig_ram r;
	char err[128] = "";
	bool ok = true;

	memset(&vm, 0, sizeof(vm));
	vm.ram_size = PAGES * 4096ULL;
	vm.ram = mmap(NULL, vm.ram_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(vm.ram != MAP_FAILED);
	/* 4K pages: a transparent huge page would make all 512 of its pages touched. */
	CHECK(!madvise(vm.ram, vm.ram_size, MADV_NOHUGEPAGE) || errno == EINVAL); /* no THP */
	for (int i = 0; i < PAGES; i += EVERY)
		vm.ram[i * 4096ULL + 5] = 1;
	CHECK_EQ(ram_init(&r, &vm), 0);
	CHECK_EQ(ram_add_touched(&r, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_EQ(ram_todo_count(&r), (PAGES + EVERY - 1) / EVERY);
	for (int i = 0; i < PAGES; i++)
		ok &= !!(r.todo[i / 64] & (1ULL << (i % 64))) == (i % EVERY == 0);
	CHECK(ok);
	ram_free(&r);
	munmap(vm.ram, vm.ram_size);
}

static void test_state_props(void)
{
	char fdt[4096];
	uint32_t v32;
	uint64_t v64;
	uint8_t small[2];
	int node;

	fdt_create(fdt, sizeof(fdt));
	fdt_finish_reservemap(fdt);
	fdt_begin_node(fdt, "");
	fdt_begin_node(fdt, "dev");
	state_put_u32(fdt, "a", 7);
	state_put_u64(fdt, "b", 1ULL << 40);
	state_put_blob(fdt, "c", "xyz", 3);
	fdt_end_node(fdt);
	fdt_end_node(fdt);
	fdt_finish(fdt);
	node = fdt_subnode_offset(fdt, 0, "dev");
	CHECK(node > 0);
	CHECK_EQ(state_get_u32(fdt, node, "a", &v32), 0);
	CHECK_EQ(v32, 7);
	CHECK_EQ(state_get_u64(fdt, node, "b", &v64), 0);
	CHECK_EQ(v64, 1ULL << 40);
	CHECK_EQ(state_get_u64(fdt, node, "a", &v64), -1);	/* wrong size */
	CHECK_EQ(state_get_u32(fdt, node, "missing", &v32), -1);
	CHECK_EQ(state_get_var(fdt, node, "c", small, sizeof(small)), -1);	/* too big */
}

int main(void)
{
	test_roundtrip();
	test_record_types();
	test_flipped_payload();
	test_flipped_header_and_magic();
	test_truncated();
	test_trickle();
	test_crc32c();
	test_uri();
	test_dirty();
	test_touched_pages();
	test_touched_many();
	test_state_props();
	return unit_summary();
}
