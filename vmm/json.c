#include <stdbool.h>
#include <string.h>

#include "vmm/json.h"

/* Where the comment that starts at p ends (its last character); NULL if it does not. */
static const char *json_comment_end(const char *p)
{
	const char *end = p[1] == '*' ? strstr(p + 2, "*/") : strchr(p, '\n');

	return end && p[1] == '*' ? end + 1 : end;
}

const char *json_check(const char *text)
{
	bool str = false;
	int depth = 0;

	for (const char *p = text; *p; p++) {
		if (str) {
			if (*p == '"')
				str = false;
			else if (*p == '\\' && p[1] == 'u' && !strncmp(p + 2, "0000", 4))
				return "JSON parse error, \\u0000 is not supported";
			else if (*p == '\\' && p[1])
				p++; /* an escaped quote or backslash */
		} else if (*p == '"') {
			str = true;
		} else if (*p == '{' || *p == '[') {
			if (++depth > JSON_DEPTH_MAX)
				return "JSON nesting depth limit exceeded";
		} else if (*p == '}' || *p == ']') {
			depth -= depth > 0;
		} else if (*p == '/' && (p[1] == '*' || p[1] == '/')) {
			p = json_comment_end(p);
			if (!p)
				break; /* unterminated: yajl's to refuse */
		}
	}
	return NULL;
}
