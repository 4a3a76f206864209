/* Every failure names the interface: "tap: tap0: TUNSETIFF: Operation not permitted". */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <net/if_arp.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "net/tap.h"
#include "vmm/util.h"

/* Interface ioctls go through any socket of the current network namespace. */
static int ifreq_ioctl(unsigned long req, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int r;

	if (s < 0)
		return -1;
	r = ioctl(s, req, ifr);
	close(s);
	return r;
}

static int tap_up(const char *name)
{
	struct ifreq ifr = {0};

	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ifreq_ioctl(SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	return ifreq_ioctl(SIOCSIFFLAGS, &ifr);
}

int tap_open(const char *want, char name[IFNAMSIZ])
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		perrorf("tap: open /dev/net/tun");
		return -1;
	}
	strncpy(ifr.ifr_name, want, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		perrorf("tap: %s: TUNSETIFF", *want ? want : "(new)");
		close(fd);
		return -1;
	}
	memcpy(name, ifr.ifr_name, IFNAMSIZ);
	name[IFNAMSIZ - 1] = '\0';
	if (tap_up(name) < 0) {
		perrorf("tap: %s: set link up", name);
		close(fd);
		return -1;
	}
	return fd;
}

int tap_set_vnet_hdr_len(int fd, const char *name, int len)
{
	if (ioctl(fd, TUNSETVNETHDRSZ, &len) < 0) {
		perrorf("tap: %s: TUNSETVNETHDRSZ %d", name, len);
		return -1;
	}
	return 0;
}

int tap_set_offload(int fd, const char *name, unsigned flags)
{
	if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) {
		perrorf("tap: %s: TUNSETOFFLOAD %#x", name, flags);
		return -1;
	}
	return 0;
}

int tap_set_mac(const char *name, const uint8_t mac[6])
{
	struct ifreq ifr = {0};

	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
	if (ifreq_ioctl(SIOCSIFHWADDR, &ifr) < 0) {
		perrorf("tap: %s: set MAC address", name);
		return -1;
	}
	return 0;
}

int bridge_attach(const char *br, const char *name)
{
	struct ifreq ifr = {0};

	strncpy(ifr.ifr_name, br, IFNAMSIZ - 1);
	ifr.ifr_ifindex = if_nametoindex(name);
	if (!ifr.ifr_ifindex) {
		perrorf("bridge: %s: interface %s", br, name);
		return -1;
	}
	if (ifreq_ioctl(SIOCBRADDIF, &ifr) < 0) {
		perrorf("bridge: %s: add %s", br, name);
		return -1;
	}
	return 0;
}
