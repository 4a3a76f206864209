/*
 * Guest RAM in a migration. The source sends, in round 0, only pages the guest ever touched
 * (mapped in tern's address space: untouched pages are never read), then what KVM's dirty log and
 * the VMM's own log say changed. Zero pages travel as markers.
 */
#ifndef TERN_MIG_RAM_H
#define TERN_MIG_RAM_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/migration/stream.h"

struct vm;

struct mig_ram {
	struct vm *vm;
	uint64_t npages;
	uint64_t *todo;		/* pages to send next */
	uint64_t *log;		/* KVM_GET_DIRTY_LOG's buffer */
	uint64_t *written;	/* destination: pages written so far */
	bool tracking;
	uint64_t zero_pages, normal_pages;
};

int ram_init(struct mig_ram *r, struct vm *vm);
void ram_free(struct mig_ram *r);

/* Source. */
int ram_track(struct mig_ram *r, bool on, char *err, unsigned errlen);
/* Round 0: every page the guest ever touched (in RAM or in swap) into todo. */
int ram_add_touched(struct mig_ram *r, char *err, unsigned errlen);
/* Later rounds: dirty pages into todo. Returns how many pages todo holds, -1 on error. */
int64_t ram_sync(struct mig_ram *r, char *err, unsigned errlen);
uint64_t ram_todo_count(struct mig_ram *r);
/* Sends and clears todo. pace(arg) runs between records: it may sleep; -1 cancels. */
int ram_send(struct mig_ram *r, struct mig_stream *s, int (*pace)(void *), void *arg);

/* Destination: a REC_PAGES or REC_ZERO record. */
int ram_receive(struct mig_ram *r, struct mig_stream *s, const struct rec_hdr *h);

#endif
