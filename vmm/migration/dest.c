/*
 * The destination side (-incoming): check the hello, take pages and device state, load it,
 * say READY, and resume the guest only on GO. On any failure the guest never runs here: the
 * reason is printed and tern exits non-zero, discarding what it got.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/migration/internal.h"
#include "vmm/util.h"
#include "vmm/vm.h"

struct dst {
	struct migration *m;
	struct vm *vm;
	struct mig_stream s;
	struct mig_ram ram;
	bool interactive;
	enum vm_runstate arrive;	/* GO's word: how the guest was at the source */
	void *devs;
	int devs_len;
	char err[256];
};

static int dst_fail(struct dst *c, const char *what)
{
	snprintf(c->err, sizeof(c->err), "%s", what);
	return -1;
}

/* Reads a small record's payload into a fresh buffer (NUL-terminated). */
static void *dst_payload(struct dst *c, const struct rec_hdr *h)
{
	char *p = malloc(h->len + 1);

	if (!p || stream_get_payload(&c->s, h, p) < 0) {
		free(p);
		return NULL;
	}
	p[h->len] = '\0';
	return p;
}

/* Takes a record that must carry nothing. */
static int dst_empty(struct dst *c, const struct rec_hdr *h)
{
	return stream_get_payload(&c->s, h, NULL) < 0 ? dst_fail(c, c->s.err) : 0;
}

static int dst_reply(struct dst *c, uint32_t type, const char *text)
{
	if (!c->interactive)
		return 0;
	if (stream_put(&c->s, type, 0, text, text ? strlen(text) + 1 : 0) < 0 ||
	    stream_flush(&c->s) < 0)
		return dst_fail(c, c->s.err);
	return 0;
}

static int dst_hello(struct dst *c)
{
	struct rec_hdr h;
	char why[200];
	void *desc;
	int r;

	if (stream_get_header(&c->s) < 0 || stream_get(&c->s, &h) < 0)
		return dst_fail(c, c->s.err);
	if (h.type != REC_HELLO)
		return dst_fail(c, "corrupt stream: it does not start with a hello");
	desc = dst_payload(c, &h);
	if (!desc)
		return dst_fail(c, c->s.err);
	r = mig_check_description(c->vm, desc, h.len, why, sizeof(why));
	free(desc);
	if (r < 0) {
		dst_reply(c, REC_REFUSE, why);
		snprintf(c->err, sizeof(c->err), "refused the source: %s", why);
		return -1;
	}
	return dst_reply(c, REC_ACCEPT, NULL);
}

static int dst_load(struct dst *c)
{
	char why[200];

	if (!c->devs)
		return dst_fail(c, "corrupt stream: no device state before the end");
	if (mig_load_devices(c->vm, c->devs, c->devs_len, why, sizeof(why)) < 0) {
		dst_reply(c, REC_ERROR, why);
		return dst_fail(c, why);
	}
	return dst_reply(c, REC_READY, NULL);
}

/* Everything up to and including END; then the state is loaded. */
static int dst_receive(struct dst *c)
{
	struct rec_hdr h;

	for (;;) {
		if (stream_get(&c->s, &h) < 0)
			return dst_fail(c, c->s.err);
		switch (h.type) {
		case REC_PAGES:
		case REC_ZERO:
			if (ram_receive(&c->ram, &c->s, &h) < 0)
				return dst_fail(c, c->s.err);
			break;
		case REC_SYNC:
			if (dst_empty(c, &h) < 0 || dst_reply(c, REC_SYNCED, NULL) < 0)
				return -1;
			break;
		case REC_ROUND:
			if (dst_empty(c, &h) < 0)
				return -1;
			pthread_mutex_lock(&c->m->lock);
			c->m->st.rounds = h.arg + 1;
			pthread_mutex_unlock(&c->m->lock);
			break;
		case REC_DEVICES:
			free(c->devs);
			c->devs = dst_payload(c, &h);
			c->devs_len = h.len;
			if (!c->devs)
				return dst_fail(c, c->s.err);
			break;
		case REC_END:
			return dst_empty(c, &h) < 0 ? -1 : dst_load(c);
		default:
			snprintf(c->err, sizeof(c->err), "corrupt stream: unexpected record type %u",
				 h.type);
			return -1;
		}
	}
}

/* A snapshot ends with GO as well: it carries the run state the guest was saved in. */
static int dst_wait_go(struct dst *c)
{
	struct rec_hdr h;
	const char *gone = "the source went away before handing the guest over";

	if (stream_get(&c->s, &h) < 0)
		return dst_fail(c, c->interactive ? gone : c->s.err);
	if (h.type != REC_GO) {
		snprintf(c->err, sizeof(c->err), "corrupt stream: expected go, got record type %u",
			 h.type);
		return -1;
	}
	if (stream_get_payload(&c->s, &h, NULL) < 0)
		return dst_fail(c, c->s.err);
	if (h.arg > GO_PRELAUNCH) {
		snprintf(c->err, sizeof(c->err), "corrupt stream: go with unknown run state %llu",
			 (unsigned long long)h.arg);
		return -1;
	}
	c->arrive = h.arg == GO_RUNNING	  ? RUN_STATE_RUNNING
		    : h.arg == GO_PRELAUNCH ? RUN_STATE_PRELAUNCH
					    : RUN_STATE_PAUSED;
	return 0;
}

/*
 * Says TAKEN, the source's proof that the guest is ours, unless tern is already exiting: then
 * dst_decline tells the source to keep the guest. An exit asked for after this check ends a
 * guest that has arrived here.
 */
static int dst_take(struct dst *c)
{
	if (!c->interactive || c->s.version < MIG_VERSION_TAKEN)
		return 0;
	return vm_exiting(c->vm) ? -1 : dst_reply(c, REC_TAKEN, NULL);
}

/*
 * After READY the source may have sent GO and waits, the guest paused, for our word. Once we
 * know we will never run the guest, ERROR says so, and the source runs it on: our hanging up
 * would prove nothing to it (a relay between us may hang up too, while we run the guest).
 */
static int dst_decline(struct dst *c)
{
	/* Not the end of stream that the exit made of our reading side. */
	if (vm_exiting(c->vm))
		dst_fail(c, "tern is exiting: the guest stays at the source");
	if (c->interactive && c->s.version >= MIG_VERSION_TAKEN &&
	    stream_put(&c->s, REC_ERROR, 0, c->err, strlen(c->err) + 1) == 0)
		stream_flush(&c->s);
	return -1;
}

static void dst_resume(struct dst *c)
{
	/* The guest first: the devices take up their queues and announce it beside it. A guest
	 * the user had stopped, there or here (-S, stop), stays stopped, as in QEMU: cont runs
	 * it. */
	vm_arrive(c->vm, c->arrive);
	/* The news next, before the devices' round trip through the I/O thread, which also
	 * serves the monitors: who hears RESUME and asks finds the migration completed, and the
	 * guest free to move on. */
	__atomic_store_n(&c->m->incoming, false, __ATOMIC_RELEASE);
	mig_set_status(c->m, MIG_COMPLETED);
	mig_post_migrate(c->vm);
}

struct inject_call {
	const struct device *dev;
	const void *buf;
	size_t len;
};

static void inject_on_io_thread(void *arg)
{
	struct inject_call *i = arg;

	i->dev->ops->inject(i->dev->opaque, i->buf, i->len);
}

/* The k-th device that takes forwarded frames (as the source counts them), or NULL. */
static const struct device *dst_inject_device(struct vm *vm, uint64_t k)
{
	for (int i = 0; i < vm->ndev; i++)
		if (vm->dev[i].ops->inject && !k--)
			return &vm->dev[i];
	return NULL;
}

/* After GO: frames the source still received, until it hangs up. */
static void dst_forwarded(struct dst *c)
{
	uint8_t *buf = c->interactive ? malloc(MIG_FRAME_MAX) : NULL;
	struct rec_hdr h;

	while (buf && stream_get(&c->s, &h) == 0) {
		const struct device *d = dst_inject_device(c->vm, h.arg);
		struct inject_call i = { d, buf, h.len };

		if (h.type != REC_FRAME || h.len > MIG_FRAME_MAX ||
		    stream_get_payload(&c->s, &h, buf) < 0)
			break;
		if (d)
			evloop_call(&c->vm->loop, inject_on_io_thread, &i);
	}
	free(buf);
}

static int dst_run(struct dst *c)
{
	int fd;

	if (c->m->uri.kind == MIG_FILE) {
		fd = c->m->listen_fd;
		c->m->listen_fd = -1;
		/* A FIFO's writer may come late, or never: tern's exit ends the wait. */
		if (mig_uri_file_ready(fd, c->m->cancel_fd, c->err, sizeof(c->err)) < 0) {
			close(fd);
			return -1;
		}
	} else {
		fd = mig_uri_accept(c->m->listen_fd, c->m->cancel_fd, c->err, sizeof(c->err));
		close(c->m->listen_fd);
		c->m->listen_fd = -1;
		if (c->m->uri.kind == MIG_UNIX)
			unlink(c->m->uri.path);
	}
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&c->m->lock);
	c->m->in_fd = fd;
	c->m->st.start_ns = now_ns();
	pthread_mutex_unlock(&c->m->lock);
	/* tern is exiting: its shutdown may have come before in_fd was there to shut down. */
	if (__atomic_load_n(&c->m->cancel, __ATOMIC_ACQUIRE))
		return dst_fail(c, "tern is exiting");
	if (stream_init(&c->s, fd) < 0 || ram_init(&c->ram, c->vm) < 0)
		return dst_fail(c, "out of memory");
	mig_set_status(c->m, MIG_ACTIVE);
	if (dst_hello(c) < 0 || dst_receive(c) < 0)
		return -1;
	if (dst_wait_go(c) < 0 || dst_take(c) < 0)
		return dst_decline(c);
	pthread_mutex_lock(&c->m->lock);
	c->m->st.total_ns = now_ns() - c->m->st.start_ns;
	c->m->st.transferred = c->s.received;
	c->m->st.zero_pages = c->ram.zero_pages;
	c->m->st.normal_pages = c->ram.normal_pages;
	pthread_mutex_unlock(&c->m->lock);
	dst_resume(c);
	/* The guest runs here now, and may move on while late frames still come in. */
	dst_forwarded(c);
	return 0;
}

void *mig_dest_thread(void *arg)
{
	struct dst c = { .m = arg, .vm = ((struct migration *)arg)->vm };

	c.interactive = c.m->uri.kind != MIG_FILE;
	if (dst_run(&c) < 0) {
		char why[320];

		mig_fail(c.m, "%s", c.err);
		snprintf(why, sizeof(why), "incoming migration failed: %s", c.err);
		vm_request_exit(c.vm, 1, "host-error", why);
	}
	free(c.devs);
	ram_free(&c.ram);
	stream_free(&c.s);
	/* Only what is ours: the guest may be migrating on from here already. */
	pthread_mutex_lock(&c.m->lock);
	if (c.m->in_fd >= 0)
		close(c.m->in_fd);
	c.m->in_fd = -1;
	pthread_mutex_unlock(&c.m->lock);
	return NULL;
}
