#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/migration/stream.h"
#include "vmm/util.h"

#define STREAM_BUF ((1U << 20) + (64U << 10)) /* a whole page batch (ram.c) and then some */
/*
 * Reads go through a buffer so that the many small records of a stop-and-copy cost a few
 * system calls instead of three each; payloads at least this big are read straight to
 * their place (guest RAM) instead.
 */
#define STREAM_IN_BUF (256U << 10)

/* CRC32C with SSE4.2 where the CPU has it (every x86-64 host KVM runs on, in practice). */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
							       size_t len)
{
	uint64_t c = crc;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	for (; len; p++, len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p);
	return (uint32_t)c;
}

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78 & -(crc & 1));
	}
	return crc;
}

uint32_t crc32c(uint32_t crc, const void *p, size_t len)
{
	if (__builtin_cpu_supports("sse4.2"))
		return ~crc32c_hw(~crc, p, len);
	return ~crc32c_sw(~crc, p, len);
}

int stream_init(struct mig_stream *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->cap = STREAM_BUF;
	s->buf = malloc(s->cap);
	s->in = malloc(STREAM_IN_BUF);
	if (!s->buf || !s->in) {
		stream_free(s);
		snprintf(s->err, sizeof(s->err), "out of memory");
		return -1;
	}
	return 0;
}

void stream_free(struct mig_stream *s)
{
	free(s->buf);
	free(s->in);
	s->buf = s->in = NULL;
}

static int stream_fail(struct mig_stream *s, const char *what)
{
	const char *why = strerror(errno);

	if (errno == EPIPE)
		why = "connection closed";
	else if (errno == EAGAIN) /* SO_SNDTIMEO */
		why = "timed out: the other side takes nothing";
	snprintf(s->err, sizeof(s->err), "%s: %s", what, why);
	return -1;
}

int stream_flush(struct mig_stream *s)
{
	const uint8_t *p = s->buf;
	size_t left = s->len;

	s->len = 0;
	while (left) {
		ssize_t w = write(s->fd, p, left);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return stream_fail(s, "write");
		s->sent += w;
		p += w;
		left -= w;
	}
	return 0;
}

int stream_put(struct mig_stream *s, uint32_t type, uint64_t arg, const void *p, size_t len)
{
	struct rec_hdr h = { type, (uint32_t)len, arg };
	size_t need = sizeof(h) + len + sizeof(uint32_t);
	uint8_t *rec;
	uint32_t crc;

	if (len > MIG_REC_MAX) {
		snprintf(s->err, sizeof(s->err), "record of %zu bytes too large", len);
		return -1;
	}
	if (need > s->cap - s->len && stream_flush(s) < 0)
		return -1;
	if (need > s->cap) {
		uint8_t *b = realloc(s->buf, need);

		if (!b) {
			snprintf(s->err, sizeof(s->err), "out of memory for a %zu-byte record", len);
			return -1;
		}
		s->buf = b;
		s->cap = need;
		s->populated = 0;
	}
	/*
	 * Copy first, then checksum the copy: a live guest may rewrite a page while it is being
	 * sent, and the checksum must cover exactly the bytes that go out (the dirty log makes
	 * sure the newer contents follow in a later round).
	 */
	rec = s->buf + s->len;
	/* The first time this far into the buffer (round 0): mapped in one call, not a fault a
	 * page. Only a sending side fills it; a receiving one never pays for it. */
	if (s->len + need > s->populated) {
		mem_populate(s->buf + s->populated, s->len + need - s->populated);
		s->populated = s->len + need;
	}
	memcpy(rec, &h, sizeof(h));
	if (len)
		memcpy(rec + sizeof(h), p, len);
	crc = crc32c(0, rec, sizeof(h) + len);
	memcpy(rec + sizeof(h) + len, &crc, sizeof(crc));
	s->len += need;
	return 0;
}

int stream_put_header(struct mig_stream *s)
{
	uint8_t hdr[16];
	uint32_t v = MIG_VERSION, ps = MIG_PAGE_SIZE;

	memcpy(hdr, MIG_MAGIC, 8);
	memcpy(hdr + 8, &v, 4);
	memcpy(hdr + 12, &ps, 4);
	if (s->len + sizeof(hdr) > s->cap && stream_flush(s) < 0)
		return -1;
	memcpy(s->buf + s->len, hdr, sizeof(hdr));
	s->len += sizeof(hdr);
	return 0;
}

/* Reads what the fd has now into the (empty) buffer. */
static int stream_fill(struct mig_stream *s)
{
	ssize_t n;

	do
		n = read(s->fd, s->in, STREAM_IN_BUF);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		errno = EPIPE;
	if (n <= 0)
		return -1;
	s->in_pos = 0;
	s->in_len = n;
	return 0;
}

static int stream_read(struct mig_stream *s, void *p, size_t len, const char *what)
{
	uint8_t *dst = p;
	size_t left = len, n;

	while (left) {
		if (s->in_pos == s->in_len) {
			if (left >= STREAM_IN_BUF) {
				if (read_full(s->fd, dst, left) < 0)
					goto fail;
				break;
			}
			if (stream_fill(s) < 0)
				goto fail;
		}
		n = MIN(s->in_len - s->in_pos, left);
		memcpy(dst, s->in + s->in_pos, n);
		s->in_pos += n;
		dst += n;
		left -= n;
	}
	s->received += len;
	return 0;
fail:
	if (errno == EPIPE)
		snprintf(s->err, sizeof(s->err), "stream ends early, in %s of record %llu", what,
			 (unsigned long long)s->nrec);
	else if (errno == EAGAIN) /* SO_RCVTIMEO */
		snprintf(s->err, sizeof(s->err),
			 "timed out in %s of record %llu: the other side sends no more", what,
			 (unsigned long long)s->nrec);
	else
		snprintf(s->err, sizeof(s->err), "read: %s", strerror(errno));
	return -1;
}

int stream_get_header(struct mig_stream *s)
{
	uint8_t hdr[16];
	uint32_t v, ps;

	if (stream_read(s, hdr, sizeof(hdr), "the header") < 0)
		return -1;
	memcpy(&v, hdr + 8, 4);
	memcpy(&ps, hdr + 12, 4);
	if (memcmp(hdr, MIG_MAGIC, 8)) {
		snprintf(s->err, sizeof(s->err), "not a tern migration stream (bad magic)");
		return -1;
	}
	if (v < MIG_VERSION_OLDEST || v > MIG_VERSION || ps != MIG_PAGE_SIZE) {
		snprintf(s->err, sizeof(s->err),
			 "stream format %u with %u-byte pages, expected %u to %u with %u", v, ps,
			 MIG_VERSION_OLDEST, MIG_VERSION, MIG_PAGE_SIZE);
		return -1;
	}
	s->version = v;
	return 0;
}

int stream_get(struct mig_stream *s, struct rec_hdr *h)
{
	s->nrec++;
	if (stream_read(s, h, sizeof(*h), "the header") < 0)
		return -1;
	if (h->type < REC_HELLO || h->type >= REC_COUNT || h->len > MIG_REC_MAX) {
		snprintf(s->err, sizeof(s->err), "corrupt stream: record %llu has type %u, length %u",
			 (unsigned long long)s->nrec, h->type, h->len);
		return -1;
	}
	return 0;
}

int stream_get_payload(struct mig_stream *s, const struct rec_hdr *h, void *buf)
{
	uint32_t crc;

	if (!buf && h->len) {
		snprintf(s->err, sizeof(s->err),
			 "corrupt stream: record %llu (type %u) carries %u bytes, expected none",
			 (unsigned long long)s->nrec, h->type, h->len);
		return -1;
	}
	if (stream_read(s, buf, h->len, "the payload") < 0 ||
	    stream_read(s, &crc, sizeof(crc), "the checksum") < 0)
		return -1;
	if (crc != crc32c(crc32c(0, h, sizeof(*h)), buf, h->len)) {
		snprintf(s->err, sizeof(s->err), "corrupt stream: checksum mismatch in record %llu (type %u)",
			 (unsigned long long)s->nrec, h->type);
		return -1;
	}
	return 0;
}

int stream_wait(struct mig_stream *s, int ms)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	int r;

	if (s->in_pos < s->in_len)
		return 0;
	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return stream_fail(s, "poll");
	if (r == 0) {
		snprintf(s->err, sizeof(s->err), "no answer from the other side in %d ms", ms);
		return -1;
	}
	return 0;
}
