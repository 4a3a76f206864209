/* The migration stream format, URIs, connecting, the hello's check, dirty bitmaps and state
 * properties. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libfdt.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "tests/unit/unit.h"
#include "vmm/dirty.h"
#include "vmm/migration/internal.h"
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
	stream_put(&s, REC_TAKEN, 0, NULL, 0);
	stream_put(&s, REC_COUNT, 0, NULL, 0);
	stream_flush(&s);
	stream_free(&s);
	stream_init(&s, fds[1]);
	CHECK_EQ(stream_get(&s, &h), 0);
	CHECK_EQ(h.type, REC_TAKEN);
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

/*
 * An answer torn off mid-way, then silence: with a receive timeout on the socket (the source
 * sets one for each answer it waits for) the read ends with a reason, not a wait for ever.
 */
static void test_torn_answer_times_out(void)
{
	struct timeval tv = { .tv_usec = 50000 };
	struct mig_stream s;
	struct rec_hdr h;
	int fds[2];

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	CHECK_EQ(setsockopt(fds[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	CHECK_EQ(write(fds[0], "\x09\0\0\0\0", 5), 5);	/* 5 bytes of a READY's header */
	stream_init(&s, fds[1]);
	CHECK_EQ(stream_wait(&s, 1000), 0);
	CHECK_EQ(stream_get(&s, &h), -1);
	CHECK(strstr(s.err, "timed out in the header of record 1") != NULL);
	stream_free(&s);
	close(fds[0]);
	close(fds[1]);
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

/* Reads a header that says format v: stream_get_header's result, the stream left in *s. */
static int header_of_version(struct mig_stream *s, int fds[2], uint32_t v)
{
	socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
	stream_init(s, fds[0]);
	stream_put_header(s);
	memcpy(s->buf + 8, &v, 4);
	stream_flush(s);
	stream_free(s);
	stream_init(s, fds[1]);
	return stream_get_header(s);
}

/*
 * A stream of another format version is refused by its number, not read as records; an older
 * one still read says its version, which decides what the destination answers (TAKEN).
 */
static void test_other_version(void)
{
	uint32_t refused[] = { MIG_VERSION_OLDEST - 1, MIG_VERSION + 1 };
	struct mig_stream s;
	char want[100];
	int fds[2];

	for (unsigned i = 0; i < ARRAY_SIZE(refused); i++) {
		CHECK_EQ(header_of_version(&s, fds, refused[i]), -1);
		snprintf(want, sizeof(want),
			 "stream format %u with 4096-byte pages, expected %u to %u with 4096",
			 refused[i], MIG_VERSION_OLDEST, MIG_VERSION);
		CHECK_STR(s.err, want);
		stream_free(&s);
		close(fds[0]);
		close(fds[1]);
	}
	CHECK_EQ(header_of_version(&s, fds, MIG_VERSION_OLDEST), 0);
	CHECK_EQ(s.version, MIG_VERSION_OLDEST);
	stream_free(&s);
	close(fds[0]);
	close(fds[1]);
}

static int local_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	CHECK_EQ(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	return ntohs(sa.sin_port);
}

/* A TCP listener on 127.0.0.1 that answers no connect: its backlog (0) is full, so the kernel
 * drops further SYNs and a connect to it waits. *filler holds the queue; returns the port. */
static int full_listener(int *lfd, int *filler)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	*lfd = socket(AF_INET, SOCK_STREAM, 0);
	*filler = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_EQ(bind(*lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_EQ(listen(*lfd, 0), 0);
	sa.sin_port = htons(local_port(*lfd));
	CHECK_EQ(connect(*filler, (struct sockaddr *)&sa, sizeof(sa)), 0);
	usleep(20000);	/* its last ACK taken by the listener: the queue is full */
	return ntohs(sa.sin_port);
}

/* Opens path as -incoming file: does, in a child that SIGALRM ends should the open block. */
static int fifo_listen_returns(const struct mig_uri *u)
{
	char err[200];
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		alarm(2);
		_exit(mig_uri_listen(u, err, sizeof(err)) >= 0 ? 0 : 1);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

/*
 * -incoming file: on a FIFO that nobody writes yet: the open must not block (it held set-up,
 * with SIGTERM unheard, or the I/O thread under migrate_incoming, for ever); the destination
 * thread waits for the writer's first bytes or for the exit's stop_fd.
 */
static void test_fifo_incoming(void)
{
	char path[] = "/tmp/tern-fifo-XXXXXX", err[200] = "", got[4] = "";
	struct itimerspec its = { .it_value.tv_nsec = 200000000 };
	int stop = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC), fd, w;
	struct mig_uri u;
	char uri[64];
	uint64_t t0, dt;

	CHECK(mkdtemp(path) != NULL);
	snprintf(uri, sizeof(uri), "file:%s/p", path);
	CHECK_EQ(mig_uri_parse(uri, &u, err, sizeof(err)), 0);
	CHECK_EQ(mkfifo(u.path, 0600), 0);
	if (!fifo_listen_returns(&u)) {
		CHECK(!"mig_uri_listen blocks on a FIFO nobody writes");
		unlink(u.path);
		rmdir(path);
		return;
	}
	fd = mig_uri_listen(&u, err, sizeof(err));
	CHECK(fd >= 0);
	/* No writer: the wait ends at stop_fd, not at an end of file. */
	CHECK_EQ(timerfd_settime(stop, 0, &its, NULL), 0);
	t0 = now_ns();
	CHECK_EQ(mig_uri_file_ready(fd, stop, err, sizeof(err)), -1);
	dt = now_ns() - t0;
	CHECK(dt >= 150000000ULL && dt < 2000000000ULL);
	CHECK_STR(err, "cancelled");
	/* A writer's bytes: the stream is read blocking from here on. */
	w = open(u.path, O_WRONLY | O_CLOEXEC);
	CHECK_EQ(write(w, "abc", 3), 3);
	CHECK_EQ(mig_uri_file_ready(fd, -1, err, sizeof(err)), 0);
	CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	CHECK_EQ(read(fd, got, 3), 3);
	CHECK_STR(got, "abc");
	close(w);
	close(fd);
	close(stop);
	unlink(u.path);
	rmdir(path);
}

/*
 * A connect to a host that does not answer ends at a cancel (stop_fd readable: here a timer,
 * 200 ms on) instead of after the kernel's minutes of SYN retries; one that is answered gives
 * a blocking socket, as the stream wants; a refusal says so.
 */
static void test_connect_cancelled(void)
{
	struct itimerspec its = { .it_value.tv_nsec = 200000000 };
	int lfd, filler, fd, stop = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	struct mig_uri u;
	char uri[64], err[200] = "";
	uint64_t t0, dt;

	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", full_listener(&lfd, &filler));
	CHECK_EQ(mig_uri_parse(uri, &u, err, sizeof(err)), 0);
	CHECK_EQ(timerfd_settime(stop, 0, &its, NULL), 0);
	t0 = now_ns();
	CHECK_EQ(mig_uri_connect(&u, stop, err, sizeof(err)), -1);
	dt = now_ns() - t0;
	CHECK(dt >= 150000000ULL && dt < 2000000000ULL);
	CHECK(strstr(err, "Operation canceled") != NULL);
	close(filler);
	close(lfd);
	close(stop);

	CHECK_EQ(mig_uri_parse("tcp:127.0.0.1:0", &u, err, sizeof(err)), 0);
	lfd = mig_uri_listen(&u, err, sizeof(err));
	CHECK(lfd >= 0);
	snprintf(u.port, sizeof(u.port), "%d", local_port(lfd));
	fd = mig_uri_connect(&u, -1, err, sizeof(err));
	CHECK(fd >= 0);
	CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
	close(lfd);
	CHECK_EQ(mig_uri_connect(&u, -1, err, sizeof(err)), -1);
	CHECK(strstr(err, "Connection refused") != NULL);
}

/* A device described as the test says: up to two properties, each with its bytes. */
struct fake_desc {
	const char *name[2];
	const char *val[2];
	int len[2];
};

static int fake_describe(void *opaque, void *fdt)
{
	struct fake_desc *d = opaque;

	for (int i = 0; i < 2 && d->name[i]; i++)
		if (fdt_property(fdt, d->name[i], d->val[i], d->len[i]))
			return -1;
	return 0;
}

static const struct device_ops fake_ops = { .name = "disk", .describe = fake_describe };

/* 128M, one vCPU, and a "disk" described by d. */
static struct vm *fake_vm(struct vm *vm, struct fake_desc *d)
{
	memset(vm, 0, sizeof(*vm));
	vm->ram_size = 128 << 20;
	vm->nvcpu = 1;
	vm->dev[0] = (struct device){ &fake_ops, d };
	vm->ndev = 1;
	return vm;
}

/* Whether a destination with our disk takes a source with theirs; why says why not. */
static int hello_check(struct fake_desc *theirs, struct fake_desc *ours, char *why, size_t len)
{
	static struct vm src, dst;
	void *desc;
	int n, r;

	desc = mig_describe(fake_vm(&src, theirs), &n);
	r = mig_check_description(fake_vm(&dst, ours), desc, n, why, len);
	free(desc);
	return r;
}

/*
 * The hello's check: every property on both sides, byte for byte. A property the source did
 * not send is a difference too (it used to pass), and so is a value that only strcmp would
 * take for the same.
 */
/* A unix socket replaces an old socket at its path, never a file that is something else. */
static void test_unix_listen_path(void)
{
	char dir[] = "/tmp/tern-unit-sock-XXXXXX", path[64], err[200] = "";
	struct mig_uri u = { .kind = MIG_UNIX };
	struct stat st;
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/s", dir);
	snprintf(u.path, sizeof(u.path), "%s", path);
	fd = mig_uri_listen(&u, err, sizeof(err));
	CHECK(fd >= 0);
	close(fd);
	fd = mig_uri_listen(&u, err, sizeof(err)); /* the stale socket left above */
	CHECK(fd >= 0);
	close(fd);
	unlink(path);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	CHECK_EQ(mig_uri_listen(&u, err, sizeof(err)), -1);
	CHECK(strstr(err, "exists and is not a socket") != NULL);
	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
	unlink(path);
	rmdir(dir);
}

static void test_hello_check(void)
{
	struct fake_desc size = { { "size" }, { "4096 bytes" }, { 11 } };
	struct fake_desc none = { .name = { NULL } };
	struct fake_desc longer = { { "size" }, { "4096 bytes\0x" }, { 13 } };
	static struct vm dst;
	char why[200] = "", fdt[1024];

	CHECK_EQ(hello_check(&size, &size, why, sizeof(why)), 0);
	CHECK_EQ(hello_check(&none, &size, why, sizeof(why)), -1);
	CHECK_STR(why, "disk: size (none) != 4096 bytes");
	CHECK_EQ(hello_check(&size, &none, why, sizeof(why)), -1);
	CHECK_STR(why, "disk: size 4096 bytes != (none)");
	CHECK_EQ(hello_check(&longer, &size, why, sizeof(why)), -1);
	CHECK_STR(why, "disk: size (13 bytes) != 4096 bytes");
	/* A source that leaves out the number of vCPUs. */
	fdt_create(fdt, sizeof(fdt));
	fdt_finish_reservemap(fdt);
	fdt_begin_node(fdt, "");
	fdt_property_string(fdt, "memory", "128M");
	fdt_begin_node(fdt, "disk");
	fdt_property_string(fdt, "size", "4096 bytes");
	fdt_end_node(fdt);
	fdt_end_node(fdt);
	CHECK_EQ(fdt_finish(fdt), 0);
	fake_vm(&dst, &size);
	CHECK_EQ(mig_check_description(&dst, fdt, fdt_totalsize(fdt), why, sizeof(why)), -1);
	CHECK_STR(why, "vcpus (none) != 1");
}

/* A tree with the given root property and device node names, in version 17 or another. */
static int hostile_tree(char *fdt, int size, const char *prop, const char *node, int version)
{
	fdt_create(fdt, size);
	fdt_finish_reservemap(fdt);
	fdt_begin_node(fdt, "");
	fdt_property_string(fdt, "memory", "128M");
	fdt_property_string(fdt, "vcpus", "1");
	if (prop)
		fdt_property_string(fdt, prop, "x");
	fdt_begin_node(fdt, node);
	fdt_property_string(fdt, "size", "4096 bytes");
	fdt_end_node(fdt);
	fdt_end_node(fdt);
	fdt_finish(fdt);
	fdt_set_version(fdt, version);
	fdt_set_last_comp_version(fdt, MIN(version, 16));
	return fdt_totalsize(fdt);
}

/*
 * The source's hello is read before anything else is trusted (fuzzed): a tree older than
 * version 16 once crashed libfdt's own check, and the source's names and values go into the
 * one-line reason only when printable.
 */
static void test_hello_hostile(void)
{
	struct fake_desc size = { { "size" }, { "4096 bytes" }, { 11 } };
	struct fake_desc nl = { { "size" }, { "4096\nbytes" }, { 11 } };
	static struct vm dst;
	char why[200] = "", fdt[1024];
	int len;

	fake_vm(&dst, &size);
	CHECK_EQ(hello_check(&nl, &size, why, sizeof(why)), -1);
	CHECK_STR(why, "disk: size (11 bytes) != 4096 bytes");
	len = hostile_tree(fdt, sizeof(fdt), NULL, "disk", 7);
	CHECK_EQ(mig_check_description(&dst, fdt, len, why, sizeof(why)), -1);
	CHECK_STR(why, "corrupt stream: malformed state tree");
	CHECK_EQ(mig_load_devices(&dst, fdt, len, why, sizeof(why)), -1);
	CHECK_STR(why, "corrupt stream: malformed state tree");
	len = hostile_tree(fdt, sizeof(fdt), NULL, "disk", 17);
	CHECK_EQ(mig_check_description(&dst, fdt, len, why, sizeof(why)), 0);
	len = hostile_tree(fdt, sizeof(fdt), "evil\n\033[2J", "disk", 17);
	CHECK_EQ(mig_check_description(&dst, fdt, len, why, sizeof(why)), -1);
	CHECK_STR(why, "(a malformed name) x != (none)");
	len = hostile_tree(fdt, sizeof(fdt), NULL, "di\nsk", 17);
	CHECK_EQ(mig_check_description(&dst, fdt, len, why, sizeof(why)), -1);
	CHECK_STR(why, "device (a malformed name) missing here");
}

/*
 * Property lengths that libfdt 1.6's own check gets wrong: at -12 a property is its own next
 * tag and fdt_check_full loops for ever; at -4, with the name offset read as the next tag,
 * it passes. Both are malformed trees (the alarm turns a hang into a failure).
 */
static void test_hello_bad_lengths(void)
{
	static const int32_t bad[][2] = { { -12, 0 }, { -4, FDT_PROP } };
	struct fake_desc size = { { "size" }, { "4096 bytes" }, { 11 } };
	static struct vm dst;
	char why[200], fdt[1024];
	uint64_t zero = 0;

	fake_vm(&dst, &size);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		fdt32_t v[2] = { cpu_to_fdt32(bad[i][0]), cpu_to_fdt32(bad[i][1]) };
		int off;

		fdt_create(fdt, sizeof(fdt));
		fdt_finish_reservemap(fdt);
		fdt_begin_node(fdt, "");
		fdt_property(fdt, "memory", &zero, sizeof(zero));
		fdt_end_node(fdt);
		fdt_finish(fdt);
		off = fdt_first_property_offset(fdt, 0);
		memcpy(fdt + fdt_off_dt_struct(fdt) + off + 4, v, sizeof(v));
		alarm(10);
		CHECK_EQ(mig_check_description(&dst, fdt, fdt_totalsize(fdt), why, sizeof(why)), -1);
		alarm(0);
		CHECK_STR(why, "corrupt stream: malformed state tree");
	}
}

static int fake_load(void *opaque, const void *fdt, int node)
{
	uint32_t v;

	return state_get_u32(fdt, node, "v", &v);
}

static const struct device_ops loaded_ops = { .name = "disk", .load = fake_load };

/* A device-state tree with one node of that name, with property v (4 bytes). */
static int state_tree(char *fdt, int size, const char *node)
{
	fdt_create(fdt, size);
	fdt_finish_reservemap(fdt);
	fdt_begin_node(fdt, "");
	fdt_begin_node(fdt, node);
	fdt_property_u32(fdt, "v", 1);
	fdt_end_node(fdt);
	fdt_end_node(fdt);
	fdt_finish(fdt);
	return fdt_totalsize(fdt);
}

/*
 * A device's state is its node's, by the exact name: libfdt would take "disk@anything" for
 * "disk", and hand the stream's name, unprintable as it may be, to the device's messages.
 */
static void test_load_node_names(void)
{
	static struct vm vm;
	char why[200] = "", fdt[1024];
	int len;

	vm.dev[0] = (struct device){ &loaded_ops, NULL };
	vm.ndev = 1;
	vm.loop.thread = pthread_self(); /* the load runs here, as on the I/O thread */
	len = state_tree(fdt, sizeof(fdt), "disk");
	CHECK_EQ(mig_load_devices(&vm, fdt, len, why, sizeof(why)), 0);
	len = state_tree(fdt, sizeof(fdt), "disk@\n\033[2J");
	CHECK_EQ(mig_load_devices(&vm, fdt, len, why, sizeof(why)), -1);
	CHECK_STR(why, "no state for device disk in the stream");
}

/* One record through ram_receive, as the destination reads it; why gets the error. */
static int receive_one(struct mig_ram *r, uint32_t type, uint64_t arg, const void *p, size_t len,
		       char *why, size_t wlen)
{
	int fd = memfd_create("tern-unit-pages", 0);
	struct mig_stream s;
	struct rec_hdr h;
	int ret = -1;

	stream_init(&s, fd);
	stream_put(&s, type, arg, p, len);
	stream_flush(&s);
	stream_free(&s);
	lseek(fd, 0, SEEK_SET);
	stream_init(&s, fd);
	if (stream_get(&s, &h) == 0)
		ret = ram_receive(r, &s, &h);
	snprintf(why, wlen, "%s", s.err);
	stream_free(&s);
	close(fd);
	return ret;
}

/* Page records write only whole pages inside guest RAM: every address and count is checked. */
static void test_ram_receive(void)
{
	static uint8_t pages[2 * 4096];
	struct vm vm;
	struct mig_ram r;
	char why[200];
	uint64_t one = 1, all = UINT64_MAX;

	memset(&vm, 0, sizeof(vm));
	vm.ram_size = 16 * 4096;
	vm.ram = mmap(NULL, vm.ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(vm.ram != MAP_FAILED);
	CHECK_EQ(ram_init(&r, &vm), 0);
	memset(pages, 0xab, sizeof(pages));
	CHECK_EQ(receive_one(&r, REC_PAGES, 14 * 4096, pages, 2 * 4096, why, sizeof(why)), 0);
	CHECK_EQ(vm.ram[16 * 4096 - 1], 0xab);
	CHECK_EQ(receive_one(&r, REC_ZERO, 15 * 4096, &one, 8, why, sizeof(why)), 0);
	CHECK_EQ(vm.ram[16 * 4096 - 1], 0);
	CHECK_EQ(vm.ram[15 * 4096 - 1], 0xab);
	CHECK_EQ(receive_one(&r, REC_PAGES, 0x3001, pages, 4096, why, sizeof(why)), -1);
	CHECK_STR(why, "corrupt stream: page record at 0x3001 (4096 bytes) not page-aligned");
	CHECK_EQ(receive_one(&r, REC_PAGES, 0x3000, pages, 100, why, sizeof(why)), -1);
	CHECK_STR(why, "corrupt stream: page record at 0x3000 (100 bytes) not page-aligned");
	CHECK_EQ(receive_one(&r, REC_PAGES, 15 * 4096, pages, 2 * 4096, why, sizeof(why)), -1);
	CHECK(strstr(why, "outside guest RAM") != NULL);
	CHECK_EQ(receive_one(&r, REC_PAGES, -4096ULL, pages, 4096, why, sizeof(why)), -1);
	CHECK(strstr(why, "outside guest RAM") != NULL);
	CHECK_EQ(receive_one(&r, REC_ZERO, 0x1000, &all, 8, why, sizeof(why)), -1);
	CHECK(strstr(why, "outside guest RAM") != NULL);
	CHECK_EQ(receive_one(&r, REC_ZERO, 16 * 4096, &one, 8, why, sizeof(why)), -1);
	CHECK(strstr(why, "outside guest RAM") != NULL);
	CHECK_EQ(receive_one(&r, REC_ZERO, 0x1000, "abcd", 4, why, sizeof(why)), -1);
	CHECK_STR(why, "corrupt stream: zero-page record of 4 bytes, expected 8");
	CHECK_EQ(receive_one(&r, REC_ZERO, 0x1008, &one, 8, why, sizeof(why)), -1);
	CHECK_STR(why, "corrupt stream: zero-page record at 0x1008 (8 bytes) not page-aligned");
	CHECK_EQ(r.normal_pages, 2);
	CHECK_EQ(r.zero_pages, 1);
	ram_free(&r);
	munmap(vm.ram, vm.ram_size);
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
	test_torn_answer_times_out();
	test_crc32c();
	test_uri();
	test_other_version();
	test_connect_cancelled();
	test_fifo_incoming();
	test_unix_listen_path();
	test_hello_check();
	test_hello_hostile();
	test_hello_bad_lengths();
	test_load_node_names();
	test_ram_receive();
	test_dirty();
	test_touched_pages();
	test_touched_many();
	test_state_props();
	return unit_summary();
}
