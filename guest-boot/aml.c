/* AML encodings from the ACPI spec, chapters 6.4 (resource descriptors) and 20 (AML). */
#include <string.h>

#include "guest-boot/aml.h"

#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE 0x10
#define AML_BUFFER 0x11
#define AML_PACKAGE 0x12
#define AML_EXT_PREFIX 0x5b
#define AML_DEVICE 0x82 /* after AML_EXT_PREFIX */
#define AML_ROOT_CHAR 0x5c

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	*a = (struct aml){.buf = buf, .cap = cap};
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void aml_le(struct aml *a, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		aml_byte(a, v >> (8 * i));
}

/* Inserts n bytes at pos, shifting what follows (used for lengths known only at the end). */
static void aml_insert(struct aml *a, size_t pos, const uint8_t *p, size_t n)
{
	if (a->overflow || n > a->cap - a->len || pos > a->len) {
		a->overflow = true;
		return;
	}
	memmove(a->buf + pos + n, a->buf + pos, a->len - pos);
	memcpy(a->buf + pos, p, n);
	a->len += n;
}

/* PkgLength counts its own bytes too: 1 byte up to 63, else 2-4 bytes of 4+8+8+8 bits. */
static size_t aml_pkglength(uint8_t *out, size_t body)
{
	size_t n = body + 1 < 0x40 ? 1 : body + 2 < 0x1000 ? 2 : body + 3 < 0x100000 ? 3 : 4;
	size_t total = body + n;

	if (n == 1) {
		out[0] = total;
		return 1;
	}
	out[0] = ((n - 1) << 6) | (total & 0xf);
	for (size_t i = 1; i < n; i++)
		out[i] = total >> (4 + 8 * (i - 1));
	return n;
}

void aml_pkg_end(struct aml *a, size_t mark)
{
	uint8_t pl[4];

	if (a->overflow || mark > a->len) {
		a->overflow = true;
		return;
	}
	aml_insert(a, mark, pl, aml_pkglength(pl, a->len - mark));
}

void aml_namestring(struct aml *a, const char *name)
{
	if (name[0] == '\\') {
		aml_byte(a, AML_ROOT_CHAR);
		name++;
	}
	if (strlen(name) != 4) {
		a->overflow = true; /* a programming error: only single segments are used */
		return;
	}
	aml_bytes(a, name, 4);
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO);
	} else if (v == 1) {
		aml_byte(a, AML_ONE);
	} else if (v <= 0xff) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_le(a, v, 1);
	} else if (v <= 0xffff) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_le(a, v, 2);
	} else if (v <= 0xffffffff) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

static unsigned hexval(char c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Three letters in 5 bits each and four hex digits, stored big-endian (ACPI 19.6.35). */
void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v;

	if (strlen(id) != 7) {
		a->overflow = true;
		return;
	}
	v = ((id[0] - 0x40) & 0x1f) << 26 | ((id[1] - 0x40) & 0x1f) << 21 |
	    ((id[2] - 0x40) & 0x1f) << 16 | hexval(id[3]) << 12 | hexval(id[4]) << 8 |
	    hexval(id[5]) << 4 | hexval(id[6]);
	aml_integer(a, __builtin_bswap32(v));
}

size_t aml_scope_begin(struct aml *a, const char *name)
{
	size_t mark;

	aml_byte(a, AML_SCOPE);
	mark = a->len;
	aml_namestring(a, name);
	return mark;
}

size_t aml_device_begin(struct aml *a, const char *name)
{
	size_t mark;

	aml_byte(a, AML_EXT_PREFIX);
	aml_byte(a, AML_DEVICE);
	mark = a->len;
	aml_namestring(a, name);
	return mark;
}

size_t aml_package_begin(struct aml *a, uint8_t nelem)
{
	size_t mark;

	aml_byte(a, AML_PACKAGE);
	mark = a->len;
	aml_byte(a, nelem);
	return mark;
}

void aml_name(struct aml *a, const char *name)
{
	aml_byte(a, AML_NAME);
	aml_namestring(a, name);
}

size_t aml_restemplate_begin(struct aml *a)
{
	aml_byte(a, AML_BUFFER);
	return a->len;
}

/* Buffer := BufferOp PkgLength BufferSize ByteList; the size goes in before the bytes. */
void aml_restemplate_end(struct aml *a, size_t mark)
{
	struct aml size;
	uint8_t tmp[9];

	aml_byte(a, 0x79); /* end tag; checksum 0 means "not checked" */
	aml_byte(a, 0x00);
	if (a->overflow || mark > a->len) {
		a->overflow = true;
		return;
	}
	aml_init(&size, tmp, sizeof(tmp));
	aml_integer(&size, a->len - mark);
	aml_insert(a, mark, tmp, size.len);
	aml_pkg_end(a, mark);
}

void aml_memory32_fixed(struct aml *a, bool rw, uint32_t base, uint32_t size)
{
	aml_byte(a, 0x86); /* large item, Memory32Fixed */
	aml_le(a, 9, 2);
	aml_byte(a, rw ? 1 : 0);
	aml_le(a, base, 4);
	aml_le(a, size, 4);
}

void aml_interrupt(struct aml *a, bool edge, bool active_low, uint32_t irq)
{
	aml_byte(a, 0x89); /* large item, Extended Interrupt */
	aml_le(a, 6, 2);
	/* bit 0 consumer, bit 1 edge, bit 2 active low, bit 3 shared (clear: exclusive) */
	aml_byte(a, 0x01 | (edge ? 0x02 : 0) | (active_low ? 0x04 : 0));
	aml_byte(a, 1); /* one interrupt number follows */
	aml_le(a, irq, 4);
}

void aml_io16(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	aml_byte(a, 0x47); /* small item, I/O port, 7 bytes */
	aml_byte(a, 0x01); /* decodes 16 address bits */
	aml_le(a, min, 2);
	aml_le(a, max, 2);
	aml_byte(a, align);
	aml_byte(a, len);
}

void aml_irq_noflags(struct aml *a, unsigned irq)
{
	aml_byte(a, 0x22); /* small item, IRQ without the flags byte */
	aml_le(a, 1u << irq, 2);
}
