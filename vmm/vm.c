#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vmm/vm.h"
#include "vmm/migration/migration.h"
#include "vmm/util.h"

/* Where KVM puts the TSS and identity map it needs on Intel; just below the BIOS area at 4G. */
#define KVM_TSS_ADDR 0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL
/* Guest RAM is one slot from 0 and must stay below the MMIO window at VM_MMIO_BASE. */
#define VM_RAM_MAX (3ULL << 30)
#define VM_RAM_MIN (2ULL << 20)

static int vm_check_ram_size(uint64_t size)
{
	uint64_t host = (uint64_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);

	if (size < VM_RAM_MIN) {
		errorf("-m: %llu bytes is too little memory (at least 2M)", (unsigned long long)size);
		return -1;
	}
	/* KVM maps whole pages only; its EINVAL would not name -m. */
	if (size & 4095) {
		errorf("-m: %llu bytes is not a whole number of 4K pages", (unsigned long long)size);
		return -1;
	}
	if (size > VM_RAM_MAX) {
		errorf("-m: %lluM is more than tern supports (3G: RAM must stay below the MMIO hole)",
		       (unsigned long long)(size >> 20));
		return -1;
	}
	if (size > host) {
		errorf("-m: %lluM is more than this host's memory (%lluM)",
		       (unsigned long long)(size >> 20), (unsigned long long)(host >> 20));
		return -1;
	}
	return 0;
}

static int vm_open_kvm(struct vm *vm)
{
	int ver;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0 && errno == ENOENT) {
		/* The usual cause on a new host: say what to look at, not just the errno. */
		errorf("kvm: open /dev/kvm: No such file or directory (no KVM on this host: enable "
		       "virtualization, load kvm_intel or kvm_amd)");
		return -1;
	}
	if (vm->kvm_fd < 0) {
		perrorf("kvm: open /dev/kvm");
		return -1;
	}
	ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		errorf("kvm: API version %d, expected %d", ver, KVM_API_VERSION);
		return -1;
	}
	vm->fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		perrorf("kvm: KVM_CREATE_VM");
		return -1;
	}
	return 0;
}

static int vm_setup_chipset(struct vm *vm)
{
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	struct kvm_pit_config pit = { .flags = 0 };

	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0) {
		perrorf("kvm: KVM_SET_TSS_ADDR");
		return -1;
	}
	if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
		perrorf("kvm: KVM_SET_IDENTITY_MAP_ADDR");
		return -1;
	}
	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		perrorf("kvm: KVM_CREATE_IRQCHIP");
		return -1;
	}
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0) {
		perrorf("kvm: KVM_CREATE_PIT2");
		return -1;
	}
	return 0;
}

int vm_set_ram_slot(struct vm *vm, uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = 0,
		.flags = flags,
		.guest_phys_addr = 0,
		.memory_size = vm->ram_size,
		.userspace_addr = (uintptr_t)vm->ram,
	};

	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		perrorf("kvm: KVM_SET_USER_MEMORY_REGION");
		return -1;
	}
	return 0;
}

static int vm_alloc_ram(struct vm *vm, uint64_t size)
{
	/* NORESERVE: an idle guest only costs the pages it touches. */
	vm->ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->ram == MAP_FAILED) {
		vm->ram = NULL;
		perrorf("memory: mmap %lluM", (unsigned long long)(size >> 20));
		return -1;
	}
	vm->ram_size = size;
	return 0;
}

/*
 * No KVM yet: guest RAM and what needs no VM fd. main loads the kernel in between, so that bad
 * input is reported as such even on a host whose /dev/kvm is missing or broken.
 */
int vm_create(struct vm *vm, struct tern_config *cfg)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->fd = -1;
	vm->cfg = cfg;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->run_lock, NULL);
	if (vm_check_ram_size(cfg->mem_size) < 0 || vm_alloc_ram(vm, cfg->mem_size) < 0 ||
	    dirty_init(&vm->dirty, cfg->mem_size) < 0 || evloop_init(&vm->loop) < 0)
		return -1;
	return 0;
}

int vm_open(struct vm *vm)
{
	if (vm_open_kvm(vm) < 0 || vm_setup_chipset(vm) < 0 || vm_set_ram_slot(vm, 0) < 0)
		return -1;
	return 0;
}

void vm_destroy(struct vm *vm)
{
	/* The vCPUs first: they call into the devices. */
	vcpus_stop(vm);
	for (int i = vm->ndev - 1; i >= 0; i--)
		if (vm->dev[i].ops->destroy)
			vm->dev[i].ops->destroy(vm->dev[i].opaque);
	vm->ndev = 0;
	if (vm->loop.epfd > 0)
		evloop_destroy(&vm->loop);
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	dirty_free(&vm->dirty);
	if (vm->fd >= 0)
		close(vm->fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
}

int vm_register_device(struct vm *vm, const struct device_ops *ops, void *opaque)
{
	if (vm->ndev == VM_MAX_DEVICES) {
		errorf("vm: more than %d devices", VM_MAX_DEVICES);
		return -1;
	}
	vm->dev[vm->ndev++] = (struct device){ ops, opaque };
	if (ops->runstate)
		vm->run_listeners++;
	return 0;
}

int vm_alloc_mmio(struct vm *vm, uint64_t *base, uint32_t *irq)
{
	struct boot_mmio_dev d;

	if (vm->nmmio_dev == VM_MAX_MMIO_DEVICES) {
		errorf("vm: more than %d virtio-mmio devices", VM_MAX_MMIO_DEVICES);
		return -1;
	}
	d = vm_mmio_slot(vm->nmmio_dev++);
	*base = d.base;
	*irq = d.irq;
	return 0;
}

struct boot_mmio_dev vm_mmio_slot(int n)
{
	return (struct boot_mmio_dev){ VM_MMIO_BASE + n * VM_MMIO_SIZE, VM_MMIO_SIZE,
				       VM_MMIO_IRQ_BASE + n };
}

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	if (gpa > vm->ram_size || len > vm->ram_size - gpa)
		return NULL;
	return vm->ram + gpa;
}

void vm_irq_line(struct vm *vm, uint32_t irq, int level)
{
	struct kvm_irq_level l = { .irq = irq, .level = level };

	if (ioctl(vm->fd, KVM_IRQ_LINE, &l) < 0)
		perrorf("kvm: KVM_IRQ_LINE %u", irq);
}

void vm_irq_pulse(struct vm *vm, uint32_t irq)
{
	vm_irq_line(vm, irq, 1);
	vm_irq_line(vm, irq, 0);
}

void vm_request_exit(struct vm *vm, int code, const char *cause, const char *why)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->exiting) {
		vm->exiting = true;
		vm->exit_code = code;
		vm->exit_cause = cause;
		if (why)
			errorf("%s", why);
	}
	pthread_mutex_unlock(&vm->lock);
	evloop_stop(&vm->loop);
}

bool vm_exiting(struct vm *vm)
{
	bool exiting;

	pthread_mutex_lock(&vm->lock);
	exiting = vm->exiting;
	pthread_mutex_unlock(&vm->lock);
	return exiting;
}

static const char *const state_names[] = {
	[RUN_STATE_RUNNING] = "running",
	[RUN_STATE_PAUSED] = "paused",
	[RUN_STATE_INMIGRATE] = "inmigrate",
	[RUN_STATE_POSTMIGRATE] = "postmigrate",
	[RUN_STATE_SHUTDOWN] = "shutdown",
	[RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
	[RUN_STATE_PRELAUNCH] = "prelaunch",
	[RUN_STATE_DEBUG] = "debug",
};

const char *vm_state_name(enum vm_runstate s)
{
	return state_names[s];
}

enum vm_runstate vm_state(struct vm *vm)
{
	enum vm_runstate s;

	pthread_mutex_lock(&vm->lock);
	s = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

static enum vm_runstate vm_set_state(struct vm *vm, enum vm_runstate s)
{
	enum vm_runstate old;

	pthread_mutex_lock(&vm->lock);
	old = vm->state;
	vm->state = s;
	pthread_mutex_unlock(&vm->lock);
	return old;
}

/* vCPUs first .. first + n - 1, each asked first: they stop together, and the pause takes one
 * kick's time, not n. */
static void vm_pause_vcpus(struct vm *vm, int first, int n)
{
	for (int i = first; i < first + n; i++)
		vcpu_pause_request(&vm->vcpu[i]);
	for (int i = first; i < first + n; i++)
		vcpu_pause_wait(&vm->vcpu[i]);
}

static void vm_resume_vcpus(struct vm *vm, int first, int n)
{
	for (int i = first; i < first + n; i++)
		vcpu_resume(&vm->vcpu[i]);
}

/*
 * Before a stopped guest runs again: kvmclock ran on meanwhile, and the guest is told it was
 * stopped (KVM_KVMCLOCK_CTRL), so that its soft-lockup and RCU-stall watchdogs do not fire at
 * the gap. EINVAL from a guest without kvmclock (yet) is nothing to report.
 */
static void vm_tell_stopped(struct vm *vm)
{
	for (int i = 0; i < vm->nvcpu; i++)
		ioctl(vm->vcpu[i].fd, KVM_KVMCLOCK_CTRL, 0);
}

/* With run_lock held, so that STOP and RESUME reach listeners in the order they happened. */
static enum vm_runstate vm_enter_state_locked(struct vm *vm, enum vm_runstate s)
{
	enum vm_runstate old;

	if (vm_state(vm) == RUN_STATE_FINISH_MIGRATE) {
		if (s == RUN_STATE_RUNNING && vm->stop_pending)
			s = RUN_STATE_PAUSED;
		vm->stop_pending = false;
	}
	if (s != RUN_STATE_RUNNING)
		vm_pause_vcpus(vm, 0, vm->nvcpu);
	old = vm_set_state(vm, s);
	if (s == RUN_STATE_RUNNING) {
		if (old != RUN_STATE_RUNNING)
			vm_tell_stopped(vm);
		vcpus_release_debug(vm);
		vm_resume_vcpus(vm, 0, vm->nvcpu);
	}
	if ((old == RUN_STATE_RUNNING) != (s == RUN_STATE_RUNNING)) {
		vm->run_changed = true;
		vm_event(vm, s == RUN_STATE_RUNNING ? "RESUME" : "STOP", NULL);
	}
	return old;
}

static void vm_tell_devices(void *opaque)
{
	struct vm *vm = opaque;

	for (int i = 0; i < vm->ndev; i++)
		if (vm->dev[i].ops->runstate)
			vm->dev[i].ops->runstate(vm->dev[i].opaque);
}

/*
 * Lets run_lock go, then tells the devices of a change, on the I/O thread. From another
 * (migration) without waiting for it: the I/O thread may be waiting for run_lock meanwhile,
 * and a destination's news must not wait behind the monitors. Each device reads the state
 * when it hears, so a change heard late still leaves it right.
 */
static void vm_run_unlock(struct vm *vm)
{
	bool tell = vm->run_changed && vm->run_listeners;

	vm->run_changed = false;
	pthread_mutex_unlock(&vm->run_lock);
	if (tell)
		evloop_post(&vm->loop, vm_tell_devices, vm);
}

enum vm_runstate vm_enter_state(struct vm *vm, enum vm_runstate s)
{
	enum vm_runstate old;

	pthread_mutex_lock(&vm->run_lock);
	old = vm_enter_state_locked(vm, s);
	vm_run_unlock(vm);
	return old;
}

void vm_event(struct vm *vm, const char *name, const char *data_json)
{
	if (vm->event_fn)
		vm->event_fn(vm->event_opaque, name, data_json);
}

void vm_stop(struct vm *vm)
{
	enum vm_runstate s;

	pthread_mutex_lock(&vm->run_lock);
	s = vm_state(vm);
	/* As QEMU: on a waiting destination, stop means "keep it stopped when it arrives". */
	if (s == RUN_STATE_INMIGRATE)
		vm->autostart = false;
	else if (s == RUN_STATE_FINISH_MIGRATE)
		vm->stop_pending = true;
	else if (s == RUN_STATE_RUNNING)
		vm_enter_state_locked(vm, RUN_STATE_PAUSED);
	vm_run_unlock(vm);
}

void vm_debug_stop(struct vm *vm)
{
	pthread_mutex_lock(&vm->run_lock);
	if (vm_state(vm) == RUN_STATE_RUNNING)
		vm_enter_state_locked(vm, RUN_STATE_DEBUG);
	vm_run_unlock(vm);
}

void vm_with_vcpus_parked(struct vm *vm, int first, int n, void (*fn)(void *), void *arg)
{
	bool running;

	pthread_mutex_lock(&vm->run_lock);
	running = vm_state(vm) == RUN_STATE_RUNNING;
	if (running)
		vm_pause_vcpus(vm, first, n);
	fn(arg);
	if (running)
		vm_resume_vcpus(vm, first, n);
	pthread_mutex_unlock(&vm->run_lock);
}

void vm_arrive(struct vm *vm, enum vm_runstate as_at_source)
{
	enum vm_runstate s = as_at_source;

	pthread_mutex_lock(&vm->run_lock);
	if (s == RUN_STATE_RUNNING && !vm->autostart)
		s = RUN_STATE_PAUSED;
	vm_enter_state_locked(vm, s);
	vm_run_unlock(vm);
}

/* Why the guest may not run here, or NULL; with run_lock held. */
static const char *vm_cont_refused(struct vm *vm, enum vm_runstate s, bool force)
{
	switch (s) {
	case RUN_STATE_FINISH_MIGRATE:
		return "the guest is being handed over by a migration (migrate_cancel stops it)";
	case RUN_STATE_POSTMIGRATE:
		return migration_reclaim(vm, force);
	default:
		return NULL;
	}
}

int vm_cont(struct vm *vm, bool force, char *err, size_t errlen)
{
	enum vm_runstate s;
	const char *why;

	pthread_mutex_lock(&vm->run_lock);
	s = vm_state(vm);
	why = vm_cont_refused(vm, s, force);
	/* As QEMU: on a waiting destination, cont means "run it when it arrives". */
	if (s == RUN_STATE_INMIGRATE)
		vm->autostart = true;
	else if (!why && (s == RUN_STATE_PAUSED || s == RUN_STATE_POSTMIGRATE ||
			  s == RUN_STATE_PRELAUNCH || s == RUN_STATE_DEBUG))
		vm_enter_state_locked(vm, RUN_STATE_RUNNING);
	vm_run_unlock(vm);
	if (why) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	return 0;
}
