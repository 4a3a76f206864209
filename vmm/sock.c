/* Sockets for the monitor, QMP and migration transports. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "vmm/sock.h"
#include "vmm/util.h"

int unix_unlink_stale(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	/* A socket left by an earlier run is replaced; a file that is anything else is not ours. */
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	return unlink(path);
}

/* A listening unix socket at path, non-blocking. -1 with an error naming what. */
int unix_listen(const char *what, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errorf("%s: socket path too long: %s", what, path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		perrorf("%s: socket", what);
		return -1;
	}
	if (unix_unlink_stale(path) < 0) {
		if (errno == EEXIST)
			errorf("%s: %s exists and is not a socket", what, path);
		else
			perrorf("%s: %s", what, path);
		close(fd);
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		perrorf("%s: %s", what, path);
		close(fd);
		return -1;
	}
	return fd;
}


int sock_out_add(struct sock_out *o, const void *data, size_t len, size_t max)
{
	size_t waiting = o->len - o->off;
	char *buf;

	if (!len) /* realloc(buf, 0) would free what o->buf still points to */
		return 0;
	if (o->off) { /* what was sent makes room */
		memmove(o->buf, o->buf + o->off, waiting);
		o->len = waiting;
		o->off = 0;
	}
	buf = len <= max && waiting <= max - len ? realloc(o->buf, waiting + len) : NULL;
	if (!buf)
		return -1;
	memcpy(buf + waiting, data, len);
	o->buf = buf;
	o->len += len;
	return 0;
}

bool sock_out_flush(struct sock_out *o, int fd)
{
	while (o->off < o->len) {
		ssize_t n = send(fd, o->buf + o->off, o->len - o->off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		o->off = n < 0 ? o->len : o->off + n;
	}
	o->off = o->len = 0;
	return false;
}

void sock_out_free(struct sock_out *o)
{
	free(o->buf);
	*o = (struct sock_out){ 0 };
}
