/*
 * The network service, all in ring 3: lwIP (NO_SYS, polled from the main loop) on the
 * virtio-net driver. Addressing as OSv: "--ip=eth0,ADDR,NETMASK --defaultgw=GW
 * [--nameserver=NS]" on the cmdline, DHCP otherwise; the address is printed as
 * "eth0: 192.168.123.10". Services: ICMP echo (lwIP), TCP echo on port 7, and an HTTP/1.1
 * server on port 8000 answering GET /os/date with the wall clock as a JSON string, like
 * OSv's REST API (keep-alive, Content-Length; 404 for other paths).
 */
#include "net.h"
#include "bootinfo.h"
#include "kvmclock.h"
#include "lib.h"
#include "sys.h"
#include "virtio_net.h"

#include "lwip/dhcp.h"
#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/tcp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

/* --- what lwIP needs from the platform ------------------------------------------------ */

u32_t sys_now(void)
{
	return (u32_t)(now_ns() / 1000000);
}

uint32_t guest_rand(void)
{
	static uint64_t s;

	if (!s)
		s = rdtsc() | 1;
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return (uint32_t)(s >> 16);
}

void lwip_guest_assert(const char *msg, const char *file, int line)
{
	printf("lwIP assertion \"%s\" failed at %s:%d\n", msg, file, line);
	crash();
}

int atoi(const char *s)
{
	int neg = *s == '-';

	return (int)(neg ? -strtoul(s + 1, NULL, 10) : strtoul(s, NULL, 10));
}

/* --- date, as OSv's /os/date ------------------------------------------------------------ */

void format_date(char *buf, unsigned long size, uint64_t secs)
{
	static const char days[] = "ThuFriSatSunMonTueWed";
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	uint64_t z = secs / 86400 + 719468, sod = secs % 86400;
	uint64_t era = z / 146097, doe = z - era * 146097;
	uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	uint64_t mp = (5 * doy + 2) / 153;
	unsigned d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	uint64_t y = yoe + era * 400 + (m <= 2);
	unsigned wd = (unsigned)(secs / 86400 % 7);

	snprintf(buf, size, "%.3s %.3s %02u %02lu:%02lu:%02lu UTC %lu", days + 3 * wd,
		 months + 3 * (m - 1), d, sod / 3600, sod / 60 % 60, sod % 60, y);
}

/* --- TCP echo, port 7: what arrives goes back; the window opens as it is sent --------- */

struct echo {
	struct pbuf *pending;	/* received, not yet written back */
};

static int ci_ncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		char x = *a >= 'A' && *a <= 'Z' ? *a + 32 : *a;
		char y = *b >= 'A' && *b <= 'Z' ? *b + 32 : *b;

		if (x != y)
			return x - y;
	}
	return 0;
}

/* Closes (or, if that fails, aborts) a connection: ERR_ABRT for lwIP if aborted. */
static err_t conn_close(struct tcp_pcb *pcb)
{
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
	if (tcp_close(pcb) == ERR_OK)
		return ERR_OK;
	tcp_abort(pcb);
	return ERR_ABRT;
}

static err_t echo_close(struct tcp_pcb *pcb, struct echo *e)
{
	if (e) {
		if (e->pending)
			pbuf_free(e->pending);
		free(e);
	}
	return conn_close(pcb);
}

static void echo_send(struct tcp_pcb *pcb, struct echo *e)
{
	int wrote = 0;

	while (e->pending) {
		struct pbuf *p = e->pending;
		u16_t n = p->len, room = tcp_sndbuf(pcb);

		if (!room)
			break;
		if (n > room)
			n = room;
		if (tcp_write(pcb, p->payload, n, TCP_WRITE_FLAG_COPY) != ERR_OK)
			break;
		wrote = 1;
		tcp_recved(pcb, n);
		e->pending = pbuf_free_header(p, n);
	}
	if (wrote)
		tcp_output(pcb);
}

static err_t echo_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct echo *e = arg;

	if (!p)		/* the peer closed */
		return echo_close(pcb, e);
	if (e->pending)
		pbuf_cat(e->pending, p);
	else
		e->pending = p;
	echo_send(pcb, e);
	return ERR_OK;
}

static err_t echo_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	if (arg)
		echo_send(pcb, arg);
	return ERR_OK;
}

static void echo_err(void *arg, err_t err)
{
	struct echo *e = arg;

	if (e) {
		if (e->pending)
			pbuf_free(e->pending);
		free(e);
	}
}

static err_t echo_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct echo *e;

	if (err != ERR_OK || !pcb)
		return ERR_VAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return ERR_MEM;
	tcp_arg(pcb, e);
	tcp_recv(pcb, echo_recv);
	tcp_sent(pcb, echo_sent);
	tcp_err(pcb, echo_err);
	return ERR_OK;
}

/* --- HTTP/1.1 on port 8000: GET /os/date, keep-alive ----------------------------------- */

#define HTTP_REQ_MAX 4096

struct http {
	char req[HTTP_REQ_MAX];
	size_t len;
};

static err_t http_free(struct tcp_pcb *pcb, struct http *h)
{
	free(h);
	return conn_close(pcb);
}

static int header_has(const char *hdrs, const char *end, const char *name, const char *val)
{
	size_t nl = strlen(name), vl = strlen(val);

	for (const char *p = hdrs; p < end;) {
		const char *eol = p;

		while (eol < end && *eol != '\r')
			eol++;
		if ((size_t)(eol - p) > nl && !ci_ncmp(p, name, nl) && p[nl] == ':') {
			for (const char *v = p + nl + 1; v + vl <= eol; v++)
				if (!ci_ncmp(v, val, vl))
					return 1;
		}
		p = eol + 2;
	}
	return 0;
}

/* Answers one complete request (method, path, version, headers up to the blank line). */
static int http_answer(struct tcp_pcb *pcb, const char *req, const char *hdr_end)
{
	char body[96], head[256], date[64];
	const char *status = "200 OK", *type = "application/json";
	const char *sp1 = strchr(req, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	int http10, keep;
	int blen, hlen;

	if (!sp1 || !sp2 || sp2 > hdr_end) {
		status = "400 Bad Request";
		type = "text/plain";
		blen = snprintf(body, sizeof(body), "bad request\n");
		keep = 0;
		http10 = 0;
	} else {
		const char *eol = strchr(sp2, '\r');

		http10 = eol && eol - sp2 - 1 == 8 && !strncmp(sp2 + 1, "HTTP/1.0", 8);
		keep = http10 ? header_has(req, hdr_end, "connection", "keep-alive")
			      : !header_has(req, hdr_end, "connection", "close");
		if ((sp1 - req == 3 && !strncmp(req, "GET", 3)) ||
		    (sp1 - req == 4 && !strncmp(req, "HEAD", 4))) {
			if (sp2 - sp1 - 1 == 8 && !strncmp(sp1 + 1, "/os/date", 8)) {
				format_date(date, sizeof(date), wall_ns() / 1000000000ULL);
				blen = snprintf(body, sizeof(body), "\"%s\"", date);
			} else {
				status = "404 Not Found";
				blen = snprintf(body, sizeof(body),
						"{\"message\": \"Not found\", \"code\": 404}");
			}
		} else {
			status = "405 Method Not Allowed";
			blen = snprintf(body, sizeof(body),
					"{\"message\": \"Method not allowed\", \"code\": 405}");
		}
		if (sp1 - req == 4)
			blen = -blen;	/* HEAD: headers only */
	}
	hlen = snprintf(head, sizeof(head),
			"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n", status,
			type, blen < 0 ? -blen : blen,
			keep ? (http10 ? "Connection: keep-alive\r\n" : "") : "Connection: close\r\n");
	if (tcp_write(pcb, head, (u16_t)hlen,
		      TCP_WRITE_FLAG_COPY | (blen > 0 ? TCP_WRITE_FLAG_MORE : 0)) != ERR_OK)
		return -1;
	if (blen > 0 && tcp_write(pcb, body, (u16_t)blen, TCP_WRITE_FLAG_COPY) != ERR_OK)
		return -1;
	return keep;
}

static err_t http_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct http *h = arg;

	if (!p)
		return http_free(pcb, h);
	if (h->len + p->tot_len > HTTP_REQ_MAX - 1) {
		tcp_recved(pcb, p->tot_len);
		pbuf_free(p);
		return http_free(pcb, h);	/* a request this large is not ours */
	}
	pbuf_copy_partial(p, h->req + h->len, p->tot_len, 0);
	h->len += p->tot_len;
	h->req[h->len] = '\0';
	tcp_recved(pcb, p->tot_len);
	pbuf_free(p);

	/* Pipelined requests: answer each complete one in order. */
	for (;;) {
		char *end = NULL;

		for (size_t i = 0; i + 3 < h->len; i++) {
			if (!memcmp(h->req + i, "\r\n\r\n", 4)) {
				end = h->req + i + 2;	/* after the last header line's CRLF */
				break;
			}
		}
		if (!end)
			break;
		int keep = http_answer(pcb, h->req, end);
		size_t used = (size_t)(end + 2 - h->req);

		memmove(h->req, h->req + used, h->len - used + 1);
		h->len -= used;
		if (keep <= 0) {	/* Connection: close (FIN after the answer) */
			tcp_output(pcb);
			return http_free(pcb, h);
		}
	}
	tcp_output(pcb);
	return ERR_OK;
}

static void http_err(void *arg, err_t err)
{
	free(arg);
}

static err_t http_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct http *h;

	if (err != ERR_OK || !pcb)
		return ERR_VAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return ERR_MEM;
	tcp_arg(pcb, h);
	tcp_recv(pcb, http_recv);
	tcp_err(pcb, http_err);
	return ERR_OK;
}

static int listen_on(u16_t port, tcp_accept_fn fn)
{
	struct tcp_pcb *pcb = tcp_new();

	if (!pcb || tcp_bind(pcb, IP4_ADDR_ANY, port) != ERR_OK) {
		printf("net: cannot bind TCP port %u\n", port);
		return -1;
	}
	pcb = tcp_listen(pcb);
	if (!pcb) {
		printf("net: cannot listen on TCP port %u\n", port);
		return -1;
	}
	tcp_accept(pcb, fn);
	return 0;
}

/* --- the service ----------------------------------------------------------------------- */

static struct netif nif;
static void *dev;
static uint32_t shown_addr;
static int use_dhcp;

static void status_cb(struct netif *n)
{
	uint32_t a = ip4_addr_get_u32(netif_ip4_addr(n));

	if (a && a != shown_addr && netif_is_up(n)) {
		char ip[16], mask[16], gw[16];

		shown_addr = a;
		ip4addr_ntoa_r(netif_ip4_addr(n), ip, sizeof(ip));
		ip4addr_ntoa_r(netif_ip4_netmask(n), mask, sizeof(mask));
		ip4addr_ntoa_r(netif_ip4_gw(n), gw, sizeof(gw));
		printf("eth0: %s\n", ip);
		printf("net: eth0 %s netmask %s gateway %s (%s)\n", ip, mask, gw,
		       use_dhcp ? "dhcp" : "static");
	}
}

/* "--ip=eth0,ADDR,NETMASK": 0 and the addresses, -1 if absent or malformed. */
static int parse_ip_option(ip4_addr_t *ip, ip4_addr_t *mask)
{
	const char *v = cmdline_value("--ip");
	char buf[64], *f[3];
	size_t n = 0;
	int nf = 1;

	if (!v)
		return -1;
	while (v[n] && v[n] != ' ' && n < sizeof(buf) - 1) {
		buf[n] = v[n];
		n++;
	}
	buf[n] = '\0';
	f[0] = buf;
	for (char *p = buf; *p && nf < 3; p++) {
		if (*p == ',') {
			*p = '\0';
			f[nf++] = p + 1;
		}
	}
	if (nf != 3 || strcmp(f[0], "eth0") || !ip4addr_aton(f[1], ip) || !ip4addr_aton(f[2], mask)) {
		printf("net: cannot parse --ip=%s (want --ip=eth0,ADDR,NETMASK)\n", v);
		return -1;
	}
	return 0;
}

static int word_addr(const char *name, ip4_addr_t *a)
{
	const char *v = cmdline_value(name);
	char buf[20];
	size_t n = 0;

	ip4_addr_set_zero(a);
	if (!v)
		return 0;
	while (v[n] && v[n] != ' ' && n < sizeof(buf) - 1) {
		buf[n] = v[n];
		n++;
	}
	buf[n] = '\0';
	if (!ip4addr_aton(buf, a)) {
		printf("net: cannot parse %s=%s\n", name, buf);
		return -1;
	}
	return 1;
}

int net_start(void)
{
	ip4_addr_t ip, mask, gw, ns;

	dev = virtio_net_probe();
	if (!dev)
		return 0;
	lwip_init();
	ip4_addr_set_zero(&ip);
	ip4_addr_set_zero(&mask);
	word_addr("--defaultgw", &gw);
	if (word_addr("--nameserver", &ns) > 0)
		printf("net: nameserver %s (no DNS client here)\n", ip4addr_ntoa(&ns));
	use_dhcp = parse_ip_option(&ip, &mask) < 0;
	if (use_dhcp)
		ip4_addr_set_zero(&gw);
	if (!netif_add(&nif, &ip, &mask, &gw, dev, virtio_net_netif_init, netif_input)) {
		printf("net: netif_add failed\n");
		return 0;
	}
	netif_set_hostname(&nif, "tern-guest");
	netif_set_default(&nif);
	netif_set_status_callback(&nif, status_cb);
	virtio_net_start(dev);
	netif_set_up(&nif);
	if (use_dhcp) {
		printf("net: eth0: DHCP\n");
		dhcp_start(&nif);
	}
	listen_on(7, echo_accept);
	listen_on(8000, http_accept);
	if (cmdline_has("netgarbage") || cmdline_value("netgarbage"))
		virtio_net_garbage_after(dev, cmdline_ulong("netgarbage", 1000));
	return 1;
}

int net_poll(uint64_t pending)
{
	int busy = virtio_net_poll(dev, pending);

	sys_check_timeouts();
	return busy;
}

void net_info_cmd(const char *args)
{
	char ip[16];

	(void)args;
	if (!dev) {
		printf("net: no network device\n");
		return;
	}
	ip4addr_ntoa_r(netif_ip4_addr(&nif), ip, sizeof(ip));
	printf("net: eth0 %s link %s%s\n", ip, netif_is_link_up(&nif) ? "up" : "down",
	       use_dhcp ? " (dhcp)" : "");
	virtio_net_stats(dev);
	for (struct tcp_pcb *p = tcp_active_pcbs; p; p = p->next)
		printf("net: tcp %u -> %u state %d snd_buf %u snd_wnd %u rcv_wnd %u unsent %s "
		       "unacked %s\n", p->local_port, p->remote_port, p->state, p->snd_buf,
		       p->snd_wnd, p->rcv_wnd, p->unsent ? "yes" : "no", p->unacked ? "yes" : "no");
}
