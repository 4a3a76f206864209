#include <stdlib.h>
#include <string.h>

#include "vmm/dirty.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define PAGE_SHIFT 12

int dirty_init(struct dirty_log *d, uint64_t ram_size)
{
	d->npages = ram_size >> PAGE_SHIFT;
	d->bits = calloc((d->npages + 63) / 64, sizeof(uint64_t));
	if (!d->bits) {
		perrorf("dirty: calloc");
		return -1;
	}
	return 0;
}

void dirty_free(struct dirty_log *d)
{
	free(d->bits);
	d->bits = NULL;
}

void dirty_set_tracking(struct dirty_log *d, bool on)
{
	__atomic_store_n(&d->tracking, on, __ATOMIC_SEQ_CST);
}

void dirty_collect(struct dirty_log *d, uint64_t *bitmap)
{
	for (uint64_t i = 0; i < (d->npages + 63) / 64; i++)
		if (__atomic_load_n(&d->bits[i], __ATOMIC_RELAXED))
			bitmap[i] |= __atomic_exchange_n(&d->bits[i], 0, __ATOMIC_ACQ_REL);
}

void vm_mark_dirty(struct vm *vm, uint64_t gpa, uint64_t len)
{
	struct dirty_log *d = &vm->dirty;

	if (!len || !__atomic_load_n(&d->tracking, __ATOMIC_ACQUIRE))
		return;
	for (uint64_t pfn = gpa >> PAGE_SHIFT; pfn <= (gpa + len - 1) >> PAGE_SHIFT; pfn++)
		if (pfn < d->npages)
			__atomic_fetch_or(&d->bits[pfn / 64], 1ULL << (pfn % 64), __ATOMIC_RELAXED);
}
