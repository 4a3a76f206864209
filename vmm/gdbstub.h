/* The GDB remote stub: -gdb tcp:[HOST]:PORT, -s. */
#ifndef TERN_GDBSTUB_H
#define TERN_GDBSTUB_H

struct vm;

/* Listens on spec (tcp:[HOST]:PORT or unix:PATH) for one gdb at a time. */
int gdbstub_create(struct vm *vm, const char *spec);

#endif
