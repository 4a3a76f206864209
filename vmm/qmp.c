#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "vmm/config.h"
#include "vmm/migration/migration.h"
#include "vmm/qmp.h"
#include "vmm/sock.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define QMP_CLIENTS 4
#define QMP_IN_MAX 65536
#define QMP_EVENTS 32

struct qmp_client {
	struct qmp *q;
	int fd;
	bool negotiated;
	char in[QMP_IN_MAX];
	size_t len;
};

struct qmp {
	struct vm *vm;
	int fd, evfd;
	char path[108];
	struct qmp_client client[QMP_CLIENTS];
	/* Events may come from any thread; they wait here until the I/O thread sends them. */
	pthread_mutex_t lock;
	char *events[QMP_EVENTS];
	int nevents;
};

static void qmp_send(struct qmp_client *c, const char *json, size_t len)
{
	if (c->fd < 0)
		return;
	if (send(c->fd, json, len, MSG_NOSIGNAL) < 0 || send(c->fd, "\r\n", 2, MSG_NOSIGNAL) < 0)
		if (errno != EPIPE && errno != ECONNRESET)
			perrorf("qmp: send");
}

static void gen_str(yajl_gen g, const char *s)
{
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void gen_kv_int(yajl_gen g, const char *k, long long v)
{
	gen_str(g, k);
	yajl_gen_integer(g, v);
}

static void qmp_reply(struct qmp_client *c, yajl_val id, void (*fill)(yajl_gen, void *), void *arg,
		      const char *error)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *buf;
	size_t len;

	yajl_gen_map_open(g);
	if (error) {
		gen_str(g, "error");
		yajl_gen_map_open(g);
		gen_str(g, "class");
		gen_str(g, "GenericError");
		gen_str(g, "desc");
		gen_str(g, error);
		yajl_gen_map_close(g);
	} else {
		gen_str(g, "return");
		yajl_gen_map_open(g);
		if (fill)
			fill(g, arg);
		yajl_gen_map_close(g);
	}
	if (id && (YAJL_IS_STRING(id) || YAJL_IS_INTEGER(id))) {
		gen_str(g, "id");
		if (YAJL_IS_STRING(id))
			gen_str(g, YAJL_GET_STRING(id));
		else
			yajl_gen_integer(g, YAJL_GET_INTEGER(id));
	}
	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &buf, &len);
	qmp_send(c, (const char *)buf, len);
	yajl_gen_free(g);
}

static void fill_status(yajl_gen g, void *arg)
{
	struct vm *vm = arg;
	enum vm_runstate s = vm_state(vm);

	gen_str(g, "status");
	gen_str(g, vm_state_name(s));
	gen_str(g, "singlestep");
	yajl_gen_bool(g, 0);
	gen_str(g, "running");
	yajl_gen_bool(g, s == RUN_STATE_RUNNING);
}

static void fill_migrate(yajl_gen g, void *arg)
{
	struct migration_info i;

	migration_query(arg, &i);
	gen_str(g, "status");
	gen_str(g, i.status);
	if (!strcmp(i.status, "none"))
		return;
	gen_kv_int(g, "total-time", (long long)i.total_ms);
	gen_kv_int(g, "setup-time", (long long)i.setup_ms);
	if (!strcmp(i.status, "completed"))
		gen_kv_int(g, "downtime", (long long)i.downtime_ms);
	else
		gen_kv_int(g, "expected-downtime", (long long)i.expected_downtime_ms);
	if (i.error[0]) {
		gen_str(g, "error-desc");
		gen_str(g, i.error);
	}
	gen_str(g, "ram");
	yajl_gen_map_open(g);
	gen_kv_int(g, "transferred", i.transferred);
	gen_kv_int(g, "remaining", i.remaining);
	gen_kv_int(g, "total", i.total);
	gen_kv_int(g, "duplicate", i.zero_pages);
	gen_kv_int(g, "normal", i.normal_pages);
	gen_kv_int(g, "normal-bytes", i.normal_pages * 4096);
	gen_kv_int(g, "dirty-sync-count", i.rounds);
	yajl_gen_map_close(g);
}

static const char *qmp_arg_str(yajl_val args, const char *key)
{
	const char *path[] = { key, NULL };

	return YAJL_GET_STRING(yajl_tree_get(args, path, yajl_t_string));
}

/* Runs one command; returns the error text, or NULL on success (fill for the return). */
static const char *qmp_run(struct qmp_client *c, const char *cmd, yajl_val args,
			   void (**fill)(yajl_gen, void *), char *err, size_t errlen)
{
	struct vm *vm = c->q->vm;

	if (!strcmp(cmd, "qmp_capabilities")) {
		c->negotiated = true;
		return NULL;
	}
	if (!c->negotiated) {
		snprintf(err, errlen, "Expecting capabilities negotiation with 'qmp_capabilities'");
		return err;
	}
	if (!strcmp(cmd, "query-status")) {
		*fill = fill_status;
	} else if (!strcmp(cmd, "query-migrate")) {
		*fill = fill_migrate;
	} else if (!strcmp(cmd, "stop")) {
		vm_stop(vm);
	} else if (!strcmp(cmd, "cont")) {
		vm_cont(vm);
	} else if (!strcmp(cmd, "quit")) {
		vm_request_exit(vm, 0, NULL);
	} else if (!strcmp(cmd, "migrate")) {
		const char *uri = qmp_arg_str(args, "uri");

		if (!uri) {
			snprintf(err, errlen, "Parameter 'uri' is missing");
			return err;
		}
		return migration_start(vm, uri, err, errlen) < 0 ? err : NULL;
	} else if (!strcmp(cmd, "migrate_cancel")) {
		return migration_cancel(vm, err, errlen) < 0 ? err : NULL;
	} else if (!strcmp(cmd, "migrate-set-parameters")) {
		static const char *const keys[] = { "downtime-limit", "max-bandwidth" };

		for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
			const char *path[] = { keys[i], NULL };
			yajl_val v = yajl_tree_get(args, path, yajl_t_number);

			if (v && (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0 ||
				  migration_set_parameter(vm, keys[i], YAJL_GET_INTEGER(v), err,
							  errlen) < 0)) {
				if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
					snprintf(err, errlen, "Parameter '%s' expects a number", keys[i]);
				return err;
			}
		}
	} else {
		snprintf(err, errlen, "The command %s has not been found", cmd);
		return err;
	}
	return NULL;
}

static void qmp_command(struct qmp_client *c, const char *text)
{
	char perr[128], err[256];
	yajl_val root = yajl_tree_parse(text, perr, sizeof(perr));
	const char *exec_path[] = { "execute", NULL }, *args_path[] = { "arguments", NULL };
	const char *id_path[] = { "id", NULL };
	void (*fill)(yajl_gen, void *) = NULL;
	yajl_val id, args;
	const char *cmd, *e;

	if (!root || !YAJL_IS_OBJECT(root)) {
		qmp_reply(c, NULL, NULL, NULL, "JSON parse error: expected an object");
		yajl_tree_free(root);
		return;
	}
	id = yajl_tree_get(root, id_path, yajl_t_any);
	cmd = YAJL_GET_STRING(yajl_tree_get(root, exec_path, yajl_t_string));
	args = yajl_tree_get(root, args_path, yajl_t_object);
	if (!cmd) {
		qmp_reply(c, id, NULL, NULL, "QMP input lacks member 'execute'");
	} else {
		e = qmp_run(c, cmd, args, &fill, err, sizeof(err));
		qmp_reply(c, id, fill, c->q->vm, e);
	}
	yajl_tree_free(root);
}

/* QMP input is a stream of JSON objects: split it at the top-level closing braces. */
static void qmp_split(struct qmp_client *c)
{
	int depth = 0;
	bool str = false, esc = false;
	size_t start = 0;

	for (size_t i = 0; i < c->len; i++) {
		char ch = c->in[i];

		if (str) {
			esc = !esc && ch == '\\';
			if (!esc && ch == '"')
				str = false;
			continue;
		}
		if (ch == '"')
			str = true;
		else if (ch == '{')
			depth++;
		else if (ch == '}' && depth > 0 && --depth == 0) {
			char save = c->in[i + 1];

			c->in[i + 1] = '\0';
			qmp_command(c, c->in + start);
			if (c->fd < 0)
				return;
			c->in[i + 1] = save;
			start = i + 1;
		}
	}
	memmove(c->in, c->in + start, c->len - start);
	c->len -= start;
}

static void qmp_client_close(struct qmp_client *c)
{
	evloop_del(&c->q->vm->loop, c->fd);
	close(c->fd);
	c->fd = -1;
}

static void qmp_readable(void *opaque, uint32_t events)
{
	struct qmp_client *c = opaque;
	ssize_t n;

	if (c->len >= QMP_IN_MAX - 1) {
		qmp_reply(c, NULL, NULL, NULL, "JSON parse error: object too large");
		c->len = 0;
	}
	n = recv(c->fd, c->in + c->len, QMP_IN_MAX - 1 - c->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		qmp_client_close(c);
		return;
	}
	c->len += n;
	qmp_split(c);
}

static void qmp_greet(struct qmp_client *c)
{
	static const char greeting[] =
		"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 1, \"major\": 0}, "
		"\"package\": \"tern\"}, \"capabilities\": []}}";

	qmp_send(c, greeting, sizeof(greeting) - 1);
}

static void qmp_accept(void *opaque, uint32_t events)
{
	struct qmp *q = opaque;
	int fd = accept4(q->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	for (int i = 0; i < QMP_CLIENTS; i++) {
		struct qmp_client *c = &q->client[i];

		if (c->fd >= 0)
			continue;
		*c = (struct qmp_client){ .q = q, .fd = fd };
		if (evloop_add(&q->vm->loop, fd, EPOLLIN, qmp_readable, c) < 0)
			break;
		qmp_greet(c);
		return;
	}
	close(fd);
}

/* Any thread: queue the event and wake the I/O thread. */
static void qmp_event(void *opaque, const char *name, const char *data)
{
	struct qmp *q = opaque;
	struct timespec ts;
	uint64_t one = 1;
	char *line;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (asprintf(&line, "{\"timestamp\": {\"seconds\": %lld, \"microseconds\": %ld}, "
			    "\"event\": \"%s\"%s%s}",
		     (long long)ts.tv_sec, ts.tv_nsec / 1000, name, data ? ", \"data\": " : "",
		     data ? data : "") < 0)
		return;
	pthread_mutex_lock(&q->lock);
	if (q->nevents < QMP_EVENTS)
		q->events[q->nevents++] = line;
	else
		free(line);
	pthread_mutex_unlock(&q->lock);
	if (write(q->evfd, &one, sizeof(one)) < 0)
		perrorf("qmp: eventfd");
}

static void qmp_flush_events(void *opaque, uint32_t events)
{
	struct qmp *q = opaque;
	uint64_t v;

	if (read(q->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&q->lock);
	for (int i = 0; i < q->nevents; i++) {
		for (int k = 0; k < QMP_CLIENTS; k++)
			if (q->client[k].fd >= 0 && q->client[k].negotiated)
				qmp_send(&q->client[k], q->events[i], strlen(q->events[i]));
		free(q->events[i]);
	}
	q->nevents = 0;
	pthread_mutex_unlock(&q->lock);
}

static void qmp_destroy(void *opaque)
{
	struct qmp *q = opaque;

	q->vm->event_fn = NULL;
	qmp_event(q, "SHUTDOWN", "{\"guest\": false, \"reason\": \"host-qmp-quit\"}");
	qmp_flush_events(q, 0);
	for (int i = 0; i < QMP_CLIENTS; i++)
		if (q->client[i].fd >= 0)
			qmp_client_close(&q->client[i]);
	evloop_del(&q->vm->loop, q->fd);
	evloop_del(&q->vm->loop, q->evfd);
	close(q->fd);
	close(q->evfd);
	unlink(q->path);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static const struct device_ops qmp_ops = {
	.name = "qmp",
	.destroy = qmp_destroy,
};

int qmp_create(struct vm *vm, const char *spec)
{
	struct qmp *q = calloc(1, sizeof(*q));

	if (!q) {
		perrorf("qmp: calloc");
		return -1;
	}
	q->vm = vm;
	pthread_mutex_init(&q->lock, NULL);
	for (int i = 0; i < QMP_CLIENTS; i++)
		q->client[i].fd = -1;
	q->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->evfd < 0 || config_unix_path(spec, q->path, sizeof(q->path)) < 0) {
		errorf("-qmp: cannot set up %s", spec);
		free(q);
		return -1;
	}
	q->fd = unix_listen("-qmp", q->path);
	if (q->fd < 0 || evloop_add(&vm->loop, q->fd, EPOLLIN, qmp_accept, q) < 0 ||
	    evloop_add(&vm->loop, q->evfd, EPOLLIN, qmp_flush_events, q) < 0 ||
	    vm_register_device(vm, &qmp_ops, q) < 0) {
		if (q->fd >= 0)
			close(q->fd);
		close(q->evfd);
		free(q);
		return -1;
	}
	vm->event_fn = qmp_event;
	vm->event_opaque = q;
	return 0;
}
