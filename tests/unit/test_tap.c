/*
 * Taps and bridges for real, in a private network namespace of this process (so nothing on
 * the machine changes): two taps on one bridge, a RARP announcement written into one comes
 * out of the other with its virtio-net header; errors name the interface.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "net/announce.h"
#include "net/tap.h"
#include "tests/unit/unit.h"
#include "vmm/util.h"

static int if_ioctl(unsigned long req, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	int r = ioctl(s, req, ifr);

	close(s);
	return r;
}

static int make_bridge(const char *name)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	int r = ioctl(s, SIOCBRADDBR, name);

	close(s);
	if (r < 0)
		return -1;
	strcpy(ifr.ifr_name, name);
	if (if_ioctl(SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	return if_ioctl(SIOCSIFFLAGS, &ifr);
}

/* Reads frames from fd until one carries ethertype RARP (IPv6 chatter may come first). */
static int read_rarp(int fd, unsigned hdr, uint8_t *frame)
{
	uint8_t buf[2048];

	for (int tries = 0; tries < 50; tries++) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n >= (ssize_t)(hdr + ANNOUNCE_FRAME_LEN) && buf[hdr + 12] == 0x80 &&
		    buf[hdr + 13] == 0x35) {
			memcpy(frame, buf + hdr, ANNOUNCE_FRAME_LEN);
			return 0;
		}
	}
	return -1;
}

int main(void)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x30, 0x30, 0x30, 0x30 };
	uint8_t out[12 + ANNOUNCE_FRAME_LEN] = { 0 }, in[ANNOUNCE_FRAME_LEN];
	char a[IFNAMSIZ], b[IFNAMSIZ], c[IFNAMSIZ];
	int fa, fb, fc;

	if (unshare(CLONE_NEWNET) < 0) {
		printf("skip: unshare(CLONE_NEWNET): %s (needs root)\n", strerror(errno));
		return 77;
	}
	CHECK_EQ(make_bridge("br0"), 0);
	fa = tap_open("", a);
	fb = tap_open("tern-t1", b);
	CHECK(fa >= 0 && fb >= 0);
	CHECK_STR(b, "tern-t1");
	CHECK(!strncmp(a, "tap", 3));
	CHECK_EQ(bridge_attach("br0", a), 0);
	CHECK_EQ(bridge_attach("br0", b), 0);
	CHECK_EQ(bridge_attach("nobridge", a), -1);

	/* A 12-byte header on one side, the default 10 on the other. */
	CHECK_EQ(tap_set_vnet_hdr_len(fa, a, 12), 0);
	announce_rarp_frame(mac, out + 12);
	CHECK_EQ(write(fa, out, sizeof(out)), (ssize_t)sizeof(out));
	CHECK_EQ(read_rarp(fb, 10, in), 0);
	CHECK(!memcmp(in, out + 12, ANNOUNCE_FRAME_LEN));
	CHECK_EQ(tap_set_offload(fb, b, 0), 0);

	/* The name of a tap that is open elsewhere cannot be taken twice. */
	fc = tap_open("tern-t1", c);
	CHECK_EQ(fc, -1);
	/* A tap tern created goes away with its fd. */
	close(fb);
	CHECK_EQ(if_nametoindex("tern-t1"), 0);
	close(fa);
	return unit_summary();
}
