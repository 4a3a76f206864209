/* The monitor's line editor, as a terminal drives it: keys in, echo and output out. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "tests/unit/unit.h"
#include "vmm/sock.h"
#include "vmm/monitor.h"
#include "vmm/vm.h"

struct capture {
	char buf[8192];
	size_t len;
};

static void capture_out(void *opaque, const char *buf, size_t len)
{
	struct capture *c = opaque;

	if (len > sizeof(c->buf) - 1 - c->len)
		len = sizeof(c->buf) - 1 - c->len;
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	c->buf[c->len] = '\0';
}

/* Types keys into a fresh session (echo on, as on a terminal); returns what it printed. */
static const char *type(struct monitor *m, struct capture *c, const char *keys)
{
	struct mon_session *s = monitor_session_new(m, capture_out, c, true);

	c->len = 0;
	c->buf[0] = '\0';
	monitor_session_input(s, keys, strlen(keys));
	monitor_session_close(s);
	return c->buf;
}

/* Cursor and function keys send escape sequences: none of their bytes joins the line. */
static void test_escape_sequences(struct monitor *m)
{
	static const char *const keys[] = {
		"\x1b[A", "\x1b[B", "\x1b[C", "\x1b[D",	/* arrows */
		"\x1bOA", "\x1bOH",			/* arrows, Home in application mode */
		"\x1b[3~", "\x1b[1;5C", "\x1b[15~",	/* Delete, Ctrl-Right, F5 */
		"\x1bx",				/* Alt-x: dropped, as QEMU's readline does */
	};
	struct capture c;
	char line[64];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(line, sizeof(line), "%shelp stop\r", keys[i]);
		CHECK(strstr(type(m, &c, line), "stop -- pause the guest\n") != NULL);
		CHECK(strstr(c.buf, "unknown command") == NULL);
		CHECK(strchr(c.buf, '\x1b') == NULL); /* not echoed either */
	}
	/* Escape, then Enter: the line runs. */
	CHECK(strstr(type(m, &c, "help stop\x1b\r"), "stop -- pause the guest\n") != NULL);
	/* A sequence split over two reads is still one key. */
	{
		struct mon_session *s = monitor_session_new(m, capture_out, &c, true);

		c.len = 0;
		monitor_session_input(s, "\x1b[", 2);
		monitor_session_input(s, "Ahelp stop\r", 11);
		monitor_session_close(s);
		CHECK(strstr(c.buf, "stop -- pause the guest\n") != NULL);
	}
}

/* Backspace takes a whole character, not one byte of it. */
static void test_backspace_utf8(struct monitor *m)
{
	struct capture c;

	CHECK(strstr(type(m, &c, "\xc3\xa9\x7fhelp stop\r"), "stop -- pause the guest\n") != NULL);
	CHECK(strstr(type(m, &c, "\xe2\x82\xac\bhelp stop\r"), "stop -- pause the guest\n") != NULL);
	/* One column back on the terminal, once. */
	CHECK(strstr(type(m, &c, "a\xe2\x82\xac\x7f"), "a\xe2\x82\xac\b \b") != NULL);
	CHECK(strstr(c.buf, "\b \b\b \b") == NULL);
	/* A byte that is not UTF-8 is a character of its own. */
	CHECK(strstr(type(m, &c, "\xff\x7fhelp stop\r"), "stop -- pause the guest\n") != NULL);
	CHECK(strstr(type(m, &c, "x\x80\x7f\x7fhelp stop\r"), "stop -- pause the guest\n") != NULL);
}

static int prompts(const char *out)
{
	int n = 0;

	for (const char *p = out; (p = strstr(p, "(tern) ")); p++)
		n++;
	return n;
}

/* What the line editor already did right stays so. */
static void test_lines(struct monitor *m)
{
	struct capture c;

	CHECK_EQ(prompts(type(m, &c, "help stop\r\n")), 1);	/* CRLF is one line end */
	CHECK_STR(type(m, &c, "   \r"), "   \n(tern) ");
	CHECK(strstr(type(m, &c, "help \"stop\r"), "Error: unterminated quote") != NULL);
	CHECK(strstr(type(m, &c, "hx\x7fx\belp stop\r"), "stop -- pause the guest\n") != NULL);
}

/* quit, as QEMU's: no prompt after it, and what was typed after it never runs. */
static void test_quit(struct monitor *m)
{
	struct capture c;

	CHECK_STR(type(m, &c, "quit\rhelp stop\r"), "quit\n");
}

/* A client's answers wait whole and in order while its socket is full, up to the limit. */
static void test_sock_out(void)
{
	struct sock_out o = { 0 };
	char chunk[4096], got[sizeof(chunk)];
	size_t queued = 0, read_back = 0;
	bool order = true;
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	while (queued < (4u << 20)) { /* far past what the socket holds */
		memset(chunk, 'a' + (queued / sizeof(chunk)) % 26, sizeof(chunk));
		if (sock_out_add(&o, chunk, sizeof(chunk), 1 << 20) < 0)
			break;
		queued += sizeof(chunk);
		sock_out_flush(&o, sv[0]);
	}
	CHECK(o.len - o.off == 1 << 20);	/* refused only once a whole MiB waits */
	CHECK(sock_out_flush(&o, sv[0]));
	while (read_back < queued) {
		ssize_t n = recv(sv[1], got, sizeof(got), MSG_DONTWAIT);

		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			order &= got[i] == (char)('a' + ((read_back + i) / sizeof(chunk)) % 26);
		read_back += n;
		sock_out_flush(&o, sv[0]);
	}
	CHECK_EQ(read_back, queued);
	CHECK(order);
	CHECK(!sock_out_flush(&o, sv[0]));
	close(sv[1]);
	CHECK(sock_out_add(&o, "x", 1, 1 << 20) == 0);
	CHECK(!sock_out_flush(&o, sv[0])); /* a gone client: dropped, not kept */
	sock_out_free(&o);
	/* Nothing to add once all was sent (the buffer kept): not a refusal, nor a free. */
	CHECK(sock_out_add(&o, "y", 1, 1 << 20) == 0);
	CHECK(!sock_out_flush(&o, sv[0]));
	CHECK(sock_out_add(&o, "", 0, 1 << 20) == 0);
	sock_out_free(&o);
	close(sv[0]);
}

int main(void)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct monitor *m = monitor_create(vm);

	vm->loop.wakefd = eventfd(0, EFD_CLOEXEC);	/* quit stops the loop: wakes it */

	test_escape_sequences(m);
	test_backspace_utf8(m);
	test_lines(m);
	test_quit(m);
	test_sock_out();
	monitor_destroy(m);
	close(vm->loop.wakefd);
	free(vm);
	return unit_summary();
}
