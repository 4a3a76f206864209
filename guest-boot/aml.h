/*
 * A small AML byte emitter for the DSDT: just the opcodes tern needs (Scope, Device, Name,
 * integers, strings, EISAID, ResourceTemplate buffers). Packages are written body first and
 * their PkgLength is inserted when they are closed, so nesting needs no size estimates.
 */
#ifndef TERN_AML_H
#define TERN_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t cap, len;
	bool overflow; /* something did not fit: the output is unusable */
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_byte(struct aml *a, uint8_t b);

/* NameString: "\\_SB_" (root-relative) or a single 4-character segment "COM1". */
void aml_namestring(struct aml *a, const char *name);
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* EISAID("PNP0501") as the compressed 32-bit integer. */
void aml_eisaid(struct aml *a, const char *id);

/* Scope(name) { ... }, Device(name) { ... }: begin returns a mark that end needs. */
size_t aml_scope_begin(struct aml *a, const char *name);
size_t aml_device_begin(struct aml *a, const char *name);
void aml_pkg_end(struct aml *a, size_t mark);
/* Package(n) { ... }: n elements follow, then aml_pkg_end. */
size_t aml_package_begin(struct aml *a, uint8_t nelem);
/* Name(name, ...): the value follows. */
void aml_name(struct aml *a, const char *name);

/* ResourceTemplate() { ... } as a Buffer; end appends the end tag. */
size_t aml_restemplate_begin(struct aml *a);
void aml_restemplate_end(struct aml *a, size_t mark);
void aml_memory32_fixed(struct aml *a, bool rw, uint32_t base, uint32_t size);
/* Interrupt(ResourceConsumer, edge/level, high/low, Exclusive) { irq } */
void aml_interrupt(struct aml *a, bool edge, bool active_low, uint32_t irq);
void aml_io16(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
void aml_irq_noflags(struct aml *a, unsigned irq);

#endif
