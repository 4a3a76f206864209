/*
 * Memory allocation over the largest usable RAM region (e820 type 1) above the image and
 * below 4 GiB (our page tables map 0-4 GiB). malloc carves from the bottom with a sorted,
 * coalescing free list; alloc_pages carves whole pages from the top and never gives back.
 */
#include "lib.h"

extern char _end[];

struct block {
	size_t size;		/* including this header */
	struct block *next;	/* free list only */
};

#define HDR 16
static uint64_t heap_lo, heap_hi;	/* the untouched middle */
static struct block *free_list;

void alloc_init(void)
{
	uint64_t floor = ALIGN_UP((uint64_t)(uintptr_t)_end, 4096);
	uint64_t best_lo = 0, best_hi = 0;

	for (int i = 0; i < mem_nregions; i++) {
		struct mem_region *r = &mem_regions[i];
		uint64_t lo = r->addr, hi = r->addr + r->size;

		if (r->type != 1)
			continue;
		if (lo < floor)
			lo = floor;
		if (hi > 0x100000000ULL)
			hi = 0x100000000ULL;
		lo = ALIGN_UP(lo, 4096);
		hi = ALIGN_DOWN(hi, 4096);
		if (hi > lo && hi - lo > best_hi - best_lo)
			best_lo = lo, best_hi = hi;
	}
	heap_lo = best_lo;
	heap_hi = best_hi;
}

uint64_t alloc_free_bytes(void)
{
	return heap_hi - heap_lo;
}

void *alloc_pages(size_t npages)
{
	uint64_t n = (uint64_t)npages * 4096;

	if (heap_hi - heap_lo < n)
		return NULL;
	heap_hi -= n;
	return (void *)(uintptr_t)heap_hi;
}

void *malloc(size_t n)
{
	size_t need = ALIGN_UP(n, 16) + HDR;
	struct block **pp, *b;

	if (!n)
		return NULL;
	for (pp = &free_list; (b = *pp); pp = &b->next) {
		if (b->size < need)
			continue;
		if (b->size - need >= 64) {	/* split: hand out the tail */
			b->size -= need;
			b = (struct block *)((char *)b + b->size);
			b->size = need;
		} else {
			*pp = b->next;
		}
		return (char *)b + HDR;
	}
	if (heap_hi - heap_lo < need)
		return NULL;
	b = (struct block *)(uintptr_t)heap_lo;
	heap_lo += need;
	b->size = need;
	return (char *)b + HDR;
}

void *calloc(size_t n, size_t size)
{
	void *p;

	if (size && n > (size_t)-1 / size)
		return NULL;
	p = malloc(n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

void free(void *p)
{
	struct block *b, **pp, *prev = NULL;

	if (!p)
		return;
	b = (struct block *)((char *)p - HDR);
	for (pp = &free_list; *pp && *pp < b; pp = &(*pp)->next)
		prev = *pp;
	b->next = *pp;
	*pp = b;
	if (b->next && (char *)b + b->size == (char *)b->next) {
		b->size += b->next->size;
		b->next = b->next->next;
	}
	if (prev && (char *)prev + prev->size == (char *)b) {
		prev->size += b->size;
		prev->next = b->next;
	}
}
