/* Tap devices for virtio-net backends, and attaching them to a Linux bridge. */
#ifndef TERN_TAP_H
#define TERN_TAP_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Opens (or creates) tap `want` ("" = let the kernel pick a name) with IFF_VNET_HDR,
 * non-blocking, and brings it up. The name it got goes to name. Returns the fd or -1.
 * A tap tern creates is not persistent: it disappears when tern closes the fd.
 */
int tap_open(const char *want, char name[IFNAMSIZ]);
/* Whether the tap behind fd still exists: false once it was deleted (`ip link del`). */
bool tap_alive(int fd);
/* Whether the tap outlives its fds (`ip tuntap add`): not tern's, it stays after tern. */
bool tap_persistent(int fd);
/* Length of the virtio-net header in front of every frame (10 or 12). */
int tap_set_vnet_hdr_len(int fd, const char *name, int len);
/* TUN_F_* offloads the guest can take on receive. */
int tap_set_offload(int fd, const char *name, unsigned flags);
/*
 * The MAC of a tap on a bridge, as libvirt makes it: the guest's with a first byte of 0xFE,
 * high (the bridge takes a lower port's for its own) and the same at both ends of a
 * migration; 0xFA where the guest's has 0xFE, or the bridge would take the guest's frames
 * for its own.
 */
void tap_mac_for_bridge(const uint8_t guest[6], uint8_t mac[6]);
/* Sets the tap's own MAC address (not the guest's: the host side of the wire). */
int tap_set_mac(const char *name, const uint8_t mac[6]);
/* Makes interface name a port of bridge br: 0, or 1 if it was one already; -1 on error. */
int bridge_attach(const char *br, const char *name);
/* Whether interface name is a port of bridge br now: 1, 0 (or no such interface), -1 unknown. */
int bridge_has_port(const char *br, const char *name);
/* Takes interface name off bridge br again; quiet if it is gone or no longer br's port. */
void bridge_detach(const char *br, const char *name);

#endif
