/* What the VMM handed us: cmdline and memory map, from the zero page or hvm_start_info. */
#ifndef BOOTINFO_H
#define BOOTINFO_H

#include <stdint.h>

#define CMDLINE_MAX 2048

extern char cmdline[CMDLINE_MAX];
extern const char *boot_protocol;	/* "linux64" or "pvh" */

int bootinfo_parse(uint64_t kind, uint64_t info);	/* 0, or -1 after printing why */

/* Cmdline words: "name" or "name=value", space separated; unknown ones are ignored. */
int cmdline_has(const char *word);
const char *cmdline_value(const char *name);	/* text after "name=", or NULL */
unsigned long cmdline_ulong(const char *name, unsigned long dflt);

#endif
