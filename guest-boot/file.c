/* Reading kernel and initrd files with checked syscalls: every failure names the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-boot/internal.h"
#include "vmm/util.h"

int file_open_sized(const char *what, const char *path, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

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
	*size = st.st_size;
	return fd;
fail:
	close(fd);
	return -1;
}

int file_read(struct boot_file *f, const char *what, const char *path)
{
	uint64_t size;
	int fd = file_open_sized(what, path, &size);

	*f = (struct boot_file){.what = what, .path = path};
	if (fd < 0)
		return -1;
	if (size > SIZE_MAX) {
		errorf("%s: %s: too large", what, path);
		goto fail;
	}
	f->data = malloc(size);
	if (!f->data) {
		errorf("%s: %s: cannot allocate %llu bytes", what, path, (unsigned long long)size);
		goto fail;
	}
	if (read_full(fd, f->data, size) < 0) {
		/* read_full reports EOF as EPIPE: the file shrank while we read it */
		if (errno == EPIPE)
			errorf("%s: %s: file shrank while being read", what, path);
		else
			perrorf("%s: %s", what, path);
		goto fail;
	}
	f->size = size;
	close(fd);
	return 0;
fail:
	close(fd);
	file_free(f);
	return -1;
}

void file_free(struct boot_file *f)
{
	free(f->data);
	f->data = NULL;
	f->size = 0;
}
