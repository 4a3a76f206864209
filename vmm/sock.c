/* Sockets for the monitor, QMP and migration transports. */
#include <errno.h>
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

