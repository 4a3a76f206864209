/*
 * A vCPU thread: KVM_RUN, dispatch exits to the I/O bus, and a pause protocol that the
 * monitor (stop/cont) and migration (stop-and-copy) rely on: vcpu_pause_wait() returns only
 * once the thread is parked outside KVM_RUN, so its registers can be read or written safely.
 * Its id is KVM's vCPU id and the guest's APIC ID.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "vmm/sandbox.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define VCPU_KICK_SIGNAL SIGUSR1

static void vcpu_kick_handler(int sig)
{
	/* Only here to make KVM_RUN return with EINTR. */
}

int vcpu_create(struct vm *vm, struct vcpu *v, int id)
{
	pthread_condattr_t ca;
	int size;

	v->vm = vm;
	/* Throttled sleeps end at a CLOCK_MONOTONIC time (now_ns()). */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&v->cond, &ca);
	pthread_condattr_destroy(&ca);
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		perrorf("kvm: KVM_CREATE_VCPU %d", id);
		return -1;
	}
	size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < 0) {
		perrorf("kvm: KVM_GET_VCPU_MMAP_SIZE");
		return -1;
	}
	v->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		perrorf("kvm: mmap kvm_run");
		return -1;
	}
	v->run_size = size;
	return 0;
}

static void vcpu_exit_with_regs(struct vcpu *v, int code, const char *cause, const char *what)
{
	struct kvm_regs regs;
	char why[256];

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		memset(&regs, 0, sizeof(regs));
	snprintf(why, sizeof(why), "guest %s at RIP 0x%llx", what, (unsigned long long)regs.rip);
	vm_request_exit(v->vm, code, cause, why);
}

static void vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *r = v->run;
	uint8_t *data = (uint8_t *)r + r->io.data_offset;

	for (uint32_t i = 0; i < r->io.count; i++, data += r->io.size)
		iobus_dispatch(&v->vm->pio, r->io.port, data, r->io.size,
			       r->io.direction == KVM_EXIT_IO_OUT);
}

/*
 * A breakpoint or a single step: the debugger hears of it, and the thread parks at once (the
 * next KVM_RUN comes straight back), before the guest goes a step further.
 */
static bool vcpu_debug_exit(struct vcpu *v)
{
	struct vm *vm = v->vm;

	if (!vm->debug_fn) {
		vcpu_exit_with_regs(v, 1, "host-error", "stopped: debug exit without a debugger");
		return false;
	}
	pthread_mutex_lock(&vm->lock);
	v->debug_stop = true;
	pthread_mutex_unlock(&vm->lock);
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	vm->debug_fn(vm->debug_opaque, v - vm->vcpu, &v->run->debug.arch);
	return true;
}

/* false when the guest is gone and the thread must end. */
static bool vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *r = v->run;
	char why[128];

	switch (r->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		iobus_dispatch(&v->vm->mmio, r->mmio.phys_addr, r->mmio.data, r->mmio.len,
			       r->mmio.is_write);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_DEBUG:
		return vcpu_debug_exit(v);
	case KVM_EXIT_SHUTDOWN:
		vcpu_exit_with_regs(v, 1, "guest-reset", "crashed: triple fault (KVM_EXIT_SHUTDOWN)");
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(why, sizeof(why), "stopped: KVM internal error, suberror %u%s",
			 r->internal.suberror,
			 r->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? " (emulation failure)" : "");
		vcpu_exit_with_regs(v, 1, "host-error", why);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(why, sizeof(why), "failed to enter: hardware reason 0x%llx",
			 (unsigned long long)r->fail_entry.hardware_entry_failure_reason);
		vcpu_exit_with_regs(v, 1, "host-error", why);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		vm_request_exit(v->vm, 0,
				r->system_event.type == KVM_SYSTEM_EVENT_RESET ? "guest-reset"
									: "guest-shutdown",
				NULL);
		return false;
	case KVM_EXIT_HLT:
		vcpu_exit_with_regs(v, 0, "guest-shutdown", "halted with interrupts off");
		return false;
	default:
		snprintf(why, sizeof(why), "stopped: unexpected KVM exit reason %u", r->exit_reason);
		vcpu_exit_with_regs(v, 1, "host-error", why);
		return false;
	}
}

/* Sleeps until ns (CLOCK_MONOTONIC) or a wake-up on v->cond, vm->lock held. */
static void vcpu_sleep_until(struct vcpu *v, uint64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000ULL, .tv_nsec = ns % 1000000000ULL };

	pthread_cond_timedwait(&v->cond, &v->vm->lock, &ts);
}

/*
 * Parks the thread while a pause is wanted, and sleeps out a throttle (see vcpus_throttle);
 * a pause wanted meanwhile parks it at once. false once the VM is exiting.
 */
static bool vcpu_wait_unpaused(struct vcpu *v)
{
	struct vm *vm = v->vm;
	bool go;

	pthread_mutex_lock(&vm->lock);
	while (!vm->exiting) {
		if (v->want_pause || v->debug_stop) {
			v->paused = true;
			pthread_cond_broadcast(&v->cond);
			pthread_cond_wait(&v->cond, &vm->lock);
		} else if (v->throttle_until > now_ns()) {
			vcpu_sleep_until(v, v->throttle_until);
		} else {
			break;
		}
	}
	v->paused = false;
	go = !vm->exiting;
	pthread_mutex_unlock(&vm->lock);
	return go;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	char name[16];
	sigset_t set;
	bool ok;

	__atomic_store_n(&v->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
	/* QEMU's name for it (-name debug-threads=on there; always here): top -H tells them apart. */
	snprintf(name, sizeof(name), "CPU %d/KVM", (int)(v - v->vm->vcpu));
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	ok = v->vm->cfg->no_sandbox || sandbox_enter(SANDBOX_VCPU) == 0;
	if (!ok)
		vm_request_exit(v->vm, 1, "host-error", NULL);

	/*
	 * The thread parks only after KVM_RUN came back with EINTR (a kick): KVM finishes an
	 * emulated IN or MMIO read, its result into a register, only on the KVM_RUN after the
	 * exit, and a paused vCPU's state must be whole before it is saved or migrated.
	 */
	while (ok && vcpu_wait_unpaused(v)) {
		while (ok && ioctl(v->fd, KVM_RUN, 0) == 0)
			ok = vcpu_handle_exit(v);
		if (!ok)
			break;
		if (errno != EINTR && errno != EAGAIN) {
			perrorf("kvm: KVM_RUN");
			vm_request_exit(v->vm, 1, "host-error", NULL);
			break;
		}
		/* A kick: pause or exit wanted; it has done its job. */
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_RELEASE);
	}
	/* Whoever waits in vcpu_pause_wait() must not wait for a thread that has ended. */
	pthread_mutex_lock(&v->vm->lock);
	v->paused = true;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->vm->lock);
	return NULL;
}

bool vcpus_stopping(struct vm *vm)
{
	bool stop;

	pthread_mutex_lock(&vm->lock);
	stop = vm->exiting;
	for (int i = 0; i < vm->nvcpu && !stop; i++)
		stop = vm->vcpu[i].want_pause || vm->vcpu[i].debug_stop;
	pthread_mutex_unlock(&vm->lock);
	return stop;
}

int vcpus_start(struct vm *vm, bool paused)
{
	struct sigaction sa = { .sa_handler = vcpu_kick_handler };
	sigset_t set;

	/* No SA_RESTART: the kick must interrupt KVM_RUN. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0) {
		perrorf("vcpu: sigaction");
		return -1;
	}
	/* Every other thread keeps the kick signal blocked. */
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; i < vm->nvcpu; i++) {
		struct vcpu *v = &vm->vcpu[i];
		int err;

		v->want_pause = paused;
		err = pthread_create(&v->thread, NULL, vcpu_thread, v);
		if (err) {
			errno = err;
			perrorf("vcpu: pthread_create");
			return -1;
		}
		v->started = true;
	}
	return 0;
}

static void vcpu_kick(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

/*
 * One kick is enough: immediate_exit is set before the signal, so a thread on its way into
 * KVM_RUN comes straight back, and want_pause is set before either, so it then parks.
 */
void vcpu_pause_request(struct vcpu *v)
{
	if (!v->started)
		return;
	pthread_mutex_lock(&v->vm->lock);
	v->want_pause = true;
	pthread_cond_broadcast(&v->cond);	/* one sleeping out a throttle */
	pthread_mutex_unlock(&v->vm->lock);
	vcpu_kick(v);
}

void vcpu_pause_wait(struct vcpu *v)
{
	if (!v->started)
		return;
	pthread_mutex_lock(&v->vm->lock);
	while (!v->paused)
		pthread_cond_wait(&v->cond, &v->vm->lock);
	pthread_mutex_unlock(&v->vm->lock);
}

void vcpu_resume(struct vcpu *v)
{
	pthread_mutex_lock(&v->vm->lock);
	v->want_pause = false;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->vm->lock);
}

void vcpus_throttle(struct vm *vm, uint64_t sleep_ns)
{
	uint64_t until = sleep_ns ? now_ns() + sleep_ns : 0;

	pthread_mutex_lock(&vm->lock);
	for (int i = 0; i < vm->nvcpu; i++) {
		vm->vcpu[i].throttle_until = until;
		pthread_cond_broadcast(&vm->vcpu[i].cond);
	}
	pthread_mutex_unlock(&vm->lock);
	for (int i = 0; i < vm->nvcpu && sleep_ns; i++)
		if (vm->vcpu[i].started)
			vcpu_kick(&vm->vcpu[i]);
}

void vcpus_release_debug(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	for (int i = 0; i < vm->nvcpu; i++)
		vm->vcpu[i].debug_stop = false;
	pthread_mutex_unlock(&vm->lock);
}

void vcpus_stop(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->exiting = true;
	for (int i = 0; i < vm->nvcpu; i++)
		pthread_cond_broadcast(&vm->vcpu[i].cond);
	pthread_mutex_unlock(&vm->lock);
	for (int i = 0; i < vm->nvcpu; i++)
		if (vm->vcpu[i].started)
			vcpu_kick(&vm->vcpu[i]);
	for (int i = 0; i < vm->nvcpu; i++) {
		struct vcpu *v = &vm->vcpu[i];

		if (v->started)
			pthread_join(v->thread, NULL);
		if (v->run)
			munmap(v->run, v->run_size);
		if (v->fd >= 0)
			close(v->fd);
		pthread_cond_destroy(&v->cond);
	}
	vm->nvcpu = 0;
}
