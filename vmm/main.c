/*
 * tern: parse the command line, load the kernel into guest RAM, build the VM and its devices
 * around it, run the vCPU threads, and serve I/O on this thread until the guest or the user
 * ends it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

#include "guest-boot/boot.h"
#include "vmm/board.h"
#include "vmm/chardev.h"
#include "vmm/config.h"
#include "vmm/console.h"
#include "vmm/cpu_state.h"
#include "vmm/gdbstub.h"
#include "vmm/monitor.h"
#include "vmm/qmp.h"
#include "vmm/sandbox.h"
#include "vmm/serial.h"
#include "vmm/util.h"
#include "vmm/virtio_blk.h"
#include "vmm/vm.h"
#include "vmm/migration/migration.h"
#include "net/net.h"

struct tern {
	struct tern_config cfg;
	struct vm vm;
	struct console *console;
	struct chardev *serial_file;
	int sigfd;
	int ready_fd;			/* -daemonize: tells the waiting parent that all is up */
	int pid_fd;			/* -pidfile, locked while it is ours */
	struct boot_entry entry;	/* where the loaded kernel starts (tern_load) */
};

static void tern_signal(void *opaque, uint32_t events)
{
	struct tern *t = opaque;
	struct signalfd_siginfo si;
	char why[64];

	if (read(t->sigfd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGCONT) {
		console_resume(t->console);
		return;
	}
	snprintf(why, sizeof(why), "terminating on signal %u", si.ssi_signo);
	vm_request_exit(&t->vm, 0, "host-signal", why);
}

/*
 * SIGINT/SIGTERM/SIGHUP become events of the loop, so every exit takes the same clean path;
 * SIGCONT too (a blocked SIGCONT still continues tern), to make the terminal raw again.
 */
static void tern_signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGCONT);
}

/*
 * Before the pidfile: a signal during the set-up (seconds, loading a large initrd) waits for
 * the loop, which ends tern the clean way, instead of killing it there and leaving the
 * pidfile behind.
 */
static int tern_block_signals(void)
{
	sigset_t set;

	tern_signal_set(&set);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL)) {
		errorf("signals: pthread_sigmask failed");
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int tern_signals(struct tern *t)
{
	sigset_t set;

	tern_signal_set(&set);
	t->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (t->sigfd < 0) {
		perrorf("signals: signalfd");
		return -1;
	}
	return evloop_add(&t->vm.loop, t->sigfd, EPOLLIN, tern_signal, t);
}

static int tern_console(struct tern *t)
{
	struct tern_config *c = &t->cfg;
	struct vm *vm = &t->vm;
	struct chardev *chr;

	if (!c->daemonize) {
		t->console = console_create(vm, vm->monitor, c->serial == SERIAL_STDIO, c->echr);
		if (!t->console)
			return -1;
	}
	if (c->serial == SERIAL_STDIO && t->console) {
		chr = console_chardev(t->console);
	} else {
		t->serial_file = chardev_file_open(c->serial == SERIAL_FILE ? c->serial_path : NULL);
		if (!t->serial_file)
			return -1;
		chr = t->serial_file;
	}
	return serial_create(vm, chr) ? 0 : -1;
}

/* virtio-mmio devices, in their slots' order: one per NIC, then one per disk. */
static int tern_mmio_devices(const struct tern *t)
{
	return t->cfg.n_nic + t->cfg.n_disk;
}

static int tern_devices(struct tern *t)
{
	struct vm *vm = &t->vm;

	if (!monitor_create(vm) || migration_init(vm) < 0 || tern_console(t) < 0 ||
	    i8042_create(vm) < 0 || acpi_sleep_create(vm) < 0 || pvpanic_create(vm) < 0 ||
	    bootmarker_create(vm, getenv("TERN_BOOT_TRACE") != NULL) < 0)
		return -1;
	if (t->cfg.monitor && monitor_socket_create(vm, vm->monitor, t->cfg.monitor) < 0)
		return -1;
	if (t->cfg.qmp && qmp_create(vm, t->cfg.qmp) < 0)
		return -1;
	if (t->cfg.gdb && gdbstub_create(vm, t->cfg.gdb) < 0)
		return -1;
	if (net_create(vm) < 0 || virtio_blk_create_all(vm) < 0)
		return -1;
	/* The guest was told of the devices before they existed (tern_load): keep it true. */
	if (vm->nmmio_dev != tern_mmio_devices(t)) {
		errorf("internal: %d virtio-mmio devices, but tern_load announced %d to the guest",
		       vm->nmmio_dev, tern_mmio_devices(t));
		return -1;
	}
	return 0;
}

/*
 * Loads the kernel while there is no VM yet, so that bad input (kernel, initrd, cmdline) is the
 * error a user sees, even on a host without a usable /dev/kvm. The cmdline and ACPI already
 * announce the virtio-mmio devices: one per NIC, then one per disk, in the slots vm_alloc_mmio
 * will hand them (tern_devices checks that it did).
 */
static int tern_load(struct tern *t)
{
	struct vm *vm = &t->vm;
	struct guest_mem mem = { vm->ram, vm->ram_size };
	struct boot_cfg bc = {
		.kernel = t->cfg.kernel,
		.initrd = t->cfg.initrd,
		.cmdline = t->cfg.append,
		.force_pvh = t->cfg.pvh,
		.ncpus = t->cfg.smp,
	};

	_Static_assert(CONFIG_MAX_NICS + CONFIG_MAX_DISKS <= BOOT_MAX_DEVS &&
			       CONFIG_MAX_NICS + CONFIG_MAX_DISKS <= VM_MAX_MMIO_DEVICES,
		       "every device must fit the boot tables");
	for (int i = 0; i < tern_mmio_devices(t); i++) {
		struct boot_mmio_dev d = vm_mmio_slot(i);

		bc.devs[bc.ndevs++] = (struct boot_dev){ d.base, d.size, d.irq };
	}
	return boot_load(&mem, &bc, &t->entry);
}

/*
 * The vCPUs, with their CPUID and their state for migration. Only the boot CPU gets the
 * kernel's entry point; the others sit in KVM's wait-for-SIPI state until the guest starts
 * them, as on real hardware. The CPUID goes first: which MSRs a vCPU has depends on it.
 */
static int tern_vcpus(struct tern *t, bool incoming)
{
	struct vm *vm = &t->vm;

	for (unsigned i = 0; i < t->cfg.smp; i++) {
		vm->nvcpu = i + 1;
		if (vcpu_create(vm, &vm->vcpu[i], i) < 0)
			return -1;
	}
	if (cpu_model_create(vm) < 0 || cpu_state_register(vm) < 0)
		return -1;
	return incoming ? 0 : boot_setup_vcpu(vm->vcpu[0].fd, &t->entry);
}

/*
 * -pidfile: our pid, under a lock held while tern runs, as QEMU's: a second tern given the
 * same file is refused rather than overwriting it, and only the holder removes it at exit.
 */
static int tern_pidfile(struct tern *t, const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0) {
		perrorf("-pidfile: %s", path);
		return -1;
	}
	if (lockf(fd, F_TLOCK, 0) < 0) {
		if (errno == EACCES || errno == EAGAIN)
			errorf("-pidfile: %s: locked by another process (that guest's tern still runs?)",
			       path);
		else
			perrorf("-pidfile: lock %s", path);
		close(fd);
		return -1;
	}
	if (ftruncate(fd, 0) < 0 || dprintf(fd, "%d\n", getpid()) < 0) {
		perrorf("-pidfile: %s", path);
		close(fd);
		return -1;
	}
	t->pid_fd = fd;
	return 0;
}

/*
 * Detach, as QEMU does, before /dev/kvm is opened: a VM belongs to the process that made it,
 * and a forked child could not run it. The parent waits until the daemon says it is fully up
 * (pidfile, vCPU, incoming migration), so that its exit status is the daemon's set-up and the
 * pidfile exists when it returns; until then the daemon's errors reach the caller's stderr.
 */
static int tern_daemonize(struct tern *t)
{
	int p[2];
	pid_t pid;
	char ok;

	if (pipe2(p, O_CLOEXEC) < 0) {
		perrorf("-daemonize: pipe");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		perrorf("-daemonize: fork");
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		_exit(read(p[0], &ok, 1) == 1 ? 0 : 1);
	}
	close(p[0]);
	t->ready_fd = p[1];
	setsid();
	return 0;
}

/* The daemon is up: let the parent go, and leave its terminal. */
static void tern_daemon_ready(struct tern *t)
{
	int fd = open("/dev/null", O_RDWR);

	/* Still on the caller's terminal, which would otherwise stay the daemon's stdio. */
	if (fd < 0)
		perrorf("-daemonize: open /dev/null");
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (write(t->ready_fd, "", 1) < 0)
		perrorf("-daemonize: telling the parent");
	close(t->ready_fd);
	t->ready_fd = -1;
}

static int tern_setup(struct tern *t)
{
	struct vm *vm = &t->vm;
	bool incoming = t->cfg.incoming != NULL;

	if (t->cfg.daemonize && t->cfg.serial == SERIAL_STDIO) {
		errorf("-daemonize: the serial console cannot be on stdio (use -serial file:PATH or none)");
		return -1;
	}
	if ((t->cfg.daemonize && tern_daemonize(t) < 0) || tern_block_signals() < 0)
		return -1;
	/*
	 * The pidfile's lock before anything else is made: a second tern given the same command
	 * line stops here, before its sockets replace the first one's.
	 */
	if (t->cfg.pidfile && tern_pidfile(t, t->cfg.pidfile) < 0)
		return -1;
	/* -name ...,process=P: before any thread is made, so that all of them inherit it. */
	if (t->cfg.process[0] && prctl(PR_SET_NAME, t->cfg.process) < 0) {
		perrorf("-name process=%s", t->cfg.process);
		return -1;
	}
	/*
	 * A destination gets its memory from the source, so only a booting guest loads a kernel.
	 * State is restored in registration order: the clock before the vCPU's MSRs, because
	 * restoring MSR_KVM_WALL_CLOCK_NEW makes KVM rewrite the guest's wall clock base from
	 * the VM's clock as it is at that moment, which must already be the source's.
	 */
	if (vm_create(vm, &t->cfg) < 0 || (!incoming && tern_load(t) < 0) ||
	    virtio_blk_check_drives(&t->cfg) < 0 || vm_open(vm) < 0 ||
	    tern_signals(t) < 0 || tern_devices(t) < 0 || kvmclock_register(vm) < 0 ||
	    tern_vcpus(t, incoming) < 0 || irqchip_state_register(vm) < 0 ||
	    cpu_info_register(vm) < 0)
		return -1;
	/* Everything that opens, forks or attaches is done: the filters go on now. */
	if (!t->cfg.no_sandbox && sandbox_enter(SANDBOX_IO) < 0)
		return -1;
	vm->autostart = !t->cfg.start_paused;
	vm->state = incoming	     ? RUN_STATE_INMIGRATE
		    : vm->autostart ? RUN_STATE_RUNNING
				    : RUN_STATE_PRELAUNCH;
	/* A waiting destination starts its vCPU threads parked, migration resumes them; -S: cont. */
	if (vcpus_start(vm, vm->state != RUN_STATE_RUNNING) < 0)
		return -1;
	return incoming ? migration_incoming(vm, t->cfg.incoming) : 0;
}

/*
 * Started with 0, 1 or 2 closed, the first fds tern opens would take their numbers and be
 * written over (the daemon's /dev/null, stderr's lines): /dev/null fills them first.
 */
static void tern_std_fds(void)
{
	int fd;

	do
		fd = open("/dev/null", O_RDWR);
	while (fd >= 0 && fd <= STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

int main(int argc, char **argv)
{
	struct tern *t;
	int r, code;

	tern_std_fds();
	t = calloc(1, sizeof(*t));
	if (!t) {
		perrorf("calloc");
		return 1;
	}
	r = config_parse(&t->cfg, argc, argv);
	if (r) {
		config_free(&t->cfg);
		free(t);
		return r > 0 ? 0 : 1;
	}
	t->sigfd = t->ready_fd = t->pid_fd = t->vm.kvm_fd = t->vm.fd = -1;
	if (tern_setup(t) == 0) {
		if (t->ready_fd >= 0)
			tern_daemon_ready(t);
		if (evloop_run(&t->vm.loop) < 0)
			t->vm.exit_code = 1;
	} else {
		t->vm.exit_code = 1;
		/* A migration thread waiting for the loop gets its call run here instead. */
		if (t->vm.loop.epfd > 0)
			evloop_finish(&t->vm.loop);
	}
	code = t->vm.exit_code;
	/* Migration first, then the vCPU: each uses what comes after it. */
	migration_shutdown(&t->vm);
	/* Stop the vCPUs before the devices they call into go away. */
	vcpus_stop(&t->vm);
	console_destroy(t->console);
	vm_destroy(&t->vm);
	chardev_close(t->serial_file);
	monitor_destroy(t->vm.monitor);
	if (t->sigfd >= 0)
		close(t->sigfd);
	if (t->pid_fd >= 0) {
		unlink(t->cfg.pidfile);
		close(t->pid_fd);
	}
	config_free(&t->cfg);
	free(t);
	return code;
}
