/* Per-thread system call filters: see sandbox.c. */
#ifndef TERN_SANDBOX_H
#define TERN_SANDBOX_H

enum sandbox_thread { SANDBOX_IO, SANDBOX_VCPU };

/* Filters the calling thread (and the threads it makes later). 0, or -1 after one line. */
int sandbox_enter(enum sandbox_thread t);

#endif
