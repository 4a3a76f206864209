/*
 * virtio-net driver in ring 3 (virtio 1.x 5.1 and 2.7 split rings, Version 2 virtio-mmio).
 *
 * Like OSv's driver it does not acknowledge VIRTIO_F_VERSION_1, so the legacy net header
 * applies: 12 bytes with VIRTIO_NET_F_MRG_RXBUF, 10 without. It acknowledges, where
 * offered: MAC, MRG_RXBUF, STATUS, RING_INDIRECT_DESC, RING_EVENT_IDX (no checksum or
 * segmentation offloads: lwIP computes every checksum). The cmdline word "netversion1"
 * acknowledges VERSION_1 too (then the header is always 12 bytes), for devices that refuse
 * FEATURES_OK without it.
 *
 * Receive: one 2 KiB buffer per descriptor, copied into an lwIP pbuf. Transmit: one 2 KiB
 * buffer per descriptor, the frame copied in behind a zero header; completions are
 * reclaimed when sending, so transmit interrupts are suppressed. Interrupts: the IOAPIC
 * line is edge-triggered; on its vector (and once a second regardless) the driver reads
 * InterruptStatus and acknowledges it, then looks at the used rings.
 *
 * Transmit watchdog: if frames are outstanding and the device has not used any for 20 ms,
 * the queue is notified again, whatever the event index says. QEMU 7.2 stalls transmit now
 * and then under load (used idx stuck, avail_event = used idx, frames waiting; a notify gets
 * it going), which looks like the host-side stall fixed upstream in QEMU 9.0 ("virtio-net:
 * Fix network stall at the host side waiting for kick"). On tern it should never fire: the
 * console command "net" shows the count (tx rekicks).
 */
#include "virtio_net.h"
#include "apic.h"
#include "bootinfo.h"
#include "kvmclock.h"
#include "lib.h"
#include "sys.h"
#include "virtio_mmio.h"

#include "lwip/etharp.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "netif/ethernet.h"

#define VIRTIO_ID_NET			1
#define VIRTIO_NET_F_CSUM		0
#define VIRTIO_NET_F_MAC		5
#define VIRTIO_NET_F_MRG_RXBUF		15
#define VIRTIO_NET_F_STATUS		16
#define VIRTIO_NET_S_LINK_UP		1
#define VRING_AVAIL_F_NO_INTERRUPT	1
#define VRING_USED_F_NO_NOTIFY		1
#define VIRTIO_ISR_QUEUE		1
#define VIRTIO_ISR_CONFIG		2

#define RXQ		0
#define TXQ		1
#define QUEUE_MAX	256
#define BUF_SIZE	2048
#define BIT(n)		(1ULL << (n))

struct vnet {
	uint64_t base;
	unsigned irq;
	uint64_t features;
	unsigned hdr_len;
	int event_idx;
	struct virtq rx, tx;
	char *rxbuf, *txbuf;
	uint16_t tx_free[QUEUE_MAX];
	unsigned tx_nfree;
	uint8_t mac[6];
	int link_up, dead, needs_reset_seen;
	struct netif *netif;
	uint64_t last_isr_check;
	uint64_t garbage_at, garbage_done_at;
	uint64_t rx_frames, tx_frames, tx_drops, tx_rekicks;
	uint16_t tx_watch_used;		/* tx used idx at tx_watch_t */
	uint64_t tx_watch_t;
};

static struct vnet vnet;

static inline void mb(void)
{
	asm volatile("lock; orq $0, (%%rsp)" ::: "memory", "cc");
}

static int has(struct vnet *n, unsigned f)
{
	return !!(n->features & BIT(f));
}

static void config_read(struct vnet *n, unsigned off, void *dst, unsigned len)
{
	uint32_t gen;

	do {
		gen = vmmio_read(n->base, VIRTIO_MMIO_CONFIG_GENERATION);
		for (unsigned i = 0; i < len; i++)
			((uint8_t *)dst)[i] = *(volatile uint8_t *)(n->base + VIRTIO_MMIO_CONFIG + off + i);
	} while (gen != vmmio_read(n->base, VIRTIO_MMIO_CONFIG_GENERATION));
}

static void fail(struct vnet *n, const char *why)
{
	printf("virtio-net@%#lx: %s\n", n->base, why);
	vmmio_write(n->base, VIRTIO_MMIO_STATUS,
		    vmmio_read(n->base, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_FAILED);
}

static int vnet_init(struct vnet *n)
{
	uint64_t offered, want;
	uint32_t st;

	vmmio_write(n->base, VIRTIO_MMIO_STATUS, 0);	/* reset */
	st = VIRTIO_STATUS_ACKNOWLEDGE;
	vmmio_write(n->base, VIRTIO_MMIO_STATUS, st);
	st |= VIRTIO_STATUS_DRIVER;
	vmmio_write(n->base, VIRTIO_MMIO_STATUS, st);

	offered = vmmio_device_features(n->base);
	want = BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_NET_F_STATUS) |
	       BIT(VIRTIO_F_RING_INDIRECT_DESC) | BIT(VIRTIO_F_RING_EVENT_IDX);
	if (cmdline_has("netversion1"))
		want |= BIT(VIRTIO_F_VERSION_1);
	n->features = offered & want;
	vmmio_driver_features(n->base, n->features);
	st |= VIRTIO_STATUS_FEATURES_OK;
	vmmio_write(n->base, VIRTIO_MMIO_STATUS, st);
	if (!(vmmio_read(n->base, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
		printf("virtio-net@%#lx: device refused FEATURES_OK for features %#lx (offered %#lx)%s\n",
		       n->base, n->features, offered,
		       has(n, VIRTIO_F_VERSION_1) ? "" : "; try the cmdline word netversion1");
		fail(n, "giving up");
		return -1;
	}
	n->hdr_len = has(n, VIRTIO_F_VERSION_1) || has(n, VIRTIO_NET_F_MRG_RXBUF) ? 12 : 10;
	n->event_idx = has(n, VIRTIO_F_RING_EVENT_IDX);

	if (virtq_setup(n->base, &n->rx, RXQ, QUEUE_MAX) < 0 ||
	    virtq_setup(n->base, &n->tx, TXQ, QUEUE_MAX) < 0) {
		fail(n, "queue setup failed");
		return -1;
	}
	n->rxbuf = alloc_pages(n->rx.num * BUF_SIZE / 4096);
	n->txbuf = alloc_pages(n->tx.num * BUF_SIZE / 4096);
	if (!n->rxbuf || !n->txbuf) {
		fail(n, "no memory for buffers");
		return -1;
	}
	for (unsigned i = 0; i < n->rx.num; i++) {
		n->rx.desc[i].addr = (uint64_t)(uintptr_t)(n->rxbuf + i * BUF_SIZE);
		n->rx.desc[i].len = BUF_SIZE;
		n->rx.desc[i].flags = VRING_DESC_F_WRITE;
		n->rx.desc[i].next = 0;
		n->rx.avail[2 + i] = (uint16_t)i;
	}
	n->rx.avail_idx = (uint16_t)n->rx.num;
	for (unsigned i = 0; i < n->tx.num; i++)
		n->tx_free[i] = (uint16_t)(n->tx.num - 1 - i);
	n->tx_nfree = n->tx.num;
	/* Completed transmissions are reclaimed when sending: no interrupts for them. */
	if (n->event_idx)
		*virtq_used_event(&n->tx) = 0x8000;
	else
		n->tx.avail[0] = VRING_AVAIL_F_NO_INTERRUPT;

	if (has(n, VIRTIO_NET_F_MAC)) {
		config_read(n, 0, n->mac, 6);
	} else {
		uint64_t r = rdtsc() * 0x9e3779b97f4a7c15ULL;

		memcpy(n->mac, &r, 6);
		n->mac[0] = (uint8_t)((n->mac[0] & 0xfe) | 0x02);	/* unicast, local */
	}
	n->link_up = 1;
	if (has(n, VIRTIO_NET_F_STATUS)) {
		uint16_t s;

		config_read(n, 6, &s, 2);
		n->link_up = s & VIRTIO_NET_S_LINK_UP;
	}
	printf("virtio-net@%#lx irq %u: mac %02x:%02x:%02x:%02x:%02x:%02x, features %#lx "
	       "(offered %#lx), header %u bytes, queues %u/%u, link %s\n",
	       n->base, n->irq, n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5],
	       n->features, offered, n->hdr_len, n->rx.num, n->tx.num, n->link_up ? "up" : "down");
	return 0;
}

void *virtio_net_probe(void)
{
	for (int i = 0; i < virtio_mmio_ndevs; i++) {
		struct virtio_mmio_dev *d = &virtio_mmio_devs[i];
		uint32_t magic = vmmio_read(d->base, VIRTIO_MMIO_MAGIC);
		uint32_t version = vmmio_read(d->base, VIRTIO_MMIO_VERSION);
		uint32_t id = vmmio_read(d->base, VIRTIO_MMIO_DEVICE_ID);

		if (magic != 0x74726976) {
			printf("virtio-mmio@%#lx: bad magic %#x\n", d->base, magic);
			continue;
		}
		if (!id)
			continue;	/* an empty slot */
		if (version != 2) {
			printf("virtio-mmio@%#lx: device %u has version %u: ignored (only the modern "
			       "layout, version 2, is supported)\n", d->base, id, version);
			continue;
		}
		if (id != VIRTIO_ID_NET || vnet.base)
			continue;
		vnet.base = d->base;
		vnet.irq = d->irq;
		if (vnet_init(&vnet) < 0) {
			vnet.base = 0;
			continue;
		}
		return &vnet;
	}
	return NULL;
}

/* --- rings --------------------------------------------------------------------------- */

static void virtq_add(struct virtq *q, uint16_t id)
{
	q->avail[2 + q->avail_idx % q->num] = id;
	q->avail_idx++;
}

static void virtq_kick(struct vnet *n, struct virtq *q)
{
	uint16_t old = q->kicked_idx, now = q->avail_idx;
	int notify;

	barrier();
	q->avail[1] = now;
	mb();	/* publish idx before reading the device's suppression state */
	if (n->event_idx) {
		uint16_t ev = *virtq_avail_event(q);

		notify = (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
	} else {
		notify = !(q->used[0] & VRING_USED_F_NO_NOTIFY);
	}
	q->kicked_idx = now;
	if (notify)
		vmmio_write(n->base, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

static void tx_reclaim(struct vnet *n)
{
	struct virtq *q = &n->tx;

	while (q->last_used != virtq_used_idx(q)) {
		barrier();
		uint32_t id = virtq_used_elem(q, q->last_used)->id;

		q->last_used++;
		if (id >= q->num || n->tx_nfree >= q->num) {
			fail(n, "device returned a bogus transmit buffer id");
			n->dead = 1;
			return;
		}
		n->tx_free[n->tx_nfree++] = (uint16_t)id;
	}
}

static err_t vnet_linkoutput(struct netif *nif, struct pbuf *p)
{
	struct vnet *n = nif->state;
	uint16_t id;
	char *buf;

	if (n->dead || !n->link_up)
		return ERR_IF;
	if (p->tot_len > BUF_SIZE - n->hdr_len) {
		n->tx_drops++;
		return ERR_BUF;
	}
	tx_reclaim(n);
	for (uint64_t t0 = now_ns(); !n->tx_nfree && now_ns() - t0 < 1000000;) {
		cpu_relax();
		tx_reclaim(n);
	}
	if (!n->tx_nfree || n->dead) {
		n->tx_drops++;
		return ERR_MEM;	/* lwIP keeps TCP segments queued and retries */
	}
	id = n->tx_free[--n->tx_nfree];
	buf = n->txbuf + (size_t)id * BUF_SIZE;
	memset(buf, 0, n->hdr_len);	/* no offloads; num_buffers 0 */
	pbuf_copy_partial(p, buf + n->hdr_len, p->tot_len, 0);
	n->tx.desc[id].addr = (uint64_t)(uintptr_t)buf;
	n->tx.desc[id].len = n->hdr_len + p->tot_len;
	n->tx.desc[id].flags = 0;
	n->tx.desc[id].next = 0;
	virtq_add(&n->tx, id);
	virtq_kick(n, &n->tx);
	n->tx_frames++;
	return ERR_OK;
}

/* Returns the number of frames handed to lwIP. */
static int rx_poll(struct vnet *n)
{
	struct virtq *q = &n->rx;
	int got = 0, recycled = 0;

	for (;;) {
		uint16_t used = virtq_used_idx(q);

		if (used == q->last_used)
			break;
		barrier();
		volatile struct vring_used_elem *e = virtq_used_elem(q, q->last_used);
		uint32_t id = e->id, len = e->len;
		unsigned nbufs = 1;

		if (id >= q->num || len > BUF_SIZE || len < n->hdr_len) {
			printf("virtio-net@%#lx: bogus used entry id %u len %u\n", n->base, id, len);
			fail(n, "stopping");
			n->dead = 1;
			return got;
		}
		if (has(n, VIRTIO_NET_F_MRG_RXBUF)) {
			uint16_t nb = *(uint16_t *)(n->rxbuf + (size_t)id * BUF_SIZE + 10);

			nbufs = nb ? nb : 1;
		}
		if ((uint16_t)(used - q->last_used) < nbufs)
			break;	/* the rest of a merged frame is not there yet */

		/* Total length, then one pbuf for the whole frame. */
		uint32_t total = len - n->hdr_len;
		for (unsigned k = 1; k < nbufs; k++) {
			volatile struct vring_used_elem *x = virtq_used_elem(q, q->last_used + k);

			if (x->id >= q->num || x->len > BUF_SIZE) {
				fail(n, "bogus used entry in a merged frame");
				n->dead = 1;
				return got;
			}
			total += x->len;
		}
		struct pbuf *p = total && total <= 65535 ?
				 pbuf_alloc(PBUF_RAW, (u16_t)total, PBUF_POOL) : NULL;
		uint32_t off = 0;

		for (unsigned k = 0; k < nbufs; k++) {
			volatile struct vring_used_elem *x = virtq_used_elem(q, q->last_used);
			uint32_t xid = x->id, xlen = x->len, skip = k ? 0 : n->hdr_len;

			if (p)
				pbuf_take_at(p, n->rxbuf + (size_t)xid * BUF_SIZE + skip,
					     (u16_t)(xlen - skip), (u16_t)off);
			off += xlen - skip;
			q->last_used++;
			virtq_add(q, (uint16_t)xid);	/* the descriptor still points at its buffer */
			recycled++;
		}
		if (p) {
			n->rx_frames++;
			got++;
			if (n->netif->input(p, n->netif) != ERR_OK)
				pbuf_free(p);
		}
		if (n->dead)	/* netgarbage from a callback */
			return got;
	}
	if (recycled)
		virtq_kick(n, q);
	if (n->event_idx) {
		*virtq_used_event(q) = q->last_used;
		mb();
		if (virtq_used_idx(q) != q->last_used)
			got++;	/* arrived meanwhile, maybe without an interrupt: go again */
	}
	return got;
}

static void link_changed(struct vnet *n)
{
	uint32_t st = vmmio_read(n->base, VIRTIO_MMIO_STATUS);

	if ((st & VIRTIO_STATUS_NEEDS_RESET) && !n->needs_reset_seen) {
		n->needs_reset_seen = 1;
		n->dead = 1;
		printf("virtio-net@%#lx: device needs reset (status %#x): stopped using it\n",
		       n->base, st);
		netif_set_link_down(n->netif);
		return;
	}
	if (has(n, VIRTIO_NET_F_STATUS) && !n->dead) {
		uint16_t s;
		int up;

		config_read(n, 6, &s, 2);
		up = s & VIRTIO_NET_S_LINK_UP;
		if (up != n->link_up) {
			n->link_up = up;
			printf("eth0: link %s\n", up ? "up" : "down");
			if (up)
				netif_set_link_up(n->netif);
			else
				netif_set_link_down(n->netif);
		}
	}
}

err_t virtio_net_netif_init(struct netif *nif)
{
	struct vnet *n = nif->state;

	n->netif = nif;
	nif->name[0] = 'e';
	nif->name[1] = 'n';
	nif->output = etharp_output;
	nif->linkoutput = vnet_linkoutput;
	nif->mtu = 1500;
	nif->hwaddr_len = 6;
	memcpy(nif->hwaddr, n->mac, 6);
	nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
	if (n->link_up)
		nif->flags |= NETIF_FLAG_LINK_UP;
	return ERR_OK;
}

void virtio_net_stats(void *dev)
{
	struct vnet *n = dev;

	printf("virtio-net: rx %lu frames, tx %lu frames, tx drops %lu, tx rekicks %lu, tx free %u/%u, "
	       "rx used %u/%u avail %u, tx used %u/%u avail %u kicked %u avail_event %u, "
	       "status %#x%s\n",
	       n->rx_frames, n->tx_frames, n->tx_drops, n->tx_rekicks, n->tx_nfree, n->tx.num,
	       n->rx.last_used, virtq_used_idx(&n->rx), n->rx.avail_idx, n->tx.last_used,
	       virtq_used_idx(&n->tx), n->tx.avail_idx, n->tx.kicked_idx, *virtq_avail_event(&n->tx),
	       vmmio_read(n->base, VIRTIO_MMIO_STATUS),
	       n->dead ? ", stopped" : "");
}

void virtio_net_start(void *dev)
{
	struct vnet *n = dev;

	ioapic_route(n->irq, VEC_IRQ(n->irq));
	vmmio_write(n->base, VIRTIO_MMIO_STATUS, vmmio_read(n->base, VIRTIO_MMIO_STATUS) |
						 VIRTIO_STATUS_DRIVER_OK);
	virtq_kick(n, &n->rx);	/* the receive buffers */
	n->last_isr_check = now_ns();
}

/* --- netgarbage: break the rings on purpose (tern must mark the device broken) -------- */

static void scribble(struct vnet *n, struct virtq *q)
{
	for (unsigned i = 0; i < q->num; i++) {
		q->desc[i].addr = 0xfff0000000000000ULL | (uint64_t)i << 12;	/* no such RAM */
		q->desc[i].len = 0xfffff000u - i;
		q->desc[i].flags = VRING_DESC_F_NEXT | (i & 1 ? VRING_DESC_F_WRITE : 0);
		q->desc[i].next = (uint16_t)(i * 7 + 3);		/* mostly out of range, loops */
		q->avail[2 + i] = (uint16_t)(0xffff - i);		/* no such descriptor */
	}
	barrier();
	q->avail[1] = (uint16_t)(q->avail_idx + 0x8000);		/* far ahead */
	mb();
	vmmio_write(n->base, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

void virtio_net_garbage_after(void *dev, uint64_t ms)
{
	struct vnet *n = dev;

	n->garbage_at = now_ns() + ms * 1000000ULL;
	printf("netgarbage: will write garbage into the rings in %lu ms\n", ms);
}

static void garbage_poll(struct vnet *n, uint64_t t)
{
	if (n->garbage_at && t >= n->garbage_at) {
		n->garbage_at = 0;
		n->dead = 1;
		scribble(n, &n->tx);
		scribble(n, &n->rx);
		n->garbage_done_at = t;
		printf("netgarbage: wrote garbage into the rx and tx rings of virtio-net@%#lx "
		       "(bogus descriptors, avail idx +0x8000) and notified both queues\n", n->base);
		netif_set_link_down(n->netif);
	}
	if (n->garbage_done_at && t - n->garbage_done_at >= 5000000000ULL) {
		n->garbage_done_at = 0;
		if (!n->needs_reset_seen)
			printf("netgarbage: device status %#x 5 s later\n",
			       vmmio_read(n->base, VIRTIO_MMIO_STATUS));
	}
}

int virtio_net_poll(void *dev, uint64_t pending)
{
	struct vnet *n = dev;
	uint64_t t = now_ns();
	int busy = 0;

	if ((pending & IRQ_BIT(VEC_IRQ(n->irq))) || t - n->last_isr_check >= 1000000000ULL) {
		uint32_t isr = vmmio_read(n->base, VIRTIO_MMIO_INTERRUPT_STATUS);

		n->last_isr_check = t;
		if (isr)
			vmmio_write(n->base, VIRTIO_MMIO_INTERRUPT_ACK, isr);
		if ((isr & VIRTIO_ISR_CONFIG) || (n->dead && !n->needs_reset_seen))
			link_changed(n);
	}
	if (!n->dead) {
		busy = rx_poll(n);
		if (!n->dead)
			tx_reclaim(n);
	}
	if (!n->dead) {
		uint16_t u = virtq_used_idx(&n->tx);

		if (n->tx_nfree == n->tx.num || u != n->tx_watch_used) {
			n->tx_watch_used = u;
			n->tx_watch_t = t;
		} else if (t - n->tx_watch_t >= 20000000ULL) {
			vmmio_write(n->base, VIRTIO_MMIO_QUEUE_NOTIFY, TXQ);
			n->tx_rekicks++;
			n->tx_watch_t = t;
		}
	}
	garbage_poll(n, t);
	return busy;
}
