#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "vmm/chardev.h"
#include "vmm/console.h"
#include "vmm/monitor.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define CONSOLE_MON_HELD 16384

struct console {
	struct vm *vm;
	struct chardev chr;	/* the serial port's backend: stdout, and stdin when focused */
	struct mon_session *mon;
	bool serial;		/* the serial console lives here */
	bool focus_monitor;
	unsigned char echr;	/* the escape key: Ctrl-A unless -echr says otherwise */
	bool escape;		/* the escape key seen */
	bool tty, stdin_open;
	bool write_failed;	/* an error writing stdout was printed (any thread: atomic) */
	/*
	 * Ctrl-A t: when the guest's lines began to be stamped (now_ns(), atomic; 0: they are
	 * not). The rest belongs to the one thread at a time that writes the guest's output.
	 */
	uint64_t stamp_start, stamp_seen;
	bool stamp_line;	/* the next byte begins a line */
	struct termios saved;
	/* Monitor output while the guest's console is shown (a blocking migrate's progress and
	 * summary), shown at the switch back, as QEMU's mux does: not mixed into the guest's. */
	char mon_held[CONSOLE_MON_HELD];
	size_t mon_held_len, mon_dropped;
};

/* chr: the serial port's bytes (it may give up on them), or NULL for the monitor's. */
static int console_out(struct console *c, struct chardev *chr, const uint8_t *buf, size_t len)
{
	if (chardev_write_fd(chr, STDOUT_FILENO, buf, len) == 0)
		return 0;
	/*
	 * A hung-up terminal (EIO) or a full disk fails every write the guest makes, byte by
	 * byte: one line says so, not one for each.
	 */
	if (errno != EPIPE && errno != EINTR &&
	    !__atomic_exchange_n(&c->write_failed, true, __ATOMIC_RELAXED))
		perrorf("console: write (further errors are not shown)");
	return -1;
}

/* The guest's output with each line after the first stamped, as QEMU's "[hh:mm:ss.mmm] ". */
static int console_write_stamped(struct console *c, struct chardev *chr, const uint8_t *buf,
				 size_t len, uint64_t start)
{
	if (c->stamp_seen != start) { /* turned on anew: stamps begin at the next line */
		c->stamp_seen = start;
		c->stamp_line = false;
	}
	while (len) {
		const uint8_t *nl = memchr(buf, '\n', len);
		size_t n = nl ? (size_t)(nl - buf) + 1 : len;

		if (c->stamp_line) {
			uint64_t ms = (now_ns() - start) / 1000000;
			char stamp[40];
			int k = snprintf(stamp, sizeof(stamp), "[%02llu:%02llu:%02llu.%03llu] ",
					 (unsigned long long)(ms / 3600000),
					 (unsigned long long)(ms / 60000 % 60),
					 (unsigned long long)(ms / 1000 % 60),
					 (unsigned long long)(ms % 1000));

			if (console_out(c, chr, (const uint8_t *)stamp, k) < 0)
				return -1;
		}
		if (console_out(c, chr, buf, n) < 0)
			return -1;
		c->stamp_line = nl != NULL;
		buf += n;
		len -= n;
	}
	return 0;
}

static int console_write(struct chardev *chr, const uint8_t *buf, size_t len)
{
	struct console *c = (struct console *)((char *)chr - offsetof(struct console, chr));
	uint64_t start = __atomic_load_n(&c->stamp_start, __ATOMIC_RELAXED);

	if (start)
		return console_write_stamped(c, chr, buf, len, start);
	return console_out(c, chr, buf, len);
}

static void console_mon_out(void *opaque, const char *buf, size_t len)
{
	struct console *c = opaque;
	size_t n;

	if (c->focus_monitor) {
		console_out(c, NULL, (const uint8_t *)buf, len);
		return;
	}
	n = MIN(len, sizeof(c->mon_held) - c->mon_held_len);
	memcpy(c->mon_held + c->mon_held_len, buf, n);
	c->mon_held_len += n;
	c->mon_dropped += len - n;
}

static void console_mon_flush(struct console *c)
{
	console_out(c, NULL, (const uint8_t *)c->mon_held, c->mon_held_len);
	if (c->mon_dropped)
		monitor_printf(c->mon, "(%zu bytes of monitor output dropped)\n", c->mon_dropped);
	c->mon_held_len = c->mon_dropped = 0;
}

/* The help, with the escape key as QEMU names it: C-a for Ctrl-A, else its code. */
static void console_help(struct console *c)
{
	char key[8], help[512];
	int n;

	if (c->echr >= 1 && c->echr <= 26)
		snprintf(key, sizeof(key), "C-%c", 'a' + c->echr - 1);
	else
		snprintf(key, sizeof(key), "0x%02x", c->echr);
	n = snprintf(help, sizeof(help),
		     "\n"
		     "%s h    print this help\n"
		     "%s x    exit tern\n"
		     "%s c    switch between console and monitor\n"
		     "%s t    toggle console timestamps\n"
		     "%s b    send break (magic sysrq in Linux)\n"
		     "%s %s  sends %s\n",
		     key, key, key, key, key, key, key, key);
	console_out(c, NULL, (const uint8_t *)help, MIN((size_t)n, sizeof(help) - 1));
}

static void console_deliver(struct console *c, const uint8_t *buf, size_t len)
{
	if (!len)
		return;
	if (c->focus_monitor)
		monitor_session_input(c->mon, (const char *)buf, len);
	else if (c->chr.input)
		c->chr.input(c->chr.input_opaque, buf, len);
}

static void console_escape(struct console *c, uint8_t ch)
{
	if (ch == c->echr) {
		console_deliver(c, &ch, 1);
		return;
	}
	switch (ch) {
	case 'x':
		errorf("terminated");
		vm_request_exit(c->vm, 0, "host-ui", NULL);
		break;
	case 'h':
	case '?':
		console_help(c);
		break;
	case 't':
		__atomic_store_n(&c->stamp_start,
				 __atomic_load_n(&c->stamp_start, __ATOMIC_RELAXED) ? 0 : now_ns(),
				 __ATOMIC_RELAXED);
		break;
	case 'b':
		if (c->serial && !c->focus_monitor && c->chr.brk)
			c->chr.brk(c->chr.input_opaque);
		break;
	case 'c':
		if (!c->serial)
			break;
		c->focus_monitor = !c->focus_monitor;
		monitor_session_focus(c->mon, c->focus_monitor);
		if (c->focus_monitor) {
			monitor_printf(c->mon, "\n");
			console_mon_flush(c);
			monitor_prompt(c->mon);
		}
		break;
	}
}

/* Splits input at escapes (Ctrl-A unless -echr); the rest goes to the side that has focus. */
static void console_input(struct console *c, const uint8_t *buf, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (c->escape) {
			c->escape = false;
			console_escape(c, buf[i]);
			start = i + 1;
		} else if (buf[i] == c->echr) {
			console_deliver(c, buf + start, i - start);
			c->escape = true;
			start = i + 1;
		}
	}
	if (start < len)
		console_deliver(c, buf + start, len - start);
}

static void console_readable(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	uint8_t buf[512];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* stdin closed (a pipe ended): the guest runs on, as QEMU's does. */
		evloop_del(&c->vm->loop, STDIN_FILENO);
		c->stdin_open = false;
		return;
	}
	console_input(c, buf, n);
}

/* The terminal's own mode is c->saved, restored at the end. */
static int console_raw(struct console *c)
{
	struct termios t = c->saved;

	cfmakeraw(&t);
	/* Keep \n -> \r\n on output so tern's own messages stay readable. */
	t.c_oflag |= OPOST | ONLCR;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0) {
		perrorf("console: tcsetattr");
		return -1;
	}
	c->tty = true;
	return 0;
}

/* Whether the terminal is ours to set: from the background, tcsetattr stops us (SIGTTOU). */
static bool console_foreground(void)
{
	pid_t fg = tcgetpgrp(STDIN_FILENO);

	return fg < 0 || fg == getpgrp();
}

/*
 * Continued after a stop (kill -STOP, then fg): the shell put the terminal back in its own
 * mode meanwhile, so it is made raw again, as QEMU does; not from the background, where the
 * terminal is the shell's (and tcsetattr would stop tern again).
 */
void console_resume(struct console *c)
{
	if (c && c->tty && console_foreground())
		console_raw(c);
}

/* epoll refuses regular files and /dev/null: such a stdin simply has nothing to say. */
static bool console_pollable(void)
{
	struct stat st;

	if (fstat(STDIN_FILENO, &st) < 0)
		return false;
	return !S_ISREG(st.st_mode) && (!S_ISCHR(st.st_mode) || isatty(STDIN_FILENO));
}

struct console *console_create(struct vm *vm, struct monitor *mon, bool serial,
			       unsigned char echr)
{
	struct console *c = calloc(1, sizeof(*c));

	if (!c) {
		perrorf("console: calloc");
		return NULL;
	}
	c->vm = vm;
	c->serial = serial;
	c->echr = echr;
	c->focus_monitor = !serial;
	c->chr.write = console_write;
	c->chr.fd = -1;
	if (isatty(STDIN_FILENO)) {
		if (tcgetattr(STDIN_FILENO, &c->saved) < 0) {
			perrorf("console: tcgetattr");
			goto fail;
		}
		if (console_raw(c) < 0)
			goto fail;
	}
	c->mon = monitor_session_new(mon, console_mon_out, c, c->tty);
	if (!c->mon)
		goto fail;
	monitor_session_focus(c->mon, c->focus_monitor);
	if (console_pollable() &&
	    evloop_add(&vm->loop, STDIN_FILENO, EPOLLIN, console_readable, c) == 0)
		c->stdin_open = true;
	vm->console = c;
	if (!serial) {
		monitor_banner(c->mon);
		monitor_prompt(c->mon);
	}
	return c;
fail:
	console_destroy(c);
	return NULL;
}

struct chardev *console_chardev(struct console *c)
{
	return &c->chr;
}

void console_destroy(struct console *c)
{
	if (!c)
		return;
	if (c->stdin_open)
		evloop_del(&c->vm->loop, STDIN_FILENO);
	/* Put in the background meanwhile (kill -STOP, bg), tern would stop at its exit: the
	 * terminal is the shell's then, in the shell's mode. */
	if (c->tty && console_foreground())
		tcsetattr(STDIN_FILENO, TCSANOW, &c->saved);
	if (c->mon)
		monitor_session_close(c->mon);
	free(c);
}
