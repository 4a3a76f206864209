/*
 * A character backend: where a device's bytes go (the console mux, a file, nothing) and where
 * its input comes from. The front end (the UART) sets input/input_opaque.
 */
#ifndef TERN_CHARDEV_H
#define TERN_CHARDEV_H

#include <stddef.h>
#include <stdint.h>

struct chardev {
	void (*write)(struct chardev *c, const uint8_t *buf, size_t len);
	void (*input)(void *opaque, const uint8_t *buf, size_t len);
	void *input_opaque;
	int fd;			/* file backend */
};

/* -serial file:PATH; NULL path = discard. */
struct chardev *chardev_file_open(const char *path);
void chardev_close(struct chardev *c);

#endif
