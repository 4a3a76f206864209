#ifndef TERN_SERIAL_H
#define TERN_SERIAL_H

struct vm;
struct chardev;
struct serial;

/* COM1: 8250/16550A at 0x3F8, IRQ 4, output to and input from chr. */
struct serial *serial_create(struct vm *vm, struct chardev *chr);

#endif
