/*
 * The machine description (hello) and the device state (stop-and-copy) as flattened device
 * trees: a node per device, a property per field, built from the hooks devices registered.
 * Nothing here knows what a device is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libfdt.h>

#include "vmm/migration/internal.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static int describe_root(struct vm *vm, void *fdt)
{
	char mem[32], vcpus[16];

	if (vm->ram_size % (1ULL << 20))
		snprintf(mem, sizeof(mem), "%lluK", (unsigned long long)(vm->ram_size >> 10));
	else
		snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(vm->ram_size >> 20));
	snprintf(vcpus, sizeof(vcpus), "%d", vm->nvcpu);
	return fdt_property_string(fdt, "memory", mem) || fdt_property_string(fdt, "vcpus", vcpus);
}

/* Device i's node: its kind's name, -k added for the k-th (k > 0) device of that kind (not
 * @k: libfdt would find "name@k" when asked for "name"). */
static const char *node_name(struct vm *vm, int i, char buf[64])
{
	const char *name = vm->dev[i].ops->name;
	int k = 0;

	for (int j = 0; j < i; j++)
		k += !strcmp(vm->dev[j].ops->name, name);
	if (!k)
		return name;
	snprintf(buf, 64, "%s-%d", name, k);
	return buf;
}

/* A node per device with the hook (describe or save), each filled by that hook. */
static void *build_tree(struct vm *vm, bool describe, int *len)
{
	for (size_t size = 64 << 10; size <= (16 << 20); size *= 2) {
		void *fdt = malloc(size);
		int err = !fdt || fdt_create(fdt, size) || fdt_finish_reservemap(fdt) ||
			  fdt_begin_node(fdt, "") || (describe && describe_root(vm, fdt));

		for (int i = 0; i < vm->ndev && !err; i++) {
			const struct device *d = &vm->dev[i];
			int (*fn)(void *, void *) = describe ? d->ops->describe : d->ops->save;
			char buf[64];

			if (fn)
				err = fdt_begin_node(fdt, node_name(vm, i, buf)) ||
				      fn(d->opaque, fdt) < 0 || fdt_end_node(fdt);
		}
		if (!err && !fdt_end_node(fdt) && !fdt_finish(fdt)) {
			*len = fdt_totalsize(fdt);
			return fdt;
		}
		free(fdt);
		if (!fdt)
			return NULL;
	}
	return NULL;
}

void *mig_describe(struct vm *vm, int *len)
{
	return build_tree(vm, true, len);
}

void *mig_save_devices(struct vm *vm, int *len, char *err, size_t errlen)
{
	void *fdt = build_tree(vm, false, len);

	if (!fdt)
		snprintf(err, errlen, "cannot save the device state");
	return fdt;
}

/*
 * Every tag moves on, and no property has a negative size: libfdt 1.6's fdt_check_full loops
 * for ever on a property of length -12 (its next tag is itself) and passes one of -4.
 */
static bool tree_walks(const void *fdt)
{
	int off = 0, next, len;
	uint32_t tag;

	do {
		tag = fdt_next_tag(fdt, off, &next);
		if (next <= off)
			return false;
		if (tag == FDT_PROP && (!fdt_getprop_by_offset(fdt, off, NULL, &len) || len < 0))
			return false;
		off = next;
	} while (tag != FDT_END);
	return true;
}

/*
 * What the stream hands us, before libfdt reads it: fdt_create writes version 17, and an older
 * one is refused, for libfdt 1.6's fdt_check_full takes a pre-16 tree's root name (NULL for a
 * name without a '/') unchecked, and crashes.
 */
static int check_tree(const void *fdt, int len, char *why, size_t wlen)
{
	if (len < (int)sizeof(struct fdt_header) || fdt_magic(fdt) != FDT_MAGIC ||
	    fdt_version(fdt) < 17 || fdt_check_header(fdt) || fdt_totalsize(fdt) > (uint32_t)len ||
	    !tree_walks(fdt) || fdt_check_full(fdt, len)) {
		snprintf(why, wlen, "corrupt stream: malformed state tree");
		return -1;
	}
	return 0;
}

/* A property's value for a message: a string as it is, anything else by its size. */
static const char *prop_text(const char *v, int len, char buf[32])
{
	if (!v)
		return "(none)";
	if (printable_string(v, len))
		return v;
	snprintf(buf, 32, "(%d bytes)", len);
	return buf;
}

/*
 * Every property of node a is in node b with the same bytes (a value from the stream need not
 * be a string). why names the source's value first: theirs is a, or b when swapped.
 */
static int props_in(const void *a, int na, const void *b, int nb, bool swapped, const char *prefix,
		    char *why, size_t wlen)
{
	int off;

	fdt_for_each_property_offset(off, a, na) {
		int la, lb;
		const char *name, *va = fdt_getprop_by_offset(a, off, &name, &la), *vb;
		char ta[32], tb[32];

		if (!va) {
			snprintf(why, wlen, "corrupt stream: malformed state tree");
			return -1;
		}
		vb = fdt_getprop(b, nb, name, &lb);
		if (vb && la == lb && !memcmp(va, vb, la))
			continue;
		va = prop_text(va, la, ta);
		vb = prop_text(vb, lb, tb);
		snprintf(why, wlen, "%s%s %s != %s", prefix, printable_or(name, "(a malformed name)"),
			 swapped ? vb : va, swapped ? va : vb);
		return -1;
	}
	return 0;
}

/* The source's node theirs and ours have the same properties, each with the same value: one
 * that only ours has (a disk's size, say) differs as much as one that only theirs has. */
static int compare_node(const void *theirs, int nt, const void *ours, int no, const char *prefix,
			char *why, size_t wlen)
{
	if (props_in(theirs, nt, ours, no, false, prefix, why, wlen) < 0 ||
	    props_in(ours, no, theirs, nt, true, prefix, why, wlen) < 0)
		return -1;
	return 0;
}

/* The device's own match hook on its node: 0 it suits, -1 (why says) it does not; 1 when the
 * device has none. */
static int match_node(struct vm *vm, const char *name, const void *theirs, int node, char *why,
		      size_t wlen)
{
	for (int i = 0; i < vm->ndev; i++) {
		const struct device *d = &vm->dev[i];
		char buf[64];

		if (d->ops->match && !strcmp(node_name(vm, i, buf), name))
			return d->ops->match(d->opaque, theirs, node, why, wlen) < 0 ? -1 : 0;
	}
	return 1;
}

/* Whether each device here can take the guest now (its host's side of it still there). */
static int can_arrive(struct vm *vm, char *why, size_t wlen)
{
	for (int i = 0; i < vm->ndev; i++) {
		const struct device *d = &vm->dev[i];
		char buf[64], reason[160];

		if (d->ops->can_arrive && d->ops->can_arrive(d->opaque, reason, sizeof(reason)) < 0) {
			snprintf(why, wlen, "%s: %s", node_name(vm, i, buf), reason);
			return -1;
		}
	}
	return 0;
}

int mig_check_description(struct vm *vm, const void *theirs, int len, char *why, size_t wlen)
{
	int ourlen, node, m, r = -1;
	void *ours = mig_describe(vm, &ourlen);

	if (!ours) {
		snprintf(why, wlen, "cannot describe this machine");
		return -1;
	}
	if (check_tree(theirs, len, why, wlen) < 0)
		goto out;
	if (compare_node(theirs, 0, ours, 0, "", why, wlen) < 0)
		goto out;
	fdt_for_each_subnode(node, theirs, 0) {
		const char *name = fdt_get_name(theirs, node, NULL);
		int on = fdt_subnode_offset(ours, 0, name);
		char prefix[80];

		if (on < 0) {
			snprintf(why, wlen, "device %s missing here",
				 printable_or(name, "(a malformed name)"));
			goto out;
		}
		m = match_node(vm, name, theirs, node, why, wlen);
		snprintf(prefix, sizeof(prefix), "%s: ", name);
		if (m < 0 || (m > 0 && compare_node(theirs, node, ours, on, prefix, why, wlen) < 0))
			goto out;
	}
	fdt_for_each_subnode(node, ours, 0) {
		const char *name = fdt_get_name(ours, node, NULL);

		if (fdt_subnode_offset(theirs, 0, name) < 0) {
			snprintf(why, wlen, "device %s missing at the source", name);
			goto out;
		}
	}
	r = can_arrive(vm, why, wlen);
out:
	free(ours);
	return r;
}

struct load_call {
	struct vm *vm;
	const void *fdt;
	char *err;
	size_t errlen;
	int r;
};

/*
 * The root's subnode of exactly that name: libfdt's lookup takes "name@anything" for "name", and
 * would load a device from a node the source never wrote (its name then in the messages).
 */
static int exact_subnode(const void *fdt, const char *name)
{
	int node;

	fdt_for_each_subnode(node, fdt, 0) {
		const char *n = fdt_get_name(fdt, node, NULL);

		if (n && !strcmp(n, name))
			return node;
	}
	return -1;
}

static void load_on_io_thread(void *arg)
{
	struct load_call *c = arg;
	struct vm *vm = c->vm;

	c->r = 0;
	for (int i = 0; i < vm->ndev && !c->r; i++) {
		const struct device *d = &vm->dev[i];
		char buf[64];
		const char *name = node_name(vm, i, buf);
		int node;

		if (!d->ops->load)
			continue;
		node = exact_subnode(c->fdt, name);
		if (node < 0) {
			snprintf(c->err, c->errlen, "no state for device %s in the stream", name);
			c->r = -1;
		} else if (d->ops->load(d->opaque, c->fdt, node) < 0) {
			snprintf(c->err, c->errlen, "device %s refused its state", name);
			c->r = -1;
		}
	}
}

int mig_load_devices(struct vm *vm, const void *fdt, int len, char *err, size_t errlen)
{
	struct load_call c = { vm, fdt, err, errlen, -1 };

	if (check_tree(fdt, len, err, errlen) < 0)
		return -1;
	evloop_call(&vm->loop, load_on_io_thread, &c);
	return c.r;
}

enum dev_hook { HOOK_PAUSE, HOOK_RESUME, HOOK_POST_MIGRATE };

struct hook_call {
	struct vm *vm;
	enum dev_hook hook;
};

static void hook_on_io_thread(void *arg)
{
	struct hook_call *c = arg;

	for (int i = 0; i < c->vm->ndev; i++) {
		const struct device_ops *o = c->vm->dev[i].ops;
		void (*fn)(void *) = c->hook == HOOK_PAUSE	? o->pause
				     : c->hook == HOOK_RESUME ? o->resume
							       : o->post_migrate;

		if (fn)
			fn(c->vm->dev[i].opaque);
	}
}

static void each_device(struct vm *vm, enum dev_hook hook)
{
	struct hook_call c = { vm, hook };

	evloop_call(&vm->loop, hook_on_io_thread, &c);
}

void mig_pause_devices(struct vm *vm)
{
	each_device(vm, HOOK_PAUSE);
}

void mig_resume_devices(struct vm *vm)
{
	each_device(vm, HOOK_RESUME);
}

void mig_post_migrate(struct vm *vm)
{
	each_device(vm, HOOK_POST_MIGRATE);
}
