/*
 * Helpers for device save/load hooks: one FDT property per field, and loads that check the
 * property exists with exactly the expected size before anything is used.
 */
#ifndef TERN_STATE_H
#define TERN_STATE_H

#include <stdint.h>
#include <stddef.h>

int state_put_u32(void *fdt, const char *name, uint32_t v);
int state_put_u64(void *fdt, const char *name, uint64_t v);
int state_put_blob(void *fdt, const char *name, const void *p, size_t len);

/* -1 (after an error line naming node and property) if missing or of another size. */
int state_get_u32(const void *fdt, int node, const char *name, uint32_t *v);
int state_get_u64(const void *fdt, int node, const char *name, uint64_t *v);
int state_get_blob(const void *fdt, int node, const char *name, void *p, size_t len);
/* Variable-size blob of at most max bytes; returns its length or -1. */
int state_get_var(const void *fdt, int node, const char *name, void *p, size_t max);

#endif
