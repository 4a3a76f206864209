/*
 * Self-announcement after a migration, as QEMU does it: gratuitous RARP frames from the
 * guest's MAC, so bridges and switches learn its new port at once. Sent at 0, 50, 200, 450
 * and 800 ms (QEMU's defaults: 5 rounds, 50 ms first gap, growing by 100 ms).
 */
#ifndef TERN_ANNOUNCE_H
#define TERN_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

struct evloop;

#define ANNOUNCE_FRAME_LEN 60
#define ANNOUNCE_ROUNDS 5

/* QEMU's RARP frame (ethertype 0x8035, op 3 "request reverse"), padded to 60 bytes. */
void announce_rarp_frame(const uint8_t mac[6], uint8_t frame[ANNOUNCE_FRAME_LEN]);
/* Milliseconds from round to round+1. */
unsigned announce_gap_ms(unsigned round);

struct announce {
	struct evloop *loop;
	int timerfd;
	unsigned round;
	void (*send)(void *opaque); /* sends one RARP frame */
	void *opaque;
};

int announce_init(struct announce *a, struct evloop *loop, void (*send)(void *), void *opaque);
/* Sends the first frame now and schedules the rest; restarts a running schedule. */
void announce_start(struct announce *a);
void announce_destroy(struct announce *a);

#endif
