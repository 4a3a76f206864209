#include <string.h>
#include <libfdt.h>

#include "vmm/state.h"
#include "vmm/util.h"

int state_put_u32(void *fdt, const char *name, uint32_t v)
{
	return fdt_property_u32(fdt, name, v) ? -1 : 0;
}

int state_put_u64(void *fdt, const char *name, uint64_t v)
{
	return fdt_property_u64(fdt, name, v) ? -1 : 0;
}

int state_put_blob(void *fdt, const char *name, const void *p, size_t len)
{
	return fdt_property(fdt, name, p, len) ? -1 : 0;
}

static const void *state_prop(const void *fdt, int node, const char *name, int *len)
{
	const void *p = fdt_getprop(fdt, node, name, len);

	if (!p)
		errorf("state: %s: missing property '%s'", fdt_get_name(fdt, node, NULL), name);
	return p;
}

int state_get_blob(const void *fdt, int node, const char *name, void *p, size_t len)
{
	int n;
	const void *v = state_prop(fdt, node, name, &n);

	if (!v)
		return -1;
	if ((size_t)n != len) {
		errorf("state: %s: property '%s' has %d bytes, expected %zu",
		       fdt_get_name(fdt, node, NULL), name, n, len);
		return -1;
	}
	memcpy(p, v, len);
	return 0;
}

int state_get_var(const void *fdt, int node, const char *name, void *p, size_t max)
{
	int n;
	const void *v = state_prop(fdt, node, name, &n);

	if (!v)
		return -1;
	if ((size_t)n > max) {
		errorf("state: %s: property '%s' has %d bytes, at most %zu allowed",
		       fdt_get_name(fdt, node, NULL), name, n, max);
		return -1;
	}
	memcpy(p, v, n);
	return n;
}

int state_get_u32(const void *fdt, int node, const char *name, uint32_t *v)
{
	fdt32_t be;

	if (state_get_blob(fdt, node, name, &be, sizeof(be)) < 0)
		return -1;
	*v = fdt32_to_cpu(be);
	return 0;
}

int state_get_u64(const void *fdt, int node, const char *name, uint64_t *v)
{
	fdt64_t be;

	if (state_get_blob(fdt, node, name, &be, sizeof(be)) < 0)
		return -1;
	*v = fdt64_to_cpu(be);
	return 0;
}
