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
}

int evloop_init(struct evloop *l)
{
	memset(l, 0, sizeof(*l));
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

int evloop_add(struct evloop *l, int fd, uint32_t events, ev_fn fn, void *opaque)
{
	for (int i = 0; i < EVLOOP_MAX; i++) {
		struct ev_handler *h = &l->h[i];
		struct epoll_event ev = { .events = events, .data.ptr = h };

		if (h->used)
			continue;
		*h = (struct ev_handler){ fd, fn, opaque, true };
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

void evloop_del(struct evloop *l, int fd)
{
	for (int i = 0; i < EVLOOP_MAX; i++) {
		if (l->h[i].used && l->h[i].fd == fd) {
			epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
			l->h[i].used = false;
		}
	}
}

void evloop_run(struct evloop *l)
{
	struct epoll_event evs[16];

	while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
		int n = epoll_wait(l->epfd, evs, 16, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perrorf("evloop: epoll_wait");
			return;
		}
		for (int i = 0; i < n; i++) {
			struct ev_handler *h = evs[i].data.ptr;

			/* A handler earlier in this batch may have removed this one. */
			if (h->used)
				h->fn(h->opaque, evs[i].events);
		}
	}
}

void evloop_stop(struct evloop *l)
{
	uint64_t one = 1;

	__atomic_store_n(&l->stop, true, __ATOMIC_RELEASE);
	if (write(l->wakefd, &one, sizeof(one)) < 0)
		perrorf("evloop: write wake eventfd");
}

int evloop_arm_timer(int fd, unsigned first_ms, unsigned period_ms)
{
	struct itimerspec its = {
		.it_value = { first_ms / 1000, (first_ms % 1000) * 1000000L },
		.it_interval = { period_ms / 1000, (period_ms % 1000) * 1000000L },
	};

	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		perrorf("evloop: timerfd_settime");
		return -1;
	}
	return 0;
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
