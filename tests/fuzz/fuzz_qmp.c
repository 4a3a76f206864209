/*
 * QMP (vmm/qmp.c), as a client's socket brings it: the stream split into JSON values, each
 * checked, parsed and dispatched to its command (human-monitor-command through the real
 * monitor), and every reply must be one JSON object.
 *
 * qmp.c's functions are static, so its source is included here, with the calls that need a
 * socket, the event loop or a migration's network turned into this harness's: recv brings the
 * input in chunks that end after each '\n', the flush of a client's output checks each reply,
 * and migrate and migrate-incoming fail at once. The VM has two vCPUs that never run (fds -1).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <yajl/yajl_tree.h>

#define FUZZ_FD 1000 /* the client's socket: never a real fd */

#include "vmm/sock.h"

bool fuzz_sock_out_flush(struct sock_out *o, int fd);
ssize_t fuzz_recv(int fd, void *buf, size_t n, int flags);
int fuzz_close(int fd);

#define sock_out_flush fuzz_sock_out_flush
#define recv fuzz_recv
#define close fuzz_close
#define evloop_del fuzz_evloop_del
#define evloop_mod fuzz_evloop_mod
#define vm_request_exit fuzz_vm_request_exit
#define migration_start fuzz_migration_start
#define migration_listen fuzz_migration_listen
#define migration_cancel fuzz_migration_cancel
#define migration_set_parameters fuzz_migration_set_parameters
#define migration_set_capability fuzz_migration_set_capability
#define migration_query fuzz_migration_query
#define qmp_create fuzz_qmp_create /* the real one is linked in too */
#include "vmm/qmp.c"
#undef recv
#undef close

#include "tests/fuzz/idle_vm.h"

static const uint8_t *in_p;
static size_t in_left;

/* All of it goes at once, and it is one reply: one JSON object and "\r\n". */
bool fuzz_sock_out_flush(struct sock_out *o, int fd)
{
	size_t n = o->len - o->off;
	const char *buf = o->buf + o->off;
	char *text = malloc(n + 1), why[128];
	yajl_val v;

	if (fd != FUZZ_FD || !text || n < 2 || memcmp(buf + n - 2, "\r\n", 2))
		abort();
	o->off = o->len = 0;
	memcpy(text, buf, n - 2);
	text[n - 2] = '\0';
	v = yajl_tree_parse(text, why, sizeof(why));
	if (!v || !YAJL_IS_OBJECT(v)) {
		fprintf(stderr, "not a JSON object: %s\n", text);
		abort();
	}
	if (getenv("FUZZ_SHOW"))
		fprintf(stderr, "reply: %s\n", text);
	yajl_tree_free(v);
	free(text);
	return false;
}

ssize_t fuzz_recv(int fd, void *buf, size_t n, int flags)
{
	const uint8_t *nl = memchr(in_p, '\n', in_left);
	size_t k = MIN(n, nl ? (size_t)(nl - in_p) + 1 : in_left);

	if (fd != FUZZ_FD)
		abort();
	memcpy(buf, in_p, k);
	in_p += k, in_left -= k;
	return k;
}

int fuzz_close(int fd)
{
	return fd == FUZZ_FD ? 0 : close(fd);
}

void fuzz_evloop_del(struct evloop *l, int fd)
{
}

int fuzz_evloop_mod(struct evloop *l, int fd, uint32_t events)
{
	return 0;
}

void fuzz_vm_request_exit(struct vm *vm, int code, const char *cause, const char *why)
{
	vm->exiting = true;
}

int fuzz_migration_start(struct vm *vm, const char *uri, char *err, size_t errlen)
{
	snprintf(err, errlen, "no migration in the fuzzer (%s)", uri);
	return -1;
}

int fuzz_migration_listen(struct vm *vm, const char *uri, char *err, size_t errlen)
{
	return fuzz_migration_start(vm, uri, err, errlen);
}

int fuzz_migration_cancel(struct vm *vm, char *err, size_t errlen)
{
	return 0;
}

int fuzz_migration_set_parameters(struct vm *vm, int n, const char *const *names,
				  const uint64_t *vals, char *err, size_t errlen)
{
	return 0;
}

int fuzz_migration_set_capability(struct vm *vm, const char *name, bool on, char *err,
				  size_t errlen)
{
	return 0;
}

void fuzz_migration_query(struct vm *vm, struct migration_info *info)
{
	memset(info, 0, sizeof(*info));
	info->status = "none";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tern_config cfg = { .name = "fuzz" };
	static struct vm vm;
	static struct qmp *q;
	struct qmp_client *c;

	idle_vm_init(&vm, &cfg);
	/* Made once: a client's 64 KiB input buffer need not be cleared, only emptied. */
	if (!q)
		q = calloc(1, sizeof(*q));
	if (!q)
		abort();
	q->vm = &vm;
	q->fd = q->evfd = -1;
	c = &q->client[0];
	c->q = q;
	c->fd = FUZZ_FD;
	c->negotiated = false;
	c->len = 0;
	c->scan = (struct qmp_scan){ 0 };
	in_p = data;
	in_left = size;
	qmp_greet(c);
	while (c->fd >= 0)
		qmp_readable(c, EPOLLIN);
	monitor_destroy(vm.monitor);
	pthread_mutex_destroy(&vm.lock);
	pthread_mutex_destroy(&vm.run_lock);
	return 0;
}
