/*
 * Checks shared by the two readers of JSON, -config and QMP: what yajl would take but tern
 * must refuse.
 */
#ifndef TERN_JSON_H
#define TERN_JSON_H

#include <stddef.h>

/* QEMU's limit on nested objects and arrays (its MAX_NESTING). */
#define JSON_DEPTH_MAX 1024

/*
 * NULL if text may go to yajl_tree_parse, else why not, in QEMU's words: yajl's tree recurses
 * once a level (a few hundred thousand '[' overflow the stack), and \u0000 would end a string
 * early ("stop\u0000junk" read as "stop"). Comments are skipped, as yajl_tree_parse takes them.
 */
const char *json_check(const char *text);

#endif
