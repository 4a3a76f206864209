#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>

#include "vmm/evloop.h"
#include "vmm/util.h"

static void evloop_wake(void *opaque, uint32_t events)
{
	struct evloop *l = opaque;
	uint64_t v;

	if (read(l->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		perrorf("evloop: read wake eventfd");
	pthread_mutex_lock(&l->call_lock);
	if (l->post_fn) {
		void (*fn)(void *) = l->post_fn;

		l->post_fn = NULL;
		pthread_mutex_unlock(&l->call_lock);
		fn(l->post_arg);
		pthread_mutex_lock(&l->call_lock);
	}
	if (l->call_pending) {
		void (*fn)(void *) = l->call_fn;
		void *arg = l->call_arg;

		/* Unlocked while it runs: fn may itself use evloop_call(). */
		pthread_mutex_unlock(&l->call_lock);
		fn(arg);
		pthread_mutex_lock(&l->call_lock);
		l->call_pending = false;
		pthread_cond_broadcast(&l->call_done);
	}
	pthread_mutex_unlock(&l->call_lock);
}

static void evloop_kick(struct evloop *l)
{
	uint64_t one = 1;

	if (write(l->wakefd, &one, sizeof(one)) < 0)
		perrorf("evloop: write wake eventfd");
}

void evloop_call(struct evloop *l, void (*fn)(void *), void *arg)
{
	unsigned long seq;

	if (pthread_equal(pthread_self(), l->thread)) {
		fn(arg);
		return;
	}
	pthread_mutex_lock(&l->call_lock);
	/* Another caller's request goes first. */
	while (l->call_pending && !l->finished)
		pthread_cond_wait(&l->call_done, &l->call_lock);
	if (l->finished) {
		pthread_mutex_unlock(&l->call_lock);
		fn(arg);
		return;
	}
	l->call_fn = fn;
	l->call_arg = arg;
	l->call_pending = true;
	seq = ++l->call_seq;
	evloop_kick(l);
	/* Once ours is done, call_pending may already be the next caller's: seq tells. */
	while (l->call_pending && l->call_seq == seq && !l->finished)
		pthread_cond_wait(&l->call_done, &l->call_lock);
	if (l->call_pending && l->call_seq == seq) {
		/* The loop ended before it got to us: run it here, nobody else will. */
		l->call_pending = false;
		pthread_cond_broadcast(&l->call_done);
		pthread_mutex_unlock(&l->call_lock);
		fn(arg);
		return;
	}
	pthread_mutex_unlock(&l->call_lock);
}

void evloop_post(struct evloop *l, void (*fn)(void *), void *arg)
{
	bool ended;

	if (pthread_equal(pthread_self(), l->thread)) {
		fn(arg);
		return;
	}
	pthread_mutex_lock(&l->call_lock);
	ended = l->finished;
	if (!ended) {
		l->post_fn = fn;
		l->post_arg = arg;
	}
	pthread_mutex_unlock(&l->call_lock);
	if (ended)
		fn(arg); /* the loop has ended: nobody else will */
	else
		evloop_kick(l);
}

int evloop_init(struct evloop *l)
{
	memset(l, 0, sizeof(*l));
	l->thread = pthread_self();
	pthread_mutex_init(&l->call_lock, NULL);
	pthread_cond_init(&l->call_done, NULL);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		perrorf("evloop: epoll_create1");
		return -1;
	}
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wakefd < 0) {
		perrorf("evloop: eventfd");
		close(l->epfd);
		return -1;
	}
	return evloop_add(l, l->wakefd, EPOLLIN, evloop_wake, l);
}

void evloop_destroy(struct evloop *l)
{
	for (int i = 0; i < EVLOOP_MAX; i++)
		if (l->h[i].used && l->h[i].fd != l->wakefd)
			evloop_del(l, l->h[i].fd);
	close(l->wakefd);
	close(l->epfd);
}

/*
 * An event's epoll_data: the slot and its generation. A handler may delete an fd whose event
 * is still ahead in the batch, and an add may give its slot to another fd meanwhile.
 */
static uint64_t evloop_key(struct evloop *l, struct ev_handler *h)
{
	return (uint64_t)h->gen << 32 | (uint64_t)(h - l->h);
}

int evloop_add(struct evloop *l, int fd, uint32_t events, ev_fn fn, void *opaque)
{
	for (int i = 0; i < EVLOOP_MAX; i++) {
		struct ev_handler *h = &l->h[i];
		struct epoll_event ev = { .events = events };

		if (h->used)
			continue;
		*h = (struct ev_handler){ fd, fn, opaque, true, h->gen + 1 };
		ev.data.u64 = evloop_key(l, h);
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			perrorf("evloop: epoll_ctl add fd %d", fd);
			h->used = false;
			return -1;
		}
		return 0;
	}
	errorf("evloop: more than %d handlers", EVLOOP_MAX);
	return -1;
}

int evloop_mod(struct evloop *l, int fd, uint32_t events)
{
	for (int i = 0; i < EVLOOP_MAX; i++) {
		struct epoll_event ev = { .events = events, .data.u64 = evloop_key(l, &l->h[i]) };

		if (!l->h[i].used || l->h[i].fd != fd)
			continue;
		if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
			perrorf("evloop: epoll_ctl mod fd %d", fd);
			return -1;
		}
		return 0;
	}
	return -1;
}

void evloop_del(struct evloop *l, int fd)
{
	for (int i = 0; i < EVLOOP_MAX; i++) {
		if (l->h[i].used && l->h[i].fd == fd) {
			epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
			l->h[i].used = false;
		}
	}
}

int evloop_run(struct evloop *l)
{
	struct epoll_event evs[16];
	int ret = 0;

	pthread_mutex_lock(&l->call_lock);
	l->thread = pthread_self(); /* the one that made it, unless another runs it */
	pthread_mutex_unlock(&l->call_lock);
	while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
		int n = epoll_wait(l->epfd, evs, 16, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perrorf("evloop: epoll_wait");
			ret = -1;
			break; /* finished below, or evloop_call() waits for ever */
		}
		for (int i = 0; i < n; i++) {
			uint64_t key = evs[i].data.u64;
			struct ev_handler *h = &l->h[(uint32_t)key];

			/* Removed by a handler earlier in this batch, maybe reused since. */
			if (h->used && h->gen == key >> 32)
				h->fn(h->opaque, evs[i].events);
		}
	}
	evloop_finish(l);
	return ret;
}

void evloop_finish(struct evloop *l)
{
	pthread_mutex_lock(&l->call_lock);
	l->finished = true;
	pthread_cond_broadcast(&l->call_done);
	pthread_mutex_unlock(&l->call_lock);
}

void evloop_stop(struct evloop *l)
{
	__atomic_store_n(&l->stop, true, __ATOMIC_RELEASE);
	evloop_kick(l);
}

int evloop_arm_timer_ns(int fd, uint64_t first_ns, uint64_t period_ns)
{
	struct itimerspec its = {
		.it_value = { first_ns / 1000000000ULL, first_ns % 1000000000ULL },
		.it_interval = { period_ns / 1000000000ULL, period_ns % 1000000000ULL },
	};

	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		perrorf("evloop: timerfd_settime");
		return -1;
	}
	return 0;
}

int evloop_arm_timer(int fd, unsigned first_ms, unsigned period_ms)
{
	return evloop_arm_timer_ns(fd, first_ms * 1000000ULL, period_ms * 1000000ULL);
}

int evloop_add_timer(struct evloop *l, unsigned first_ms, unsigned period_ms, ev_fn fn,
		     void *opaque)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

	if (fd < 0) {
		perrorf("evloop: timerfd_create");
		return -1;
	}
	if ((first_ms && evloop_arm_timer(fd, first_ms, period_ms) < 0) ||
	    evloop_add(l, fd, EPOLLIN, fn, opaque) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}
