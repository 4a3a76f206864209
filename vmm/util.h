/* Small helpers shared by every part of tern: error lines and checked I/O. */
#ifndef TERN_UTIL_H
#define TERN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

/* One version for -version, `info version` and QMP's query-version. */
#define TERN_VERSION_MAJOR 0
#define TERN_VERSION_MINOR 1
#define TERN_VERSION_MICRO 0
#define TERN_STR_(x) #x
#define TERN_STR(x) TERN_STR_(x)
#define TERN_VERSION                                                                     \
	TERN_STR(TERN_VERSION_MAJOR) "." TERN_STR(TERN_VERSION_MINOR) "." TERN_STR(        \
		TERN_VERSION_MICRO)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

/* One line on stderr, prefixed "tern: ". */
void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, with ": strerror(errno)" appended. */
void perrorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The longest part of s[0, len), valid UTF-8, that does not end inside a character. */
size_t utf8_cut(const char *s, size_t len);

/*
 * For lines a guest can make tern say as often as it likes (a driver that breaks its device
 * in a loop): a few each RATELIMIT_WINDOW_S, so that stderr, often a log file, cannot be
 * flooded. The caller serialises calls on one ratelimit.
 */
#define RATELIMIT_BURST 5
#define RATELIMIT_WINDOW_S 10
struct ratelimit {
	uint64_t start;
	unsigned said;
};
/* Whether the next line may be said; the first time in a window it may not, says so for
 * what ("what: more such lines in the next 8 s are not shown"). */
bool ratelimit_pass(struct ratelimit *rl, const char *what);

/*
 * Whether len bytes are a string a message may show as it is: printable, ending with the only
 * NUL. What came from a migration stream could hold a newline, or a terminal's escapes.
 */
bool printable_string(const char *v, int len);
/* s, when it is such a string; else what (for a message). */
const char *printable_or(const char *s, const char *what);

/* Parse a size with QEMU's suffixes (K, M, G, T; no suffix = def_unit). -1 on error. */
int parse_size(const char *s, uint64_t def_unit, uint64_t *out);

/* Read or write all of buf, retrying on EINTR and short transfers. 0 or -1 (errno). */
int read_full(int fd, void *buf, size_t len);
/*
 * write_full() for a thread a signal cannot free (a vCPU thread, whose kick may come before
 * it blocks): while fd takes nothing it asks give_up(arg) every WRITE_RECHECK_MS, and gives
 * up with EINTR when told to. With give_up NULL it is write_full().
 */
#define WRITE_RECHECK_MS 100
int write_full_unless(int fd, const void *buf, size_t len, bool (*give_up)(void *), void *arg);
int write_full(int fd, const void *buf, size_t len);

/*
 * Maps the whole pages inside [p, p+len) in one call, before they are written: on a host that
 * is itself a VM a page fault cost 11 us here, 330 of them 3.7 ms, one MADV_POPULATE_WRITE for
 * the same pages 0.18 ms.
 */
void mem_populate(void *p, size_t len);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

#endif
