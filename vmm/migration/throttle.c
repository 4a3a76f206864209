/*
 * Auto-converge, as QEMU's: a guest that dirties memory faster than the link carries it would
 * never fit the downtime limit, so with the capability on its vCPUs are slowed down. When,
 * twice, a round left more dirty bytes than half of what it sent, the guest loses
 * cpu-throttle-initial percent of its time, then cpu-throttle-increment more each time, up to
 * max-cpu-throttle. A throttled vCPU runs a 10 ms slice, then sleeps pct/(100 - pct) slices.
 */
#include <stdio.h>
#include <unistd.h>

#include "vmm/migration/internal.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define SLICE_NS 10000000ULL	/* QEMU's CPU_THROTTLE_TIMESLICE */
#define HIGH_DIRTY_PCT 50	/* QEMU's throttle-trigger-threshold */

/* How long the vCPUs sleep after each slice, so that they run 100 - pct percent. */
static uint64_t throttle_sleep_ns(unsigned pct)
{
	return SLICE_NS * pct / (100 - pct);
}

/* The I/O thread, each period: the vCPUs sleep until the next slice. */
static void throttle_tick(void *opaque, uint32_t events)
{
	struct migration *m = opaque;
	uint64_t n;

	if (read(m->throttle_timer, &n, sizeof(n)) < 0)
		return;
	/* Under the lock, so that a tick never outlives mig_throttle_stop(). */
	pthread_mutex_lock(&m->lock);
	if (m->throttle_pct)
		vcpus_throttle(m->vm, throttle_sleep_ns(m->throttle_pct));
	pthread_mutex_unlock(&m->lock);
}

int mig_throttle_init(struct migration *m)
{
	m->throttle_timer = evloop_add_timer(&m->vm->loop, 0, 0, throttle_tick, m);
	return m->throttle_timer < 0 ? -1 : 0;
}

static void throttle_set(struct migration *m, unsigned pct)
{
	uint64_t period = pct ? SLICE_NS + throttle_sleep_ns(pct) : 0;

	pthread_mutex_lock(&m->lock);
	m->throttle_pct = pct;
	if (!pct)
		vcpus_throttle(m->vm, 0);
	pthread_mutex_unlock(&m->lock);
	evloop_arm_timer_ns(m->throttle_timer, period, period);
}

void mig_throttle_check(struct migration *m, uint64_t dirty_bytes, uint64_t sent_bytes)
{
	unsigned pct = m->throttle_pct;

	if (!m->auto_converge || dirty_bytes * 100 <= sent_bytes * HIGH_DIRTY_PCT ||
	    ++m->throttle_high < 2)
		return;
	m->throttle_high = 0;
	/* The parameters, which migrate_set_parameter may change meanwhile. */
	pthread_mutex_lock(&m->lock);
	pct = pct ? MIN(pct + m->throttle_increment, m->throttle_max) : m->throttle_initial;
	pthread_mutex_unlock(&m->lock);
	if (pct != m->throttle_pct)
		throttle_set(m, pct);
}

void mig_throttle_stop(struct migration *m)
{
	m->throttle_high = 0;
	if (m->throttle_pct)
		throttle_set(m, 0);
}
