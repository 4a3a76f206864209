/*
 * A minimal unit-test harness: CHECK macros that report file:line of each failure, and a
 * summary line in the plain form CI reads ("N passed, N failed").
 */
#ifndef TERN_UNIT_H
#define TERN_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (cond) {                                                                  \
			unit_passed++;                                                       \
		} else {                                                                     \
			unit_failed++;                                                       \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
		}                                                                            \
	} while (0)

#define CHECK_EQ(a, b)                                                                       \
	do {                                                                                 \
		long long _a = (long long)(a), _b = (long long)(b);                          \
		if (_a == _b) {                                                              \
			unit_passed++;                                                       \
		} else {                                                                     \
			unit_failed++;                                                       \
			printf("FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a,   \
			       #b, _a, _b);                                                  \
		}                                                                            \
	} while (0)

#define CHECK_STR(a, b)                                                                      \
	do {                                                                                 \
		const char *_a = (a), *_b = (b);                                             \
		if (_a && _b && !strcmp(_a, _b)) {                                           \
			unit_passed++;                                                       \
		} else {                                                                     \
			unit_failed++;                                                       \
			printf("FAIL %s:%d: %s == \"%s\" (got \"%s\")\n", __FILE__, __LINE__, #a, \
			       _b ? _b : "(null)", _a ? _a : "(null)");                      \
		}                                                                            \
	} while (0)

/* Prints the summary; use as `return unit_summary();` at the end of main. */
static inline int unit_summary(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
