/* The monitor on a unix socket (-monitor unix:PATH,server,nowait): one session a client. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "vmm/config.h"
#include "vmm/monitor.h"
#include "vmm/sock.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define MON_SOCK_CLIENTS 8
/* A client that reads none of this much output is cut off. */
#define MON_OUT_MAX (1 << 20)

struct mon_client {
	struct mon_socket *ms;
	int fd;
	struct mon_session *s;
	struct sock_out out;
};

struct mon_socket {
	struct vm *vm;
	struct monitor *mon;
	int fd;
	char path[108];
	struct mon_client client[MON_SOCK_CLIENTS];
};

static void mon_client_flush(struct mon_client *cl)
{
	bool waiting = sock_out_flush(&cl->out, cl->fd);

	evloop_mod(&cl->ms->vm->loop, cl->fd, waiting ? EPOLLOUT : EPOLLIN);
}

static void mon_client_out(void *opaque, const char *buf, size_t len)
{
	struct mon_client *cl = opaque;

	if (cl->fd < 0)
		return;
	/* Closing here would free the session a command still runs in: reading ends it later. */
	if (sock_out_add(&cl->out, buf, len, MON_OUT_MAX) < 0) {
		errorf("-monitor unix:%s: a client left %zu bytes unread: cut off", cl->ms->path,
		       cl->out.len - cl->out.off);
		sock_out_free(&cl->out);
		shutdown(cl->fd, SHUT_RDWR);
	}
	mon_client_flush(cl);
}

static void mon_client_close(struct mon_client *cl)
{
	evloop_del(&cl->ms->vm->loop, cl->fd);
	close(cl->fd);
	cl->fd = -1;
	monitor_session_close(cl->s);
	cl->s = NULL;
	sock_out_free(&cl->out);
}

static void mon_client_readable(void *opaque, uint32_t events)
{
	struct mon_client *cl = opaque;
	char buf[512];
	ssize_t n;

	if (events & EPOLLOUT) {
		mon_client_flush(cl);
		return;
	}
	n = recv(cl->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		mon_client_close(cl);
		return;
	}
	monitor_session_input(cl->s, buf, n);
}

static void mon_socket_accept(void *opaque, uint32_t events)
{
	struct mon_socket *ms = opaque;
	int fd = accept4(ms->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct mon_client *cl = NULL;

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			perrorf("-monitor unix:%s: accept", ms->path);
		return;
	}
	for (int i = 0; i < MON_SOCK_CLIENTS && !cl; i++)
		if (ms->client[i].fd < 0)
			cl = &ms->client[i];
	if (!cl) {
		static const char full[] = "Error: too many monitor clients\n";

		(void)!send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	cl->fd = fd;
	cl->s = monitor_session_new(ms->mon, mon_client_out, cl, false);
	if (!cl->s || evloop_add(&ms->vm->loop, fd, EPOLLIN, mon_client_readable, cl) < 0) {
		if (cl->s)
			monitor_session_close(cl->s);
		close(fd);
		cl->fd = -1;
		return;
	}
	monitor_banner(cl->s);
	monitor_prompt(cl->s);
}

static void mon_socket_destroy(void *opaque)
{
	struct mon_socket *ms = opaque;

	for (int i = 0; i < MON_SOCK_CLIENTS; i++)
		if (ms->client[i].fd >= 0)
			mon_client_close(&ms->client[i]);
	evloop_del(&ms->vm->loop, ms->fd);
	close(ms->fd);
	unlink(ms->path);
	free(ms);
}

static const struct device_ops mon_socket_ops = {
	.name = "monitor-socket",
	.destroy = mon_socket_destroy,
};

int monitor_socket_create(struct vm *vm, struct monitor *mon, const char *spec)
{
	struct mon_socket *ms = calloc(1, sizeof(*ms));

	if (!ms) {
		perrorf("monitor: calloc");
		return -1;
	}
	ms->vm = vm;
	ms->mon = mon;
	for (int i = 0; i < MON_SOCK_CLIENTS; i++)
		ms->client[i].fd = -1;
	if (config_unix_path(spec, ms->path, sizeof(ms->path)) < 0) {
		errorf("-monitor: '%s': expected unix:PATH,server,nowait", spec);
		free(ms);
		return -1;
	}
	ms->fd = unix_listen("-monitor", ms->path);
	if (ms->fd < 0) {
		free(ms);
		return -1;
	}
	for (int i = 0; i < MON_SOCK_CLIENTS; i++)
		ms->client[i].ms = ms;
	if (evloop_add(&vm->loop, ms->fd, EPOLLIN, mon_socket_accept, ms) < 0 ||
	    vm_register_device(vm, &mon_socket_ops, ms) < 0) {
		close(ms->fd);
		unlink(ms->path);
		free(ms);
		return -1;
	}
	return 0;
}
