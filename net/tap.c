/* Every failure names the interface: "tap: tap0: TUNSETIFF: Operation not permitted". */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <net/if_arp.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
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

/* TUNSETIFF failed: the kernel's word alone ("Invalid argument") would puzzle. */
static void tap_setiff_error(const char *want)
{
	int err = errno;
	const char *why = "";

	if (err == EINVAL && *want && if_nametoindex(want))
		why = " (an interface of that name exists and is not a single-queue tap)";
	else if (err == EBUSY)
		why = " (in use by another process)";
	else if (err == EPERM)
		why = " (needs root, or a persistent tap owned by this user)";
	errorf("tap: %s: TUNSETIFF: %s%s", *want ? want : "(new)", strerror(err), why);
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
		tap_setiff_error(want);
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

bool tap_alive(int fd)
{
	struct ifreq ifr = {0};

	/* A deleted tap's fds stay open, detached: every ioctl but TUNSETIFF says EBADFD. */
	return ioctl(fd, TUNGETIFF, &ifr) == 0 || errno != EBADFD;
}

bool tap_persistent(int fd)
{
	struct ifreq ifr = {0};

	return ioctl(fd, TUNGETIFF, &ifr) == 0 && (ifr.ifr_flags & IFF_PERSIST);
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

void tap_mac_for_bridge(const uint8_t guest[6], uint8_t mac[6])
{
	memcpy(mac, guest, 6);
	mac[0] = guest[0] == 0xfe ? 0xfa : 0xfe;
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

/* The ifindex of the device ifindex is a port of (its bridge), 0 if none, -1 if unknown. */
static int if_master(int ifindex)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req = {
	    .nh = {.nlmsg_len = sizeof(req),
		   .nlmsg_type = RTM_GETLINK,
		   .nlmsg_flags = NLM_F_REQUEST},
	    .ifi = {.ifi_family = AF_UNSPEC, .ifi_index = ifindex},
	};
	/* A link's attributes (statistics, per-family settings) take a few KiB. */
	union {
		struct nlmsghdr nh;
		char buf[32768];
	} rep;
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), alen;
	ssize_t len = -1;

	if (s < 0)
		return -1;
	if (send(s, &req, sizeof(req), 0) == (ssize_t)sizeof(req))
		len = recv(s, &rep, sizeof(rep), 0);
	close(s);
	if (len < 0 || !NLMSG_OK(&rep.nh, len) || rep.nh.nlmsg_type != RTM_NEWLINK)
		return -1;
	alen = IFLA_PAYLOAD(&rep.nh);
	for (struct rtattr *a = IFLA_RTA(NLMSG_DATA(&rep.nh)); RTA_OK(a, alen);
	     a = RTA_NEXT(a, alen))
		if (a->rta_type == IFLA_MASTER && RTA_PAYLOAD(a) == sizeof(int))
			return *(int *)RTA_DATA(a);
	return 0;
}

/*
 * SIOCBRADDIF said EBUSY: name is a port already. Of br itself (a persistent tap left there,
 * by hand or by a tern that was killed) that is what was asked: 1. Else one line, -1.
 */
static int bridge_busy(const char *br, const char *name, int ifindex)
{
	int master = if_master(ifindex);
	char other[IFNAMSIZ];

	if (master > 0 && (unsigned)master == if_nametoindex(br))
		return 1;
	if (master > 0 && if_indextoname(master, other))
		errorf("bridge: %s: add %s: %s is a port of %s already", br, name, name, other);
	else
		errorf("bridge: %s: add %s: %s", br, name, strerror(EBUSY));
	return -1;
}

/*
 * The bridge's MTU on the port that joins it, as QEMU's bridge helper does: a bridge whose MTU
 * was never set takes the smallest of its ports', and a 1500-byte tap would shrink a jumbo one
 * for everything on it. -1 (said) if br is not there; the errno of setting it otherwise.
 */
static int port_mtu(const char *br, const char *name, int *set_err)
{
	struct ifreq ifr = {0};

	strncpy(ifr.ifr_name, br, IFNAMSIZ - 1);
	if (ifreq_ioctl(SIOCGIFMTU, &ifr) < 0) {
		if (errno == ENODEV)
			errorf("bridge: %s: add %s: no such bridge", br, name);
		else
			perrorf("bridge: %s: read MTU", br);
		return -1;
	}
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	/* Only a bridge's is a tap's to take: what br is, SIOCBRADDIF says. */
	*set_err = ifreq_ioctl(SIOCSIFMTU, &ifr) < 0 ? errno : 0;
	return ifr.ifr_mtu;
}

int bridge_attach(const char *br, const char *name)
{
	struct ifreq ifr = {0};
	int mtu, mtu_err;

	strncpy(ifr.ifr_name, br, IFNAMSIZ - 1);
	ifr.ifr_ifindex = if_nametoindex(name);
	if (!ifr.ifr_ifindex) {
		perrorf("bridge: %s: interface %s", br, name);
		return -1;
	}
	mtu = port_mtu(br, name, &mtu_err);
	if (mtu < 0)
		return -1;
	if (ifreq_ioctl(SIOCBRADDIF, &ifr) == 0) {
		if (!mtu_err)
			return 0;
		errorf("bridge: %s: add %s: set MTU %d: %s", br, name, mtu, strerror(mtu_err));
		bridge_detach(br, name);
		return -1;
	}
	if (errno == EBUSY)
		return bridge_busy(br, name, ifr.ifr_ifindex);
	if (errno == EOPNOTSUPP)
		errorf("bridge: %s: add %s: %s is not a bridge", br, name, br);
	else if (errno == ENODEV && !if_nametoindex(br))
		errorf("bridge: %s: add %s: no such bridge", br, name);
	else
		perrorf("bridge: %s: add %s", br, name);
	return -1;
}

int bridge_has_port(const char *br, const char *name)
{
	int ifindex = if_nametoindex(name), master;

	if (!ifindex)
		return 0;
	master = if_master(ifindex);
	if (master < 0)
		return -1;
	return master > 0 && (unsigned)master == if_nametoindex(br);
}

void bridge_detach(const char *br, const char *name)
{
	struct ifreq ifr = {0};

	strncpy(ifr.ifr_name, br, IFNAMSIZ - 1);
	ifr.ifr_ifindex = if_nametoindex(name);
	/*
	 * Gone already, or taken off br on the host meanwhile (`ip link set nomaster`, the bridge
	 * deleted): nothing to undo, and nothing to say at exit.
	 */
	if (!ifr.ifr_ifindex || !bridge_has_port(br, name))
		return;
	if (ifreq_ioctl(SIOCBRDELIF, &ifr) < 0)
		perrorf("bridge: %s: remove %s", br, name);
}
