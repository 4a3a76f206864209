#include <ctype.h>
#include <errno.h>
#include <poll.h>
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
#include "vmm/json.h"
#include "vmm/migration/migration.h"
#include "vmm/monitor.h"
#include "vmm/qmp.h"
#include "vmm/sock.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define QMP_CLIENTS 4
#define QMP_IN_MAX 65536
#define QMP_EVENTS 32
/* Replies and events a client has not read yet; past this it is dropped. */
#define QMP_OUT_MAX (16 << 20)

/* Where the scan of a client's input stands; it goes on across reads. */
struct qmp_scan {
	size_t pos;		/* in[0, pos) is scanned */
	int depth;
	bool str, esc, scalar;
	bool discard;		/* the value being read overflowed: drop it up to its end */
};

struct qmp_client {
	struct qmp *q;
	int fd;
	bool negotiated;
	char in[QMP_IN_MAX];
	size_t len;
	struct sock_out out;
	struct qmp_scan scan;
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

static void qmp_client_close(struct qmp_client *c)
{
	evloop_del(&c->q->vm->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	sock_out_free(&c->out);
}

static void qmp_flush(struct qmp_client *c)
{
	bool waiting = sock_out_flush(&c->out, c->fd);

	evloop_mod(&c->q->vm->loop, c->fd, waiting ? EPOLLOUT : EPOLLIN);
}

static void qmp_send(struct qmp_client *c, const char *json, size_t len)
{
	if (c->fd < 0)
		return;
	if (sock_out_add(&c->out, json, len, QMP_OUT_MAX) < 0 ||
	    sock_out_add(&c->out, "\r\n", 2, QMP_OUT_MAX) < 0) {
		errorf("qmp: a client left %zu bytes unread: dropped", c->out.len - c->out.off);
		qmp_client_close(c);
		return;
	}
	qmp_flush(c);
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

/*
 * Any JSON value back as it came: QEMU echoes whatever "id" a client chose. Nested deeper
 * than depth, null: yajl_gen writes no brackets past its own limit (128) but still closes them.
 */
static void gen_value(yajl_gen g, yajl_val v, int depth)
{
	if (!depth) {
		yajl_gen_null(g);
	} else if (YAJL_IS_STRING(v)) {
		gen_str(g, YAJL_GET_STRING(v));
	} else if (YAJL_IS_NUMBER(v)) {
		yajl_gen_number(g, YAJL_GET_NUMBER(v), strlen(YAJL_GET_NUMBER(v)));
	} else if (YAJL_IS_OBJECT(v)) {
		yajl_gen_map_open(g);
		for (size_t i = 0; i < v->u.object.len; i++) {
			gen_str(g, v->u.object.keys[i]);
			gen_value(g, v->u.object.values[i], depth - 1);
		}
		yajl_gen_map_close(g);
	} else if (YAJL_IS_ARRAY(v)) {
		yajl_gen_array_open(g);
		for (size_t i = 0; i < v->u.array.len; i++)
			gen_value(g, v->u.array.values[i], depth - 1);
		yajl_gen_array_close(g);
	} else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
		yajl_gen_bool(g, YAJL_IS_TRUE(v));
	} else {
		yajl_gen_null(g);
	}
}

/* One command: its arguments, and what the reply carries. */
struct qmp_call {
	struct qmp_client *c;
	struct vm *vm;
	yajl_val args;
	void (*fill)(yajl_gen g, struct qmp_call *q);	/* the return value; {} without */
	const char *err_class;				/* GenericError unless set */
	char err[256];
	char *text;					/* human-monitor-command's output */
	size_t text_len;
	bool text_full;					/* it reached QMP_HMP_OUT_MAX */
};

/* Far more than any monitor command prints, yet a bound on what one reply holds. */
#define QMP_HMP_OUT_MAX (1 << 20)

static void qmp_reply(struct qmp_call *q, yajl_val id, bool failed)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *buf;
	size_t len;

	yajl_gen_map_open(g);
	if (failed) {
		gen_str(g, "error");
		yajl_gen_map_open(g);
		gen_str(g, "class");
		gen_str(g, q->err_class ? q->err_class : "GenericError");
		gen_str(g, "desc");
		gen_str(g, q->err);
		yajl_gen_map_close(g);
	} else {
		gen_str(g, "return");
		if (q->fill) {
			q->fill(g, q);
		} else {
			yajl_gen_map_open(g);
			yajl_gen_map_close(g);
		}
	}
	if (id) {
		gen_str(g, "id");
		gen_value(g, id, 32);
	}
	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &buf, &len);
	qmp_send(q->c, (const char *)buf, len);
	yajl_gen_free(g);
}

static int qmp_fail(struct qmp_call *q, const char *fmt, const char *arg)
{
	snprintf(q->err, sizeof(q->err), fmt, arg);
	/* Cut short, it must not end inside a UTF-8 character: the reply would be invalid. */
	q->err[utf8_cut(q->err, strlen(q->err))] = '\0';
	return -1;
}

/* A string argument the command needs; NULL with the error set if it is missing. */
static const char *qmp_arg_str(struct qmp_call *q, const char *key)
{
	const char *path[] = { key, NULL };
	yajl_val v = yajl_tree_get(q->args, path, yajl_t_any);

	if (!v)
		qmp_fail(q, "Parameter '%s' is missing", key);
	else if (!YAJL_IS_STRING(v))
		qmp_fail(q, "Invalid parameter type for '%s', expected: string", key);
	return YAJL_GET_STRING(v);
}

static void fill_status(yajl_gen g, struct qmp_call *q)
{
	enum vm_runstate s = vm_state(q->vm);

	yajl_gen_map_open(g);
	gen_str(g, "status");
	gen_str(g, vm_state_name(s));
	gen_str(g, "singlestep");
	yajl_gen_bool(g, 0);
	gen_str(g, "running");
	yajl_gen_bool(g, s == RUN_STATE_RUNNING);
	yajl_gen_map_close(g);
}

static void fill_migrate_ram(yajl_gen g, const struct migration_info *i)
{
	gen_str(g, "ram");
	yajl_gen_map_open(g);
	gen_kv_int(g, "transferred", i->transferred);
	gen_kv_int(g, "remaining", i->remaining);
	gen_kv_int(g, "total", i->total);
	gen_kv_int(g, "duplicate", i->zero_pages);
	gen_kv_int(g, "normal", i->normal_pages);
	gen_kv_int(g, "normal-bytes", i->normal_pages * 4096);
	gen_kv_int(g, "dirty-sync-count", i->rounds);
	yajl_gen_map_close(g);
}

static void fill_migrate(yajl_gen g, struct qmp_call *q)
{
	struct migration_info i;

	migration_query(q->vm, &i);
	yajl_gen_map_open(g);
	gen_str(g, "status");
	gen_str(g, i.status);
	if (strcmp(i.status, "none")) {
		gen_kv_int(g, "total-time", (long long)i.total_ms);
		gen_kv_int(g, "setup-time", (long long)i.setup_ms);
		if (!strcmp(i.status, "completed"))
			gen_kv_int(g, "downtime", (long long)i.downtime_ms);
		else
			gen_kv_int(g, "expected-downtime", (long long)i.expected_downtime_ms);
		if (i.throttle_pct)
			gen_kv_int(g, "cpu-throttle-percentage", i.throttle_pct);
		if (i.error[0]) {
			gen_str(g, "error-desc");
			gen_str(g, i.error);
		}
		fill_migrate_ram(g, &i);
	}
	yajl_gen_map_close(g);
}

static void fill_parameters(yajl_gen g, struct qmp_call *q)
{
	struct migration_info i;

	migration_query(q->vm, &i);
	yajl_gen_map_open(g);
	for (size_t n = 0; n < MIG_PARAM_COUNT; n++)
		gen_kv_int(g, migration_parameter_name(n), i.param[n]);
	yajl_gen_map_close(g);
}

static void fill_capabilities(yajl_gen g, struct qmp_call *q)
{
	struct migration_info i;

	migration_query(q->vm, &i);
	yajl_gen_array_open(g);
	yajl_gen_map_open(g);
	gen_str(g, "capability");
	gen_str(g, "auto-converge");
	gen_str(g, "state");
	yajl_gen_bool(g, i.auto_converge);
	yajl_gen_map_close(g);
	yajl_gen_array_close(g);
}

static void fill_name(yajl_gen g, struct qmp_call *q)
{
	yajl_gen_map_open(g);
	if (q->vm->cfg->name) {
		gen_str(g, "name");
		gen_str(g, q->vm->cfg->name);
	}
	yajl_gen_map_close(g);
}

static void fill_kvm(yajl_gen g, struct qmp_call *q)
{
	yajl_gen_map_open(g);
	gen_str(g, "enabled");
	yajl_gen_bool(g, 1);
	gen_str(g, "present");
	yajl_gen_bool(g, 1);
	yajl_gen_map_close(g);
}

static void fill_version(yajl_gen g, struct qmp_call *q)
{
	yajl_gen_map_open(g);
	gen_str(g, "qemu");
	yajl_gen_map_open(g);
	gen_kv_int(g, "major", TERN_VERSION_MAJOR);
	gen_kv_int(g, "minor", TERN_VERSION_MINOR);
	gen_kv_int(g, "micro", TERN_VERSION_MICRO);
	yajl_gen_map_close(g);
	gen_str(g, "package");
	gen_str(g, "tern");
	yajl_gen_map_close(g);
}

/* The vCPUs as QEMU lists them; each is a package of its own (see cpuid.c). */
static void fill_cpus(yajl_gen g, struct qmp_call *q)
{
	char path[64];

	yajl_gen_array_open(g);
	for (int i = 0; i < q->vm->nvcpu; i++) {
		yajl_gen_map_open(g);
		gen_kv_int(g, "cpu-index", i);
		snprintf(path, sizeof(path), "/machine/unattached/device[%d]", i);
		gen_str(g, "qom-path");
		gen_str(g, path);
		gen_kv_int(g, "thread-id", __atomic_load_n(&q->vm->vcpu[i].tid, __ATOMIC_ACQUIRE));
		gen_str(g, "props");
		yajl_gen_map_open(g);
		gen_kv_int(g, "core-id", 0);
		gen_kv_int(g, "thread-id", 0);
		gen_kv_int(g, "socket-id", i);
		yajl_gen_map_close(g);
		gen_str(g, "target");
		gen_str(g, "x86_64");
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

static void fill_text(yajl_gen g, struct qmp_call *q)
{
	yajl_gen_string(g, (const unsigned char *)(q->text ? q->text : ""), q->text_len);
}

static int qmp_stop(struct qmp_call *q)
{
	vm_stop(q->vm);
	return 0;
}

/* force, tern's own: as the monitor's cont -f. */
static int qmp_cont(struct qmp_call *q)
{
	const char *path[] = { "force", NULL };
	yajl_val f = yajl_tree_get(q->args, path, yajl_t_any);

	if (f && !YAJL_IS_TRUE(f) && !YAJL_IS_FALSE(f))
		return qmp_fail(q, "Invalid parameter type for '%s', expected: boolean", "force");
	return vm_cont(q->vm, f && YAJL_IS_TRUE(f), q->err, sizeof(q->err));
}

static int qmp_quit(struct qmp_call *q)
{
	vm_request_exit(q->vm, 0, "host-qmp-quit", NULL);
	return 0;
}

static int qmp_migrate(struct qmp_call *q)
{
	const char *uri = qmp_arg_str(q, "uri");

	return uri ? migration_start(q->vm, uri, q->err, sizeof(q->err)) : -1;
}

static int qmp_migrate_incoming(struct qmp_call *q)
{
	const char *uri = qmp_arg_str(q, "uri");

	return uri ? migration_listen(q->vm, uri, q->err, sizeof(q->err)) : -1;
}

static int qmp_migrate_cancel(struct qmp_call *q)
{
	return migration_cancel(q->vm, q->err, sizeof(q->err));
}

/* Its arguments are migration's parameters, whichever it has: checked here, not in the table. */
static int qmp_migrate_set_parameters(struct qmp_call *q)
{
	const char *names[MIG_PARAM_COUNT];
	uint64_t vals[MIG_PARAM_COUNT];
	int n = 0;

	for (size_t k = 0; q->args && k < q->args->u.object.len; k++) {
		const char *key = q->args->u.object.keys[k];
		size_t i = 0;

		while (i < MIG_PARAM_COUNT && strcmp(key, migration_parameter_name(i)))
			i++;
		if (i == MIG_PARAM_COUNT)
			return qmp_fail(q, "Parameter '%s' is unexpected", key);
	}
	for (size_t i = 0; i < MIG_PARAM_COUNT; i++) {
		const char *path[] = { migration_parameter_name(i), NULL };
		yajl_val v = yajl_tree_get(q->args, path, yajl_t_any);

		if (!v)
			continue;
		if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
			return qmp_fail(q, "Invalid parameter type for '%s', expected: integer",
					path[0]);
		names[n] = path[0];
		vals[n++] = YAJL_GET_INTEGER(v);
	}
	return migration_set_parameters(q->vm, n, names, vals, q->err, sizeof(q->err));
}

/* A member of capabilities[n] other than capability and state, named as QEMU names it. */
static bool qmp_cap_unexpected(struct qmp_call *q, yajl_val e, size_t n)
{
	char name[128];

	for (size_t k = 0; k < e->u.object.len; k++) {
		const char *key = e->u.object.keys[k];

		if (strcmp(key, "capability") && strcmp(key, "state")) {
			snprintf(name, sizeof(name), "capabilities[%zu].%s", n, key);
			qmp_fail(q, "Parameter '%s' is unexpected", name);
			return true;
		}
	}
	return false;
}

/* {"capabilities": [{"capability": "auto-converge", "state": true}]}; all checked first. */
static int qmp_migrate_set_capabilities(struct qmp_call *q)
{
	const char *path[] = { "capabilities", NULL }, *cap[] = { "capability", NULL },
		   *state[] = { "state", NULL };
	yajl_val list = yajl_tree_get(q->args, path, yajl_t_any);

	if (!list)
		return qmp_fail(q, "Parameter '%s' is missing", "capabilities");
	if (!YAJL_IS_ARRAY(list))
		return qmp_fail(q, "Invalid parameter type for '%s', expected: array",
				"capabilities");
	for (int pass = 0; pass < 2; pass++) {
		for (size_t n = 0; n < list->u.array.len; n++) {
			yajl_val e = list->u.array.values[n];
			yajl_val c = yajl_tree_get(e, cap, yajl_t_string);
			const char *name = YAJL_GET_STRING(c);
			yajl_val on = yajl_tree_get(e, state, yajl_t_any);

			if (!name || !on || !(YAJL_IS_TRUE(on) || YAJL_IS_FALSE(on)))
				return qmp_fail(q, "Invalid parameter type for '%s', expected: "
						"{\"capability\": string, \"state\": bool}",
						"capabilities");
			if (pass == 0 && strcmp(name, "auto-converge"))
				return qmp_fail(q, "Parameter 'capability' does not accept value '%s'",
						name);
			if (pass == 0 && qmp_cap_unexpected(q, e, n))
				return -1;
			if (pass == 1 && migration_set_capability(q->vm, name, YAJL_IS_TRUE(on),
								  q->err, sizeof(q->err)) < 0)
				return -1;
		}
	}
	return 0;
}

/* Output grows as it comes; past the bound it is cut where a character ends, and no more. */
static void hmp_out(void *opaque, const char *buf, size_t len)
{
	struct qmp_call *q = opaque;
	size_t n = MIN(len, QMP_HMP_OUT_MAX - q->text_len);
	char *text;

	if (q->text_full)
		return;
	if (n < len) {
		n = utf8_cut(buf, n);
		q->text_full = true;
	}
	text = realloc(q->text, q->text_len + n + 1); /* +1: never a realloc to 0 bytes */
	if (!text) {
		q->text_full = true;
		return;
	}
	memcpy(text + q->text_len, buf, n);
	q->text = text;
	q->text_len += n;
}

/* QEMU's way for programs to reach the human monitor: its output comes back as a string. */
static int qmp_hmp(struct qmp_call *q)
{
	const char *line = qmp_arg_str(q, "command-line");
	const char *path[] = { "cpu-index", NULL };
	yajl_val cpu = yajl_tree_get(q->args, path, yajl_t_any);
	struct mon_session *s;

	if (!line)
		return -1;
	/* As QEMU: the vCPU that commands such as info registers look at. */
	if (cpu && (!YAJL_IS_INTEGER(cpu) || YAJL_GET_INTEGER(cpu) < 0 ||
		    YAJL_GET_INTEGER(cpu) >= q->vm->nvcpu))
		return qmp_fail(q, "Parameter '%s' expects a CPU number", "cpu-index");
	s = monitor_session_new(q->vm->monitor, hmp_out, q, false);
	if (!s)
		return qmp_fail(q, "%s", "out of memory");
	if (cpu)
		monitor_session_set_cpu(s, YAJL_GET_INTEGER(cpu));
	monitor_run(s, line);
	/* A command that goes on in the background (migrate) prints no more here. */
	monitor_session_close(s);
	return 0;
}

/* The negotiation. tern offers no capability, QEMU's oob among them: enable takes none. */
static int qmp_negotiate(struct qmp_call *q)
{
	const char *path[] = { "enable", NULL };
	yajl_val en = yajl_tree_get(q->args, path, yajl_t_any);
	const char *cap;

	if (q->c->negotiated) {
		q->err_class = "CommandNotFound";
		return qmp_fail(q, "%s",
				"Capabilities negotiation is already complete, command ignored");
	}
	if (en && !YAJL_IS_ARRAY(en))
		return qmp_fail(q, "Invalid parameter type for '%s', expected: array", "enable");
	if (en && en->u.array.len) {
		cap = YAJL_GET_STRING(en->u.array.values[0]);
		if (!cap)
			return qmp_fail(q, "Invalid parameter type for '%s', expected: string",
					"enable[0]");
		if (strcmp(cap, "oob"))
			return qmp_fail(q, "Parameter 'enable' does not accept value '%s'", cap);
		return qmp_fail(q, "Capability '%s' not available", cap);
	}
	q->c->negotiated = true;
	return 0;
}

static void fill_commands(yajl_gen g, struct qmp_call *q);

/* migrate-set-parameters takes migration's parameters, whichever it has: it checks them. */
#define QMP_ARGS_OWN "*"

static const struct qmp_cmd {
	const char *name;
	const char *args;				/* its arguments' names: "a b" */
	int (*run)(struct qmp_call *q);			/* -1 with q->err; NULL: a query */
	void (*fill)(yajl_gen g, struct qmp_call *q);	/* the return value */
} qmp_commands[] = {
	{ "qmp_capabilities", "enable", qmp_negotiate, NULL },
	{ "query-status", "", NULL, fill_status },
	{ "query-migrate", "", NULL, fill_migrate },
	{ "query-migrate-parameters", "", NULL, fill_parameters },
	{ "query-migrate-capabilities", "", NULL, fill_capabilities },
	{ "query-version", "", NULL, fill_version },
	{ "query-name", "", NULL, fill_name },
	{ "query-kvm", "", NULL, fill_kvm },
	{ "query-cpus-fast", "", NULL, fill_cpus },
	{ "query-commands", "", NULL, fill_commands },
	{ "stop", "", qmp_stop, NULL },
	{ "cont", "force", qmp_cont, NULL },
	{ "quit", "", qmp_quit, NULL },
	/* detach: QEMU takes it and ignores it (migrate always detaches); libvirt sends it. */
	{ "migrate", "uri detach", qmp_migrate, NULL },
	{ "migrate-incoming", "uri", qmp_migrate_incoming, NULL },
	{ "migrate_cancel", "", qmp_migrate_cancel, NULL },
	{ "migrate-set-parameters", QMP_ARGS_OWN, qmp_migrate_set_parameters, NULL },
	{ "migrate-set-capabilities", "capabilities", qmp_migrate_set_capabilities, NULL },
	{ "human-monitor-command", "command-line cpu-index", qmp_hmp, fill_text },
};

static void fill_commands(yajl_gen g, struct qmp_call *q)
{
	yajl_gen_array_open(g);
	for (size_t i = 0; i < ARRAY_SIZE(qmp_commands); i++) {
		yajl_gen_map_open(g);
		gen_str(g, "name");
		gen_str(g, qmp_commands[i].name);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

/* Whether word is one of the space-separated words of list. */
static bool word_in(const char *list, const char *word)
{
	size_t n = strlen(word);

	while (*list) {
		size_t len = strcspn(list, " ");

		if (len == n && !strncmp(list, word, n))
			return true;
		list += len + (list[len] == ' ');
	}
	return false;
}

/* As QEMU: an argument the command does not take is refused, so a misspelt one is not lost. */
static int qmp_check_args(struct qmp_call *q, const char *takes)
{
	for (size_t i = 0; q->args && i < q->args->u.object.len; i++) {
		const char *key = q->args->u.object.keys[i];

		if (strcmp(takes, QMP_ARGS_OWN) && !word_in(takes, key))
			return qmp_fail(q, "Parameter '%s' is unexpected", key);
	}
	return 0;
}

static int qmp_run(struct qmp_call *q, const char *name)
{
	const struct qmp_cmd *cmd = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(qmp_commands) && !cmd; i++)
		if (!strcmp(name, qmp_commands[i].name))
			cmd = &qmp_commands[i];
	if (!q->c->negotiated && (!cmd || cmd->run != qmp_negotiate)) {
		q->err_class = "CommandNotFound";
		return qmp_fail(q, "%s",
				"Expecting capabilities negotiation with 'qmp_capabilities'");
	}
	if (!cmd) {
		q->err_class = "CommandNotFound";
		return qmp_fail(q, "The command %s has not been found", name);
	}
	if (qmp_check_args(q, cmd->args) < 0)
		return -1;
	q->fill = cmd->fill;
	return cmd->run ? cmd->run(q) : 0;
}

/* yajl's reason for a parse error, for QEMU's "JSON parse error, ...": its first line's words. */
static const char *yajl_reason(char *msg)
{
	char *why;
	size_t n;

	msg[strcspn(msg, "\n")] = '\0';
	why = strstr(msg, "error: "); /* after "lexical error: " or "parse error: " */
	why = why ? why + 7 : msg;
	n = strlen(why);
	if (n && why[n - 1] == '.')
		why[n - 1] = '\0';
	return why;
}

/*
 * The command's name, its arguments in q->args; NULL with q->err set if the object is no
 * command, in QEMU's words for each way: a command is execute, arguments and id, nothing else.
 */
static const char *qmp_members(struct qmp_call *q, yajl_val root)
{
	const char *exec_path[] = { "execute", NULL }, *args_path[] = { "arguments", NULL };
	yajl_val cmd = yajl_tree_get(root, exec_path, yajl_t_any);
	yajl_val args = yajl_tree_get(root, args_path, yajl_t_any);

	for (size_t i = 0; i < root->u.object.len; i++) {
		if (!word_in("execute arguments id", root->u.object.keys[i])) {
			qmp_fail(q, "QMP input member '%s' is unexpected", root->u.object.keys[i]);
			return NULL;
		}
	}
	if (!cmd)
		qmp_fail(q, "%s", "QMP input lacks member 'execute'");
	else if (!YAJL_IS_STRING(cmd))
		qmp_fail(q, "%s", "QMP input member 'execute' must be a string");
	else if (args && !YAJL_IS_OBJECT(args))
		qmp_fail(q, "%s", "QMP input member 'arguments' must be an object");
	else
		q->args = args;
	return q->err[0] ? NULL : YAJL_GET_STRING(cmd);
}

static void qmp_command(struct qmp_client *c, const char *text)
{
	const char *bad = json_check(text), *id_path[] = { "id", NULL }, *name;
	char perr[256];
	yajl_val root = bad ? NULL : yajl_tree_parse(text, perr, sizeof(perr));
	struct qmp_call q = { .c = c, .vm = c->q->vm };
	yajl_val id = NULL;
	int r = -1;

	if (bad) {
		qmp_fail(&q, "%s", bad);
	} else if (!root) {
		qmp_fail(&q, "JSON parse error, %s", yajl_reason(perr));
	} else if (!YAJL_IS_OBJECT(root)) {
		qmp_fail(&q, "%s", "QMP input must be a JSON object");
	} else {
		id = yajl_tree_get(root, id_path, yajl_t_any);
		name = qmp_members(&q, root);
		r = name ? qmp_run(&q, name) : -1;
	}
	qmp_reply(&q, id, r < 0);
	yajl_tree_free(root);
	free(q.text);
}

/* Runs the command in c->in[start, end). false once the client is gone. */
static bool qmp_dispatch(struct qmp_client *c, size_t start, size_t end)
{
	char save = c->in[end];

	c->in[end] = '\0';
	qmp_command(c, c->in + start);
	if (c->fd < 0)
		return false;
	c->in[end] = save;
	return true;
}

/* An error for input that is no command; false once the client is gone. */
static bool qmp_refuse(struct qmp_client *c, const char *why)
{
	struct qmp_call q = { .c = c };

	qmp_fail(&q, "%s", why);
	qmp_reply(&q, NULL, true);
	return c->fd >= 0;
}

/* A whole value ends before in[end]: run it, or drop it if it overflowed. */
static bool qmp_value(struct qmp_client *c, size_t *start, size_t end)
{
	bool ok = c->scan.discard || qmp_dispatch(c, *start, end);

	c->scan.discard = false;
	*start = end;
	return ok;
}

/*
 * QMP input is a stream of JSON values: split it where a top-level object or array closes,
 * or where a top-level scalar (which is an error, but must not swallow what follows) ends.
 */
static void qmp_split(struct qmp_client *c)
{
	struct qmp_scan *s = &c->scan;
	size_t start = 0;

	for (; s->pos < c->len; s->pos++) {
		char ch = c->in[s->pos];

		if (s->str) {
			if (s->esc)
				s->esc = false;
			else if (ch == '\\')
				s->esc = true;
			else if (ch == '"')
				s->str = false;
			continue;
		}
		if (ch == '/') {
			/*
			 * yajl would take a comment, whose braces and quotes this scan would count
			 * as JSON: refuse it, and start afresh after the '/', as QEMU's parser
			 * (which has no comments either) does after a stray character.
			 */
			*s = (struct qmp_scan){ .pos = s->pos };
			start = s->pos + 1;
			if (!qmp_refuse(c, "JSON parse error, stray '/'"))
				return;
			continue;
		}
		if (s->scalar && (isspace((unsigned char)ch) || ch == '{' || ch == '[')) {
			s->scalar = false;
			if (!qmp_value(c, &start, s->pos))
				return;
		}
		if (ch == '{' || ch == '[') {
			s->depth++;
		} else if ((ch == '}' || ch == ']') && s->depth > 0) {
			if (--s->depth == 0 && !qmp_value(c, &start, s->pos + 1))
				return;
		} else if (!s->depth && !isspace((unsigned char)ch)) {
			s->scalar = true;
		} else if (!s->depth && !s->scalar && !s->discard) {
			/* Whitespace between values (keep-alive newlines): let it go. */
			start = s->pos + 1;
		}
		s->str = ch == '"';
	}
	memmove(c->in, c->in + start, c->len - start);
	c->len -= start;
	s->pos -= start;
}

static void qmp_readable(void *opaque, uint32_t events)
{
	struct qmp_client *c = opaque;
	ssize_t n;

	if (events & EPOLLOUT) {
		qmp_flush(c);
		return;
	}
	if (c->len >= QMP_IN_MAX - 1) {
		if (!qmp_refuse(c, "JSON parse error, object too large"))
			return;
		/* Drop what came of it; the scan goes on, to find where it ends. */
		c->len = c->scan.pos = 0;
		c->scan.discard = true;
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
	static const char full[] = "{\"error\": {\"class\": \"GenericError\", "
				   "\"desc\": \"too many QMP clients\"}}\r\n";
	struct qmp *q = opaque;
	int fd = accept4(q->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	for (int i = 0; i < QMP_CLIENTS; i++) {
		struct qmp_client *c = &q->client[i];

		if (c->fd >= 0)
			continue;
		if (evloop_add(&q->vm->loop, fd, EPOLLIN, qmp_readable, c) < 0)
			break;
		*c = (struct qmp_client){ .q = q, .fd = fd };
		qmp_greet(c);
		return;
	}
	(void)!send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
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
	const char *cause = q->vm->exit_cause ? q->vm->exit_cause : "host-error";
	char data[96];

	q->vm->event_fn = NULL;
	snprintf(data, sizeof(data), "{\"guest\": %s, \"reason\": \"%s\"}",
		 strncmp(cause, "guest-", 6) ? "false" : "true", cause);
	qmp_event(q, "SHUTDOWN", data);
	qmp_flush_events(q, 0);
	for (int i = 0; i < QMP_CLIENTS; i++) {
		struct qmp_client *c = &q->client[i];

		/* The last replies and SHUTDOWN: a moment for a slow reader to take them. */
		for (int tries = 0; c->fd >= 0 && c->out.len && tries < 10; tries++) {
			poll(&(struct pollfd){ .fd = c->fd, .events = POLLOUT }, 1, 10);
			qmp_flush(c);
		}
		if (c->fd >= 0)
			qmp_client_close(c);
	}
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
		if (q->fd >= 0) {
			close(q->fd);
			unlink(q->path);
		}
		close(q->evfd);
		free(q);
		return -1;
	}
	vm->event_fn = qmp_event;
	vm->event_opaque = q;
	return 0;
}
