/* The guest's tiny libc: strings, formatting, allocation. */
#ifndef LIB_H
#define LIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
unsigned long strtoul(const char *s, char **end, int base);

/* printf-like formatting: %d %i %u %x %X %o %c %s %p %%, with -, 0, width, .prec, l, ll, z. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
void puts_raw(const char *s);	/* no newline added */

/* Physical memory (e820 / PVH memmap, normalised). */
struct mem_region {
	uint64_t addr, size;
	uint32_t type;		/* 1 = usable RAM */
};
#define MEM_MAX_REGIONS 64
extern struct mem_region mem_regions[MEM_MAX_REGIONS];
extern int mem_nregions;

/* Allocator over the largest free RAM region below 4 GiB (what our page tables map). */
void alloc_init(void);
void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void free(void *p);
void *alloc_pages(size_t npages);	/* 4 KiB aligned, never freed */
uint64_t alloc_free_bytes(void);

#endif
