/*
 * The human monitor, QEMU-HMP style. Parts of tern add their own commands (migration adds
 * `migrate`, the NIC adds `info network`); sessions are the console mux and socket clients.
 */
#ifndef TERN_MONITOR_H
#define TERN_MONITOR_H

#include <stddef.h>
#include <stdbool.h>

struct vm;
struct monitor;
struct mon_session;

typedef void (*mon_out_fn)(void *opaque, const char *buf, size_t len);
typedef void (*mon_cmd_fn)(struct mon_session *s, int argc, char **argv);

struct monitor *monitor_create(struct vm *vm);
void monitor_destroy(struct monitor *m);

/* name may be two words, "info network": then `info` lists it. */
int monitor_add_command(struct monitor *m, const char *name, const char *args, const char *help,
			mon_cmd_fn fn);

struct mon_session *monitor_session_new(struct monitor *m, mon_out_fn out, void *opaque,
					bool echo);
/* The transport is gone; a held session is freed once released. */
void monitor_session_close(struct mon_session *s);
void monitor_session_input(struct mon_session *s, const char *buf, size_t len);
/* One command line, without echo or prompt (QMP's human-monitor-command). */
void monitor_run(struct mon_session *s, const char *line);
void monitor_printf(struct mon_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void monitor_banner(struct mon_session *s);
void monitor_prompt(struct mon_session *s);

/*
 * The console mux switched to (focused) or away from the session: away, it shows no prompt;
 * back, it starts a new line, the one typed before the switch forgotten.
 */
void monitor_session_focus(struct mon_session *s, bool focused);
/* A command that goes on in the background holds its session (no prompt until released). */
void monitor_session_hold(struct mon_session *s);
void monitor_session_release(struct mon_session *s);
bool monitor_session_held(struct mon_session *s);

struct vm *monitor_session_vm(struct mon_session *s);
/* The session's current vCPU, as QEMU's `cpu N` sets it; 0 at first. */
int monitor_session_cpu(struct mon_session *s);
void monitor_session_set_cpu(struct mon_session *s, int cpu);
/* `info WHAT` about devices: what each device's info hook says to what, or the none line. */
void monitor_info_devices(struct mon_session *s, const char *what, const char *none);

/* -monitor unix:PATH,server,nowait */
int monitor_socket_create(struct vm *vm, struct monitor *m, const char *spec);

#endif
