/*
 * Services: everything the guest does after boot is a poll function called from the main
 * loop with the interrupt vectors that fired since the last round. A service that returns
 * nonzero wants another round at once; when none does, the CPU halts until an interrupt
 * (the APIC timer fires every TIMER_PERIOD_US, so a deadline is never missed by more).
 */
#ifndef SERVICE_H
#define SERVICE_H

#include <stdint.h>

#define TIMER_PERIOD_US 10000

struct service {
	const char *name;
	int (*start)(void);		/* 1: active (e.g. its cmdline word is present) */
	int (*poll)(uint64_t pending);	/* bit (vector - VEC_FIRST) for each vector */
};

/* Console commands: a line typed on the serial console, first word = name. */
struct command {
	const char *name;
	const char *help;
	void (*run)(const char *args);
};

/* memtest.c */
int memtest_start(void);
int memtest_poll(uint64_t pending);
void memtest_check_cmd(const char *args);
void memtest_zero_cmd(const char *args);

/* virtio_blk.c */
void virtio_blk_cmd(const char *args);

#endif
