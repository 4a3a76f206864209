/*
 * lwIP configuration for tern's test guest: NO_SYS (one thread, the main loop polls), the
 * IPv4 core only (ARP, ICMP, UDP, TCP, DHCP), lwIP's heap on the guest's malloc and its own
 * static pools. Everything runs in ring 3; the guest is built with -mgeneral-regs-only.
 */
#ifndef LWIPOPTS_H
#define LWIPOPTS_H

#define NO_SYS			1
#define SYS_LIGHTWEIGHT_PROT	0	/* the main loop is the only context that touches lwIP */
#define LWIP_SOCKET		0
#define LWIP_NETCONN		0
#define LWIP_NETIF_API		0

#define LWIP_IPV4		1
#define LWIP_IPV6		0
#define LWIP_ARP		1
#define LWIP_ETHERNET		1
#define LWIP_ICMP		1
#define LWIP_RAW		0
#define LWIP_UDP		1
#define LWIP_TCP		1
#define LWIP_DHCP		1
#define LWIP_AUTOIP		0
#define LWIP_IGMP		0
#define LWIP_DNS		0
#define LWIP_NETIF_STATUS_CALLBACK 1
#define LWIP_NETIF_LINK_CALLBACK 1
#define LWIP_NETIF_HOSTNAME	1
#define LWIP_STATS		0
#define LWIP_DHCP_DOES_ACD_CHECK 0
#define DHCP_DOES_ARP_CHECK	0	/* no 2 s wait before the address is used */
#define IP_REASSEMBLY		1
#define IP_FRAG			1
#define ETHARP_SUPPORT_STATIC_ENTRIES 0

/* Memory: lwIP's heap on our malloc (16-byte aligned), its pools static. */
#define MEM_LIBC_MALLOC		1
#define MEM_ALIGNMENT		8
#define MEMP_NUM_PBUF		64
#define MEMP_NUM_TCP_PCB	16
#define MEMP_NUM_TCP_PCB_LISTEN	4
#define MEMP_NUM_TCP_SEG	256
#define MEMP_NUM_UDP_PCB	4
#define MEMP_NUM_ARP_QUEUE	16
#define PBUF_POOL_SIZE		256
#define PBUF_POOL_BUFSIZE	1536

#define TCP_MSS			1460
#define TCP_WND			(32 * TCP_MSS)
#define TCP_SND_BUF		(32 * TCP_MSS)
#define TCP_SND_QUEUELEN	(4 * TCP_SND_BUF / TCP_MSS)
#define TCP_QUEUE_OOSEQ		1
#define LWIP_TCP_KEEPALIVE	0
#define LWIP_WND_SCALE		1
#define TCP_RCV_SCALE		2
#define LWIP_TCP_TIMESTAMPS	0

/* Software checksums everywhere: the driver negotiates no offloads. */
#define CHECKSUM_GEN_IP		1
#define CHECKSUM_GEN_UDP	1
#define CHECKSUM_GEN_TCP	1
#define CHECKSUM_GEN_ICMP	1
#define CHECKSUM_CHECK_IP	1
#define CHECKSUM_CHECK_UDP	1
#define CHECKSUM_CHECK_TCP	1
#define CHECKSUM_CHECK_ICMP	1

/* DHCP xid, ephemeral ports, TCP ISNs. */
#define LWIP_RAND()		guest_rand()
#ifndef __ASSEMBLER__
#include <stdint.h>
uint32_t guest_rand(void);
#endif

#endif
