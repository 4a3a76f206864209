/*
 * The migration's interactive hand-shake, from what the far side says: the input is played as
 * the other end of a socketpair while the real migration thread runs here.
 *
 * Source mode: the whole source thread (hello, rounds, stop-and-copy, GO) of a small guest
 * migrates to "unix:" + ANSWER_PATH, which this file's connect() turns into our socketpair;
 * the input is the destination's answers (ACCEPT or REFUSE, SYNCED, READY or ERROR, TAKEN or
 * ERROR). What must hold: before GO every failure leaves the guest as it was here, the
 * migration failed with a one-line printable reason; after GO only the destination's ERROR
 * gives the guest back, TAKEN completes, anything else leaves it paused here (postmigrate).
 *
 * Destination mode: the destination thread of an interactive (socket) migration, accepting on
 * a listening socket; the input is the source's stream. Its answers must follow the protocol
 * (REFUSE, or ACCEPT, SYNCED per SYNC, READY or ERROR, then TAKEN or ERROR), a reason must be
 * a short printable string, and the guest runs here exactly when TAKEN was said.
 *
 * The first input byte picks the mode, whether every record's checksum is made right first
 * (to get past them), and the run state the source's guest is in. KVM is answered as in
 * fuzz_stream.c: the VM's and vCPU's fd are /dev/null and this file's ioctl() answers them.
 *
 * FUZZ_ANSWER_SEEDS=DIR writes seeds (real answers and a real source's stream) and exits.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tests/fuzz/mig_vm.h"
#include "vmm/migration/internal.h"
#include "vmm/state.h"
#include "vmm/util.h"

#define ANSWER_PATH "fuzz-answer-peer"	/* not a file: connect() below hands over a socketpair */
#define MAX_RECS 64

enum { MODE_CRC = 1, MODE_DEST = 2 };	/* bits 2-3: the source guest's run state */

/* Harness-local: built once, reset per input. */
static struct vm *vm;
static int cancel_fd = -1;
static int listen_fd = -1;		/* destination mode: an abstract unix socket */
static struct sockaddr_un listen_sa;
static int next_conn = -1;		/* the source's end of the socketpair, for connect() */

/* The source's connect to ANSWER_PATH gets our socketpair's end; anything else is real. */
int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)sa;

	if (sa->sa_family == AF_UNIX && next_conn >= 0 && !strcmp(un->sun_path, ANSWER_PATH))
		return dup3(next_conn, fd, O_CLOEXEC) < 0 ? -1 : 0;
	return syscall(SYS_connect, fd, sa, len);
}

static int setup(void)
{
	vm = mig_vm_create(NULL);
	cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!vm || cancel_fd < 0 || listen_fd < 0)
		return -1;
	listen_sa.sun_family = AF_UNIX;
	snprintf(listen_sa.sun_path + 1, sizeof(listen_sa.sun_path) - 1, "fuzz-answer-%d",
		 (int)getpid());
	return bind(listen_fd, (struct sockaddr *)&listen_sa, sizeof(listen_sa)) < 0 ||
		       listen(listen_fd, 1) < 0
		       ? -1
		       : 0;
}

/* Each input starts from the same guest: a few pages touched, in the given state. */
static void reset(enum vm_runstate state)
{
	madvise(vm->ram, vm->ram_size, MADV_DONTNEED);
	memcpy(vm->ram + 0x1000, "guest text", 10);
	vm->ram[0x5000] = 1;
	vm->ram[0x9000] = 0;	/* touched, zero: sent as a marker */
	mig_vm_reset(vm, state);
}

/* --- the far side --------------------------------------------------------------------- */

/* What the migration thread wrote, record by record. */
struct seen {
	size_t skip;		/* the stream header, then each payload and checksum */
	uint8_t hdr[sizeof(struct rec_hdr)];
	size_t hdr_len;
	struct rec_hdr rec[MAX_RECS];
	char text[MAX_RECS][256];	/* REFUSE and ERROR reasons, when short */
	size_t text_len[MAX_RECS], text_at;
	unsigned n;
	bool keep;		/* the record being read has a slot */
	bool torn;		/* ends inside a record */
};

struct peer {
	int fd;
	const uint8_t *in;
	size_t len;
	struct seen seen;
};

static void seen_bytes(struct seen *s, const uint8_t *p, size_t n)
{
	while (n) {
		size_t k;

		if (s->skip) {
			k = MIN(s->skip, n);
			if (s->keep && s->text_at < sizeof(s->text[0])) {
				size_t t = MIN(k, sizeof(s->text[0]) - s->text_at);

				memcpy(s->text[s->n - 1] + s->text_at, p, t);
				s->text_at += t;
			}
			s->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		k = MIN(sizeof(s->hdr) - s->hdr_len, n);
		memcpy(s->hdr + s->hdr_len, p, k);
		s->hdr_len += k;
		p += k;
		n -= k;
		if (s->hdr_len < sizeof(s->hdr))
			continue;
		s->hdr_len = 0;
		s->keep = s->n < MAX_RECS;
		if (s->keep) {
			memcpy(&s->rec[s->n], s->hdr, sizeof(s->hdr));
			s->text_len[s->n] = s->rec[s->n].len;
			s->n++;
		}
		s->text_at = 0;
		s->skip = ((struct rec_hdr *)s->hdr)->len + 4ULL;
	}
}

/* Says the input, closes its sending side, and takes all the thread writes until it hangs up. */
static void *peer_run(void *arg)
{
	struct peer *p = arg;
	size_t off = 0;
	uint8_t buf[65536];

	if (!p->len)
		shutdown(p->fd, SHUT_WR);
	for (;;) {
		struct pollfd pf = { .fd = p->fd, .events = POLLIN | (off < p->len ? POLLOUT : 0) };
		ssize_t n;

		if (poll(&pf, 1, -1) < 0)
			continue;
		if (off < p->len && (pf.revents & (POLLOUT | POLLERR | POLLHUP))) {
			n = send(p->fd, p->in + off, p->len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno != EAGAIN)
				off = p->len;	/* it hung up: nothing more to say */
			else if (n > 0)
				off += n;
			if (off == p->len)
				shutdown(p->fd, SHUT_WR);
		}
		if (pf.revents & (POLLIN | POLLERR | POLLHUP)) {
			n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN))
				break;
			if (n > 0)
				seen_bytes(&p->seen, buf, n);
		}
	}
	p->seen.torn = p->seen.skip || p->seen.hdr_len;
	close(p->fd);
	return NULL;
}

/* FUZZ_ANSWER_VERBOSE: what came of an input, to see that the seeds go where they should. */
static void tell(const struct migration *m, const struct peer *p)
{
	if (!getenv("FUZZ_ANSWER_VERBOSE"))
		return;
	fprintf(stderr, "fuzz_answer: guest %s, migration %s (%s); records sent:",
		vm_state_name(vm_state(vm)), mig_status_name(m->status), m->error);
	for (unsigned i = 0; i < p->seen.n; i++)
		fprintf(stderr, " %u", p->seen.rec[i].type);
	fprintf(stderr, "\n");
}

/* --- checks ----------------------------------------------------------------------------- */

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz_answer: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

/* What a terminal, info migrate and query-migrate show: one printable line. */
static void check_line(const char *what, const char *s, bool may_be_empty)
{
	if (!*s && !may_be_empty)
		fail("%s is empty", what);
	for (const char *c = s; *c; c++)
		if (!isprint((unsigned char)*c))
			fail("%s holds byte 0x%02x: \"%s\"", what, (unsigned char)*c, s);
}

/* The k-th record of the input as the reader takes it: its header, whole and sound, or -1. */
static int input_record(const uint8_t *p, size_t size, size_t off, unsigned k,
			struct rec_hdr *h, const uint8_t **payload)
{
	for (;;) {
		uint32_t crc;

		if (off > size || size - off < sizeof(*h))
			return -1;
		memcpy(h, p + off, sizeof(*h));
		if (h->type < REC_HELLO || h->type >= REC_COUNT || h->len > MIG_REC_MAX ||
		    h->len > size - off - sizeof(*h) || size - off - sizeof(*h) - h->len < 4)
			return -1;
		memcpy(&crc, p + off + sizeof(*h) + h->len, 4);
		if (crc != crc32c(0, p + off, sizeof(*h) + h->len))
			return -1;
		if (!k--) {
			*payload = p + off + sizeof(*h);
			return 0;
		}
		off += sizeof(*h) + h->len + 4;
	}
}

static const enum vm_runstate src_states[4] = { RUN_STATE_RUNNING, RUN_STATE_PAUSED,
						 RUN_STATE_PRELAUNCH, RUN_STATE_RUNNING };

/*
 * After GO, the answer that follows the destination's ACCEPT, one SYNCED per SYNC and READY
 * decides: ERROR (a reason the source reads) gives the guest back, TAKEN completes, and
 * anything else leaves it paused here.
 */
static void check_source(const struct migration *m, const struct peer *p, const uint8_t *in,
			 size_t size, enum vm_runstate before)
{
	enum vm_runstate now = vm_state(vm);
	unsigned nsync = 0, go = 0;
	struct rec_hdr h;
	const uint8_t *pl;

	check_line("the migration's error", m->error, m->status != MIG_FAILED);
	if (m->status != MIG_FAILED && m->status != MIG_COMPLETED)
		fail("ended %s", mig_status_name(m->status));
	for (unsigned i = 0; i < p->seen.n && !go; i++) {
		nsync += p->seen.rec[i].type == REC_SYNC;
		go = p->seen.rec[i].type == REC_GO ? i + 1 : 0;
	}
	if (!go) {
		if (now != before || m->status != MIG_FAILED)
			fail("no GO sent, yet the guest is %s (was %s), migration %s",
			     vm_state_name(now), vm_state_name(before), mig_status_name(m->status));
		return;
	}
	if (p->seen.rec[go - 1].arg != (before == RUN_STATE_RUNNING	 ? GO_RUNNING
					: before == RUN_STATE_PRELAUNCH ? GO_PRELAUNCH
									 : GO_PAUSED))
		fail("GO says %llu for a guest %s", (unsigned long long)p->seen.rec[go - 1].arg,
		     vm_state_name(before));
	if (input_record(in, size, 0, nsync + 2, &h, &pl) == 0 && h.type == REC_ERROR &&
	    h.len < 256) {
		if (now != before || m->status != MIG_FAILED ||
		    strncmp(m->error, "destination failed: ", 20))
			fail("ERROR after GO, yet the guest is %s (was %s): %s", vm_state_name(now),
			     vm_state_name(before), m->error);
	} else if (input_record(in, size, 0, nsync + 2, &h, &pl) == 0 && h.type == REC_TAKEN &&
		   h.len == 0) {
		if (now != RUN_STATE_POSTMIGRATE || m->status != MIG_COMPLETED)
			fail("TAKEN, yet the guest is %s, migration %s: %s", vm_state_name(now),
			     mig_status_name(m->status), m->error);
	} else if (now != RUN_STATE_POSTMIGRATE || m->status != MIG_FAILED ||
		   !strstr(m->error, "after hand-over")) {
		fail("no answer after GO, yet the guest is %s, migration %s: %s",
		     vm_state_name(now), mig_status_name(m->status), m->error);
	}
}

/*
 * The destination's answers, in the protocol's order, and the guest runs iff it said TAKEN;
 * a source of format 2 (old) waits for no TAKEN, and is told nothing after READY.
 */
static void check_dest(const struct migration *m, const struct peer *p, bool v2)
{
	const struct seen *s = &p->seen;
	enum vm_runstate now = vm_state(vm);
	unsigned i = 0;
	bool taken = false;

	if (s->torn)
		fail("the destination's answers end inside a record");
	for (unsigned k = 0; k < s->n; k++) {
		uint32_t t = s->rec[k].type;

		if (t == REC_REFUSE || t == REC_ERROR) {
			if (!s->text_len[k] || s->text_len[k] >= 256 ||
			    s->text[k][s->text_len[k] - 1])
				fail("a reason of %zu bytes, not a short string", s->text_len[k]);
			check_line("the destination's reason", s->text[k], false);
		}
	}
	if (i < s->n && s->rec[i].type == REC_REFUSE)
		i++;
	else if (i < s->n && s->rec[i].type == REC_ACCEPT)
		for (i++; i < s->n && s->rec[i].type == REC_SYNCED; i++)
			;
	if (i < s->n && s->rec[i].type == REC_ERROR) {
		i++;
	} else if (i < s->n && s->rec[i].type == REC_READY) {
		i++;
		taken = v2 ? m->status == MIG_COMPLETED : i < s->n && s->rec[i].type == REC_TAKEN;
		if (!v2 && i < s->n && (s->rec[i].type == REC_TAKEN || s->rec[i].type == REC_ERROR))
			i++;
	}
	if (i != s->n)
		fail("answer %u of %u is record type %u, out of order", i, s->n, s->rec[i].type);
	check_line("the migration's error", m->error, taken);
	if (taken && (now == RUN_STATE_INMIGRATE || m->status != MIG_COMPLETED || vm->exiting))
		fail("TAKEN said, yet the guest is %s, migration %s", vm_state_name(now),
		     mig_status_name(m->status));
	if (!taken && (now != RUN_STATE_INMIGRATE || m->status != MIG_FAILED || !vm->exiting))
		fail("no TAKEN said, yet the guest is %s, migration %s%s", vm_state_name(now),
		     mig_status_name(m->status), vm->exiting ? "" : ", tern not exiting");
}

/* --- one input -------------------------------------------------------------------------- */

static void migration_reset(struct migration *m)
{
	uint64_t stale;

	if (read(cancel_fd, &stale, sizeof(stale)) < 0 && errno != EAGAIN)
		abort();
	*m = (struct migration){ .vm = vm, .cancel_fd = cancel_fd, .conn_fd = -1, .in_fd = -1,
				 .listen_fd = -1, .progress_timer = -1, .throttle_timer = -1,
				 .downtime_limit_ms = 300, .max_rounds = 30 };
	pthread_mutex_init(&m->lock, NULL);
	m->st.start_ns = now_ns();
	m->st.total_ram = vm->ram_size;
}

static void run_source(const uint8_t *in, size_t size, enum vm_runstate before)
{
	struct migration m;
	struct peer *p = calloc(1, sizeof(*p));
	pthread_t t;
	int sv[2];

	if (!p || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	reset(before);
	migration_reset(&m);
	m.uri.kind = MIG_UNIX;
	snprintf(m.uri.path, sizeof(m.uri.path), "%s", ANSWER_PATH);
	/* The stream header first: the records follow it. */
	*p = (struct peer){ .fd = sv[1], .in = in, .len = size, .seen.skip = 16 };
	next_conn = sv[0];
	if (pthread_create(&t, NULL, peer_run, p))
		abort();
	mig_source_thread(&m);
	/* The source closed its dup of sv[0]; ours goes too, so the peer hears the end. */
	close(sv[0]);
	next_conn = -1;
	pthread_join(t, NULL);
	tell(&m, p);
	check_source(&m, p, in, size, before);
	/* A guest handed over leaves its devices paused here: the next input starts afresh. */
	if (vm_state(vm) == RUN_STATE_POSTMIGRATE)
		mig_resume_devices(vm);
	pthread_mutex_destroy(&m.lock);
	free(p);
}

static void *dest_connect(void *arg)
{
	struct peer *p = arg;

	p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->fd < 0 || connect(p->fd, (struct sockaddr *)&listen_sa, sizeof(listen_sa)) < 0)
		abort();
	return peer_run(p);
}

static void run_dest(const uint8_t *in, size_t size)
{
	struct migration m;
	struct peer *p = calloc(1, sizeof(*p));
	pthread_t t;

	if (!p)
		abort();
	reset(RUN_STATE_INMIGRATE);
	migration_reset(&m);
	m.uri.kind = MIG_TCP;	/* a socket that has no path to unlink */
	m.listen_fd = dup(listen_fd);
	m.incoming = true;
	*p = (struct peer){ .fd = -1, .in = in, .len = size };
	if (m.listen_fd < 0 || pthread_create(&t, NULL, dest_connect, p))
		abort();
	mig_dest_thread(&m);	/* closes the listening dup and the connection */
	pthread_join(t, NULL);
	tell(&m, p);
	check_dest(&m, p, size >= 12 && in[8] == 2 && !memcmp(in + 9, "\0\0", 3));
	pthread_mutex_destroy(&m.lock);
	free(p);
}

static void write_seeds(const char *dir);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	if (setup() < 0) {
		fprintf(stderr, "fuzz_answer: cannot set up the VM: %s\n", strerror(errno));
		abort();
	}
	if (getenv("FUZZ_ANSWER_SEEDS")) {
		write_seeds(getenv("FUZZ_ANSWER_SEEDS"));
		exit(0);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	bool dest;

	if (!size || size > MIG_REC_MAX)
		return 0;
	dest = data[0] & MODE_DEST;
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (data[0] & MODE_CRC)
		mig_fix_checksums(copy, size - 1, dest ? 16 : 0);
	if (dest)
		run_dest(copy, size - 1);
	else
		run_source(copy, size - 1, src_states[(data[0] >> 2) & 3]);
	free(copy);
	return 0;
}

/* --- seeds ------------------------------------------------------------------------------ */

struct seed {
	struct mig_stream s;
	int fd;
};

static void seed_open(struct seed *sd, const char *dir, const char *name, uint8_t mode)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	sd->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (sd->fd < 0 || stream_init(&sd->s, sd->fd) < 0)
		abort();
	sd->s.buf[sd->s.len++] = mode;
}

static void seed_close(struct seed *sd)
{
	if (stream_flush(&sd->s) < 0)
		abort();
	stream_free(&sd->s);
	close(sd->fd);
}

/* The destination's answers up to n of: ACCEPT, SYNCED, READY, then last (a type or 0). */
static void seed_answers(const char *dir, const char *name, unsigned n, uint32_t last,
			 const char *why)
{
	static const uint32_t good[] = { REC_ACCEPT, REC_SYNCED, REC_READY };
	struct seed sd;

	seed_open(&sd, dir, name, MODE_CRC);
	for (unsigned i = 0; i < n; i++)
		stream_put(&sd.s, good[i], 0, NULL, 0);
	if (last)
		stream_put(&sd.s, last, 0, why, why ? strlen(why) + 1 : 0);
	seed_close(&sd);
}

/* A real source's stream: the guest's pages, its devices, GO, and a frame after it. */
static void seed_stream(const char *dir, const char *name, bool sync, uint64_t go,
			uint32_t version)
{
	struct seed sd;
	void *desc, *devs;
	int dlen, vlen;
	char err[200];
	uint8_t frame[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	seed_open(&sd, dir, name, MODE_DEST | MODE_CRC);
	desc = mig_describe(vm, &dlen);
	devs = mig_save_devices(vm, &vlen, err, sizeof(err));
	if (!desc || !devs)
		abort();
	stream_put_header(&sd.s);
	memcpy(sd.s.buf + 9, &version, 4);
	stream_put(&sd.s, REC_HELLO, 0, desc, dlen);
	stream_put(&sd.s, REC_PAGES, 0x1000, vm->ram + 0x1000, 4096);
	stream_put(&sd.s, REC_ZERO, 0x9000, &(uint64_t){ 1 }, 8);
	stream_put(&sd.s, REC_ROUND, 0, NULL, 0);
	if (sync)
		stream_put(&sd.s, REC_SYNC, 0, NULL, 0);
	stream_put(&sd.s, REC_DEVICES, 0, devs, vlen);
	stream_put(&sd.s, REC_END, 0, NULL, 0);
	stream_put(&sd.s, REC_GO, go, NULL, 0);
	stream_put(&sd.s, REC_FRAME, 0, frame, sizeof(frame));
	seed_close(&sd);
	free(desc);
	free(devs);
}

static void write_seeds(const char *dir)
{
	reset(RUN_STATE_RUNNING);
	seed_answers(dir, "src-taken", 3, REC_TAKEN, NULL);
	seed_answers(dir, "src-error-after-go", 3, REC_ERROR, "tern is exiting: the guest stays at the source");
	seed_answers(dir, "src-refused", 0, REC_REFUSE, "memory 128M != 256M");
	seed_answers(dir, "src-error-loading", 2, REC_ERROR, "device serial: malformed state");
	seed_answers(dir, "src-escape-reason", 0, REC_REFUSE, "\x1b]0;pwned\x07\r\nfake line");
	seed_answers(dir, "src-silent-after-go", 3, 0, NULL);
	seed_answers(dir, "src-no-sync", 1, REC_READY, NULL);
	seed_stream(dir, "dst-running", true, GO_RUNNING, MIG_VERSION);
	seed_stream(dir, "dst-v2-prelaunch", true, GO_PRELAUNCH, MIG_VERSION_OLDEST);
	seed_stream(dir, "dst-paused-nosync", false, GO_PAUSED, MIG_VERSION);
}
