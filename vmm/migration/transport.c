#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include "vmm/migration/transport.h"
#include "vmm/sock.h"
#include "vmm/util.h"

/* As long as a destination may take to answer anything else (source.c). */
#define CONNECT_TIMEOUT_MS 10000

int mig_uri_parse(const char *uri, struct mig_uri *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof(*u));
	if (!strncmp(uri, "tcp:", 4)) {
		const char *colon = strrchr(uri + 4, ':');
		size_t hlen = colon ? (size_t)(colon - uri - 4) : 0;

		u->kind = MIG_TCP;
		/* getaddrinfo takes port 70000 for 4464 without a word: refused here. */
		if (!colon || !colon[1] || strlen(colon + 1) >= sizeof(u->port) ||
		    hlen >= sizeof(u->host) ||
		    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
		    strtoul(colon + 1, NULL, 10) > 65535) {
			snprintf(err, errlen, "'%s': expected tcp:HOST:PORT (PORT at most 65535)",
				 uri);
			return -1;
		}
		/* An IPv6 address in brackets, as QEMU writes it: tcp:[::1]:4444. */
		if (hlen >= 2 && uri[4] == '[' && colon[-1] == ']')
			memcpy(u->host, uri + 5, hlen - 2);
		else
			memcpy(u->host, uri + 4, hlen);
		strcpy(u->port, colon + 1);
		return 0;
	}
	if (!strncmp(uri, "unix:", 5) || !strncmp(uri, "file:", 5)) {
		u->kind = uri[0] == 'u' ? MIG_UNIX : MIG_FILE;
		if (!uri[5] || strlen(uri + 5) >= sizeof(u->path)) {
			snprintf(err, errlen, "'%s': expected %.5sPATH (at most %zu characters)", uri,
				 uri, sizeof(u->path) - 1);
			return -1;
		}
		strcpy(u->path, uri + 5);
		return 0;
	}
	snprintf(err, errlen, "'%s': unknown migration URI (tcp:HOST:PORT, unix:PATH, file:PATH)",
		 uri);
	return -1;
}

/* Waits for a connect in progress: 0 connected, -1 with errno (ECANCELED: stop_fd). */
static int connect_wait(int fd, int stop_fd)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLOUT }, { .fd = stop_fd, .events = POLLIN } };
	uint64_t end = now_ns() + CONNECT_TIMEOUT_MS * 1000000ULL, now;
	int r, e;
	socklen_t elen = sizeof(e);

	do {
		now = now_ns();
		if (now >= end) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(p, 2, (int)((end - now) / 1000000 + 1));
		if (r < 0 && errno != EINTR)
			return -1;
	} while (r <= 0);
	if (p[1].revents) {
		errno = ECANCELED;
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
		return -1;
	errno = e;
	return e ? -1 : 0;
}

/*
 * A connect that stop_fd or CONNECT_TIMEOUT_MS ends: a host that never answers would hold the
 * migration thread, and with it migrate_cancel and quit, for the kernel's two minutes of SYN
 * retries.
 */
static int connect_stoppable(int fd, const struct sockaddr *sa, socklen_t len, int stop_fd)
{
	int flags = fcntl(fd, F_GETFL), r;
	uint64_t end = now_ns() + CONNECT_TIMEOUT_MS * 1000000ULL;

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;
	/*
	 * A unix listener that accepts nothing (its backlog full) answers EAGAIN, and the socket
	 * has nothing to poll for: ask again now and then. A blocking connect waited there for
	 * ever, deaf to migrate_cancel and quit.
	 */
	while (connect(fd, sa, len) < 0) {
		if (errno == EINPROGRESS)
			return connect_wait(fd, stop_fd) < 0 ? -1 : fcntl(fd, F_SETFL, flags);
		if (errno != EAGAIN || sa->sa_family != AF_UNIX)
			return -1;
		if (now_ns() >= end) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&(struct pollfd){ .fd = stop_fd, .events = POLLIN }, 1, 50);
		if (r > 0) {
			errno = ECANCELED;
			return -1;
		}
		if (r < 0 && errno != EINTR)
			return -1;
	}
	/* Only the connect waits this way: the stream blocks (with SO_SNDTIMEO). */
	return fcntl(fd, F_SETFL, flags);
}

/* "tcp:HOST:PORT: why", an IPv6 HOST in brackets as it was given. */
static void tcp_error(const struct mig_uri *u, const char *why, char *err, size_t errlen)
{
	bool v6 = strchr(u->host, ':') != NULL;

	snprintf(err, errlen, "tcp:%s%s%s:%s: %s", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port,
		 why);
}

static int mig_tcp(const struct mig_uri *u, bool listening, int stop_fd, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = listening ? AI_PASSIVE : 0 };
	struct addrinfo *res, *ai;
	/* "tcp:0:4444" and "tcp::4444" mean every address, as QEMU takes them. */
	const char *host = (!u->host[0] || !strcmp(u->host, "0")) && listening ? NULL : u->host;
	int fd = -1, e, one = 1;

	hints.ai_family = host ? AF_UNSPEC : AF_INET;
	e = getaddrinfo(host, u->port, &hints, &res);
	if (e) {
		tcp_error(u, gai_strerror(e), err, errlen);
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (listening) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1) == 0)
				break;
		} else if (connect_stoppable(fd, ai->ai_addr, ai->ai_addrlen, stop_fd) == 0) {
			break;
		}
		e = errno;
		close(fd);
		fd = -1;
		errno = e;
		if (e == ECANCELED)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		tcp_error(u, strerror(errno), err, errlen);
	return fd;
}

static int mig_unix(const struct mig_uri *u, bool listening, int stop_fd, char *err,
		    size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, errlen, "unix:%s: socket: %s", u->path, strerror(errno));
		return -1;
	}
	strcpy(sa.sun_path, u->path);
	if (listening && unix_unlink_stale(u->path) < 0) {
		snprintf(err, errlen, "unix:%s: %s", u->path,
			 errno == EEXIST ? "exists and is not a socket" : strerror(errno));
		close(fd);
		return -1;
	}
	if (listening ? bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0
		      : connect_stoppable(fd, (struct sockaddr *)&sa, sizeof(sa), stop_fd) < 0) {
		snprintf(err, errlen, "unix:%s: %s", u->path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* ENXIO names neither of the two files that give it. */
static const char *file_error(const char *path, int e)
{
	struct stat st;

	if (e == ENXIO && stat(path, &st) == 0 && S_ISFIFO(st.st_mode))
		return "a pipe that nobody reads";
	if (e == ENXIO && stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		return "a socket (unix:PATH connects to one)";
	return strerror(e);
}

static int mig_file(const struct mig_uri *u, bool reading, char *err, size_t errlen)
{
	/*
	 * Not blocking while it opens: a FIFO that nobody reads held the migration thread, and
	 * with it migrate_cancel and quit, for ever; it fails at once with ENXIO instead. One
	 * that nobody writes yet held set-up (SIGTERM unheard) or the I/O thread
	 * (migrate_incoming): it opens at once, and the destination thread waits for its writer
	 * (mig_uri_file_ready), as long as tern does not exit.
	 */
	int fd = reading
		     ? open(u->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
		     : open(u->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0600);
	int flags, e;

	if (fd >= 0 && !reading &&
	    ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)) {
		e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	if (fd < 0)
		snprintf(err, errlen, "file:%s: %s", u->path, file_error(u->path, errno));
	return fd;
}

/*
 * A peer that takes nothing for this long has hung: a send fails, rather than hold the
 * migration thread, and with it the guest, migrate_cancel, quit and an exiting tern.
 */
#define SEND_TIMEOUT_S 10

static int mig_send_timeout(int fd)
{
	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO,
				  &(struct timeval){ .tv_sec = SEND_TIMEOUT_S },
				  sizeof(struct timeval)) < 0)
		perrorf("migration: SO_SNDTIMEO");
	return fd;
}

int mig_uri_connect(const struct mig_uri *u, int stop_fd, char *err, size_t errlen)
{
	switch (u->kind) {
	case MIG_TCP:
		return mig_send_timeout(mig_tcp(u, false, stop_fd, err, errlen));
	case MIG_UNIX:
		return mig_send_timeout(mig_unix(u, false, stop_fd, err, errlen));
	default:
		return mig_file(u, false, err, errlen);
	}
}

int mig_uri_listen(const struct mig_uri *u, char *err, size_t errlen)
{
	switch (u->kind) {
	case MIG_TCP:
		return mig_tcp(u, true, -1, err, errlen);
	case MIG_UNIX:
		return mig_unix(u, true, -1, err, errlen);
	default:
		return mig_file(u, true, err, errlen);
	}
}

int mig_uri_file_ready(int fd, int stop_fd, char *err, size_t errlen)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
	int flags;

	/* A FIFO whose writer has not come yet is neither readable nor hung up: poll waits. */
	while (poll(p, 2, -1) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
	}
	if (p[1].revents) {
		snprintf(err, errlen, "cancelled");
		return -1;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		snprintf(err, errlen, "fcntl: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int mig_uri_accept(int lfd, int stop_fd, char *err, size_t errlen)
{
	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
	int fd, one = 1;

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		if (p[1].revents) {
			snprintf(err, errlen, "cancelled");
			return -1;
		}
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
			snprintf(err, errlen, "accept: %s", strerror(errno));
			return -1;
		}
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return mig_send_timeout(fd);
}
