/*
 * Taps and bridges for real, in a private network namespace of this process (so nothing on
 * the machine changes): two taps on one bridge, a RARP announcement written into one comes
 * out of the other with its virtio-net header; errors name the interface; a persistent tap
 * (not tern's) can be put on its bridge again, and taken off.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libfdt.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "net/announce.h"
#include "net/tap.h"
#include "net/virtio_net.h"
#include "tests/unit/unit.h"
#include "vmm/migration/internal.h"
#include "vmm/util.h"
#include "vmm/vm.h"

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

/* Starts catching stderr in a temporary file; stderr_text() ends it and returns the text. */
static int stderr_catch(void)
{
	char path[] = "/tmp/tern-test-tap-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);

	unlink(path);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	close(fd);
	return saved;
}

static const char *stderr_text(int saved, char *buf, size_t len)
{
	ssize_t n;

	fflush(stderr);
	n = pread(STDERR_FILENO, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	dup2(saved, STDERR_FILENO);
	close(saved);
	return buf;
}

/* tap_open(want) fails with one line that contains what. */
static void check_open_error(const char *want, const char *what)
{
	char name[IFNAMSIZ], err[512];
	int saved = stderr_catch();
	int fd = tap_open(want, name);

	stderr_text(saved, err, sizeof(err));
	CHECK_EQ(fd, -1);
	CHECK(strstr(err, what) != NULL);
	CHECK(strchr(err, '\n') == strrchr(err, '\n'));
	if (!strstr(err, what))
		printf("got: %s", err);
}

static void test_mac_for_bridge(void)
{
	static const uint8_t guest[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	static const uint8_t fe_guest[6] = { 0xfe, 0x54, 0x00, 0x12, 0x34, 0x56 };
	uint8_t mac[6];

	tap_mac_for_bridge(guest, mac);
	CHECK(mac[0] == 0xfe && !memcmp(mac + 1, guest + 1, 5));
	/* Never the guest's own MAC: the bridge would keep its frames to itself. */
	tap_mac_for_bridge(fe_guest, mac);
	CHECK(mac[0] == 0xfa && !memcmp(mac + 1, fe_guest + 1, 5));
}

/* A tap made persistent, as `ip tuntap add` does; returns whether it worked. */
static int make_persistent_tap(const char *name)
{
	char got[IFNAMSIZ];
	int fd = tap_open(name, got), r;

	if (fd < 0)
		return -1;
	r = ioctl(fd, TUNSETPERSIST, 1);
	close(fd);
	return r;
}

static void test_persistent_tap(void)
{
	char p[IFNAMSIZ], err[512];
	int fp, saved;

	CHECK_EQ(make_persistent_tap("tern-p0"), 0);
	fp = tap_open("tern-p0", p);
	CHECK(fp >= 0);
	CHECK(tap_persistent(fp));
	CHECK_EQ(bridge_attach("br0", p), 0);
	/* Left on the bridge (by hand, or by a tern that was killed): fine, and not ours. */
	CHECK_EQ(bridge_attach("br0", p), 1);
	/* On another bridge: one line that says which. */
	CHECK_EQ(make_bridge("br1"), 0);
	saved = stderr_catch();
	CHECK_EQ(bridge_attach("br1", p), -1);
	CHECK(strstr(stderr_text(saved, err, sizeof(err)),
		     "bridge: br1: add tern-p0: tern-p0 is a port of br0 already\n") != NULL);
	/* Taken off, it can join again: it was no longer a port. */
	bridge_detach("br0", p);
	CHECK_EQ(bridge_attach("br1", p), 0);
	bridge_detach("br1", p);
	close(fp);
	/* It outlives its fd, as it was before tern. */
	CHECK(if_nametoindex("tern-p0") != 0);
	/* br= naming something else than a bridge: said so. */
	saved = stderr_catch();
	CHECK_EQ(bridge_attach("lo", p), -1);
	CHECK_STR(stderr_text(saved, err, sizeof(err)),
		  "tern: bridge: lo: add tern-p0: lo is not a bridge\n");
	/* br= naming nothing: which of the two is missing, said so. */
	saved = stderr_catch();
	CHECK_EQ(bridge_attach("nobridge", p), -1);
	CHECK_STR(stderr_text(saved, err, sizeof(err)),
		  "tern: bridge: nobridge: add tern-p0: no such bridge\n");
	/* Quiet for an interface that is gone. */
	saved = stderr_catch();
	bridge_detach("br0", "tern-gone");
	CHECK_STR(stderr_text(saved, err, sizeof(err)), "");
}

static int if_mtu(const char *name, int set)
{
	struct ifreq ifr = { 0 };

	strcpy(ifr.ifr_name, name);
	ifr.ifr_mtu = set;
	if (if_ioctl(set ? SIOCSIFMTU : SIOCGIFMTU, &ifr) < 0)
		return -1;
	return ifr.ifr_mtu;
}

/* A tap joins a jumbo bridge with the bridge's MTU, or it would shrink the bridge's. */
static void test_bridge_mtu(void)
{
	char t[IFNAMSIZ];
	int ft;

	CHECK_EQ(make_bridge("tern-jumbo"), 0);
	CHECK_EQ(if_mtu("tern-jumbo", 9000), 9000);
	ft = tap_open("", t);
	CHECK(ft >= 0);
	CHECK_EQ(if_mtu(t, 0), 1500);
	CHECK_EQ(bridge_attach("tern-jumbo", t), 0);
	CHECK_EQ(if_mtu(t, 0), 9000);
	CHECK_EQ(if_mtu("tern-jumbo", 0), 9000);
	close(ft);
}

/* The NIC's state with its link status replaced by status (the source's own when -1). */
static int load_with_status(struct vm *vm, int64_t status, char *why, size_t wlen)
{
	int len, node, r;
	void *fdt = mig_save_devices(vm, &len, why, wlen);

	CHECK(fdt != NULL);
	if (!fdt)
		return -2;
	node = fdt_subnode_offset(fdt, 0, "virtio-net");
	CHECK(node > 0);
	if (status >= 0)
		CHECK_EQ(fdt_setprop_inplace_u32(fdt, node, "status", (uint32_t)status), 0);
	r = mig_load_devices(vm, fdt, len, why, wlen);
	free(fdt);
	return r;
}

/*
 * A stream is trusted no more than the guest: the link status is the device's alone, and
 * always up here. A stream that says otherwise (fuzzed: a bit flipped before the checksum, or
 * a hostile source) would leave the guest's network down for good; it is refused.
 */
static void test_net_load_status(void)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	static const struct netdev_cfg nd = { .id = "n0", .type = NETDEV_TAP };
	static struct vm vm;
	char why[200], err[512];
	int saved;

	vm.fd = -1;
	vm.ram_size = 1 << 20;
	vm.ram = calloc(1, vm.ram_size);
	CHECK_EQ(evloop_init(&vm.loop), 0);
	vm.loop.thread = pthread_self(); /* loads run here, as on the I/O thread */
	CHECK(virtio_net_create(&vm, &nd, mac) != NULL);
	CHECK_EQ(load_with_status(&vm, -1, why, sizeof(why)), 0);
	saved = stderr_catch();
	CHECK_EQ(load_with_status(&vm, 0, why, sizeof(why)), -1);
	CHECK_STR(stderr_text(saved, err, sizeof(err)),
		  "tern: virtio-net@0xd0000000: the stream's link status 0 is not this device's "
		  "(1: link up)\n");
	CHECK_STR(why, "device virtio-net refused its state");
	saved = stderr_catch();
	CHECK_EQ(load_with_status(&vm, 0x10001, why, sizeof(why)), -1);
	stderr_text(saved, err, sizeof(err));
	CHECK(strstr(err, "link status 0x10001 is not") != NULL);
	vm.dev[0].ops->destroy(vm.dev[0].opaque);
	evloop_destroy(&vm.loop);
	free(vm.ram);
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
	check_open_error("tern-t1", "tap: tern-t1: TUNSETIFF: Device or resource busy (in use");
	/* A bridge (or any other interface) named as the tap: said so. */
	check_open_error("br0", "tap: br0: TUNSETIFF: Invalid argument (an interface of that "
				"name exists and is not a single-queue tap)");
	CHECK(!tap_persistent(fa));
	test_mac_for_bridge();
	test_persistent_tap();
	test_bridge_mtu();
	test_net_load_status();
	/* A tap tern created goes away with its fd. */
	close(fb);
	CHECK_EQ(if_nametoindex("tern-t1"), 0);
	close(fa);
	return unit_summary();
}
