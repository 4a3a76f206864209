/*
 * -config FILE (vmm/config_json.c): any JSON, and every option's own parser behind it, must
 * give a configuration or exactly one error line, and leave nothing behind (config_free).
 * The input is the file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/config.h"

void __sanitizer_set_report_fd(void *fd);

/* Made once: the file -config names, and where tern's error lines go meanwhile. */
static int file_fd = -1, err_fd = -1;
static char path[64];

static void die(const char *what)
{
	perror(what);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static int report_fd;

	file_fd = memfd_create("config", 0);
	err_fd = memfd_create("stderr", 0);
	if (file_fd < 0 || err_fd < 0)
		die("fuzz_config: memfd_create");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", file_fd);
	/* tern's error lines are captured below; the sanitizers' reports must still be seen. */
	report_fd = dup(STDERR_FILENO);
	__sanitizer_set_report_fd((void *)(intptr_t)report_fd);
	return 0;
}

static void set_file(int fd, const void *data, size_t len)
{
	if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0 ||
	    (len && pwrite(fd, data, len, 0) != (ssize_t)len))
		die("fuzz_config: memfd");
}

/* -1 must come with one line "tern: ...\n", 0 and 1 (-help) with no error line. */
static void check_errors(int r)
{
	static char err[8192];
	ssize_t n = pread(err_fd, err, sizeof(err) - 1, 0);
	size_t lines = 0;

	err[n > 0 ? n : 0] = '\0';
	if (getenv("FUZZ_SHOW")) /* to see what an input does */
		fprintf(stderr, "config_parse: %d %s\n", r, err);
	for (ssize_t i = 0; i < n; i++)
		lines += err[i] == '\n';
	if (r == -1 ? lines != 1 || strncmp(err, "tern: ", 6) || err[n - 1] != '\n' : n > 0) {
		fprintf(stderr, "config_parse returned %d with this on stderr:\n%s", r, err);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[] = { "tern", "-config", path, NULL };
	struct tern_config c;
	int saved, r;

	set_file(file_fd, data, size);
	set_file(err_fd, NULL, 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(err_fd, STDERR_FILENO);
	r = config_parse(&c, 3, argv);
	dup2(saved, STDERR_FILENO);
	close(saved);
	config_free(&c);
	check_errors(r);
	return 0;
}
