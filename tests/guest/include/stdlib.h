/* The guest's own libc (libc.c, alloc.c): what lwIP includes as <stdlib.h>. */
#ifndef GUEST_STDLIB_H
#define GUEST_STDLIB_H
#include "../lib.h"
int atoi(const char *s);
#endif
