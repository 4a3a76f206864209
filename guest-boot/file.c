/* Reading kernel and initrd files with checked syscalls: every failure names the file. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-boot/internal.h"
#include "vmm/util.h"

int file_open_sized(const char *what, const char *path, uint64_t *size)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO with no writer would block the open before fstat() could refuse it. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		perrorf("%s: %s", what, path);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		perrorf("%s: %s", what, path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		errorf("%s: %s: not a regular file", what, path);
		goto fail;
	}
	if (st.st_size == 0) {
		errorf("%s: %s: empty file", what, path);
		goto fail;
	}
	if (fcntl(fd, F_SETFL, 0) < 0) {
		perrorf("%s: %s: fcntl", what, path);
		goto fail;
	}
	*size = st.st_size;
	return fd;
fail:
	close(fd);
	return -1;
}

void file_read_error(const char *what, const char *path)
{
	/* read_full reports EOF as EPIPE: the file shrank while we read it */
	if (errno == EPIPE)
		errorf("%s: %s: file shrank while being read", what, path);
	else
		perrorf("%s: %s", what, path);
}

int file_open(struct boot_file *f, const char *what, const char *path)
{
	f->what = what;
	f->path = path;
	f->fd = file_open_sized(what, path, &f->size);
	if (f->fd < 0)
		return -1;
	f->len = MIN(f->size, (uint64_t)BOOT_FILE_HEAD);
	if (file_pread(f, f->data, f->len, 0) < 0) {
		file_close(f);
		return -1;
	}
	return 0;
}

int file_pread(const struct boot_file *f, void *buf, uint64_t len, uint64_t off)
{
	if (lseek(f->fd, off, SEEK_SET) < 0 || read_full(f->fd, buf, len) < 0) {
		file_read_error(f->what, f->path);
		return -1;
	}
	return 0;
}

void file_close(struct boot_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}
