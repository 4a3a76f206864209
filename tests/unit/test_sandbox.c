/*
 * The system call filters for real, each case in a child process of its own (filters cannot
 * be taken off): the I/O thread's deny list refuses fork and exec with EPERM and a line on
 * stderr, yet threads still start (clone3 falls back to clone, quietly); a vCPU thread, its
 * allow list stacked on that as in tern, makes the calls its exits take and no other, and
 * ends: glibc ends a thread with every signal blocked, where a refused call kills the process
 * with SIGSYS (in_child() then fails). A SIGSYS sent by kill is no refused call.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "tests/unit/unit.h"
#include "vmm/sandbox.h"
#include "vmm/util.h"

/* Runs fn in a child whose stderr goes to err (a pipe); its exit status is fn's. */
static int in_child(int (*fn)(void), char *err, size_t errlen)
{
	int p[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		_exit(fn());
	}
	close(p[1]);
	while (len < errlen - 1 && (n = read(p[0], err + len, errlen - 1 - len)) > 0)
		len += n;
	err[len] = '\0';
	close(p[0]);
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void *nothing(void *arg)
{
	return arg;
}

/* 0 when fork and exec are refused with EPERM while threads still start. */
static int io_thread(void)
{
	char *argv[] = { "/bin/true", NULL };
	pthread_t t;

	if (sandbox_enter(SANDBOX_IO) < 0)
		return 10;
	if (fork() != -1 || errno != EPERM)
		return 11;
	if (execv(argv[0], argv) != -1 || errno != EPERM)
		return 12;
	if (pthread_create(&t, NULL, nothing, NULL) || pthread_join(t, NULL))
		return 13;
	return 0;
}

static bool give_up_now(void *arg)
{
	return true;
}

/*
 * A vCPU thread's calls, on its exits' paths (0, or where it failed); full is a pipe that takes
 * nothing, as a console nobody reads.
 */
static void *vcpu_calls(void *full)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c;
	pthread_condattr_t ca;
	struct timespec ts;
	char *volatile big; /* volatile: the compiler drops a malloc() that free() undoes */
	uint64_t ns;
	int fd, r;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c, &ca);
	if (sandbox_enter(SANDBOX_VCPU) < 0)
		return (void *)20;
	/* irqfd and ioeventfd writes */
	fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0 || write(fd, &(uint64_t){ 1 }, 8) != 8 || close(fd) < 0)
		return (void *)21;
	/* malloc's big blocks: mmap and munmap */
	big = malloc(1 << 20);
	if (!big)
		return (void *)22;
	big[0] = 1;
	free(big);
	/* a throttle's sleep: clock_gettime and futex */
	ns = now_ns() + 1000000;
	ts = (struct timespec){ .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
	pthread_mutex_lock(&m);
	r = pthread_cond_timedwait(&c, &m, &ts);
	pthread_mutex_unlock(&m);
	if (r && r != ETIMEDOUT)
		return (void *)23;
	/* the vDSO's fallback, and QMP's event time */
	if (syscall(SYS_clock_gettime, CLOCK_REALTIME, &ts) < 0)
		return (void *)24;
	/* serial output that waits for the console (poll), until the vCPUs must stop */
	if (write_full_unless(*(int *)full, "x", 1, give_up_now, NULL) != -1 || errno != EINTR)
		return (void *)25;
	/* an error line (dprintf: fstat, lseek, write) */
	errno = EIO;
	perrorf("sandbox test: a vCPU's error line");
	/* Files: refused quietly (glibc's free() tries one, and copes). */
	if (open("/dev/null", O_RDONLY) != -1 || errno != EACCES)
		return (void *)26;
	if (syscall(SYS_getppid) != -1 || errno != EPERM)
		return (void *)27;
	/* Not from the filter: no line, and the call it interrupted keeps its result. */
	if (raise(SIGSYS))
		return (void *)28;
	return NULL;
}

/* 0 when a vCPU thread, filtered as in tern, makes its calls and ends. */
static int vcpu_thread(void)
{
	char buf[4096] = { 0 };
	void *ret = (void *)1;
	int p[2];
	pthread_t t;

	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return 30;
	while (write(p[1], buf, sizeof(buf)) > 0)
		;
	if (sandbox_enter(SANDBOX_IO) < 0)
		return 31;
	if (pthread_create(&t, NULL, vcpu_calls, &p[1]) || pthread_join(t, &ret))
		return 32;
	return (int)(intptr_t)ret;
}

/* How many times s has what. */
static int count(const char *s, const char *what)
{
	int n = 0;

	while ((s = strstr(s, what))) {
		n++;
		s += strlen(what);
	}
	return n;
}

int main(void)
{
	char err[1024];

	CHECK_EQ(in_child(io_thread, err, sizeof(err)), 0);
	/* glibc forks with clone (56), without CLONE_THREAD; execve is 59. clone3: no line. */
	CHECK(strstr(err, "tern: sandbox: refused system call 56 ") != NULL);
	CHECK(strstr(err, "tern: sandbox: refused system call 59 ") != NULL);
	CHECK_EQ(count(err, "refused system call"), 2);
	CHECK_EQ(in_child(vcpu_thread, err, sizeof(err)), 0);
	CHECK(strstr(err, "tern: sandbox test: a vCPU's error line: Input/output error\n") != NULL);
	CHECK(strstr(err, "refused system call 110 ") != NULL); /* getppid */
	/* openat (257) quietly; the SIGSYS from raise() not at all */
	CHECK_EQ(count(err, "refused system call"), 1);
	return unit_summary();
}
