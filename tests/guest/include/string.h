/* The guest's own libc (libc.c): what lwIP includes as <string.h>. */
#ifndef GUEST_STRING_H
#define GUEST_STRING_H
#include "../lib.h"
#endif
