/*
 * A character backend: where a device's bytes go (the console mux, a file, nothing) and where
 * its input comes from. The front end (the UART) sets input/input_opaque.
 */
#ifndef TERN_CHARDEV_H
#define TERN_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chardev {
	/* 0, or -1 when the bytes were dropped (a write error, or give_up said so). */
	int (*write)(struct chardev *c, const uint8_t *buf, size_t len);
	void (*input)(void *opaque, const uint8_t *buf, size_t len);
	void (*brk)(void *opaque);	/* a line break (Ctrl-A b); same opaque as input */
	void *input_opaque;
	/* Set by a front end that writes from vCPU threads: while the backend takes nothing,
	 * whether to give up on the bytes (see write_full_unless). */
	bool (*give_up)(void *opaque);
	void *give_up_opaque;
	int fd;			/* file backend */
	char *path;		/* its name, for messages */
	bool failing;		/* its last write failed: said once, until one works again */
};

/* write_full, or write_full_unless where the front end set give_up. */
int chardev_write_fd(struct chardev *c, int fd, const uint8_t *buf, size_t len);
/* -serial file:PATH; NULL path = discard. */
struct chardev *chardev_file_open(const char *path);
void chardev_close(struct chardev *c);

#endif
