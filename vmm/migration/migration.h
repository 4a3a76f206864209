/* Live migration and snapshots (see vmm/migration/). */
#ifndef TERN_MIGRATION_H
#define TERN_MIGRATION_H

struct vm;

/* Adds the migration commands to the monitor. */
int migration_init(struct vm *vm);
/* -incoming URI: wait for a stream, load it, resume the guest. */
int migration_incoming(struct vm *vm, const char *uri);

#endif
