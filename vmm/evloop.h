/* The I/O thread's epoll loop: fds, timers and signals, each with a callback. */
#ifndef TERN_EVLOOP_H
#define TERN_EVLOOP_H

#include <stdint.h>
#include <stdbool.h>

typedef void (*ev_fn)(void *opaque, uint32_t events);

struct ev_handler {
	int fd;
	ev_fn fn;
	void *opaque;
	bool used;
	/* Bumped at each add: an event of an earlier user of the slot is told apart. */
	uint32_t gen;
};

#define EVLOOP_MAX 64

#include <pthread.h>

struct evloop {
	int epfd;
	int wakefd;		/* eventfd: evloop_stop() and evloop_call() from any thread */
	bool stop;
	struct ev_handler h[EVLOOP_MAX];
	/* evloop_call(): one request at a time, run on the loop's thread. */
	pthread_mutex_t call_lock;
	pthread_cond_t call_done;
	void (*call_fn)(void *);
	void *call_arg;
	bool call_pending;
	unsigned long call_seq; /* of the request last posted: whose is pending */
	/* evloop_post(): the one call that waits, or NULL. */
	void (*post_fn)(void *);
	void *post_arg;
	pthread_t thread;	/* the one that runs it (until it does: the one that made it) */
	bool finished;		/* evloop_run() returned, or never will: calls run inline */
};

int evloop_init(struct evloop *l);
void evloop_destroy(struct evloop *l);
int evloop_add(struct evloop *l, int fd, uint32_t events, ev_fn fn, void *opaque);
/* Changes the events an added fd waits for. */
int evloop_mod(struct evloop *l, int fd, uint32_t events);
void evloop_del(struct evloop *l, int fd);
/* Runs until evloop_stop(). */
int evloop_run(struct evloop *l);
void evloop_stop(struct evloop *l);
/* The loop will not run (set-up failed): evloop_call() from now on, and any waiting, run inline. */
void evloop_finish(struct evloop *l);
/*
 * Runs fn(arg) on the loop's thread and waits for it: device hooks touch state that only the
 * I/O thread otherwise touches, so other threads (migration) reach them through this.
 * Called on the loop's own thread it just calls fn; from another before the loop runs, it waits
 * for it to start (set-up has not finished: the devices are not ready for fn yet).
 */
void evloop_call(struct evloop *l, void (*fn)(void *), void *arg);
/*
 * Runs fn(arg) on the loop's thread soon, without waiting for it: news from a thread that
 * must not wait for the loop (it may hold what the loop waits for). Posted again before it
 * ran, it runs once. One fn per loop (the VM's run-state news).
 */
void evloop_post(struct evloop *l, void (*fn)(void *), void *arg);
/* A timerfd that fires after first_ms then every period_ms (0 = once). Returns the fd. */
int evloop_add_timer(struct evloop *l, unsigned first_ms, unsigned period_ms, ev_fn fn,
		     void *opaque);
/* Re-arm (or disarm with first_ms = 0) a timer made by evloop_add_timer. */
int evloop_arm_timer(int fd, unsigned first_ms, unsigned period_ms);
int evloop_arm_timer_ns(int fd, uint64_t first_ns, uint64_t period_ns);

#endif
