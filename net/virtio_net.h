/* virtio-net on a tap backend (virtio 1.x, section 5.1), one rx/tx queue pair. */
#ifndef TERN_VIRTIO_NET_H
#define TERN_VIRTIO_NET_H

#include <stdint.h>

struct vm;
struct device;
struct netdev_cfg;
struct virtio_net;

struct virtio_net *virtio_net_create(struct vm *vm, const struct netdev_cfg *nd,
				     const uint8_t mac[6]);
/* The NIC behind a registered device, or NULL if d is something else. */
struct virtio_net *virtio_net_of(const struct device *d);
/* Sends RARP announcements now and on QEMU's schedule (monitor `announce_self`). */
void virtio_net_announce(struct virtio_net *n);

#endif
