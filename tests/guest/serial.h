/* COM1 (0x3F8), driven from ring 3. */
#ifndef SERIAL_H
#define SERIAL_H

#include <stddef.h>

#define COM1		0x3f8
#define COM1_IRQ	4

void serial_init(void);
void serial_enable_irq(void);	/* IER bit 0: IRQ 4 on received data */
void serial_write(const char *s, size_t n);	/* '\n' goes out as "\r\n" */
void serial_putc(char c);
void serial_poll(void);		/* move received bytes into the input buffer */
int serial_getc(void);		/* -1 if nothing buffered */

#endif
