/* Tap devices for virtio-net backends, and attaching them to a Linux bridge. */
#ifndef TERN_TAP_H
#define TERN_TAP_H

#include <net/if.h>
#include <stdint.h>

/*
 * Opens (or creates) tap `want` ("" = let the kernel pick a name) with IFF_VNET_HDR,
 * non-blocking, and brings it up. The name it got goes to name. Returns the fd or -1.
 * A tap tern creates is not persistent: it disappears when tern closes the fd.
 */
int tap_open(const char *want, char name[IFNAMSIZ]);
/* Length of the virtio-net header in front of every frame (10 or 12). */
int tap_set_vnet_hdr_len(int fd, const char *name, int len);
/* TUN_F_* offloads the guest can take on receive. */
int tap_set_offload(int fd, const char *name, unsigned flags);
/* Sets the tap's own MAC address (not the guest's: the host side of the wire). */
int tap_set_mac(const char *name, const uint8_t mac[6]);
/* Makes interface name a port of bridge br. */
int bridge_attach(const char *br, const char *name);

#endif
