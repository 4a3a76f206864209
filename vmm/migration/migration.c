/*
 * Migration's face: the monitor commands (migrate, migrate_cancel, info migrate,
 * migrate_set_parameter, migrate_incoming), the status QEMU's tools expect, and the threads
 * that do the work (source.c, dest.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "vmm/migration/internal.h"
#include "vmm/migration/migration.h"
#include "vmm/monitor.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define DEFAULT_DOWNTIME_MS 300	/* QEMU's default downtime-limit */
#define DEFAULT_MAX_ROUNDS 30
#define PROGRESS_MS 500

static const char *const status_names[] = {
	[MIG_NONE] = "none",		[MIG_SETUP] = "setup",	 [MIG_ACTIVE] = "active",
	[MIG_COMPLETED] = "completed", [MIG_FAILED] = "failed", [MIG_CANCELLED] = "cancelled",
};

const char *mig_status_name(enum mig_status s)
{
	return status_names[s];
}

static void mig_event(struct migration *m, enum mig_status s)
{
	char data[64];

	snprintf(data, sizeof(data), "{\"status\": \"%s\"}", mig_status_name(s));
	vm_event(m->vm, "MIGRATION", data);
}

void mig_set_status(struct migration *m, enum mig_status s)
{
	pthread_mutex_lock(&m->lock);
	m->status = s;
	pthread_mutex_unlock(&m->lock);
	mig_event(m, s);
}

void mig_fail(struct migration *m, const char *fmt, ...)
{
	va_list ap;
	bool cancelled = __atomic_load_n(&m->cancel, __ATOMIC_ACQUIRE);

	pthread_mutex_lock(&m->lock);
	va_start(ap, fmt);
	vsnprintf(m->error, sizeof(m->error), fmt, ap);
	va_end(ap);
	m->status = cancelled ? MIG_CANCELLED : MIG_FAILED;
	if (cancelled)
		snprintf(m->error, sizeof(m->error), "cancelled by the user");
	pthread_mutex_unlock(&m->lock);
	mig_event(m, cancelled ? MIG_CANCELLED : MIG_FAILED);
}

/* Busy until the thread has truly ended, so a new one never joins a thread still running. */
static bool mig_busy(struct migration *m)
{
	return m->thread_started && !__atomic_load_n(&m->thread_done, __ATOMIC_ACQUIRE);
}

/* Why the downtime went over its limit: said with the outcome, so that nobody has to guess. */
#define OVER_LIMIT_NOTE                                                                           \
	"the rest never fitted the downtime limit: the guest dirtied memory faster than the link " \
	"carried it until rounds ran out (migrate_set_capability auto-converge on slows it down)"

static void mig_summary(struct migration *m, struct mon_session *s)
{
	pthread_mutex_lock(&m->lock);
	if (m->status != MIG_COMPLETED) {
		monitor_printf(s, "migrate: %s: %s\n", mig_status_name(m->status), m->error);
	} else {
		monitor_printf(s, "migrate: completed in %.3f ms (downtime %.3f ms, %llu KiB sent, %llu rounds)\n",
			       m->st.total_ns / 1e6, m->st.downtime_ns / 1e6,
			       (unsigned long long)(m->st.transferred >> 10),
			       (unsigned long long)m->st.rounds);
		if (m->st.over_limit)
			monitor_printf(s, "migrate: %s\n", OVER_LIMIT_NOTE);
	}
	pthread_mutex_unlock(&m->lock);
}

static void mig_finish_on_io_thread(void *arg)
{
	struct migration *m = arg;

	if (m->progress_timer >= 0) {
		evloop_del(&m->vm->loop, m->progress_timer);
		close(m->progress_timer);
		m->progress_timer = -1;
	}
	if (m->waiter) {
		mig_summary(m, m->waiter);
		monitor_session_release(m->waiter);
		m->waiter = NULL;
	}
}

void mig_finish(struct migration *m)
{
	evloop_call(&m->vm->loop, mig_finish_on_io_thread, m);
}

struct mig_exit {
	struct migration *m;
	enum mig_status status;
	const char *err;
};

static void mig_exit_on_io_thread(void *arg)
{
	struct mig_exit *e = arg;

	if (e->status == MIG_FAILED)
		mig_fail(e->m, "%s", e->err);
	else if (e->status == MIG_COMPLETED)
		mig_set_status(e->m, MIG_COMPLETED);
	mig_finish_on_io_thread(e->m);
	__atomic_store_n(&e->m->thread_done, true, __ATOMIC_RELEASE);
}

/*
 * The outcome, the summary and the end in one call on the I/O thread: whoever hears that the
 * migration ended (the summary, the MIGRATION event, info migrate) and starts another finds
 * this one over. They were told while this thread still cleaned up, and a `migrate` right
 * after a failed one was refused as "already in progress". Nothing after this waits for the
 * I/O thread, so joining the thread there waits for its return only.
 */
void mig_thread_exit(struct migration *m, enum mig_status s, const char *err)
{
	struct mig_exit e = { m, s, err };

	evloop_call(&m->vm->loop, mig_exit_on_io_thread, &e);
}

static void mig_progress(void *opaque, uint32_t events)
{
	struct migration *m = opaque;
	uint64_t v;

	if (read(m->progress_timer, &v, sizeof(v)) < 0 || !m->waiter)
		return;
	pthread_mutex_lock(&m->lock);
	monitor_printf(m->waiter, "migrate: %s, round %llu, %llu KiB sent, %llu KiB remaining\n",
		       mig_status_name(m->status), (unsigned long long)m->st.rounds,
		       (unsigned long long)(m->st.transferred >> 10),
		       (unsigned long long)(m->st.remaining >> 10));
	pthread_mutex_unlock(&m->lock);
}

/* Joins the thread of an earlier, finished migration. */
static void mig_reap(struct migration *m)
{
	if (m->thread_started) {
		pthread_join(m->thread, NULL);
		m->thread_started = false;
	}
	m->thread_done = false;
}

static int mig_start_thread(struct migration *m, void *(*fn)(void *), pthread_t *thread)
{
	uint64_t stale;
	int err;

	/* A cancel of an earlier migration must not end this one. */
	if (read(m->cancel_fd, &stale, sizeof(stale)) < 0 && errno != EAGAIN)
		perrorf("migration: cancel eventfd");
	__atomic_store_n(&m->cancel, false, __ATOMIC_RELEASE);
	m->go_sent = false;
	memset(&m->st, 0, sizeof(m->st));
	m->st.start_ns = now_ns();
	m->st.total_ram = m->vm->ram_size;
	m->error[0] = '\0';
	m->status = MIG_SETUP;
	mig_event(m, MIG_SETUP);
	err = pthread_create(thread, NULL, fn, m);
	if (err) {
		mig_fail(m, "pthread_create: %s", strerror(err));
		return -1;
	}
	return 0;
}

/* A device that says the guest may not move now (QEMU's migration blockers). */
static int mig_blocked(struct vm *vm, char *err, size_t errlen)
{
	for (int i = 0; i < vm->ndev; i++) {
		const struct device *d = &vm->dev[i];

		if (d->ops->blocker && d->ops->blocker(d->opaque, err, errlen))
			return -1;
	}
	return 0;
}

int migration_start(struct vm *vm, const char *uri, char *err, size_t errlen)
{
	struct migration *m = vm->migration;

	if (__atomic_load_n(&m->incoming, __ATOMIC_ACQUIRE) ||
	    vm_state(vm) == RUN_STATE_POSTMIGRATE ||
	    vm_state(vm) == RUN_STATE_INMIGRATE) {
		snprintf(err, errlen, "the guest does not run here");
		return -1;
	}
	if (mig_busy(m)) {
		snprintf(err, errlen, "a migration is already in progress");
		return -1;
	}
	if (mig_uri_parse(uri, &m->uri, err, errlen) < 0 || mig_blocked(vm, err, errlen) < 0)
		return -1;
	mig_reap(m);
	/* The guest ran on after an earlier snapshot; this migration may hand it over. */
	__atomic_store_n(&m->snapshot_done, false, __ATOMIC_RELEASE);
	__atomic_store_n(&m->unconfirmed, false, __ATOMIC_RELEASE);
	if (mig_start_thread(m, mig_source_thread, &m->thread) < 0) {
		snprintf(err, errlen, "%s", m->error);
		return -1;
	}
	m->thread_started = true;
	return 0;
}

static void cmd_migrate(struct mon_session *s, int argc, char **argv)
{
	struct migration *m = monitor_session_vm(s)->migration;
	bool detach = argc > 1 && !strcmp(argv[1], "-d");
	char err[200];

	if (argc != (detach ? 3 : 2)) {
		monitor_printf(s, "Error: usage: migrate [-d] \"tcp:HOST:PORT\"\n");
		return;
	}
	if (migration_start(m->vm, argv[detach ? 2 : 1], err, sizeof(err)) < 0) {
		monitor_printf(s, "Error: %s\n", err);
		return;
	}
	if (detach)
		return;
	m->waiter = s;
	monitor_session_hold(s);
	m->progress_timer = evloop_add_timer(&m->vm->loop, PROGRESS_MS, PROGRESS_MS, mig_progress, m);
}

/*
 * even_after_go: tern is exiting. A user's cancel once GO is on its way does nothing: it would
 * cut the wait for the destination's TAKEN, and the source could not tell whether the guest
 * runs there now. Decided under the lock that the source takes to send GO.
 */
static void mig_cancel(struct migration *m, bool even_after_go)
{
	uint64_t one = 1;

	pthread_mutex_lock(&m->lock);
	if (m->go_sent && !even_after_go) {
		pthread_mutex_unlock(&m->lock);
		return;
	}
	__atomic_store_n(&m->cancel, true, __ATOMIC_RELEASE);
	if (write(m->cancel_fd, &one, sizeof(one)) < 0)
		perrorf("migration: cancel");
	/* A thread blocked in send or recv wakes up with an error. */
	if (m->conn_fd >= 0)
		shutdown(m->conn_fd, SHUT_RDWR);
	pthread_mutex_unlock(&m->lock);
}

int migration_cancel(struct vm *vm, char *err, size_t errlen)
{
	struct migration *m = vm->migration;

	if (__atomic_load_n(&m->incoming, __ATOMIC_ACQUIRE)) {
		snprintf(err, errlen, "this side waits for an incoming migration; quit to give up");
		return -1;
	}
	if (mig_busy(m))
		mig_cancel(m, false);
	return 0;
}

static void cmd_migrate_cancel(struct mon_session *s, int argc, char **argv)
{
	char err[100];

	if (migration_cancel(monitor_session_vm(s), err, sizeof(err)) < 0)
		monitor_printf(s, "Error: %s\n", err);
}

/* The parameters that migrate_set_parameter takes, in QEMU's names, and their ranges. */
enum { P_DOWNTIME, P_THROTTLE_INITIAL, P_THROTTLE_INCREMENT, P_THROTTLE_MAX, P_BANDWIDTH };
static const struct mig_param {
	const char *name, *unit;
	size_t offset;		/* of a uint64_t in struct migration */
	uint64_t min, max;
} mig_params[] = {
	[P_DOWNTIME] = { "downtime-limit", " ms", offsetof(struct migration, downtime_limit_ms),
			 0, 2000000 },
	[P_THROTTLE_INITIAL] = { "cpu-throttle-initial", "",
				 offsetof(struct migration, throttle_initial), 1, 99 },
	[P_THROTTLE_INCREMENT] = { "cpu-throttle-increment", "",
				   offsetof(struct migration, throttle_increment), 1, 99 },
	[P_THROTTLE_MAX] = { "max-cpu-throttle", "", offsetof(struct migration, throttle_max), 1,
			     99 },
	[P_BANDWIDTH] = { "max-bandwidth", " bytes/second",
			  offsetof(struct migration, max_bandwidth), 0, UINT64_MAX },
};

_Static_assert(ARRAY_SIZE(mig_params) == MIG_PARAM_COUNT, "migration_info's param[]");

const char *migration_parameter_name(size_t n)
{
	return mig_params[n].name;
}

static uint64_t *mig_param(struct migration *m, const struct mig_param *p)
{
	return (uint64_t *)((char *)m + p->offset);
}

/* As QEMU's info migrate_parameters words them. */
static void print_parameters(struct mon_session *s, const struct migration_info *i)
{
	for (size_t n = 0; n < ARRAY_SIZE(mig_params); n++)
		monitor_printf(s, "%s: %llu%s\n", mig_params[n].name,
			       (unsigned long long)i->param[n], mig_params[n].unit);
}

static void cmd_info_migrate(struct mon_session *s, int argc, char **argv)
{
	struct migration_info i;

	migration_query(monitor_session_vm(s), &i);
	monitor_printf(s, "Migration status: %s\n", i.status);
	if (!strcmp(i.status, "failed") || !strcmp(i.status, "cancelled"))
		monitor_printf(s, "error: %s\n", i.error);
	if (strcmp(i.status, "none")) {
		monitor_printf(s, "total time: %.3f ms\n", i.total_ms);
		if (!i.incoming && !strcmp(i.status, "completed")) {
			if (i.over_limit)
				monitor_printf(s, "note: %s\n", OVER_LIMIT_NOTE);
			monitor_printf(s, "downtime: %.3f ms\n", i.downtime_ms);
		} else if (!i.incoming)
			monitor_printf(s, "expected downtime: %.3f ms\n", i.expected_downtime_ms);
		monitor_printf(s, "setup: %.3f ms\n", i.setup_ms);
		monitor_printf(s, "transferred ram: %llu kbytes\n",
			       (unsigned long long)(i.transferred >> 10));
		if (i.total_ms > 0)
			monitor_printf(s, "throughput: %.2f mbps\n",
				       i.transferred * 8.0 / (i.total_ms / 1e3) / 1e6);
		monitor_printf(s, "remaining ram: %llu kbytes\n",
			       (unsigned long long)(i.remaining >> 10));
		monitor_printf(s, "total ram: %llu kbytes\n", (unsigned long long)(i.total >> 10));
		monitor_printf(s, "duplicate: %llu pages\n", (unsigned long long)i.zero_pages);
		monitor_printf(s, "normal: %llu pages\n", (unsigned long long)i.normal_pages);
		monitor_printf(s, "normal bytes: %llu kbytes\n",
			       (unsigned long long)(i.normal_pages * 4));
		monitor_printf(s, "dirty sync count: %llu\n", (unsigned long long)i.rounds);
		if (i.throttle_pct)
			monitor_printf(s, "cpu throttle percentage: %u\n", i.throttle_pct);
	}
	print_parameters(s, &i);
}

static void cmd_info_migrate_parameters(struct mon_session *s, int argc, char **argv)
{
	struct migration_info i;

	migration_query(monitor_session_vm(s), &i);
	print_parameters(s, &i);
}

/* QEMU's names, with _ for - as QEMU's older spelling. */
static bool param_name_is(const char *name, const char *want)
{
	for (; *name && *want; name++, want++)
		if (*name != *want && !(*name == '_' && *want == '-'))
			return false;
	return *name == *want;
}

static int param_find(const char *name)
{
	for (size_t k = 0; k < ARRAY_SIZE(mig_params); k++)
		if (param_name_is(name, mig_params[k].name))
			return k;
	return -1;
}

int migration_set_parameters(struct vm *vm, int n, const char *const *names,
			     const uint64_t *vals, char *err, size_t errlen)
{
	struct migration *m = vm->migration;
	uint64_t v[MIG_PARAM_COUNT];
	int k;

	pthread_mutex_lock(&m->lock);
	for (k = 0; k < MIG_PARAM_COUNT; k++)
		v[k] = *mig_param(m, &mig_params[k]);
	pthread_mutex_unlock(&m->lock);
	for (int i = 0; i < n; i++) {
		k = param_find(names[i]);
		if (k < 0) {
			snprintf(err, errlen,
				 "unknown parameter '%s' (info migrate_parameters lists them)",
				 names[i]);
			return -1;
		}
		if (vals[i] < mig_params[k].min || vals[i] > mig_params[k].max) {
			snprintf(err, errlen,
				 "Parameter '%s' expects an integer in the range of %llu to %llu%s",
				 mig_params[k].name, (unsigned long long)mig_params[k].min,
				 (unsigned long long)mig_params[k].max, mig_params[k].unit);
			return -1;
		}
		v[k] = vals[i];
	}
	/* Else the brake would start above its maximum, and then go down. */
	if (v[P_THROTTLE_MAX] < v[P_THROTTLE_INITIAL]) {
		snprintf(err, errlen, "max-cpu-throttle %llu is below cpu-throttle-initial %llu",
			 (unsigned long long)v[P_THROTTLE_MAX],
			 (unsigned long long)v[P_THROTTLE_INITIAL]);
		return -1;
	}
	/* All or none, as QEMU's migrate-set-parameters. */
	pthread_mutex_lock(&m->lock);
	for (k = 0; k < MIG_PARAM_COUNT; k++)
		*mig_param(m, &mig_params[k]) = v[k];
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static void cmd_migrate_set_parameter(struct mon_session *s, int argc, char **argv)
{
	uint64_t v;
	char err[160];

	if (argc != 3) {
		monitor_printf(s, "Error: usage: migrate_set_parameter NAME VALUE (info migrate_parameters lists them)\n");
		return;
	}
	if (parse_size(argv[2], 1, &v) < 0) {
		monitor_printf(s, "Error: %s: '%s' is not a number\n", argv[1], argv[2]);
		return;
	}
	if (migration_set_parameters(monitor_session_vm(s), 1, (const char *const *)&argv[1], &v,
				     err, sizeof(err)) < 0)
		monitor_printf(s, "Error: %s\n", err);
}

int migration_set_capability(struct vm *vm, const char *name, bool on, char *err,
			     size_t errlen)
{
	struct migration *m = vm->migration;

	if (!param_name_is(name, "auto-converge")) {
		snprintf(err, errlen, "unknown capability '%s' (tern has auto-converge)", name);
		return -1;
	}
	/* As QEMU: what a running migration does is settled at its start. */
	if (mig_busy(m)) {
		snprintf(err, errlen, "There's a migration process in progress");
		return -1;
	}
	m->auto_converge = on;
	return 0;
}

static void cmd_migrate_set_capability(struct mon_session *s, int argc, char **argv)
{
	char err[100];
	bool on = argc == 3 && !strcmp(argv[2], "on");

	if (argc != 3 || (!on && strcmp(argv[2], "off"))) {
		monitor_printf(s, "Error: usage: migrate_set_capability auto-converge on|off\n");
		return;
	}
	if (migration_set_capability(monitor_session_vm(s), argv[1], on, err, sizeof(err)) < 0)
		monitor_printf(s, "Error: %s\n", err);
}

static void cmd_info_migrate_capabilities(struct mon_session *s, int argc, char **argv)
{
	struct migration_info i;

	migration_query(monitor_session_vm(s), &i);
	monitor_printf(s, "auto-converge: %s\n", i.auto_converge ? "on" : "off");
}

void migration_query(struct vm *vm, struct migration_info *info)
{
	struct migration *m = vm->migration;

	pthread_mutex_lock(&m->lock);
	info->status = mig_status_name(m->status);
	snprintf(info->error, sizeof(info->error), "%s", m->error);
	info->incoming = m->incoming;
	info->total_ms = (m->st.total_ns ? m->st.total_ns
		: m->status == MIG_NONE ? 0 : now_ns() - m->st.start_ns) / 1e6;
	info->downtime_ms = m->st.downtime_ns / 1e6;
	info->setup_ms = m->st.setup_ns / 1e6;
	info->expected_downtime_ms = m->st.expected_downtime_ns / 1e6;
	info->transferred = m->st.transferred;
	info->remaining = m->st.remaining;
	info->total = vm->ram_size;
	info->zero_pages = m->st.zero_pages;
	info->normal_pages = m->st.normal_pages;
	info->rounds = m->st.rounds;
	info->throttle_pct = m->throttle_pct;
	info->over_limit = m->st.over_limit;
	info->auto_converge = m->auto_converge;
	for (size_t n = 0; n < ARRAY_SIZE(mig_params); n++)
		info->param[n] = *mig_param(m, &mig_params[n]);
	pthread_mutex_unlock(&m->lock);
}

static int mig_listen(struct migration *m, const char *uri, char *err, size_t errlen)
{
	if (mig_uri_parse(uri, &m->uri, err, errlen) < 0)
		return -1;
	m->listen_fd = mig_uri_listen(&m->uri, err, errlen);
	if (m->listen_fd < 0)
		return -1;
	m->incoming = true;
	if (mig_start_thread(m, mig_dest_thread, &m->in_thread) < 0) {
		/* As before: a later migrate_incoming may try again. */
		snprintf(err, errlen, "%s", m->error);
		close(m->listen_fd);
		m->listen_fd = -1;
		m->incoming = false;
		return -1;
	}
	m->in_started = true;
	return 0;
}

int migration_listen(struct vm *vm, const char *uri, char *err, size_t errlen)
{
	struct migration *m = vm->migration;

	if (!vm->cfg->incoming || strcmp(vm->cfg->incoming, "defer")) {
		snprintf(err, errlen, "migrate_incoming needs tern started with -incoming defer");
		return -1;
	}
	/* QEMU's words: a second migrate_incoming, or one after the guest arrived. */
	if (vm_state(vm) != RUN_STATE_INMIGRATE || m->in_started) {
		snprintf(err, errlen, "the incoming migration has already been started");
		return -1;
	}
	return mig_listen(m, uri, err, errlen);
}

static void cmd_migrate_incoming(struct mon_session *s, int argc, char **argv)
{
	char err[256];

	if (argc != 2)
		monitor_printf(s, "Error: usage: migrate_incoming \"tcp:0:4444\"\n");
	else if (migration_listen(monitor_session_vm(s), argv[1], err, sizeof(err)) < 0)
		monitor_printf(s, "Error: %s\n", err);
}

void migration_shutdown(struct vm *vm)
{
	struct migration *m = vm->migration;

	if (!m)
		return;
	/* Wakes what waits on the streams or an accept; an incoming thread not yet reading stops. */
	if (m->thread_started || m->in_started)
		mig_cancel(m, true);
	mig_reap(m);
	if (m->in_started) {
		/* Exiting before the incoming thread wakes: it takes no guest now, and says so to
		 * the source, which needs our writing side open to hear it (dst_decline). */
		pthread_mutex_lock(&vm->lock);
		vm->exiting = true;
		pthread_mutex_unlock(&vm->lock);
		pthread_mutex_lock(&m->lock);
		if (m->in_fd >= 0)
			shutdown(m->in_fd, SHUT_RD);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->in_thread, NULL);
		m->in_started = false;
	}
}

static void mig_destroy(void *opaque)
{
	struct migration *m = opaque;

	migration_shutdown(m->vm);
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (m->progress_timer >= 0) {
		evloop_del(&m->vm->loop, m->progress_timer);
		close(m->progress_timer);
	}
	if (m->throttle_timer >= 0) {
		evloop_del(&m->vm->loop, m->throttle_timer);
		close(m->throttle_timer);
	}
	close(m->cancel_fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct device_ops mig_ops = {
	.name = "migration",
	.destroy = mig_destroy,
};

const char *migration_reclaim(struct vm *vm, bool force)
{
	struct migration *m = vm->migration;

	if (m && __atomic_load_n(&m->snapshot_done, __ATOMIC_ACQUIRE))
		return NULL;
	if (!m || !__atomic_load_n(&m->unconfirmed, __ATOMIC_ACQUIRE))
		return "the guest is migrated away: it runs on the other side";
	if (!force)
		return "the destination never confirmed that it took the guest, and may run it: "
		       "if it does not, a forced cont (cont -f) runs it here";
	__atomic_store_n(&m->unconfirmed, false, __ATOMIC_RELEASE);
	/* As a destination's: its NIC announces it, the bridge may have learned another port. */
	mig_resume_devices(vm);
	mig_post_migrate(vm);
	return NULL;
}

int migration_init(struct vm *vm)
{
	struct migration *m = calloc(1, sizeof(*m));
	struct monitor *mon = vm->monitor;

	if (!m) {
		perrorf("migration: calloc");
		return -1;
	}
	*m = (struct migration){
		.vm = vm,
		.downtime_limit_ms = DEFAULT_DOWNTIME_MS,
		.max_rounds = DEFAULT_MAX_ROUNDS,
		.throttle_initial = 20,		/* QEMU's defaults */
		.throttle_increment = 10,
		.throttle_max = 99,
		.progress_timer = -1,
		.listen_fd = -1,
		.conn_fd = -1,
		.in_fd = -1,
	};
	pthread_mutex_init(&m->lock, NULL);
	m->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->cancel_fd < 0) {
		perrorf("migration: eventfd");
		free(m);
		return -1;
	}
	if (vm_register_device(vm, &mig_ops, m) < 0) {
		close(m->cancel_fd);
		free(m);
		return -1;
	}
	vm->migration = m; /* mig_destroy frees it from here on */
	if (mig_throttle_init(m) < 0)
		return -1;
	monitor_add_command(mon, "migrate", "[-d] \"URI\"",
			    "migrate the guest to URI (tcp:HOST:PORT, unix:PATH, file:PATH)", cmd_migrate);
	monitor_add_command(mon, "migrate_cancel", NULL, "cancel the current migration",
			    cmd_migrate_cancel);
	monitor_add_command(mon, "migrate_set_parameter", "NAME VALUE",
			    "set a migration parameter (info migrate_parameters lists them)",
			    cmd_migrate_set_parameter);
	monitor_add_command(mon, "migrate_set_capability", "auto-converge on|off",
			    "slow down a guest that dirties memory faster than the link carries it",
			    cmd_migrate_set_capability);
	monitor_add_command(mon, "migrate_incoming", "\"URI\"",
			    "wait for a migration on URI (with -incoming defer)", cmd_migrate_incoming);
	monitor_add_command(mon, "info migrate", NULL, "show migration status", cmd_info_migrate);
	monitor_add_command(mon, "info migrate_parameters", NULL, "show the migration parameters",
			    cmd_info_migrate_parameters);
	monitor_add_command(mon, "info migrate_capabilities", NULL,
			    "show the migration capabilities", cmd_info_migrate_capabilities);
	return 0;
}

int migration_incoming(struct vm *vm, const char *uri)
{
	char err[256];

	if (!strcmp(uri, "defer"))
		return 0;
	if (mig_listen(vm->migration, uri, err, sizeof(err)) < 0) {
		errorf("-incoming: %s", err);
		return -1;
	}
	return 0;
}
