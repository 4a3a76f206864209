/*
 * stdin/stdout as the guest's serial console, multiplexed with the monitor as QEMU's
 * `-nographic` does: Ctrl-A c switches, Ctrl-A x quits, Ctrl-A h helps, Ctrl-A Ctrl-A sends
 * Ctrl-A (another key than Ctrl-A with -echr). A terminal is put in raw mode and restored on
 * every way out.
 */
#ifndef TERN_CONSOLE_H
#define TERN_CONSOLE_H

#include <stdbool.h>

struct vm;
struct console;
struct monitor;
struct chardev;

/* serial: whether the guest's serial console lives on stdio (else stdio is the monitor);
 * echr: the escape key (-echr), Ctrl-A unless set. */
struct console *console_create(struct vm *vm, struct monitor *mon, bool serial,
			       unsigned char echr);
/* The backend the UART writes to and reads from. */
struct chardev *console_chardev(struct console *c);
/* SIGCONT: raw mode again, if tern has the terminal. */
void console_resume(struct console *c);
void console_destroy(struct console *c);

#endif
