/*
 * virtio-net on a tap. The tap carries the same virtio-net header as the guest (its
 * TUNSETVNETHDRSZ is set to the negotiated length), so transmit is one writev() of the
 * guest's buffers and checksum/TSO offloads pass straight through to the host kernel.
 *
 * Header length: 12 bytes with VIRTIO_F_VERSION_1 or MRG_RXBUF, else 10 (the legacy rule that
 * OSv's driver, which never acknowledges VERSION_1, relies on).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include "net/announce.h"
#include "net/tap.h"
#include "net/virtio_net.h"
#include "vmm/state.h"
#include "vmm/util.h"
#include "vmm/virtio_mmio.h"
#include "vmm/vm.h"

#define VIRTIO_ID_NET 1

enum {
	F_CSUM = 0,
	F_GUEST_CSUM = 1,
	F_MAC = 5,
	F_GUEST_TSO4 = 7,
	F_GUEST_ECN = 9,
	F_HOST_TSO4 = 11,
	F_HOST_ECN = 13,
	F_MRG_RXBUF = 15,
	F_STATUS = 16,
};

#define BIT(f) (1ULL << (f))
#define NET_FEATURES                                                                               \
	(BIT(F_CSUM) | BIT(F_GUEST_CSUM) | BIT(F_MAC) | BIT(F_GUEST_TSO4) | BIT(F_GUEST_ECN) |     \
	 BIT(F_HOST_TSO4) | BIT(F_HOST_ECN) | BIT(F_MRG_RXBUF) | BIT(F_STATUS) |                   \
	 BIT(VIRTIO_F_RING_INDIRECT_DESC) | BIT(VIRTIO_F_RING_EVENT_IDX) |                         \
	 BIT(VIRTIO_F_VERSION_1))

#define RXQ 0
#define TXQ 1
#define NET_S_LINK_UP 1
#define NET_HDR_NUM_BUFFERS 10 /* offset of num_buffers in the 12-byte header */
/* Header, a VLAN-tagged Ethernet header and a 64 KiB GRO/GSO IP packet: a shorter read fails. */
#define NET_FRAME_MAX (12 + 18 + 65535)

struct virtio_net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
} __attribute__((packed));

struct virtio_net {
	struct vm *vm;
	struct virtio_mmio v;
	struct virtio_net_config config;
	int tap;
	char ifname[IFNAMSIZ], br[IFNAMSIZ];
	unsigned hdr_len;
	bool polling;	/* the tap is in the I/O loop */
	bool paused;	/* migration's stop-and-copy: no guest memory writes */
	bool rx_failed; /* a tap read error was printed; later ones are only counted */
	bool tx_failed; /* the same for writes */
	bool detach;	/* a persistent tap we put on br: taken off at exit */
	struct announce announce;
	uint64_t rx_packets, rx_bytes, rx_dropped, tx_packets, tx_bytes, tx_dropped;
	/* A frame read from the tap that waits for receive buffers. */
	uint8_t frame[NET_FRAME_MAX];
	size_t frame_len;
	struct virtq_chain chain[VIRTQ_MAX_SIZE];
};

static void virtio_net_tap_ready(void *opaque, uint32_t events);

/*
 * Stops or restarts reading the tap: no point while the guest has no receive buffers.
 * I/O thread only, as every change to the loop's handlers.
 */
static void virtio_net_poll_tap(struct virtio_net *n, bool on)
{
	if (on == n->polling)
		return;
	if (on && evloop_add(&n->vm->loop, n->tap, EPOLLIN, virtio_net_tap_ready, n) < 0)
		return;
	if (!on)
		evloop_del(&n->vm->loop, n->tap);
	n->polling = on;
}

/*
 * At most this many frames a call, each way: a guest that refills its ring as fast as it
 * drains (or a flood on the tap) must not hold the I/O thread, and with it the monitor and a
 * migration's stop, for ever.
 */
#define NET_BURST 256

static int virtio_net_tx_frame(void *opaque, struct virtq_chain *c)
{
	struct virtio_net *n = opaque;
	ssize_t r = 0; /* a chain no longer than the header: dropped unsent */

	if (c->out_len > n->hdr_len)
		r = writev(n->tap, c->iov, c->nout);
	if (r <= 0 || r != (ssize_t)c->out_len) {
		/*
		 * A full tap queue drops the frame, as a busy wire would. A tap set down (EIO)
		 * drops every frame: said once, or the guest's network dies without a word.
		 */
		if (r < 0 && errno != EAGAIN && !n->tx_failed) {
			perrorf("%s: write tap %s (the frame is dropped; further errors are only "
				"counted)", n->v.name, n->ifname);
			n->tx_failed = true;
		}
		n->tx_dropped++;
	} else {
		n->tx_packets++;
		n->tx_bytes += c->out_len - n->hdr_len;
	}
	return 0;
}

static void virtio_net_tx(struct virtio_net *n)
{
	virtio_mmio_serve(&n->v, TXQ, NET_BURST, virtio_net_tx_frame, &n->chain[0]);
}

/*
 * Takes chains until len bytes fit. Returns how many, 0 if the ring ran dry (the guest is then
 * asked to kick on its next buffer), -1 if broken. *drop: the frame can never fit (more than
 * the whole ring, or one chain without MRG_RXBUF); its chains went back untouched.
 */
static int virtio_net_rx_chains(struct virtio_net *n, size_t len, bool *drop)
{
	struct virtq *vq = &n->v.vq[RXQ];
	bool mrg = virtio_mmio_has(&n->v, F_MRG_RXBUF);
	uint64_t room = 0;
	int k = 0, r;

	*drop = false;
	while (room < len && k < vq->num && (k == 0 || mrg)) {
		r = virtq_pop(n->vm, vq, &n->chain[k]);
		if (r < 0)
			return -1;
		if (r == 0) {
			/*
			 * Ask for the kick past the k chains taken, then give them back (nothing
			 * was pushed): at them, the buffers already there would look new and we'd
			 * spin.
			 */
			bool more = virtq_enable_notify(n->vm, vq);

			vq->last_avail -= k;
			if (!more)
				return 0;
			room = k = 0; /* more came meanwhile: start over */
			continue;
		}
		room += n->chain[k++].in_len;
	}
	if (room < len) {
		/* As QEMU does: the guest sees nothing, no zero-length or short used entries. */
		vq->last_avail -= k;
		*drop = true;
	}
	return k;
}

/* Copies the pending frame into the guest. false: no buffers (or broken), keep it. */
static bool virtio_net_rx_frame(struct virtio_net *n, uint8_t *frame, size_t len)
{
	struct virtq *vq = &n->v.vq[RXQ];
	uint64_t done = 0;
	bool drop;
	int k = virtio_net_rx_chains(n, len, &drop);

	if (k <= 0) {
		if (k < 0)
			virtio_mmio_broken(&n->v, RXQ);
		return false;
	}
	if (drop) {
		/* Too big for the guest's buffers (GSO without MRG_RXBUF): the wire drops it. */
		n->rx_dropped++;
		return true;
	}
	if (n->hdr_len == 12) {
		frame[NET_HDR_NUM_BUFFERS] = k;
		frame[NET_HDR_NUM_BUFFERS + 1] = k >> 8;
	}
	for (int i = 0; i < k; i++) {
		uint64_t c = virtq_copy_to_chain(n->vm, &n->chain[i], frame + done, len - done);

		virtq_fill(n->vm, vq, i, n->chain[i].head, c);
		done += c;
	}
	virtq_flush(n->vm, vq, k);
	n->rx_packets++;
	n->rx_bytes += len - n->hdr_len;
	return true;
}

/* Errors of the tap itself, not of one frame: reading again would fail the same way. */
static bool tap_gone(int err)
{
	return err == EBADFD || err == EIO || err == ENODEV || err == ENXIO;
}

/*
 * A failed read of the tap. Most errors concern one frame, which the kernel then dropped: the
 * wire loses it and we go on (stopping until the next RX kick could stop receive for good with
 * EVENT_IDX and a full ring). Only a tap that is gone stops the polling: no busy loop on it.
 * false: stop reading for now.
 */
static bool virtio_net_tap_error(struct virtio_net *n)
{
	if (errno == EAGAIN || errno == EINTR)
		return false;
	if (tap_gone(errno)) {
		perrorf("%s: read tap %s (no longer read until the guest adds receive buffers)",
			n->v.name, n->ifname);
		virtio_net_poll_tap(n, false);
		return false;
	}
	if (!n->rx_failed)
		perrorf("%s: read tap %s (the frame is dropped; further errors are only counted)",
			n->v.name, n->ifname);
	n->rx_failed = true;
	n->rx_dropped++;
	return true;
}

/*
 * Whether the device may write guest memory now: not while a migration copies it, and not
 * while the guest is stopped, whose memory stays as it was (frames wait in the tap meanwhile,
 * as in QEMU).
 */
static bool virtio_net_may_write(struct virtio_net *n)
{
	return !n->paused && vm_state(n->vm) == RUN_STATE_RUNNING && virtio_mmio_running(&n->v);
}

/* Moves frames from the tap into the guest until one side runs dry. */
static void virtio_net_rx(struct virtio_net *n)
{
	unsigned budget = NET_BURST;
	ssize_t r;

	if (!virtio_net_may_write(n))
		return;
	/* Past the budget the tap stays readable: the loop comes back after its other work. */
	while (budget--) {
		if (!n->frame_len) {
			r = read(n->tap, n->frame, sizeof(n->frame));
			if (r < 0 && virtio_net_tap_error(n))
				continue;
			if (r <= (ssize_t)n->hdr_len)
				break;
			/* A length past the buffer would be the kernel's, not what it copied: drop. */
			if (r > (ssize_t)sizeof(n->frame))
				continue;
			n->frame_len = r;
		}
		if (!virtio_net_rx_frame(n, n->frame, n->frame_len)) {
			/*
			 * Out of buffers, and rx_chains() found none raced in after asking for a
			 * kick (or broken): that kick turns the tap back on. Only here: stopping
			 * before a retry that succeeds would leave the tap unread with buffers.
			 */
			virtio_net_poll_tap(n, false);
			break;
		}
		n->frame_len = 0;
	}
	virtio_mmio_used(&n->v, RXQ);
}

static void virtio_net_tap_ready(void *opaque, uint32_t events)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->v.lock);
	/* A reset on a vCPU thread leaves the loop alone; the handler retires itself here. */
	if (!virtio_net_may_write(n))
		virtio_net_poll_tap(n, false);
	else
		virtio_net_rx(n);
	pthread_mutex_unlock(&n->v.lock);
}

static void virtio_net_notify(void *opaque, unsigned q)
{
	struct virtio_net *n = opaque;

	if (!virtio_net_may_write(n))
		return;
	if (q == TXQ) {
		virtio_net_tx(n);
		return;
	}
	/* New receive buffers: deliver what waits, then read the tap again. */
	virtio_net_poll_tap(n, true);
	virtio_net_rx(n);
}

/* The tap must speak the header and offloads the guest negotiated. */
static int virtio_net_setup_tap(struct virtio_net *n)
{
	struct virtio_mmio *v = &n->v;
	unsigned off = 0;

	n->hdr_len =
	    virtio_mmio_has(v, VIRTIO_F_VERSION_1) || virtio_mmio_has(v, F_MRG_RXBUF) ? 12 : 10;
	if (virtio_mmio_has(v, F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		/* The tap refuses ECN without TSO (EINVAL), which would break the device. */
		if (virtio_mmio_has(v, F_GUEST_TSO4)) {
			off |= TUN_F_TSO4;
			if (virtio_mmio_has(v, F_GUEST_ECN))
				off |= TUN_F_TSO_ECN;
		}
	}
	if (tap_set_vnet_hdr_len(n->tap, n->ifname, n->hdr_len) < 0 ||
	    tap_set_offload(n->tap, n->ifname, off) < 0)
		return -1;
	return 0;
}

static void virtio_net_start(void *opaque)
{
	struct virtio_net *n = opaque;

	if (virtio_net_setup_tap(n) < 0) {
		virtio_mmio_broken(&n->v, RXQ);
		return;
	}
	n->frame_len = 0;
	/* We are on a vCPU thread: the I/O thread starts reading the tap, on this kick. */
	virtio_mmio_kick(&n->v, RXQ);
}

static void virtio_net_reset(void *opaque)
{
	struct virtio_net *n = opaque;

	n->frame_len = 0;
}

static void virtio_net_config_read(void *opaque, unsigned off, uint8_t *data, unsigned len)
{
	struct virtio_net *n = opaque;

	memcpy(data, (uint8_t *)&n->config + off, len);
}

static const struct virtio_dev_ops virtio_net_dev_ops = {
    .device_id = VIRTIO_ID_NET,
    .features = NET_FEATURES,
    .nqueues = 2,
    .config_size = sizeof(struct virtio_net_config),
    /* No config_write: legacy drivers may write the MAC, which the command line pins. */
    .config_read = virtio_net_config_read,
    .notify = virtio_net_notify,
    .start = virtio_net_start,
    .reset = virtio_net_reset,
};

/* --- the device as the core sees it: migration, monitor, teardown ---------------------- */

static void virtio_net_send_rarp(void *opaque)
{
	struct virtio_net *n = opaque;
	uint8_t buf[12 + ANNOUNCE_FRAME_LEN] = {0};
	unsigned hl;

	/* The tap expects its header even before the guest negotiated one: 10 by default. */
	pthread_mutex_lock(&n->v.lock); /* hdr_len and the tap's setting change together */
	/* A paused guest may belong to a destination by now: its announcements would steer the
	 * bridge back to this port. */
	if (n->paused) {
		pthread_mutex_unlock(&n->v.lock);
		return;
	}
	hl = n->hdr_len ? n->hdr_len : 10;
	announce_rarp_frame(n->config.mac, buf + hl);
	/* A deleted or downed tap fails each of the five: said once, as the guest's writes. */
	if (write(n->tap, buf, hl + ANNOUNCE_FRAME_LEN) < 0 && !n->tx_failed) {
		perrorf("%s: announce on %s (further write errors are only counted)", n->v.name,
			n->ifname);
		n->tx_failed = true;
	}
	pthread_mutex_unlock(&n->v.lock);
}

void virtio_net_announce(struct virtio_net *n)
{
	announce_start(&n->announce);
}

static int virtio_net_describe(void *opaque, void *fdt)
{
	struct virtio_net *n = opaque;
	char mac[18];

	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->config.mac[0],
		 n->config.mac[1], n->config.mac[2], n->config.mac[3], n->config.mac[4],
		 n->config.mac[5]);
	return state_put_blob(fdt, "mac", mac, sizeof(mac)) ? -1 : 0;
}

static int virtio_net_save(void *opaque, void *fdt)
{
	struct virtio_net *n = opaque;
	int r;

	pthread_mutex_lock(&n->v.lock);
	r = virtio_mmio_save(&n->v, fdt);
	if (!r)
		r = state_put_u32(fdt, "status", n->config.status) ? -1 : 0;
	/* A frame read from the tap that still waits for buffers: it goes along, not lost. */
	if (!r)
		r = state_put_blob(fdt, "rx-frame", n->frame, n->frame_len) ? -1 : 0;
	pthread_mutex_unlock(&n->v.lock);
	return r;
}

static int virtio_net_load(void *opaque, const void *fdt, int node)
{
	struct virtio_net *n = opaque;
	uint32_t status;
	int r, len;

	/*
	 * The link status is the device's alone (the guest cannot write it) and always up: a
	 * stream that says otherwise would take the guest's network down for good.
	 */
	if (state_get_u32(fdt, node, "status", &status) < 0)
		return -1;
	if (status != NET_S_LINK_UP) {
		errorf("%s: the stream's link status %#x is not this device's (%d: link up)",
		       n->v.name, status, NET_S_LINK_UP);
		return -1;
	}
	pthread_mutex_lock(&n->v.lock);
	r = virtio_mmio_load(&n->v, fdt, node);
	if (!r) {
		len = state_get_var(fdt, node, "rx-frame", n->frame, sizeof(n->frame));
		n->frame_len = len > 0 ? len : 0;
		r = len < 0 ? -1 : 0;
	}
	if (!r) {
		n->config.status = status;
		if (virtio_mmio_running(&n->v))
			r = virtio_net_setup_tap(n);
	}
	/* A frame waits only if the tap gave more than its header (virtio_net_rx). */
	if (!r && virtio_mmio_running(&n->v) && n->frame_len && n->frame_len <= n->hdr_len) {
		errorf("%s: the stream's pending frame has %zu bytes, no more than its %u-byte "
		       "header", n->v.name, n->frame_len, n->hdr_len);
		r = -1;
	}
	pthread_mutex_unlock(&n->v.lock);
	return r;
}

static void virtio_net_pause(void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->v.lock);
	n->paused = true;
	virtio_net_poll_tap(n, false);
	pthread_mutex_unlock(&n->v.lock);
}

/* Takes up what waited while the device held back: the tap, and buffers on either queue. */
static void virtio_net_go_on(struct virtio_net *n)
{
	if (virtio_net_may_write(n)) {
		virtio_net_poll_tap(n, true);
		virtio_net_tx(n);
		virtio_net_rx(n);
	}
}

static void virtio_net_resume(void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->v.lock);
	n->paused = false;
	virtio_net_go_on(n);
	pthread_mutex_unlock(&n->v.lock);
}

/* Stopping needs nothing here: on the I/O thread we come after any burst under way, and the
 * next readable tap finds the guest stopped and leaves the tap alone. */
static void virtio_net_runstate(void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->v.lock);
	virtio_net_go_on(n);
	pthread_mutex_unlock(&n->v.lock);
}

static void virtio_net_post_migrate(void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->v.lock);
	if (virtio_mmio_running(&n->v)) {
		/*
		 * Buffers the source left unprocessed, and frames for the guest, wait for no kick
		 * from the guest: take up both queues (and the tap) now. Not at load: until GO the
		 * source may still resume the guest, and we must not send its frames too.
		 */
		virtio_mmio_kick(&n->v, RXQ);
		virtio_mmio_kick(&n->v, TXQ);
	}
	pthread_mutex_unlock(&n->v.lock);
	virtio_net_announce(n);
}

static int virtio_net_handover_fd(void *opaque)
{
	return ((struct virtio_net *)opaque)->tap;
}

/* A frame (with the tap's header) that reached the source after the hand-over. */
static void virtio_net_inject(void *opaque, const void *buf, size_t len)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->v.lock);
	/* Paused, the guest is on its way on (A->B->C): its RAM is being copied. Stopped (it
	 * arrived so), its memory stays as it is: dropped, as by a tap whose queue is full. */
	if (!virtio_net_may_write(n) || len <= n->hdr_len || len > sizeof(n->frame)) {
		n->rx_dropped++;
	} else {
		uint8_t *copy = malloc(len);

		/* frame[] may hold a frame of our own tap that still waits. */
		if (copy) {
			memcpy(copy, buf, len);
			if (!virtio_net_rx_frame(n, copy, len))
				n->rx_dropped++;
			virtio_mmio_used(&n->v, RXQ);
			free(copy);
		}
	}
	pthread_mutex_unlock(&n->v.lock);
}

static void virtio_net_info(void *opaque, const char *what, char *buf, unsigned len)
{
	struct virtio_net *n = opaque;
	const uint8_t *m = n->config.mac;

	if (strcmp(what, "network"))
		return;
	pthread_mutex_lock(&n->v.lock);
	snprintf(buf, len,
		 "%s: irq %u, macaddr=%02x:%02x:%02x:%02x:%02x:%02x, tap %s%s%s, %s\n"
		 "  rx %llu packets %llu bytes %llu dropped, tx %llu packets %llu bytes "
		 "%llu dropped\n",
		 n->v.name, n->v.irq, m[0], m[1], m[2], m[3], m[4], m[5], n->ifname,
		 *n->br ? ", bridge " : "", n->br, virtio_mmio_state(&n->v),
		 (unsigned long long)n->rx_packets, (unsigned long long)n->rx_bytes,
		 (unsigned long long)n->rx_dropped, (unsigned long long)n->tx_packets,
		 (unsigned long long)n->tx_bytes, (unsigned long long)n->tx_dropped);
	pthread_mutex_unlock(&n->v.lock);
}

static void virtio_net_destroy(void *opaque)
{
	struct virtio_net *n = opaque;

	announce_destroy(&n->announce);
	virtio_net_poll_tap(n, false);
	virtio_mmio_destroy(&n->v);
	if (n->detach)
		bridge_detach(n->br, n->ifname);
	if (n->tap >= 0)
		close(n->tap); /* a tap we created goes away with its last fd, and off its bridge */
	free(n);
}

/*
 * A destination whose tap was deleted, or taken off its bridge, since it started would run the
 * guest with its network dead: it refuses in the hello, and the guest runs on at the source.
 */
static int virtio_net_can_arrive(void *opaque, char *why, size_t len)
{
	struct virtio_net *n = opaque;

	if (!tap_alive(n->tap))
		snprintf(why, len, "tap %s was deleted on this host", n->ifname);
	else if (*n->br && bridge_has_port(n->br, n->ifname) == 0)
		snprintf(why, len, "tap %s is no longer a port of bridge %s", n->ifname, n->br);
	else
		return 0;
	return -1;
}

static const struct device_ops virtio_net_ops = {
    .name = "virtio-net",
    .describe = virtio_net_describe,
    .save = virtio_net_save,
    .load = virtio_net_load,
    .can_arrive = virtio_net_can_arrive,
    .pause = virtio_net_pause,
    .resume = virtio_net_resume,
    .runstate = virtio_net_runstate,
    .post_migrate = virtio_net_post_migrate,
    .handover_fd = virtio_net_handover_fd,
    .inject = virtio_net_inject,
    .info = virtio_net_info,
    .destroy = virtio_net_destroy,
};

struct virtio_net *virtio_net_of(const struct device *d)
{
	return d->ops == &virtio_net_ops ? d->opaque : NULL;
}

static int virtio_net_backend(struct virtio_net *n, const struct netdev_cfg *nd)
{
	n->tap = tap_open(nd->ifname, n->ifname);
	if (n->tap < 0)
		return -1;
	snprintf(n->br, sizeof(n->br), "%s", nd->br);
	if (*n->br) {
		/*
		 * A bridge whose address was never set takes the lowest of its ports' MACs, and
		 * the kernel picks a random one for each tap: a tap coming or going (as one does
		 * in every migration) could change the bridge's MAC under the guest's ARP cache
		 * and blackhole its traffic to the host. Its MAC is set before it joins.
		 */
		uint8_t mac[6];
		int r;

		tap_mac_for_bridge(n->config.mac, mac);
		if (tap_set_mac(n->ifname, mac) < 0)
			return -1;
		r = bridge_attach(n->br, n->ifname);
		if (r < 0)
			return -1;
		/* Ours leaves the bridge with its fd; a persistent one we put there, at exit. */
		n->detach = r == 0 && tap_persistent(n->tap);
	}
	/* Until the guest negotiates, the tap speaks the 10-byte header (announce frames). */
	return tap_set_vnet_hdr_len(n->tap, n->ifname, 10);
}

struct virtio_net *virtio_net_create(struct vm *vm, const struct netdev_cfg *nd,
				     const uint8_t mac[6])
{
	struct virtio_net *n = calloc(1, sizeof(*n));

	if (!n) {
		perrorf("virtio-net: calloc");
		return NULL;
	}
	n->vm = vm;
	n->tap = -1;
	n->announce.timerfd = -1;
	memcpy(n->config.mac, mac, 6);
	n->config.status = NET_S_LINK_UP;
	n->config.max_virtqueue_pairs = 1;
	if (virtio_mmio_init(&n->v, vm, &virtio_net_dev_ops, n, "virtio-net") < 0 ||
	    virtio_net_backend(n, nd) < 0 ||
	    announce_init(&n->announce, &vm->loop, virtio_net_send_rarp, n) < 0 ||
	    vm_register_device(vm, &virtio_net_ops, n) < 0) {
		virtio_net_destroy(n);
		return NULL;
	}
	return n;
}
