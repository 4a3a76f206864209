/*
 * COM1 as OSv drives it: output busy-waits on LSR bit 0x20 (THR empty), input on IRQ 4.
 * Every port access is a VM exit (~11 us on kvm_pvm), so keep output short on hot paths.
 */
#include "serial.h"
#include "sys.h"

#define RBR 0	/* receive buffer (read) */
#define THR 0	/* transmit holding (write) */
#define IER 1
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5

#define LSR_DR		0x01
#define LSR_THRE	0x20

static char inbuf[1024];
static unsigned in_head, in_tail;

void serial_init(void)
{
	outb(COM1 + IER, 0);
	outb(COM1 + LCR, 0x80);		/* DLAB */
	outb(COM1 + 0, 1);		/* 115200 baud */
	outb(COM1 + 1, 0);
	outb(COM1 + LCR, 0x03);		/* 8n1 */
	outb(COM1 + FCR, 0x07);		/* FIFOs on and cleared */
	outb(COM1 + MCR, 0x0b);		/* DTR | RTS | OUT2 (OUT2 gates the IRQ on a real 8250) */
}

void serial_enable_irq(void)
{
	outb(COM1 + IER, 0x01);
}

void serial_putc(char c)
{
	while (!(inb(COM1 + LSR) & LSR_THRE))
		cpu_relax();
	outb(COM1 + THR, (uint8_t)c);
}

void serial_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			serial_putc('\r');
		serial_putc(s[i]);
	}
}

void serial_poll(void)
{
	/* Drain everything: the IRQ is edge-triggered at the IOAPIC. */
	while (inb(COM1 + LSR) & LSR_DR) {
		char c = (char)inb(COM1 + RBR);

		if (in_head - in_tail < sizeof(inbuf))
			inbuf[in_head++ % sizeof(inbuf)] = c;
	}
}

int serial_getc(void)
{
	if (in_tail == in_head)
		return -1;
	return (unsigned char)inbuf[in_tail++ % sizeof(inbuf)];
}
