/* What -config and QMP check before yajl reads JSON, and text cut without breaking UTF-8. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <yajl/yajl_tree.h>

#include "tests/unit/unit.h"
#include "vmm/config.h"
#include "vmm/json.h"
#include "vmm/util.h"

/* prefix, then n times open, then n times close, then suffix: a fresh string. */
static char *nested(const char *prefix, size_t n, const char *open, const char *close,
		    const char *suffix)
{
	size_t lo = strlen(open), lc = strlen(close), lp = strlen(prefix);
	char *s = malloc(lp + n * (lo + lc) + strlen(suffix) + 1), *p = s;

	memcpy(p, prefix, lp);
	p += lp;
	for (size_t i = 0; i < n; i++, p += lo)
		memcpy(p, open, lo);
	for (size_t i = 0; i < n; i++, p += lc)
		memcpy(p, close, lc);
	strcpy(p, suffix);
	return s;
}

static void test_depth(void)
{
	const char *deep = "JSON nesting depth limit exceeded";
	char *s;

	CHECK(!json_check("{\"execute\": \"query-status\", \"id\": [1, {\"a\": []}]}"));
	/* The limit is QEMU's: objects and arrays together. */
	s = nested("", JSON_DEPTH_MAX, "[", "]", "");
	CHECK(!json_check(s));
	free(s);
	s = nested("", JSON_DEPTH_MAX + 1, "[", "]", "");
	CHECK_STR(json_check(s), deep);
	free(s);
	s = nested("", JSON_DEPTH_MAX / 2 + 1, "{\"a\":[", "]}", "");
	CHECK_STR(json_check(s), deep);
	free(s);
	/* What crashed tern: far too deep, and never closed. */
	s = nested("", 300000, "[", "", "");
	CHECK_STR(json_check(s), deep);
	free(s);
	/* Brackets inside strings, escaped quotes and comments are no nesting. */
	s = nested("[\"", 2000, "[{", "", "\"]");
	CHECK(!json_check(s));
	free(s);
	s = nested("[\"\\\"", 2000, "[", "", "\"]");
	CHECK(!json_check(s));
	free(s);
	s = nested("{ /* \" */ \"a\": 1, /*", 2000, "[", "", "*/ \"b\": 2 }");
	CHECK(!json_check(s));
	free(s);
	s = nested("{ // \"\n \"a\": \"", 2000, "[", "", "\" }");
	CHECK(!json_check(s));
	free(s);
	/* Closing brackets never make room for more opening ones. */
	s = nested("]]]]", JSON_DEPTH_MAX + 1, "[", "", "");
	CHECK_STR(json_check(s), deep);
	free(s);
	/* An unterminated comment or string is yajl's to refuse, not an overrun here. */
	CHECK(!json_check("{ /* [[["));
	CHECK(!json_check("{ \"a\": \"\\"));
	CHECK(!json_check("/"));
}

/* What json_check passes, yajl parses and frees (its tree recurses once a level). */
static void test_yajl_at_limit(void)
{
	char *s = nested("", JSON_DEPTH_MAX, "[", "]", ""), err[128];
	yajl_val v;

	CHECK(!json_check(s));
	v = yajl_tree_parse(s, err, sizeof(err));
	CHECK(v && YAJL_IS_ARRAY(v));
	yajl_tree_free(v);
	free(s);
}

static void test_nul(void)
{
	const char *nul = "JSON parse error, \\u0000 is not supported";

	CHECK_STR(json_check("{\"execute\": \"stop\\u0000junk\"}"), nul);
	CHECK_STR(json_check("{\"a\\u0000\": 1}"), nul);
	/* An escaped backslash, then the text u0000: no NUL. */
	CHECK(!json_check("{\"execute\": \"stop\\\\u0000\"}"));
	CHECK(!json_check("{\"a\": \"\\u0001\\u00e9\\u1000\"}"));
	/* Outside a string it is no escape (yajl refuses it anyway). */
	CHECK(!json_check("{ /* \\u0000 */ }"));
}

static void test_utf8_cut(void)
{
	const char *e = "a\xc3\xa9";		/* a, é */
	const char *euro = "\xe2\x82\xac";		/* € */
	const char *g = "\xf0\x9d\x84\x9e";	/* 𝄞 */

	CHECK_EQ(utf8_cut("", 0), 0);
	CHECK_EQ(utf8_cut("abc", 2), 2);
	CHECK_EQ(utf8_cut(e, 3), 3);
	CHECK_EQ(utf8_cut(e, 2), 1);
	CHECK_EQ(utf8_cut(e, 1), 1);
	CHECK_EQ(utf8_cut(euro, 3), 3);
	CHECK_EQ(utf8_cut(euro, 2), 0);
	CHECK_EQ(utf8_cut(euro, 1), 0);
	CHECK_EQ(utf8_cut(g, 4), 4);
	CHECK_EQ(utf8_cut(g, 3), 0);
	CHECK_EQ(utf8_cut(g, 2), 0);
	CHECK_EQ(utf8_cut(g, 1), 0);
	/* 2047 bytes of é...: the cut that made QMP replies invalid JSON. */
	{
		char buf[2048];

		for (size_t i = 0; i < sizeof(buf); i += 2)
			memcpy(buf + i, "\xc3\xa9", 2);
		CHECK_EQ(utf8_cut(buf, 2047), 2046);
		CHECK_EQ(utf8_cut(buf, 2046), 2046);
	}
}

/* -config FILE with text in it: config_parse's result. */
static int config_file(const char *text)
{
	char path[] = "/tmp/tern-unit-json-XXXXXX";
	char *argv[] = { "tern", "-kernel", "k", "-config", path, NULL };
	struct tern_config c;
	FILE *f = fdopen(mkstemp(path), "w");
	int r;

	fputs(text, f);
	fclose(f);
	r = config_parse(&c, 5, argv);
	config_free(&c);
	unlink(path);
	return r;
}

/*
 * An error line, however long, is one write() of at most PIPE_BUF bytes, so lines from two
 * threads never interleave: a SOCK_SEQPACKET stderr shows each write as one packet (a line
 * of 4 KiB or more once went out in two, the stream buffer's size).
 */
static void test_error_line_one_write(void)
{
	static char big[5000], got[8192];
	int sv[2], saved = dup(STDERR_FILENO);
	ssize_t n;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	memset(big, 'd', sizeof(big) - 1);
	dup2(sv[0], STDERR_FILENO);
	close(sv[0]);
	errno = ENOENT;
	perrorf("kernel: %s", big);
	errorf("short");
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = recv(sv[1], got, sizeof(got), MSG_DONTWAIT);
	CHECK(n > 4000 && n <= 4096);
	CHECK(n > 0 && !memcmp(got, "tern: kernel: ddd", 17));
	CHECK(n > 40 && !memcmp(got + n - 29, "d: No such file or directory\n", 29));
	n = recv(sv[1], got, sizeof(got), MSG_DONTWAIT);
	CHECK(n == 12 && !memcmp(got, "tern: short\n", 12));
	close(sv[1]);
}

static void test_config_file(void)
{
	char *s = nested("{\"kernel\": ", 300000, "[", "]", "}");

	/* What crashed tern: refused with a line, before yajl. */
	CHECK_EQ(config_file(s), -1);
	free(s);
	CHECK_EQ(config_file("{ \"append\": \"a\\u0000b\" }"), -1);
	/* yajl's comments stay allowed, and what is in them is no JSON. */
	CHECK_EQ(config_file("{ /* \" [[[ */ \"append\": \"x\", // \"m\": [[\n \"m\": 64 }"), 0);
	CHECK_EQ(config_file("{ \"append\": \"x\\\\u0000\" }"), 0);
}

int main(void)
{
	test_depth();
	test_yajl_at_limit();
	test_nul();
	test_utf8_cut();
	test_error_line_one_write();
	test_config_file();
	return unit_summary();
}
