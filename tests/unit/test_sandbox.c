/*
 * The system call filters for real, each case in a child process of its own (filters cannot
 * be taken off): the I/O thread's deny list refuses fork and exec with EPERM and a line on
 * stderr, yet threads still start (clone3 falls back to clone); the vCPU thread's allow list
 * takes what running a guest needs and refuses the rest; both stack on the thread they filter.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "tests/unit/unit.h"
#include "vmm/sandbox.h"

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

/* 0 when a vCPU thread's calls pass and anything else is refused with EPERM. */
static int vcpu_thread(void)
{
	int fd;

	if (sandbox_enter(SANDBOX_VCPU) < 0)
		return 20;
	fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0 || write(fd, &(uint64_t){ 1 }, 8) != 8 || close(fd) < 0)
		return 21;
	free(malloc(1 << 20)); /* mmap and munmap */
	/* Files: refused quietly (glibc's free() tries one, and copes). */
	if (open("/dev/null", O_RDONLY) != -1 || errno != EACCES)
		return 22;
	if (syscall(SYS_getppid) != -1 || errno != EPERM)
		return 23;
	return 0;
}

int main(void)
{
	char err[512];

	CHECK_EQ(in_child(io_thread, err, sizeof(err)), 0);
	/* glibc forks with clone (56), without CLONE_THREAD; execve is 59. */
	CHECK(strstr(err, "tern: sandbox: refused system call 56 ") != NULL);
	CHECK(strstr(err, "tern: sandbox: refused system call 59 ") != NULL);
	CHECK_EQ(in_child(vcpu_thread, err, sizeof(err)), 0);
	CHECK(strstr(err, "refused system call 257 ") == NULL); /* openat: quietly */
	CHECK(strstr(err, "refused system call 110 ") != NULL); /* getppid */
	return unit_summary();
}
