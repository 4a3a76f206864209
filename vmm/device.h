/*
 * What a device tells the core about itself, in one place: its name, and its hooks for
 * migration and teardown. The core and the migration code only ever call these hooks.
 *
 * State travels as a flattened device tree (libfdt): the core opens a node named after the
 * device and the device's save hook adds one property per field with libfdt's sequential-write
 * calls; load gets the same node back and must bounds-check what it reads.
 */
#ifndef TERN_DEVICE_H
#define TERN_DEVICE_H

#include <stddef.h>

struct device_ops {
	const char *name;
	/* Properties that must be equal on both sides of a migration, as strings ("mac"). */
	int (*describe)(void *opaque, void *fdt);
	/*
	 * Instead of equal properties: whether the source's description (node) suits this side,
	 * which may adapt itself to it before the guest arrives. -1 with the reason in why.
	 */
	int (*match)(void *opaque, const void *fdt, int node, char *why, size_t len);
	int (*save)(void *opaque, void *fdt);
	int (*load)(void *opaque, const void *fdt, int node);
	/*
	 * On a destination, at the hello: -1, with the reason in why, when this host can no longer
	 * give the guest what the device promised it (a NIC whose tap was deleted meanwhile).
	 */
	int (*can_arrive)(void *opaque, char *why, size_t len);
	/* Stop and restart processing (host I/O, timers) around a migration's stop-and-copy. */
	void (*pause)(void *opaque);
	void (*resume)(void *opaque);
	/*
	 * The guest stopped or went on (stop, cont, a debugger, a migration): a device that writes
	 * guest memory by itself looks at vm_state() and holds back unless it is running, as in
	 * QEMU. On the I/O thread, after the change; a device may hear of two changes at once.
	 */
	void (*runstate)(void *opaque);
	/* After the guest has resumed on a migration's destination (e.g. announce the NIC). */
	void (*post_migrate)(void *opaque);
	/*
	 * Input that still reaches the source after the hand-over (frames on its tap, until the
	 * bridge learns the guest's new port): the source reads whole messages from this fd and
	 * the destination gives each to inject(), so nothing is lost in the switch. A device has
	 * both or neither: the stream names it by its place among them.
	 */
	int (*handover_fd)(void *opaque);
	void (*inject)(void *opaque, const void *buf, size_t len);
	/* Nonzero while the guest may not be migrated, with the reason in why (QEMU's blockers). */
	int (*blocker)(void *opaque, char *why, size_t len);
	/* Human-readable lines for `info` commands; buf gets at most len bytes. */
	void (*info)(void *opaque, const char *what, char *buf, unsigned len);
	void (*destroy)(void *opaque);
};

struct device {
	const struct device_ops *ops;
	void *opaque;
};

/* A state node each: the board's devices and one per vCPU. */
#define VM_MAX_DEVICES 96

#endif
