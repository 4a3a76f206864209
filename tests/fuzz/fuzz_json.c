/*
 * JSON from -config and from QMP clients: json_check() must refuse what yajl's tree cannot take
 * safely, and what it lets through must parse without harm; utf8_cut() must never cut inside
 * a character nor grow the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "vmm/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char why[128];

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (!json_check(text)) {
		yajl_val v = yajl_tree_parse(text, why, sizeof(why));

		yajl_tree_free(v);
	}
	size_t cut = utf8_cut(text, size);

	if (cut > size)
		abort();
	free(text);
	return 0;
}
