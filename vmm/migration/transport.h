/* Migration URIs: tcp:HOST:PORT, unix:PATH, file:PATH. */
#ifndef TERN_MIG_TRANSPORT_H
#define TERN_MIG_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

enum mig_transport { MIG_TCP, MIG_UNIX, MIG_FILE };

struct mig_uri {
	enum mig_transport kind;
	char host[256];		/* tcp */
	char port[16];		/* tcp */
	char path[108];		/* unix, file */
};

/* -1 with err naming what is wrong with uri. */
int mig_uri_parse(const char *uri, struct mig_uri *u, char *err, size_t errlen);
/* Source side: a connected socket or a file opened for writing. A connect gives up after 10 s,
 * or when stop_fd becomes readable (errno ECANCELED). */
int mig_uri_connect(const struct mig_uri *u, int stop_fd, char *err, size_t errlen);
/* Destination side: a listening socket, or the file to read. */
int mig_uri_listen(const struct mig_uri *u, char *err, size_t errlen);
/* Accepts one connection, giving up when stop_fd becomes readable. */
int mig_uri_accept(int lfd, int stop_fd, char *err, size_t errlen);
/*
 * The file that mig_uri_listen opened (without blocking: it may be a FIFO nobody writes yet)
 * has bytes or an end: 0, and it reads blocking from now on. -1 when stop_fd (or -1: none)
 * became readable first.
 */
int mig_uri_file_ready(int fd, int stop_fd, char *err, size_t errlen);

#endif
