/*
 * Pages the VMM itself writes into guest RAM (virtio receive buffers, used rings): KVM's dirty
 * log cannot see them, so while migration tracks dirty pages, devices record them here and
 * migration ORs this bitmap into KVM's.
 */
#ifndef TERN_DIRTY_H
#define TERN_DIRTY_H

#include <stdbool.h>
#include <stdint.h>

struct vm;

struct dirty_log {
	uint64_t *bits;		/* one bit per 4 KiB page */
	uint64_t npages;
	bool tracking;
};

int dirty_init(struct dirty_log *d, uint64_t ram_size);
void dirty_free(struct dirty_log *d);
void dirty_set_tracking(struct dirty_log *d, bool on);
/* OR the recorded pages into bitmap (npages bits) and clear them. */
void dirty_collect(struct dirty_log *d, uint64_t *bitmap);

/* Record that the VMM wrote [gpa, gpa+len). Cheap when migration is not running. */
void vm_mark_dirty(struct vm *vm, uint64_t gpa, uint64_t len);

#endif
