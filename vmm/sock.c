/* Sockets for the monitor, QMP and migration transports. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "vmm/sock.h"
#include "vmm/util.h"

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
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		perrorf("%s: %s", what, path);
		close(fd);
		return -1;
	}
	return fd;
}

