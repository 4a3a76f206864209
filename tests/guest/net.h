/* The network service: virtio-net + lwIP (DHCP or --ip=), ICMP echo, TCP echo, HTTP. */
#ifndef NET_H
#define NET_H

#include <stdint.h>

int net_start(void);
int net_poll(uint64_t pending);
void net_info_cmd(const char *args);
/* "Mon Nov 23 09:33:09 UTC 2026" for a time in seconds since the epoch. */
void format_date(char *buf, unsigned long size, uint64_t secs);

#endif
