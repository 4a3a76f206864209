/* kvmclock (pvclock), read from ring 3. */
#ifndef KVMCLOCK_H
#define KVMCLOCK_H

#include <stdint.h>

int kvmclock_init(void);	/* 0 if kvmclock is offered and enabled */
uint64_t now_ns(void);		/* kvmclock system time (ns since the VM's clock started) */
uint64_t tsc_to_ns(uint64_t tsc_delta);
uint64_t wall_ns(void);		/* wall clock: the host's base + system time */
void kvmclock_refresh_wall(void);	/* ask the host for the wall clock base again */
int kvmclock_poll(uint64_t pending);
void kvmclock_monotonic(void);	/* print how often the clock stepped back */
int tscclock_init(void);		/* fallback without kvmclock: TSC/PIT + CMOS RTC */

#endif
