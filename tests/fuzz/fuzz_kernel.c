/*
 * Kernel images (-kernel, -initrd): boot_load() reads whatever file it is given, an ELF with
 * or without a PVH note, a bzImage, or neither, and must either boot it or refuse it with
 * exactly one error line; it must never write outside guest RAM, whose end is a guard page
 * here.
 *
 * Input: 4 bytes of options, then the kernel file.
 *   byte 0: bit 0 -pvh, bit 1 an initrd, bit 2 an -append, bits 3-4 RAM of 2 << n MiB,
 *           bits 5-7 how many virtio-mmio devices go on the cmdline
 *   bytes 1-3: the initrd's size in bytes (little-endian; its bytes are zeros)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest-boot/boot.h"

#define RAM_MAX (16ULL << 20)
#define PAGE 4096ULL

void __sanitizer_set_report_fd(void *fd);

/* Made once: the files the kernel and initrd paths name, guest RAM and its guard page. */
static int kernel_fd = -1, initrd_fd = -1, err_fd = -1;
static char kernel_path[64], initrd_path[64];
static uint8_t *ram_end;
static bool show; /* FUZZ_SHOW=1: print what boot_load() said, to see what an input does */

static void die(const char *what)
{
	perror(what);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t *map = mmap(NULL, RAM_MAX + PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	static int report_fd;

	if (map == MAP_FAILED || mprotect(map + RAM_MAX, PAGE, PROT_NONE) < 0)
		die("fuzz_kernel: guest RAM");
	ram_end = map + RAM_MAX;
	kernel_fd = memfd_create("kernel", 0);
	initrd_fd = memfd_create("initrd", 0);
	err_fd = memfd_create("stderr", 0);
	if (kernel_fd < 0 || initrd_fd < 0 || err_fd < 0)
		die("fuzz_kernel: memfd_create");
	snprintf(kernel_path, sizeof(kernel_path), "/proc/self/fd/%d", kernel_fd);
	snprintf(initrd_path, sizeof(initrd_path), "/proc/self/fd/%d", initrd_fd);
	/* tern's error lines are captured below; the sanitizers' reports must still be seen. */
	show = getenv("FUZZ_SHOW");
	report_fd = dup(STDERR_FILENO);
	__sanitizer_set_report_fd((void *)(intptr_t)report_fd);
	return 0;
}

static void set_file(int fd, const void *data, size_t len)
{
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, len) < 0 || lseek(fd, 0, SEEK_SET) < 0 ||
	    (data && pwrite(fd, data, len, 0) != (ssize_t)len))
		die("fuzz_kernel: memfd");
}

/* What boot_load() wrote to stderr, which was err_fd meanwhile. */
static size_t read_errors(char *buf, size_t cap)
{
	ssize_t n = pread(err_fd, buf, cap - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? n : 0;
}

static void check_errors(int r)
{
	static char err[8192];
	size_t n = read_errors(err, sizeof(err)), lines = 0;

	if (show)
		fprintf(stderr, "boot_load: %d %s", r, err);
	for (size_t i = 0; i < n; i++)
		lines += err[i] == '\n';
	if (r == 0 ? n != 0 : (r != -1 || lines != 1 || strncmp(err, "tern: ", 6) ||
			       err[n - 1] != '\n')) {
		fprintf(stderr, "boot_load returned %d with this on stderr:\n%s", r, err);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct boot_cfg cfg = {.kernel = kernel_path, .cmdline = NULL, .ncpus = 1};
	struct guest_mem mem;
	struct boot_entry e;
	int saved, r;

	if (size < 4)
		return 0;
	mem.size = 2ULL << 20 << ((data[0] >> 3) & 3);
	mem.base = ram_end - mem.size;
	cfg.force_pvh = data[0] & 1;
	if (data[0] & 2) {
		set_file(initrd_fd, NULL, data[1] | data[2] << 8 | data[3] << 16);
		cfg.initrd = initrd_path;
	}
	if (data[0] & 4)
		cfg.cmdline = "console=ttyS0 root=/dev/vda";
	cfg.ndevs = data[0] >> 5;
	for (int i = 0; i < cfg.ndevs; i++)
		cfg.devs[i] = (struct boot_dev){0xd0000000ULL + i * 0x1000, 0x1000, 5 + i};
	set_file(kernel_fd, data + 4, size - 4);

	set_file(err_fd, NULL, 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(err_fd, STDERR_FILENO);
	r = boot_load(&mem, &cfg, &e);
	dup2(saved, STDERR_FILENO);
	close(saved);
	check_errors(r);
	return 0;
}
