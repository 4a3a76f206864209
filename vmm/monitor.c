/*
 * Monitor commands and sessions. Lines are split into words; double quotes group words, so
 * `migrate "tcp:host:4444"` and `migrate tcp:host:4444` mean the same.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/monitor.h"
#include "vmm/util.h"
#include "vmm/vm.h"
#include "vmm/migration/migration.h"

#define MON_MAX_CMDS 48
#define MON_LINE_MAX 1024
#define MON_MAX_ARGS 16

struct mon_cmd {
	char name[32];
	const char *args, *help;
	mon_cmd_fn fn;
};

struct monitor {
	struct vm *vm;
	struct mon_cmd cmd[MON_MAX_CMDS];
	int ncmd;
};

struct mon_session {
	struct monitor *mon;
	mon_out_fn out;
	void *opaque;
	bool echo, held, closed;
	bool quit;		/* quit ran: tern is going; no prompt, nor more of the input */
	bool hidden;		/* the console shows the guest: no prompt until focused again */
	bool too_long;		/* the line being typed outgrew line[]: refuse it, do not cut it */
	bool cr;		/* the last character read was '\r': a '\n' now ends no line */
	enum { ESC_NONE, ESC_SEEN, ESC_CSI, ESC_SS3 } esc; /* inside a key's escape sequence */
	int cpu;		/* the vCPU `info registers` shows (QEMU's `cpu N`) */
	char line[MON_LINE_MAX];
	size_t len;
};

void monitor_printf(struct mon_session *s, const char *fmt, ...)
{
	char buf[2048], *big = NULL;
	va_list ap;
	int n;

	if (s->closed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	/* A longer line (a -name of thousands of characters) goes out whole, not cut short. */
	if ((size_t)n >= sizeof(buf)) {
		va_start(ap, fmt);
		if (vasprintf(&big, fmt, ap) < 0)
			big = NULL;
		va_end(ap);
	}
	if (big)
		s->out(s->opaque, big, n);
	else /* out of memory: cut, but never inside a character */
		s->out(s->opaque, buf, utf8_cut(buf, MIN((size_t)n, sizeof(buf) - 1)));
	free(big);
}

void monitor_banner(struct mon_session *s)
{
	monitor_printf(s, "tern monitor - type 'help' for more information\n");
}

void monitor_prompt(struct mon_session *s)
{
	if (!s->held && !s->hidden)
		monitor_printf(s, "(tern) ");
}

int monitor_add_command(struct monitor *m, const char *name, const char *args, const char *help,
			mon_cmd_fn fn)
{
	if (m->ncmd == MON_MAX_CMDS || strlen(name) >= sizeof(m->cmd[0].name)) {
		errorf("monitor: cannot add command '%s'", name);
		return -1;
	}
	m->cmd[m->ncmd] = (struct mon_cmd){ .args = args, .help = help, .fn = fn };
	strcpy(m->cmd[m->ncmd].name, name);
	m->ncmd++;
	return 0;
}

/* Splits line in place. Returns argc, -1 for an unterminated quote, -2 for too many words. */
static int monitor_split(char *line, char **argv)
{
	int argc = 0;
	char *p = line;

	while (*p) {
		char *w;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (argc == MON_MAX_ARGS)
			return -2;
		if (*p == '"') {
			w = ++p;
			p = strchr(p, '"');
			if (!p)
				return -1;
		} else {
			w = p;
			while (*p && *p != ' ' && *p != '\t')
				p++;
		}
		argv[argc++] = w;
		if (*p)
			*p++ = '\0';
	}
	return argc;
}

static const struct mon_cmd *monitor_find(struct monitor *m, int argc, char **argv, int *used)
{
	char two[64];

	if (argc >= 2) {
		snprintf(two, sizeof(two), "%s %s", argv[0], argv[1]);
		for (int i = 0; i < m->ncmd; i++) {
			if (!strcmp(m->cmd[i].name, two)) {
				*used = 2;
				return &m->cmd[i];
			}
		}
	}
	for (int i = 0; i < m->ncmd; i++) {
		if (!strcmp(m->cmd[i].name, argv[0]) ||
		    (!strcmp(argv[0], "q") && !strcmp(m->cmd[i].name, "quit"))) {
			*used = 1;
			return &m->cmd[i];
		}
	}
	return NULL;
}

static void monitor_execute(struct mon_session *s, char *line)
{
	char *argv[MON_MAX_ARGS];
	int argc = monitor_split(line, argv), used;
	const struct mon_cmd *c;

	if (argc < 0) {
		monitor_printf(s, argc == -1 ? "Error: unterminated quote\n"
					     : "Error: too many words (at most %d)\n",
			       MON_MAX_ARGS);
		return;
	}
	if (argc == 0)
		return;
	c = monitor_find(s->mon, argc, argv, &used);
	if (!c) {
		monitor_printf(s, "Error: unknown command '%s' (try 'help')\n", argv[0]);
		return;
	}
	/* As QEMU: a word too many is an error, not ignored (`stop now please` must not stop). */
	if (!c->args && argc > used) {
		monitor_printf(s, "Error: '%s' takes no arguments (got '%s')\n", c->name,
			       argv[used]);
		return;
	}
	c->fn(s, argc - used + 1, argv + used - 1);
}

static void monitor_too_long(struct mon_session *s)
{
	monitor_printf(s, "Error: line too long (at most %d characters)\n", MON_LINE_MAX - 1);
}

void monitor_run(struct mon_session *s, const char *line)
{
	if (snprintf(s->line, sizeof(s->line), "%s", line) >= (int)sizeof(s->line))
		monitor_too_long(s);
	else
		monitor_execute(s, s->line);
}

/*
 * Whether ch belongs to a terminal's escape sequence (a cursor or function key: ESC [ 1 ; 5 C,
 * ESC O A), which is dropped whole, as QEMU's readline drops the keys it does not know: its
 * printable bytes must not join the line ("[A" before the command). A control character cuts
 * a sequence short and counts as itself, so Escape then Enter still ends the line.
 */
static bool monitor_escape_byte(struct mon_session *s, unsigned char ch)
{
	switch (s->esc) {
	case ESC_NONE:
		if (ch != 0x1b)
			return false;
		s->esc = ESC_SEEN;
		return true;
	case ESC_SEEN:
		s->esc = ch == '[' ? ESC_CSI : ch == 'O' ? ESC_SS3 : ESC_NONE;
		break;
	case ESC_CSI:	/* parameter and intermediate bytes (0x20-0x3f), then a final one */
		if (ch >= 0x40)
			s->esc = ESC_NONE;
		break;
	case ESC_SS3:
		s->esc = ESC_NONE;
		break;
	}
	if (ch < 0x20 || ch == 0x7f) {
		s->esc = ESC_NONE;
		return monitor_escape_byte(s, ch);
	}
	return true;
}

/* Backspace: the line's last character, all of its bytes when it is whole UTF-8. */
static void monitor_backspace(struct mon_session *s)
{
	if (!s->len)
		return;
	/* Cut before the last byte: a whole character's lead byte is then cut off too. */
	s->len = utf8_cut(s->line, s->len - 1);
	if (s->echo)
		monitor_printf(s, "\b \b");
}

void monitor_session_input(struct mon_session *s, const char *buf, size_t len)
{
	if (s->quit)
		return;
	for (size_t i = 0; i < len; i++) {
		char ch = buf[i];
		bool after_cr = s->cr;

		if (monitor_escape_byte(s, ch))
			continue;
		s->cr = ch == '\r';
		if (ch == '\r' || ch == '\n') {
			/* "\r\n" from a terminal or telnet is one line end, even over two reads. */
			if (ch == '\n' && after_cr)
				continue;
			if (s->echo)
				monitor_printf(s, "\n");
			s->line[s->len] = '\0';
			s->len = 0;
			if (s->too_long) {
				s->too_long = false;
				monitor_too_long(s);
			} else if (s->held) {
				monitor_printf(s, "Error: busy, a command is still running\n");
				continue;
			} else {
				monitor_execute(s, s->line);
				if (s->closed || s->quit)
					return;
			}
			monitor_prompt(s);
		} else if (ch == 0x7f || ch == '\b') {
			monitor_backspace(s);
		} else if ((unsigned char)ch >= 0x20) {
			s->too_long |= s->len == MON_LINE_MAX - 1;
			if (s->too_long)
				continue;
			s->line[s->len++] = ch;
			if (s->echo)
				s->out(s->opaque, &ch, 1);
		}
	}
}

struct mon_session *monitor_session_new(struct monitor *m, mon_out_fn out, void *opaque,
					bool echo)
{
	struct mon_session *s = calloc(1, sizeof(*s));

	if (!s) {
		perrorf("monitor: calloc");
		return NULL;
	}
	*s = (struct mon_session){ .mon = m, .out = out, .opaque = opaque, .echo = echo };
	return s;
}

void monitor_session_close(struct mon_session *s)
{
	s->closed = true;
	if (!s->held)
		free(s);
}

void monitor_session_focus(struct mon_session *s, bool focused)
{
	s->hidden = !focused;
	/* As QEMU's readline_restart: what was typed before the switch is not seen, nor run. */
	if (focused) {
		s->len = 0;
		s->too_long = s->cr = false;
		s->esc = ESC_NONE;
	}
}

void monitor_session_hold(struct mon_session *s)
{
	s->held = true;
}

void monitor_session_release(struct mon_session *s)
{
	s->held = false;
	if (s->closed) {
		free(s);
		return;
	}
	monitor_prompt(s);
}

bool monitor_session_held(struct mon_session *s)
{
	return s->held;
}

struct vm *monitor_session_vm(struct mon_session *s)
{
	return s->mon->vm;
}

int monitor_session_cpu(struct mon_session *s)
{
	return s->cpu;
}

void monitor_session_set_cpu(struct mon_session *s, int cpu)
{
	s->cpu = cpu;
}

void monitor_info_devices(struct mon_session *s, const char *what, const char *none)
{
	struct vm *vm = monitor_session_vm(s);
	char buf[2048];
	bool any = false;

	for (int i = 0; i < vm->ndev; i++) {
		if (!vm->dev[i].ops->info)
			continue;
		buf[0] = '\0';
		vm->dev[i].ops->info(vm->dev[i].opaque, what, buf, sizeof(buf));
		monitor_printf(s, "%s", buf);
		any |= buf[0] != '\0';
	}
	if (!any)
		monitor_printf(s, "%s\n", none);
}

/*
 * help: every command; help CMD: those named CMD or CMD something (help info). CMD may be two
 * words (help info status); any more words name no command, and are refused as such.
 */
static void cmd_help(struct mon_session *s, int argc, char **argv)
{
	struct monitor *m = s->mon;
	char want[MON_LINE_MAX] = "";
	size_t n;
	bool found = false;

	for (int i = 1; i < argc; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s", i > 1 ? " " : "",
			 argv[i]);
	n = strlen(want);
	for (int i = 0; i < m->ncmd; i++) {
		const char *name = m->cmd[i].name;

		if (n && (strncmp(name, want, n) || (name[n] && name[n] != ' ')))
			continue;
		found = true;
		monitor_printf(s, "%s%s%s -- %s\n", name, m->cmd[i].args ? " " : "",
			       m->cmd[i].args ? m->cmd[i].args : "", m->cmd[i].help);
	}
	if (!found)
		monitor_printf(s, "Error: unknown command '%s' (try 'help')\n", want);
}

static void cmd_info(struct mon_session *s, int argc, char **argv)
{
	struct monitor *m = s->mon;

	/* info ITEM finds its own command first: here ITEM is none of them. */
	if (argc > 1) {
		monitor_printf(s, "Error: unknown info item '%s' (try 'info')\n", argv[1]);
		return;
	}
	for (int i = 0; i < m->ncmd; i++)
		if (!strncmp(m->cmd[i].name, "info ", 5))
			monitor_printf(s, "%s -- %s\n", m->cmd[i].name, m->cmd[i].help);
}

static void cmd_info_status(struct mon_session *s, int argc, char **argv)
{
	enum vm_runstate st = vm_state(monitor_session_vm(s));

	if (st == RUN_STATE_RUNNING || st == RUN_STATE_PAUSED)
		monitor_printf(s, "VM status: %s\n", vm_state_name(st));
	else
		monitor_printf(s, "VM status: paused (%s)\n", vm_state_name(st));
}

/* QEMU's form: the version, then the package in parentheses. */
static void cmd_info_version(struct mon_session *s, int argc, char **argv)
{
	monitor_printf(s, "%s (tern)\n", TERN_VERSION);
}

/* As QEMU: the -name, nothing without one. */
static void cmd_info_name(struct mon_session *s, int argc, char **argv)
{
	const char *name = monitor_session_vm(s)->cfg->name;

	if (name)
		monitor_printf(s, "%s\n", name);
}

/* tern has no other accelerator: asked by QEMU's tools all the same. */
static void cmd_info_kvm(struct mon_session *s, int argc, char **argv)
{
	monitor_printf(s, "kvm support: enabled\n");
}

static void cmd_stop(struct mon_session *s, int argc, char **argv)
{
	vm_stop(monitor_session_vm(s));
}

static void cmd_cont(struct mon_session *s, int argc, char **argv)
{
	bool force = argc == 2 && !strcmp(argv[1], "-f");
	char err[160];

	if (argc > 1 && !force)
		monitor_printf(s, "Error: usage: cont [-f]\n");
	else if (vm_cont(monitor_session_vm(s), force, err, sizeof(err)) < 0)
		monitor_printf(s, "Error: %s\n", err);
}

/* As QEMU's quit, which suspends the monitor: no prompt after it, and no line after it runs. */
static void cmd_quit(struct mon_session *s, int argc, char **argv)
{
	s->quit = true;
	vm_request_exit(monitor_session_vm(s), 0, "host-qmp-quit", NULL);
}

struct monitor *monitor_create(struct vm *vm)
{
	struct monitor *m = calloc(1, sizeof(*m));

	if (!m) {
		perrorf("monitor: calloc");
		return NULL;
	}
	m->vm = vm;
	vm->monitor = m;
	monitor_add_command(m, "help", "[cmd]", "show the commands", cmd_help);
	monitor_add_command(m, "info", "[subcommand]", "show information about the VM", cmd_info);
	monitor_add_command(m, "info status", NULL, "show the VM's run state", cmd_info_status);
	monitor_add_command(m, "info version", NULL, "show tern's version", cmd_info_version);
	monitor_add_command(m, "info name", NULL, "show the guest's -name", cmd_info_name);
	monitor_add_command(m, "info kvm", NULL, "show KVM information", cmd_info_kvm);
	monitor_add_command(m, "stop", NULL, "pause the guest", cmd_stop);
	monitor_add_command(m, "cont", "[-f]",
			    "resume the guest (-f: also after a hand-over the destination never "
			    "confirmed)",
			    cmd_cont);
	monitor_add_command(m, "quit", NULL, "quit tern (alias q)", cmd_quit);
	return m;
}

void monitor_destroy(struct monitor *m)
{
	free(m);
}
