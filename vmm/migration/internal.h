/* State shared by the migration's monitor commands, source side and destination side. */
#ifndef TERN_MIG_INTERNAL_H
#define TERN_MIG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/migration/ram.h"
#include "vmm/migration/stream.h"
#include "vmm/migration/transport.h"

struct vm;
struct mon_session;

/* QEMU's MigrationStatus names. */
enum mig_status { MIG_NONE, MIG_SETUP, MIG_ACTIVE, MIG_COMPLETED, MIG_FAILED, MIG_CANCELLED };

struct mig_stats {
	uint64_t start_ns, setup_ns, total_ns, downtime_ns;
	uint64_t transferred, remaining, total_ram;
	uint64_t zero_pages, normal_pages, rounds;
	uint64_t bandwidth;		/* bytes/s measured in the last round */
	uint64_t expected_downtime_ns;
	bool over_limit;		/* stopped when rounds ran out, the rest over the limit */
};

struct migration {
	struct vm *vm;
	pthread_mutex_t lock;		/* status, error, stats, parameters */
	pthread_t thread;		/* outgoing */
	bool thread_started;
	bool thread_done;		/* atomic: the thread's last act, so joining never waits */
	pthread_t in_thread;		/* incoming: may still take forwarded frames meanwhile */
	bool in_started;
	int in_fd;			/* its stream, shut down when tern exits */
	enum mig_status status;
	char error[256];
	struct mig_stats st;
	bool cancel;			/* atomic */
	bool go_sent;			/* under lock: too late for migrate_cancel, as in QEMU */
	int cancel_fd;			/* eventfd: wakes a waiting accept */
	struct mig_uri uri;
	bool incoming;			/* atomic: waiting for or receiving a guest */

	/* Parameters. */
	uint64_t downtime_limit_ms;
	uint64_t max_bandwidth;		/* bytes/s, 0 = unlimited */
	unsigned max_rounds;
	/* Auto-converge (throttle.c): the capability, its parameters (percent), and the state. */
	bool auto_converge;
	uint64_t throttle_initial, throttle_increment, throttle_max;
	unsigned throttle_pct;		/* now; 0: not throttled. Written by the migration thread */
	unsigned throttle_high;		/* rounds that dirtied too much since the last step */
	int throttle_timer;

	/* Set when the source handed the guest over to a file: cont is allowed again. */
	bool snapshot_done;
	/* Set when the destination never said it took the guest after GO: cont -f may run it. */
	bool unconfirmed;

	struct mon_session *waiter;	/* a blocking `migrate` */
	int progress_timer;
	int listen_fd;			/* destination */
	int conn_fd;			/* the stream's socket, shut down to cancel */
};

const char *mig_status_name(enum mig_status s);
void mig_set_status(struct migration *m, enum mig_status s);
/* Marks the migration failed (or cancelled) with a reason; keeps the first reason. */
void mig_fail(struct migration *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* From the migration thread: report the end to a waiting monitor session (I/O thread). */
void mig_finish(struct migration *m);
/* The migration thread's last call: its outcome (MIG_FAILED with err, MIG_COMPLETED, or
 * MIG_NONE if told already), reported as mig_finish does unless it was already. */
void mig_thread_exit(struct migration *m, enum mig_status s, const char *err);

void *mig_source_thread(void *arg);
void *mig_dest_thread(void *arg);

/* Both sides: the machine description and the device state, as FDT blobs. */
void *mig_describe(struct vm *vm, int *len);
int mig_check_description(struct vm *vm, const void *theirs, int len, char *why, size_t wlen);
void *mig_save_devices(struct vm *vm, int *len, char *err, size_t errlen);
int mig_load_devices(struct vm *vm, const void *fdt, int len, char *err, size_t errlen);
/* Pause/resume every device's own processing, on the I/O thread. */
void mig_pause_devices(struct vm *vm);
void mig_resume_devices(struct vm *vm);
void mig_post_migrate(struct vm *vm);

/* Auto-converge: the timer on the I/O loop; after each round, whether to slow the guest down
 * (or more); and the end of it, when the guest stops or the migration ends. */
int mig_throttle_init(struct migration *m);
void mig_throttle_check(struct migration *m, uint64_t dirty_bytes, uint64_t sent_bytes);
void mig_throttle_stop(struct migration *m);

#endif
