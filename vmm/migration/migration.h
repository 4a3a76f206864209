/* Live migration and snapshots (see vmm/migration/). */
#ifndef TERN_MIGRATION_H
#define TERN_MIGRATION_H

#include <stdbool.h>

struct vm;

/* Adds the migration commands to the monitor. */
int migration_init(struct vm *vm);
/* -incoming URI: wait for a stream, load it, resume the guest. */
int migration_incoming(struct vm *vm, const char *uri);
/* The guest was saved to a file (a snapshot): it may run on here after `cont`. */
bool migration_snapshot_taken(struct vm *vm);

#endif
