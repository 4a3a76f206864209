/* virtio-net over virtio-mmio, driven from ring 3, as an lwIP netif. */
#ifndef VIRTIO_NET_H
#define VIRTIO_NET_H

#include <stdint.h>

struct netif;

/*
 * Probes the virtio-mmio devices from the cmdline for a virtio-net (Version 2 only), resets
 * it, negotiates features and sets up the queues. Returns the device's lwIP netif init
 * function's state (opaque), or NULL if there is none or it failed (after printing why).
 */
void *virtio_net_probe(void);
/* netif_add() init function: state = what virtio_net_probe returned. */
signed char virtio_net_netif_init(struct netif *nif);
/* DRIVER_OK, after netif_add. */
void virtio_net_start(void *dev);
/* Interrupt status, received frames, completed transmissions; nonzero: poll again now. */
int virtio_net_poll(void *dev, uint64_t pending);
void virtio_net_stats(void *dev);	/* one line of counters */
/* "netgarbage[=MS]": MS after start, fill the rings with garbage and notify the device. */
void virtio_net_garbage_after(void *dev, uint64_t ms);

#endif
