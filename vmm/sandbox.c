/*
 * Per-thread system call filters (libseccomp), on unless -sandbox off:
 *  - the I/O thread (main) gets a deny list, as QEMU's -sandbox on: no new programs or
 *    processes, no privileges, mounts, namespaces, modules, tracing, clock setting or reboot.
 *    It is set before the vCPU threads start, so that every thread made later inherits it.
 *  - each vCPU thread, which the guest drives most directly, adds an allow list: running the
 *    guest and emulating its port and MMIO devices take only a few calls.
 * A refused call fails with EPERM and leaves one line on stderr that names its number: the
 * guest runs on, and a call tern really needs shows up at once.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <seccomp.h>

#include "vmm/sandbox.h"
#include "vmm/util.h"

/* The si_code of a SIGSYS from a filter (linux/signal.h; glibc's headers lack it). */
#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

/* clang-format off */
/* What a VMM that is taken over must not get, grouped by what it would give away. */
static const int io_denied[] = {
	/* new programs and processes, other processes' memory */
	SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(fork), SCMP_SYS(vfork), SCMP_SYS(ptrace),
	SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev), SCMP_SYS(kcmp),
	/* file systems and namespaces */
	SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root), SCMP_SYS(chroot),
	SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(open_by_handle_at),
	SCMP_SYS(name_to_handle_at), SCMP_SYS(quotactl), SCMP_SYS(swapon), SCMP_SYS(swapoff),
	/* identities and privileges */
	SCMP_SYS(setuid), SCMP_SYS(setgid), SCMP_SYS(setreuid), SCMP_SYS(setregid),
	SCMP_SYS(setresuid), SCMP_SYS(setresgid), SCMP_SYS(setfsuid), SCMP_SYS(setfsgid),
	SCMP_SYS(setgroups), SCMP_SYS(capset), SCMP_SYS(personality), SCMP_SYS(iopl),
	SCMP_SYS(ioperm),
	/* the kernel itself: modules, kexec, BPF, tracing, keys, logs */
	SCMP_SYS(init_module), SCMP_SYS(finit_module), SCMP_SYS(delete_module),
	SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load), SCMP_SYS(reboot), SCMP_SYS(bpf),
	SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd), SCMP_SYS(keyctl), SCMP_SYS(add_key),
	SCMP_SYS(request_key), SCMP_SYS(syslog), SCMP_SYS(acct), SCMP_SYS(fanotify_init),
	SCMP_SYS(vhangup), SCMP_SYS(uselib), SCMP_SYS(lookup_dcookie),
	/* the host's clock */
	SCMP_SYS(settimeofday), SCMP_SYS(clock_settime), SCMP_SYS(clock_adjtime),
	SCMP_SYS(adjtimex),
};

/*
 * KVM_RUN and the exits it hands over: device I/O, eventfds, locks, memory, the console. glibc
 * ends a thread with every signal blocked (rt_sigprocmask, madvise of its stack, exit), and a
 * call refused there cannot run the handler below: SIGSYS then kills the whole process.
 */
static const int vcpu_allowed[] = {
	SCMP_SYS(ioctl), SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(writev), SCMP_SYS(pwrite64),
	SCMP_SYS(lseek), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(close),
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(eventfd2), SCMP_SYS(epoll_ctl),
	SCMP_SYS(sendto), SCMP_SYS(sendmsg),
	SCMP_SYS(futex), SCMP_SYS(sched_yield), SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(clock_gettime), SCMP_SYS(restart_syscall),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(mremap), SCMP_SYS(madvise),
	SCMP_SYS(brk), SCMP_SYS(getrandom),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(getpid), SCMP_SYS(gettid),
	SCMP_SYS(tgkill), SCMP_SYS(exit), SCMP_SYS(exit_group),
};
/* clang-format on */

/* Formats n in decimal into the end of buf; returns where it starts (async-signal-safe). */
static char *decimal(char *end, long n)
{
	unsigned long u = n < 0 ? -(unsigned long)n : (unsigned long)n;

	do
		*--end = '0' + u % 10;
	while (u /= 10);
	if (n < 0)
		*--end = '-';
	return end;
}

/*
 * SIGSYS from SCMP_ACT_TRAP: say which call was refused, and make it fail with EPERM. One sent
 * by kill is no refused call: its registers are left alone (RAX may be anything, or the result
 * of KVM_RUN or epoll_wait, which EPERM would end the guest with) and it is ignored.
 */
static void sandbox_refused(int sig, siginfo_t *si, void *ctx)
{
	static const char head[] = "tern: sandbox: refused system call ";
	static const char tail[] = " (EPERM; -sandbox off disables the filters)\n";
	char num[24], *p = decimal(num + sizeof(num), si->si_syscall);
	int saved = errno;

	if (si->si_code != SYS_SECCOMP)
		return;
	(void)!write(STDERR_FILENO, head, sizeof(head) - 1);
	(void)!write(STDERR_FILENO, p, num + sizeof(num) - p);
	(void)!write(STDERR_FILENO, tail, sizeof(tail) - 1);
	((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX] = -EPERM;
	errno = saved;
}

/* Loads f unless building it failed (r < 0), and lets it go either way. */
static int sandbox_load(scmp_filter_ctx f, int r, const char *who)
{
	if (!r)
		r = seccomp_load(f);
	seccomp_release(f);
	if (r) {
		errorf("sandbox: %s filter: %s", who, strerror(-r));
		return -1;
	}
	return 0;
}

static int sandbox_io(void)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	int r = f ? 0 : -ENOMEM;

	for (size_t i = 0; i < ARRAY_SIZE(io_denied) && !r; i++)
		r = seccomp_rule_add(f, SCMP_ACT_TRAP, io_denied[i], 0);
	/* Threads yes, processes no. clone3 hides its flags from filters: glibc falls back. */
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_TRAP, SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	return sandbox_load(f, r, "I/O thread");
}

static int sandbox_vcpu(void)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
	int r = f ? 0 : -ENOMEM;

	for (size_t i = 0; i < ARRAY_SIZE(vcpu_allowed) && !r; i++)
		r = seccomp_rule_add(f, SCMP_ACT_ALLOW, vcpu_allowed[i], 0);
	/* No files; but glibc's free() may peek at /proc/sys/vm/overcommit_memory and does
	 * without: refused quietly, no line on the console. */
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0);
	return sandbox_load(f, r, "vCPU thread");
}

int sandbox_enter(enum sandbox_thread t)
{
	struct sigaction sa = { .sa_sigaction = sandbox_refused, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		perrorf("sandbox: sigaction SIGSYS");
		return -1;
	}
	return t == SANDBOX_IO ? sandbox_io() : sandbox_vcpu();
}
