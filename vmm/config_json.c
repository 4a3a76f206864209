/*
 * -config FILE: options from a JSON object, named as on the command line without their dash,
 * so that a guest's set-up can live in a file that programs write and read:
 *
 *   { "kernel": "guest.elf", "m": "256M", "append": "echo ticks", "nographic": true,
 *     "netdev": ["bridge,id=n0,br=osvbr0"], "device": ["virtio-net,netdev=n0"] }
 *
 * A string or number is the option's value, true a flag, false or null leaves it out, and an
 * array repeats the option. Each goes through the command line's own checks, in file order;
 * options after -config on the command line come later and win.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "vmm/config.h"
#include "vmm/json.h"
#include "vmm/util.h"

#define CONFIG_JSON_MAX (1 << 20)

static char *config_read(const char *path)
{
	FILE *f = fopen(path, "re");
	char *text;
	size_t n;

	if (!f) {
		errorf("-config %s: %s", path, strerror(errno));
		return NULL;
	}
	text = malloc(CONFIG_JSON_MAX + 1);
	n = text ? fread(text, 1, CONFIG_JSON_MAX + 1, f) : 0;
	if (!text || ferror(f) || n > CONFIG_JSON_MAX) {
		const char *why = !text ? "out of memory" : ferror(f) ? strerror(errno)
								       : "larger than 1 MiB";

		errorf("-config %s: %s", path, why);
		free(text);
		text = NULL;
	} else {
		text[n] = '\0';
	}
	fclose(f);
	return text;
}

/* One value of key: a string or number as the option's value, true as a flag. */
static int config_value(struct tern_config *c, const char *path, const char *opt, yajl_val v)
{
	if (YAJL_IS_STRING(v))
		return config_set(c, opt, YAJL_GET_STRING(v));
	if (YAJL_IS_NUMBER(v))
		return config_set(c, opt, YAJL_GET_NUMBER(v));
	if (YAJL_IS_TRUE(v))
		return config_set(c, opt, NULL);
	if (YAJL_IS_FALSE(v) || YAJL_IS_NULL(v))
		return 0;
	errorf("-config %s: \"%s\": expected a string, number, true or false", path, opt + 1);
	return -1;
}

int config_json(struct tern_config *c, const char *path)
{
	char why[256], opt[64];
	const char *bad;
	char *text;
	yajl_val root;

	if (c->json) {
		errorf("-config %s: only one configuration file", path);
		return -1;
	}
	text = config_read(path);
	if (!text)
		return -1;
	bad = json_check(text);
	if (bad) {
		errorf("-config %s: %s", path, bad);
		free(text);
		return -1;
	}
	root = yajl_tree_parse(text, why, sizeof(why));
	free(text);
	if (!root || !YAJL_IS_OBJECT(root)) {
		/* yajl's message spans lines: its first says what is wrong. */
		why[strcspn(why, "\n")] = '\0';
		errorf("-config %s: %s", path, root ? "not a JSON object" : why);
		yajl_tree_free(root);
		return -1;
	}
	/* The values are used where they lie in the tree: it lives as long as the config. */
	c->json = root;
	for (size_t i = 0; i < root->u.object.len; i++) {
		yajl_val v = root->u.object.values[i];
		int r = 0;

		snprintf(opt, sizeof(opt), "-%s", root->u.object.keys[i]);
		if (YAJL_IS_ARRAY(v)) {
			for (size_t k = 0; k < v->u.array.len && !r; k++)
				r = config_value(c, path, opt, v->u.array.values[k]);
		} else {
			r = config_value(c, path, opt, v);
		}
		if (r < 0)
			return -1;
	}
	return 0;
}

void config_free(struct tern_config *c)
{
	yajl_tree_free(c->json);
	c->json = NULL;
}
