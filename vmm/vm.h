/*
 * The VM object: everything a running guest owns. There is no other mutable global state in
 * tern; threads reach what they need through this object.
 */
#ifndef TERN_VM_H
#define TERN_VM_H

#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <linux/kvm.h>

#include "vmm/config.h"
#include "vmm/device.h"
#include "vmm/dirty.h"
#include "vmm/evloop.h"
#include "vmm/iobus.h"

struct vm;

struct vcpu {
	struct vm *vm;
	int fd;
	int tid;	/* the thread's id, for info cpus */
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	/* Pause protocol: see vcpu_pause_request(). Guarded by vm->lock. */
	bool want_pause, paused;
	/* Stopped on a debug exit: parked until the VM enters RUNNING (vcpus_release_debug),
	 * whatever pauses and resumes come meanwhile (info registers). */
	bool debug_stop;
	uint64_t throttle_until;	/* CLOCK_MONOTONIC ns; see vcpus_throttle(). Guarded too. */
	pthread_cond_t cond;
};

/* Run states, named as QEMU's query-status names them. */
enum vm_runstate {
	RUN_STATE_RUNNING,
	RUN_STATE_PAUSED,
	RUN_STATE_INMIGRATE,
	RUN_STATE_POSTMIGRATE,
	RUN_STATE_SHUTDOWN,
	RUN_STATE_FINISH_MIGRATE,	/* paused for a migration's stop-and-copy */
	RUN_STATE_PRELAUNCH,		/* -S: not run yet, waiting for cont */
	RUN_STATE_DEBUG,		/* stopped by the debugger (gdbstub.c) */
};

/* Guest-visible addresses of the board. */
#define VM_IOAPIC_BASE 0xfec00000ULL
#define VM_MMIO_BASE 0xd0000000ULL	/* virtio-mmio devices, 4 KiB each */
#define VM_MMIO_SIZE 0x1000ULL
#define VM_MMIO_IRQ_BASE 5
#define VM_MAX_MMIO_DEVICES 16	/* IRQs 5-20 on the IOAPIC's 24 */

struct boot_mmio_dev {
	uint64_t base, size;
	uint32_t irq;
};

struct vm {
	int kvm_fd, fd;
	uint8_t *ram;
	uint64_t ram_size;
	struct tern_config *cfg;

	struct vcpu vcpu[CONFIG_MAX_VCPUS];
	int nvcpu;		/* created: vcpu[0] is the boot CPU, the others wait for its SIPI */
	struct iobus pio, mmio;
	struct evloop loop;

	struct device dev[VM_MAX_DEVICES];
	int ndev;
	int nmmio_dev;		/* virtio-mmio slots handed out: see vm_mmio_slot() */

	pthread_mutex_t lock;
	/* Held across a run-state change and the vCPU pause or resume that goes with it, so that
	 * stop, cont and migration (different threads) never interleave. Taken before lock. */
	pthread_mutex_t run_lock;
	enum vm_runstate state;
	/* Whether a guest arriving by migration runs at once (QEMU's autostart): off with -S,
	 * and stop or cont on a waiting destination set it. Guarded by run_lock. */
	bool autostart;
	/* A stop while a migration holds the guest (finish-migrate): should the migration fail,
	 * the guest stays stopped rather than run on. Guarded by run_lock. */
	bool stop_pending;
	/* The guest stopped or went on since run_lock was taken: the devices hear of it once it
	 * is let go (vm_run_unlock). Guarded by run_lock. */
	bool run_changed;
	int run_listeners; /* devices with a runstate hook */
	bool exiting;
	int exit_code;
	const char *exit_cause;

	/* QMP-style events (STOP, RESUME, MIGRATION...): one listener, the QMP server. */
	void (*event_fn)(void *opaque, const char *name, const char *data_json);
	void *event_opaque;
	/*
	 * A vCPU stopped on a breakpoint or a single step (KVM_EXIT_DEBUG), from its thread,
	 * which then parks until the VM is resumed: one listener, the debugger.
	 */
	void (*debug_fn)(void *opaque, int vcpu, const struct kvm_debug_exit_arch *why);
	void *debug_opaque;

	/* Set by devices that need them; the core only passes them around. */
	struct console *console;
	struct monitor *monitor;
	struct migration *migration;
	struct dirty_log dirty;	/* pages the VMM wrote itself; see dirty.h */
};

/*
 * Two steps, so that the kernel is loaded into vm->ram (and bad input reported) before
 * /dev/kvm is opened: vm_create allocates RAM and the event loop, vm_open makes the KVM VM,
 * its chipset, and registers the RAM as slot 0.
 */
int vm_create(struct vm *vm, struct tern_config *cfg);
int vm_open(struct vm *vm);
void vm_destroy(struct vm *vm);
/* (Re)register guest RAM as KVM slot 0 with flags (KVM_MEM_LOG_DIRTY_PAGES). */
int vm_set_ram_slot(struct vm *vm, uint32_t flags);
int vm_register_device(struct vm *vm, const struct device_ops *ops, void *opaque);
/* Reserve the next virtio-mmio slot: its base and IRQ, announced to the guest at boot. */
int vm_alloc_mmio(struct vm *vm, uint64_t *base, uint32_t *irq);
/* The n-th slot that vm_alloc_mmio hands out, for announcing devices before they exist. */
struct boot_mmio_dev vm_mmio_slot(int n);

/* Guest physical -> host pointer, NULL unless [gpa, gpa+len) lies inside RAM. */
void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len);

/* Raise an edge-triggered interrupt line on the in-kernel irqchip. */
void vm_irq_pulse(struct vm *vm, uint32_t irq);
void vm_irq_line(struct vm *vm, uint32_t irq, int level);

/*
 * Ends the I/O loop; main then tears everything down and exits with code. Any thread; the
 * first request wins. cause: QEMU's ShutdownCause name (host-qmp-quit, host-signal, host-ui,
 * host-error, guest-shutdown, guest-reset), as the SHUTDOWN event reports it.
 */
void vm_request_exit(struct vm *vm, int code, const char *cause, const char *why);
/* Whether an exit was asked for (quit, a signal, the guest powering off or crashing). */
bool vm_exiting(struct vm *vm);

/* Sends an event to the listener, if any; any thread. data_json may be NULL. */
void vm_event(struct vm *vm, const char *name, const char *data_json);

/* stop/cont as the monitor means them. */
void vm_stop(struct vm *vm);
/*
 * -1 with the reason where the guest may not run here (it has moved or is arriving). force:
 * after a hand-over that the destination never confirmed as well (migration_reclaim()).
 */
int vm_cont(struct vm *vm, bool force, char *err, size_t errlen);
const char *vm_state_name(enum vm_runstate s);
enum vm_runstate vm_state(struct vm *vm);
/* Moves to s, the vCPU running only in RUN_STATE_RUNNING, with a STOP or RESUME event where
 * that changes; returns the state before. */
enum vm_runstate vm_enter_state(struct vm *vm, enum vm_runstate s);
/* Runs fn(arg) with vCPUs first .. first + n - 1 parked (the others run on) and no run-state
 * change: a running guest goes on after. */
void vm_with_vcpus_parked(struct vm *vm, int first, int n, void (*fn)(void *), void *arg);
/* A migrated guest has arrived: it runs if its source ran it and autostart is on; paused or
 * not yet started (-S) at the source, it stays so, as in QEMU. */
void vm_arrive(struct vm *vm, enum vm_runstate as_at_source);

/* vcpu.c */
int vcpu_create(struct vm *vm, struct vcpu *v, int id);
/* The threads of the vm->nvcpu vCPUs created, parked if paused; vcpus_stop ends them, joins
 * them and frees the vCPUs (once; a second call does nothing). */
int vcpus_start(struct vm *vm, bool paused);
/*
 * Whether the vCPUs are being parked (a pause, a debug stop) or ended: a vCPU thread blocked
 * on the host, where no kick reaches it, asks this to know it must give up and return.
 */
bool vcpus_stopping(struct vm *vm);
void vcpus_stop(struct vm *vm);
/*
 * Pause in two steps, so that every vCPU is asked before any is waited for: the request kicks
 * the thread out of KVM_RUN, the wait returns once it sits parked outside. Resume lets it go.
 */
void vcpu_pause_request(struct vcpu *v);
void vcpu_pause_wait(struct vcpu *v);
void vcpu_resume(struct vcpu *v);
/*
 * Auto-converge's brake: every vCPU leaves KVM_RUN and sleeps for sleep_ns (a pause still
 * parks it at once); 0 wakes those asleep. Any thread.
 */
void vcpus_throttle(struct vm *vm, uint64_t sleep_ns);
/* Lets the vCPUs stopped on a debug exit go with the next resume. */
void vcpus_release_debug(struct vm *vm);
/* stop, as gdb means it: a running guest enters RUN_STATE_DEBUG (only from running). */
void vm_debug_stop(struct vm *vm);

#endif
