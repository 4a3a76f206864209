#ifndef TERN_SOCK_H
#define TERN_SOCK_H

#include <stdbool.h>
#include <stddef.h>

/* A listening unix socket at path (replacing a stale one), non-blocking. -1 with an error
 * line that starts with what. */
int unix_listen(const char *what, const char *path);
/* Makes room for a socket at path: removes an old socket there. -1 with errno, EEXIST for a
 * file there that is not a socket (not ours to remove). */
int unix_unlink_stale(const char *path);

/*
 * What a monitor client has not read yet: buf[off, len). Its owner reads no more of the
 * client's commands while some waits, as QEMU does, so answers are never lost or reordered
 * and a client that never reads only fills this up to the owner's limit.
 */
struct sock_out {
	char *buf;
	size_t off, len;
};

/* Queues data after what waits: -1 when more than max bytes would wait, or out of memory. */
int sock_out_add(struct sock_out *o, const void *data, size_t len, size_t max);
/* Sends what it can without blocking; true while some still waits. A socket that fails
 * drops it all: reading the socket then finds the client gone. */
bool sock_out_flush(struct sock_out *o, int fd);
void sock_out_free(struct sock_out *o);

#endif
