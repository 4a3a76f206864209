#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "net/announce.h"
#include "vmm/evloop.h"
#include "vmm/util.h"

void announce_rarp_frame(const uint8_t mac[6], uint8_t f[ANNOUNCE_FRAME_LEN])
{
	static const uint8_t rarp[] = {
	    0x80, 0x35, /* ethertype RARP */
	    0x00, 0x01, /* hardware: Ethernet */
	    0x08, 0x00, /* protocol: IPv4 */
	    6,	  4,	/* address lengths */
	    0x00, 0x03, /* op: request reverse */
	};

	memset(f, 0, ANNOUNCE_FRAME_LEN);
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	memcpy(f + 12, rarp, sizeof(rarp));
	memcpy(f + 22, mac, 6); /* sender hardware address; sender IP stays 0 */
	memcpy(f + 32, mac, 6); /* target hardware address; target IP stays 0 */
}

unsigned announce_gap_ms(unsigned round)
{
	return 50 + 100 * round;
}

static void announce_tick(void *opaque, uint32_t events)
{
	struct announce *a = opaque;
	uint64_t n;

	/* Nothing to read: announce_start() re-armed it after it fired, in this same turn. */
	if (read(a->timerfd, &n, sizeof(n)) < 0) {
		if (errno != EAGAIN)
			perrorf("announce: read timerfd");
		return;
	}
	a->send(a->opaque);
	if (++a->round < ANNOUNCE_ROUNDS - 1)
		evloop_arm_timer(a->timerfd, announce_gap_ms(a->round), 0);
}

int announce_init(struct announce *a, struct evloop *loop, void (*send)(void *), void *opaque)
{
	*a = (struct announce){loop, -1, 0, send, opaque};
	a->timerfd = evloop_add_timer(loop, 0, 0, announce_tick, a);
	return a->timerfd < 0 ? -1 : 0;
}

void announce_start(struct announce *a)
{
	a->round = 0;
	a->send(a->opaque);
	evloop_arm_timer(a->timerfd, announce_gap_ms(0), 0);
}

void announce_destroy(struct announce *a)
{
	if (a->timerfd < 0)
		return;
	evloop_del(a->loop, a->timerfd);
	close(a->timerfd);
	a->timerfd = -1;
}
