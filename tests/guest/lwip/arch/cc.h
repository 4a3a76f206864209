/* lwIP's compiler/platform glue for the freestanding test guest (no libc headers). */
#ifndef LWIP_ARCH_CC_H
#define LWIP_ARCH_CC_H

#include <stddef.h>
#include <stdint.h>

#define BYTE_ORDER		LITTLE_ENDIAN
#define LWIP_NO_INTTYPES_H	1	/* lwIP then uses its own printf formats */
#define LWIP_NO_LIMITS_H	1
#define LWIP_NO_CTYPE_H		1
#define LWIP_NO_UNISTD_H	1
#define LWIP_TIMEVAL_PRIVATE	0

int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lwip_guest_assert(const char *msg, const char *file, int line) __attribute__((noreturn));

#define LWIP_PLATFORM_DIAG(x)	do { printf x; } while (0)
#define LWIP_PLATFORM_ASSERT(x)	lwip_guest_assert((x), __FILE__, __LINE__)

#endif
