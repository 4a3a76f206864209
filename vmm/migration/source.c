/*
 * The source side: hello, rounds of dirty pages, stop-and-copy, hand-over. Until the
 * destination has said READY and we have sent GO, any failure resumes the guest here; after
 * GO only the destination's word that it will not take the guest does.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "vmm/migration/internal.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define ANSWER_TIMEOUT_MS 10000
/* Catching up may mean reading megabytes of socket buffers over a slow link. */
#define CATCH_UP_TIMEOUT_MS 60000
/* How long frames that still reach this side are forwarded after the hand-over. */
#define FORWARD_MS 1000
#define FORWARD_QUIET_MS 200
#define FORWARD_FDS 8

struct src {
	struct migration *m;
	struct vm *vm;
	struct mig_stream s;
	struct mig_ram ram;
	bool interactive;	/* a socket with a destination that answers (not a file) */
	bool paused, handed_over;
	enum vm_runstate before;	/* the run state that a failure goes back to */
	/* This round: when it began, s.sent then, its pages, and those sent before it. */
	uint64_t round_start, round_sent, round_pages, pages_before;
	uint64_t dirty;		/* pages, at the last sync */
	char err[256];
};

static bool src_cancelled(struct src *c)
{
	return __atomic_load_n(&c->m->cancel, __ATOMIC_ACQUIRE);
}

static int src_check_cancel(struct src *c)
{
	if (!src_cancelled(c))
		return 0;
	snprintf(c->err, sizeof(c->err), "cancelled");
	return -1;
}

/* A parameter: migrate_set_parameter may change it meanwhile, and it applies at once. */
static uint64_t src_param(struct src *c, const uint64_t *p)
{
	uint64_t v;

	pthread_mutex_lock(&c->m->lock);
	v = *p;
	pthread_mutex_unlock(&c->m->lock);
	return v;
}

/*
 * Reads the destination's answer: want (0), its ERROR (-2), or -1 for anything else, a REFUSE
 * included: after GO only an ERROR is its word that it will never run the guest. A REFUSE or
 * an ERROR is shown with its reason. The timeout holds for every read, not the first byte
 * only: an answer torn off mid-way (a link that went silent) would wait for ever, the guest
 * paused during stop-and-copy.
 */
static int src_answer(struct src *c, uint32_t want, const char *what, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000 };
	struct rec_hdr h;
	char reason[256] = "";

	if (setsockopt(c->s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		snprintf(c->err, sizeof(c->err), "waiting for %s: SO_RCVTIMEO: %s", what,
			 strerror(errno));
		return -1;
	}
	if (stream_wait(&c->s, timeout_ms) < 0 || stream_get(&c->s, &h) < 0) {
		snprintf(c->err, sizeof(c->err), "waiting for %s: %s", what, c->s.err);
		return -1;
	}
	if ((h.type == REC_REFUSE || h.type == REC_ERROR) && h.len < sizeof(reason) &&
	    stream_get_payload(&c->s, &h, reason) == 0) {
		/* Shown as one line on the source's terminal: no escapes from the far side. */
		const char *why = !reason[0] ? "(no reason given)"
					     : printable_or(reason, "(a malformed reason)");

		snprintf(c->err, sizeof(c->err), "destination %s: %s",
			 h.type == REC_REFUSE ? "refused" : "failed", why);
		return h.type == REC_ERROR ? -2 : -1;
	}
	if (h.type != want || stream_get_payload(&c->s, &h, NULL) < 0) {
		snprintf(c->err, sizeof(c->err), "waiting for %s: unexpected answer (record type %u)",
			 what, h.type);
		return -1;
	}
	return 0;
}

static int src_hello(struct src *c)
{
	int len;
	void *desc = mig_describe(c->vm, &len);
	int r;

	if (!desc) {
		snprintf(c->err, sizeof(c->err), "cannot describe this machine");
		return -1;
	}
	r = stream_put_header(&c->s) || stream_put(&c->s, REC_HELLO, 0, desc, len) ||
	    stream_flush(&c->s);
	free(desc);
	if (r) {
		snprintf(c->err, sizeof(c->err), "%s", c->s.err);
		return -1;
	}
	/*
	 * While the destination checks the hello: dirty logging on, and the pages the guest ever
	 * touched found. Nothing is sent before it accepts; a refusal turns the logging off again
	 * (src_end), as any failure does.
	 */
	if (ram_track(&c->ram, true, c->err, sizeof(c->err)) < 0 ||
	    ram_add_touched(&c->ram, c->err, sizeof(c->err)) < 0)
		return -1;
	if (c->interactive &&
	    src_answer(c, REC_ACCEPT, "the destination's hello", ANSWER_TIMEOUT_MS) < 0)
		return -1;
	/* A cancel that came while the connection was being made found no socket to shut down. */
	return src_check_cancel(c);
}

static void src_stats(struct src *c, uint64_t remaining_pages)
{
	struct mig_stats *st = &c->m->st;

	pthread_mutex_lock(&c->m->lock);
	st->transferred = c->s.sent;
	st->remaining = remaining_pages * MIG_PAGE_SIZE;
	st->zero_pages = c->ram.zero_pages;
	st->normal_pages = c->ram.normal_pages;
	if (st->bandwidth)
		st->expected_downtime_ns = st->remaining * 1000000000ULL / st->bandwidth;
	pthread_mutex_unlock(&c->m->lock);
}

/*
 * Between records: progress for info migrate, stop at a cancel, and, while the guest runs,
 * keep to max-bandwidth over the round so far (the sleep ends at a cancel too). The
 * stop-and-copy goes at full speed: the guest waits for it.
 */
static int src_pace(void *arg)
{
	struct src *c = arg;
	uint64_t bw = src_param(c, &c->m->max_bandwidth), due, now;
	uint64_t done = c->ram.zero_pages + c->ram.normal_pages - c->pages_before;

	src_stats(c, c->round_pages > done ? c->round_pages - done : 0);
	if (bw && !c->paused) {
		due = c->round_start + (c->s.sent - c->round_sent) * 1000000000ULL / bw;
		now = now_ns();
		if (due > now)
			poll(&(struct pollfd){ .fd = c->m->cancel_fd, .events = POLLIN }, 1,
			     (int)MIN((due - now) / 1000000 + 1, (uint64_t)INT_MAX));
	}
	return src_cancelled(c) ? -1 : 0;
}

/* What src_pace() measures from: todo, of pages, is what this round sends. */
static void src_round_begin(struct src *c, uint64_t pages)
{
	c->round_start = now_ns();
	c->round_sent = c->s.sent;
	c->round_pages = pages;
	c->pages_before = c->ram.zero_pages + c->ram.normal_pages;
}

/* Sends what todo holds, measuring the link's bandwidth on the way. */
static int src_send_round(struct src *c, uint64_t round)
{
	struct mig_stats *st = &c->m->st;
	uint64_t dt;

	src_round_begin(c, ram_todo_count(&c->ram));
	if (ram_send(&c->ram, &c->s, src_pace, c) < 0 ||
	    stream_put(&c->s, REC_ROUND, round, NULL, 0) < 0 || stream_flush(&c->s) < 0) {
		snprintf(c->err, sizeof(c->err), "%s", c->s.err);
		return -1;
	}
	dt = now_ns() - c->round_start;
	pthread_mutex_lock(&c->m->lock);
	/* Small rounds say little about the link; keep the last good figure. */
	if (c->s.sent - c->round_sent >= (256 << 10) && dt)
		st->bandwidth = (c->s.sent - c->round_sent) * 1000000000ULL / dt;
	else if (!st->bandwidth)
		st->bandwidth = 1ULL << 30;
	st->rounds = round + 1;
	pthread_mutex_unlock(&c->m->lock);
	return 0;
}

/* Takes the dirty log into todo; *fits: sending it fits the downtime limit, or rounds ran out. */
static int src_sync(struct src *c, uint64_t round, bool *fits)
{
	struct migration *m = c->m;
	uint64_t limit_ms = src_param(c, &m->downtime_limit_ms);
	int64_t dirty = ram_sync(&c->ram, c->err, sizeof(c->err));

	if (dirty < 0)
		return -1;
	c->dirty = dirty;
	src_stats(c, dirty);
	if (src_check_cancel(c) < 0)
		return -1;
	/* st.bandwidth: only this thread writes it. */
	*fits = dirty * MIG_PAGE_SIZE * 1000 / m->st.bandwidth <= limit_ms;
	if (!*fits && round >= m->max_rounds) {
		pthread_mutex_lock(&m->lock);
		m->st.over_limit = *fits = true;
		pthread_mutex_unlock(&m->lock);
	}
	return 0;
}

/*
 * The destination says when it has taken all that was sent: what still sits in the socket
 * buffers would otherwise be read while the guest is stopped. The guest runs meanwhile, so
 * however long that takes costs no downtime.
 */
static int src_catch_up(struct src *c)
{
	if (!c->interactive)
		return 0;
	if (stream_put(&c->s, REC_SYNC, 0, NULL, 0) < 0 || stream_flush(&c->s) < 0) {
		snprintf(c->err, sizeof(c->err), "%s", c->s.err);
		return -1;
	}
	return src_answer(c, REC_SYNCED, "the destination to catch up", CATCH_UP_TIMEOUT_MS);
}

/* Rounds until the rest fits the downtime limit, with the destination caught up. */
static int src_rounds(struct src *c)
{
	struct migration *m = c->m;
	uint64_t round = 0;
	bool fits;

	pthread_mutex_lock(&m->lock);
	m->st.setup_ns = now_ns() - m->st.start_ns;
	pthread_mutex_unlock(&m->lock);
	mig_set_status(m, MIG_ACTIVE);
	for (;;) {
		if (src_send_round(c, round++) < 0 || src_sync(c, round, &fits) < 0)
			return -1;
		if (!fits) {
			mig_throttle_check(m, c->dirty * MIG_PAGE_SIZE, c->s.sent - c->round_sent);
			continue;
		}
		/* What the guest dirtied while the destination caught up must fit as well. */
		if (src_catch_up(c) < 0 || src_sync(c, round, &fits) < 0)
			return -1;
		if (fits)
			return 0;
	}
}

/* Closes the stream's fd, taken from the cancel first: its number may be reused at once. */
static int src_close(struct src *c)
{
	int fd = c->s.fd;

	pthread_mutex_lock(&c->m->lock);
	c->m->conn_fd = -1;
	pthread_mutex_unlock(&c->m->lock);
	c->s.fd = -1;
	return fd < 0 ? 0 : close(fd);
}

/*
 * A write that failed on its way to the disk (a full disk, a lost NFS server) shows only in
 * fsync or close: until both succeeded the snapshot is not taken, and the guest goes on here.
 * A file that cannot be synced (EINVAL: /dev/null, a pipe) has nothing to lose.
 */
static int src_file_close(struct src *c)
{
	const char *what = "fsync";

	if (fsync(c->s.fd) == 0 || errno == EINVAL) {
		what = "close";
		if (src_close(c) == 0)
			return 0;
	}
	snprintf(c->err, sizeof(c->err), "file:%s: %s: %s", c->m->uri.path, what, strerror(errno));
	return -1;
}

/*
 * After GO: the destination's TAKEN says the guest is theirs; its ERROR, that it will never
 * run it there (it is exiting, or GO came corrupt or never came), and the guest goes on here.
 * Only an answer proves anything: an end of stream or a reset may come from a relay between
 * us (ssh -L, socat) or a middlebox while the destination runs the guest. Those, silence, or
 * our own cancel or quit cutting the wait short leave the guest paused here.
 */
static int src_taken(struct src *c)
{
	int r = src_answer(c, REC_TAKEN, "the destination to take the guest", ANSWER_TIMEOUT_MS);

	if (r == -2)
		c->handed_over = false;
	return r < 0 ? -1 : 0;
}

/*
 * The last moment a cancel keeps the guest here: after it, migrate_cancel does nothing. A
 * snapshot stays cancellable: a file takes no guest before it is whole.
 */
static int src_go_allowed(struct src *c)
{
	/*
	 * A guest that powered off or crashed just before the stop asked for tern's exit, whose
	 * cancel may not have come yet: it must not wake up at the destination.
	 */
	if (vm_exiting(c->vm)) {
		snprintf(c->err, sizeof(c->err), "tern is exiting: the guest is not handed over");
		return -1;
	}
	pthread_mutex_lock(&c->m->lock);
	c->m->go_sent = c->interactive && !src_cancelled(c);
	pthread_mutex_unlock(&c->m->lock);
	return src_check_cancel(c);
}

static int src_stop_and_copy(struct src *c)
{
	struct migration *m = c->m;
	uint64_t t_stop = now_ns();
	enum mig_go go;
	int64_t dirty;
	void *devs;
	int len, r;

	/* From here cont is refused and stop does nothing, as in QEMU: only this thread moves
	 * the guest on. */
	c->before = vm_enter_state(c->vm, RUN_STATE_FINISH_MIGRATE);
	go = c->before == RUN_STATE_RUNNING	 ? GO_RUNNING
	     : c->before == RUN_STATE_PRELAUNCH ? GO_PRELAUNCH
						 : GO_PAUSED;
	mig_throttle_stop(m);
	mig_pause_devices(c->vm);
	c->paused = true;
	dirty = ram_sync(&c->ram, c->err, sizeof(c->err));
	if (dirty < 0)
		return -1;
	src_round_begin(c, dirty);
	devs = mig_save_devices(c->vm, &len, c->err, sizeof(c->err));
	if (!devs)
		return -1;
	r = ram_send(&c->ram, &c->s, src_pace, c) || stream_put(&c->s, REC_DEVICES, 0, devs, len) ||
	    stream_put(&c->s, REC_END, 0, NULL, 0) || stream_flush(&c->s);
	free(devs);
	if (r) {
		snprintf(c->err, sizeof(c->err), "%s", c->s.err);
		return -1;
	}
	if (c->interactive &&
	    src_answer(c, REC_READY, "the destination to load the state", ANSWER_TIMEOUT_MS) < 0)
		return -1;
	if (src_go_allowed(c) < 0)
		return -1;
	/*
	 * A GO that could not be written never reached the destination whole: it discards what it
	 * got, and the guest goes on here. Once written, the guest is theirs. Its argument says
	 * how the user had it here: running, stopped, or not yet started (-S), which it stays
	 * there. A snapshot ends with it too, and is taken only once it is on the disk.
	 */
	if (stream_put(&c->s, REC_GO, go, NULL, 0) < 0 || stream_flush(&c->s) < 0) {
		snprintf(c->err, sizeof(c->err), "sending go: %s", c->s.err);
		return -1;
	}
	if (!c->interactive && src_file_close(c) < 0)
		return -1;
	c->handed_over = true;
	/* To GO, as QEMU counts it: the destination resumes the guest once it has sent TAKEN. */
	pthread_mutex_lock(&m->lock);
	m->st.downtime_ns = now_ns() - t_stop;
	pthread_mutex_unlock(&m->lock);
	if (c->interactive && src_taken(c) < 0)
		return -1;
	src_stats(c, 0);
	return 0;
}

/* Puts the guest back as the outcome wants it; the outcome itself is told at the very end. */
static void src_end(struct src *c, int r)
{
	struct migration *m = c->m;
	char ignored[64], why[sizeof(c->err)];

	/* As QEMU counts it: to the end of the hand-over, not the clean-up after it. */
	pthread_mutex_lock(&m->lock);
	m->st.total_ns = now_ns() - m->st.start_ns;
	pthread_mutex_unlock(&m->lock);
	mig_throttle_stop(m);
	ram_track(&c->ram, false, ignored, sizeof(ignored));
	if (c->handed_over) {
		/*
		 * After a snapshot the guest may go on here (cont), and its devices with it: they
		 * go on before the state allows cont, or cont would find them paused.
		 */
		__atomic_store_n(&m->snapshot_done, !c->interactive, __ATOMIC_RELEASE);
		__atomic_store_n(&m->unconfirmed, c->interactive && r < 0, __ATOMIC_RELEASE);
		if (!c->interactive)
			mig_resume_devices(c->vm);
		vm_enter_state(c->vm, RUN_STATE_POSTMIGRATE);
		if (r < 0) {
			snprintf(why, sizeof(why), "%s", c->err);
			snprintf(c->err, sizeof(c->err),
				 "%.180s (after hand-over: the guest stays paused here)", why);
		}
		return;
	}
	if (c->paused) {
		mig_resume_devices(c->vm);
		vm_enter_state(c->vm, c->before);
	}
}

/*
 * After GO: frames that reach our tap until the bridge has learnt the guest's new port go to
 * the destination, which delivers them to the guest. Ends after FORWARD_MS or when the
 * destination hangs up.
 */
static void src_forward(struct src *c)
{
	struct pollfd p[FORWARD_FDS + 2] = { { .fd = c->s.fd, .events = POLLIN },
					     { .fd = c->m->cancel_fd, .events = POLLIN } };
	int dev[FORWARD_FDS + 2], n = 2, k = 0;
	uint64_t end = now_ns() + FORWARD_MS * 1000000ULL;
	uint8_t buf[MIG_FRAME_MAX];

	/*
	 * A device is named by its place among those that forward (the k-th NIC), not among all
	 * devices: a -monitor, -qmp or -gdb that one side has and the other lacks shifts those.
	 */
	for (int i = 0; i < c->vm->ndev && n < FORWARD_FDS + 2; i++) {
		const struct device *d = &c->vm->dev[i];
		int fd = d->ops->handover_fd ? d->ops->handover_fd(d->opaque) : -1;

		if (fd >= 0) {
			dev[n] = k;
			p[n++] = (struct pollfd){ .fd = fd, .events = POLLIN };
		}
		k += d->ops->handover_fd != NULL;
	}
	if (n == 2)
		return;
	while (now_ns() < end) {
		/* Quiet for a while: the bridge has moved the guest's MAC. */
		if (poll(p, n, FORWARD_QUIET_MS) <= 0 || p[0].revents || p[1].revents)
			break;
		for (int i = 2; i < n; i++) {
			ssize_t len;

			/*
			 * A tap deleted on the host stays POLLERR (and reads EBADFD) for good:
			 * left out, or the rest of the forwarding would spin on it.
			 */
			if (p[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
				p[i].fd = -1;
				continue;
			}
			if (!(p[i].revents & POLLIN))
				continue;
			len = read(p[i].fd, buf, sizeof(buf));
			if (len <= 0 || len > (ssize_t)sizeof(buf)) /* past buf: dropped, as rx does */
				continue;
			if (stream_put(&c->s, REC_FRAME, dev[i], buf, len) < 0 ||
			    stream_flush(&c->s) < 0)
				return;
		}
	}
}

void *mig_source_thread(void *arg)
{
	struct src c = { .m = arg, .vm = ((struct migration *)arg)->vm, .s.fd = -1 };
	int fd, r = -1;

	c.interactive = c.m->uri.kind != MIG_FILE;
	/* A cancel (or quit) ends the connect too. */
	fd = mig_uri_connect(&c.m->uri, c.m->cancel_fd, c.err, sizeof(c.err));
	if (fd >= 0) {
		pthread_mutex_lock(&c.m->lock);
		c.m->conn_fd = fd;
		pthread_mutex_unlock(&c.m->lock);
	}
	if (fd >= 0 && stream_init(&c.s, fd) == 0 && ram_init(&c.ram, c.vm) == 0) {
		r = src_hello(&c) || src_rounds(&c) || src_stop_and_copy(&c) ? -1 : 0;
	} else if (fd >= 0) {
		snprintf(c.err, sizeof(c.err), "out of memory");
	}
	src_end(&c, r);
	if (r == 0 && c.interactive) {
		/* The user hears of the success now; forwarding goes on quietly. */
		mig_set_status(c.m, MIG_COMPLETED);
		mig_finish(c.m);
		src_forward(&c);
	}
	ram_free(&c.ram);
	stream_free(&c.s);
	/* Still open: a socket, whose close says nothing the answers did not, or the file of a
	 * failed snapshot. */
	src_close(&c);
	mig_thread_exit(c.m, r < 0 ? MIG_FAILED : c.interactive ? MIG_NONE : MIG_COMPLETED, c.err);
	return NULL;
}
