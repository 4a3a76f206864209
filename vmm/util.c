#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include "vmm/util.h"

size_t utf8_cut(const char *s, size_t len)
{
	/* Back over continuation bytes to the last character's lead byte: is it all there? */
	for (size_t k = 1; k <= 3 && k <= len; k++) {
		unsigned char b = s[len - k];

		if ((b & 0xc0) == 0x80)
			continue;
		if (b >= 0xc0 && (b >= 0xf0 ? 4u : b >= 0xe0 ? 3u : 2u) > k)
			return len - k;
		return len;
	}
	return len;
}

/* The length of the well-formed UTF-8 character at s (RFC 3629), or 0 if it is none. */
static size_t utf8_char(const unsigned char *s, size_t left)
{
	unsigned char b = s[0], lo = 0x80, hi = 0xbf;
	size_t n = b < 0x80 ? 1 : b < 0xc2 ? 0 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : b < 0xf5 ? 4 : 0;

	/* The second byte's range rules out overlong forms, surrogates and past U+10FFFF. */
	if (b == 0xe0)
		lo = 0xa0;
	else if (b == 0xed)
		hi = 0x9f;
	else if (b == 0xf0)
		lo = 0x90;
	else if (b == 0xf4)
		hi = 0x8f;
	if (n > left || (n > 1 && (s[1] < lo || s[1] > hi)))
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/*
 * One line, whatever the user's input that it quotes holds (a path or a -config string with a
 * newline or an escape): a '?' for each control character but tab (C0, DEL, and C1, which a
 * terminal may obey as well) and for each byte that is not UTF-8 (to a terminal that is not,
 * 0x9b is a C1 control too). The new length.
 */
static size_t line_clean(char *s, size_t len)
{
	size_t o = 0, n;

	for (size_t i = 0; i < len; i += n ? n : 1) {
		const unsigned char *c = (const unsigned char *)s + i;

		n = utf8_char(c, len - i);
		if (!n || (n == 1 && ((c[0] < 0x20 && c[0] != '\t') || c[0] == 0x7f)) ||
		    (n == 2 && c[0] == 0xc2 && c[1] < 0xa0)) {
			s[o++] = '?';
			continue;
		}
		memmove(s + o, c, n);
		o += n;
	}
	return o;
}

/*
 * One write() of the whole line, at most PIPE_BUF bytes, so that lines from different threads
 * never interleave (dprintf() writes a long one in pieces, its buffer's size each).
 */
static void vlinef(const char *fmt, va_list ap, int err)
{
	static const char prefix[] = "tern: ";
	const size_t pre = sizeof(prefix) - 1;
	char line[4096], why[128] = "";
	size_t room, len;
	int n;

	if (err)
		snprintf(why, sizeof(why), ": %s", strerror(err));
	/* For the message: what the prefix, the reason and the newline leave. */
	room = sizeof(line) - pre - strlen(why) - 1;
	memcpy(line, prefix, pre);
	n = vsnprintf(line + pre, room, fmt, ap);
	if (n < 0)
		return;
	/* Too long (a path of thousands of characters): cut, never inside a character, and
	 * the reason kept. */
	len = (size_t)n < room ? (size_t)n : utf8_cut(line + pre, room - 1);
	memcpy(line + pre + len, why, strlen(why));
	len = pre + line_clean(line + pre, len + strlen(why));
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, len) < 0)
		return; /* nowhere left to say it */
}

void errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlinef(fmt, ap, 0);
	va_end(ap);
}

void perrorf(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vlinef(fmt, ap, err);
	va_end(ap);
	errno = err;
}

bool printable_string(const char *v, int len)
{
	if (!v || len <= 0 || v[len - 1])
		return false;
	for (int i = 0; i < len - 1; i++)
		if (!isprint((unsigned char)v[i]))
			return false;
	return true;
}

const char *printable_or(const char *s, const char *what)
{
	return printable_string(s, strlen(s) + 1) ? s : what;
}

int parse_size(const char *s, uint64_t def_unit, uint64_t *out)
{
	char *end;
	uint64_t unit = def_unit;
	unsigned long long v;

	/* Digits first: strtoull would skip spaces and negate a '-'. Decimal, as in QEMU, so
	 * that 010 is ten; 0x for hex. */
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, s[0] == '0' && (s[1] == 'x' || s[1] == 'X') ? 16 : 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'b': case 'B': unit = 1; end++; break;
	case 'k': case 'K': unit = 1ULL << 10; end++; break;
	case 'm': case 'M': unit = 1ULL << 20; end++; break;
	case 'g': case 'G': unit = 1ULL << 30; end++; break;
	case 't': case 'T': unit = 1ULL << 40; end++; break;
	default:
		return -1;
	}
	if ((*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b'))
		end += 2;
	else if ((*end == 'B' || *end == 'b') && unit != 1)
		end++;
	if (*end || (v && unit > UINT64_MAX / v))
		return -1;
	*out = v * unit;
	return 0;
}

int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EPIPE;
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

#define WRITE_CHUNK 256

/* Waits until fd takes bytes: 1, or 0 when give_up says to stop waiting, or -1. */
static int write_wait(int fd, bool (*give_up)(void *), void *arg)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };

	for (;;) {
		int r = poll(&pfd, 1, WRITE_RECHECK_MS);

		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
		if (give_up(arg))
			return 0;
	}
}

int write_full_unless(int fd, const void *buf, size_t len, bool (*give_up)(void *), void *arg)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n;

		if (give_up) {
			int r = write_wait(fd, give_up, arg);

			if (r <= 0) {
				if (!r)
					errno = EINTR;
				return -1;
			}
		}
		/*
		 * After a wait, a little at a time: POLLOUT says a pipe has a page free and a
		 * terminal a few hundred bytes, so this much does not block either.
		 */
		n = write(fd, p, give_up ? MIN(len, (size_t)WRITE_CHUNK) : len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

int write_full(int fd, const void *buf, size_t len)
{
	return write_full_unless(fd, buf, len, NULL, NULL);
}

void mem_populate(void *p, size_t len)
{
	uintptr_t start = ALIGN_UP((uintptr_t)p, 4096), end = ((uintptr_t)p + len) & ~4095ULL;

	/* Only a hint: kernels before 5.14 say EINVAL and the pages fault in one by one. */
	if (end > start)
		madvise((void *)start, end - start, MADV_POPULATE_WRITE);
}

bool ratelimit_pass(struct ratelimit *rl, const char *what)
{
	const uint64_t window = RATELIMIT_WINDOW_S * 1000000000ULL;
	uint64_t now = now_ns();

	if (!rl->start || now - rl->start >= window) {
		rl->start = now;
		rl->said = 0;
	}
	if (rl->said < RATELIMIT_BURST) {
		rl->said++;
		return true;
	}
	if (rl->said == RATELIMIT_BURST) {
		rl->said++;
		errorf("%s: more such lines in the next %llu s are not shown", what,
		       (unsigned long long)((rl->start + window - now + 999999999) / 1000000000ULL));
	}
	return false;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
