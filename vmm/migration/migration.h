/* Live migration and snapshots (see vmm/migration/). */
#ifndef TERN_MIGRATION_H
#define TERN_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;

/* Adds the migration commands to the monitor. */
int migration_init(struct vm *vm);
/* Ends the migration threads, cancelling what still runs: before the vCPU and the devices they
 * use are torn down. */
void migration_shutdown(struct vm *vm);
/* -incoming URI: wait for a stream, load it, resume the guest. */
int migration_incoming(struct vm *vm, const char *uri);
/* migrate_incoming URI, on a tern started with -incoming defer. */
int migration_listen(struct vm *vm, const char *uri, char *err, size_t errlen);
/* For `migrate`, QMP and the like: start (asynchronously), cancel, tune, query. */
int migration_start(struct vm *vm, const char *uri, char *err, size_t errlen);
int migration_cancel(struct vm *vm, char *err, size_t errlen);
/* Sets vals[i] for names[i], i < n: all of them, or none with the reason in err. */
int migration_set_parameters(struct vm *vm, int n, const char *const *names,
			     const uint64_t *vals, char *err, size_t errlen);
/* QEMU's migrate_set_capability; tern has auto-converge. */
int migration_set_capability(struct vm *vm, const char *name, bool on, char *err,
			     size_t errlen);

/* The parameters, in QEMU's names, as migration_info's param[] holds them. */
enum { MIG_PARAM_COUNT = 5 };
const char *migration_parameter_name(size_t n);

struct migration_info {
	const char *status;	/* QEMU's names: none, setup, active, completed, failed, cancelled */
	char error[256];
	bool incoming;
	double total_ms, downtime_ms, setup_ms, expected_downtime_ms;
	uint64_t transferred, remaining, total, zero_pages, normal_pages, rounds;
	unsigned throttle_pct;	/* auto-converge's brake now, 0 when off */
	bool over_limit;	/* the stop came when rounds ran out, the rest over the limit */
	bool auto_converge;
	uint64_t param[MIG_PARAM_COUNT];
};

void migration_query(struct vm *vm, struct migration_info *info);

/*
 * Before cont on a source in postmigrate: NULL if the guest may run here again, else why not.
 * It may after a snapshot to a file; and, forced, after a hand-over that the destination never
 * confirmed (it may have died before it took the guest: only the user can know), whose
 * devices, left paused, are taken back first. Never after a confirmed one. I/O thread.
 */
const char *migration_reclaim(struct vm *vm, bool force);

#endif
