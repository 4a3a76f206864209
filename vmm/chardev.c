#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/chardev.h"
#include "vmm/util.h"

int chardev_write_fd(struct chardev *c, int fd, const uint8_t *buf, size_t len)
{
	return write_full_unless(fd, buf, len, c ? c->give_up : NULL, c ? c->give_up_opaque : NULL);
}

static int chardev_file_write(struct chardev *c, const uint8_t *buf, size_t len)
{
	if (c->fd < 0)
		return 0;
	if (chardev_write_fd(c, c->fd, buf, len) < 0) {
		if (errno == EINTR) /* given up on (see give_up): not the file's fault */
			return -1;
		/* A full disk fails every write: one line, not one per burst of output. */
		if (!c->failing)
			perrorf("-serial file:%s: write (output is dropped until a write works again)",
				c->path);
		c->failing = true;
		return -1;
	}
	c->failing = false;
	return 0;
}

struct chardev *chardev_file_open(const char *path)
{
	struct chardev *c = calloc(1, sizeof(*c));

	if (!c) {
		perrorf("chardev: calloc");
		return NULL;
	}
	c->write = chardev_file_write;
	c->fd = -1;
	if (path) {
		c->path = strdup(path);
		c->fd = c->path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
		if (c->fd < 0) {
			perrorf("-serial file:%s", path);
			free(c->path);
			free(c);
			return NULL;
		}
	}
	return c;
}

void chardev_close(struct chardev *c)
{
	if (c && c->fd >= 0)
		close(c->fd);
	if (c)
		free(c->path);
	free(c);
}
