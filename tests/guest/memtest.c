/*
 * Memory pattern for migration tests. "memtest=N" fills N MiB with a pattern that depends
 * on each word's address and on a per-page generation (kept in the page's first word), so
 * every page can be checked on its own; "dirty=R" rewrites pages (generation + 1) at R MiB/s
 * so a migration has pages dirtied during every round; the console command "check"
 * verifies everything. The command "zero" clears every odd page (a migration must then carry
 * pages that were data once and are zero now); check wants those all zero from then on.
 */
#include "kvmclock.h"
#include "bootinfo.h"
#include "lib.h"
#include "service.h"

#define PAGE 4096
#define WORDS (PAGE / 8)

static uint64_t *area;
static uint64_t npages, next_page, rewritten;
static uint64_t dirty_rate;		/* bytes per second */
static uint64_t dirty_t0, dirty_done;	/* pages */
static int zeroed;			/* the odd pages are all zero, not a pattern */

static inline uint64_t pattern(uint64_t addr, uint64_t gen)
{
	uint64_t x = (addr + gen * 0x632be59bd9b4e019ULL) * 0x9e3779b97f4a7c15ULL;

	return x ^ (x >> 29);
}

static void fill_page(uint64_t i, uint64_t gen)
{
	uint64_t *p = area + i * WORDS;

	p[0] = gen;
	for (unsigned w = 1; w < WORDS; w++)
		p[w] = pattern((uint64_t)(uintptr_t)&p[w], gen);
}

int memtest_start(void)
{
	uint64_t mib = cmdline_ulong("memtest", 0);

	dirty_rate = cmdline_ulong("dirty", 0) << 20;
	if (dirty_rate && !mib)
		mib = 8;
	if (!mib)
		return 0;
	npages = mib << 20 >> 12;
	area = alloc_pages(npages);
	if (!area) {
		printf("memtest: cannot allocate %lu MiB (%lu MiB free)\n", mib,
		       alloc_free_bytes() >> 20);
		return 0;
	}
	for (uint64_t i = 0; i < npages; i++)
		fill_page(i, 0);
	printf("memtest: filled %lu MiB at %p\n", mib, area);
	if (dirty_rate)
		printf("memtest: dirtying %lu MiB/s\n", dirty_rate >> 20);
	dirty_t0 = now_ns();
	return 1;
}

int memtest_poll(uint64_t pending)
{
	(void)pending;
	if (!dirty_rate)
		return 0;
	uint64_t due = (now_ns() - dirty_t0) / 1000 * (dirty_rate / PAGE) / 1000000;
	/* At most 256 pages a round, so the console and timers stay responsive. */
	for (unsigned n = 0; dirty_done < due && n < 256; n++, dirty_done++) {
		fill_page(next_page, area[next_page * WORDS] + 1);
		next_page = (next_page + 1) % npages;
		rewritten++;
	}
	return 1;	/* busy: pace by the clock, not by interrupts */
}

void memtest_zero_cmd(const char *args)
{
	(void)args;
	if (!area || dirty_rate) {
		printf("memtest: zero wants memtest=MIB without dirty=\n");
		return;
	}
	for (uint64_t i = 1; i < npages; i += 2)
		for (unsigned w = 0; w < WORDS; w++)
			area[i * WORDS + w] = 0;
	zeroed = 1;
	printf("memtest: zeroed %lu pages\n", npages / 2);
}

/* 0 if page i of a "zero" holds zeros only; else prints where it does not. */
static int check_zero_page(uint64_t i)
{
	uint64_t *p = area + i * WORDS;

	for (unsigned w = 0; w < WORDS; w++) {
		if (p[w]) {
			printf("memtest: BAD at %p (page %lu word %u): %#lx, want 0 (zeroed)\n",
			       &p[w], i, w, p[w]);
			return -1;
		}
	}
	return 0;
}

void memtest_check_cmd(const char *args)
{
	(void)args;
	if (!area) {
		printf("memtest: not running (boot with memtest=MIB)\n");
		return;
	}
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t *p = area + i * WORDS, gen = p[0];

		if (zeroed && i % 2) {
			if (check_zero_page(i) < 0)
				return;
			continue;
		}
		for (unsigned w = 1; w < WORDS; w++) {
			if (p[w] != pattern((uint64_t)(uintptr_t)&p[w], gen)) {
				printf("memtest: BAD at %p (page %lu word %u gen %lu): %#lx, want %#lx\n",
				       &p[w], i, w, gen, p[w], pattern((uint64_t)(uintptr_t)&p[w], gen));
				return;
			}
		}
	}
	printf("memtest: ok (%lu MiB, %lu page rewrites)\n", npages >> 8, rewritten);
}
