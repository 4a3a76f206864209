/*
 * COM1 as OSv drives it: output waits on LSR bit 0x20 (THR empty), input on IRQ 4 with
 * the timer tick as a polled fallback. The logic is here in ring 3; the byte pumps are
 * system calls, because port I/O is ~6x cheaper from ring 0 on kvm_pvm (guest.h).
 */
#include "serial.h"
#include "sys.h"

#define IER 1
#define FCR 2
#define LCR 3
#define MCR 4

static char inbuf[1024];
static unsigned in_head, in_tail;

void serial_init(void)
{
	static const uint32_t init[] = {
		OUTB_ENTRY(COM1 + IER, 0),
		OUTB_ENTRY(COM1 + LCR, 0x80),	/* DLAB */
		OUTB_ENTRY(COM1 + 0, 1),	/* 115200 baud */
		OUTB_ENTRY(COM1 + 1, 0),
		OUTB_ENTRY(COM1 + LCR, 0x03),	/* 8n1 */
		OUTB_ENTRY(COM1 + FCR, 0x07),	/* FIFOs on and cleared */
		OUTB_ENTRY(COM1 + MCR, 0x0b),	/* DTR | RTS | OUT2 (gates the IRQ on an 8250) */
	};

	sys_outb_list(init, sizeof(init) / sizeof(init[0]));
}

void serial_enable_irq(void)
{
	static const uint32_t ier[] = { OUTB_ENTRY(COM1 + IER, 0x01) };

	sys_outb_list(ier, 1);
}

void serial_write(const char *s, size_t n)
{
	char buf[256];
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		if (len >= sizeof(buf) - 2) {
			sys_serial_write(buf, len);
			len = 0;
		}
		if (s[i] == '\n')
			buf[len++] = '\r';
		buf[len++] = s[i];
	}
	if (len)
		sys_serial_write(buf, len);
}

void serial_putc(char c)
{
	serial_write(&c, 1);
}

void serial_poll(void)
{
	/* Drain everything: the IRQ is edge-triggered at the IOAPIC. */
	for (;;) {
		unsigned space = sizeof(inbuf) - (in_head - in_tail);
		unsigned at = in_head % sizeof(inbuf);
		unsigned chunk = sizeof(inbuf) - at < space ? sizeof(inbuf) - at : space;
		uint64_t n;

		if (!chunk) {	/* full: drop what arrives, but drain the UART */
			char junk[64];

			if (!sys_serial_read(junk, sizeof(junk)))
				return;
			continue;
		}
		n = sys_serial_read(inbuf + at, chunk);
		in_head += n;
		if (n < chunk)
			return;
	}
}

int serial_getc(void)
{
	if (in_tail == in_head)
		return -1;
	return (unsigned char)inbuf[in_tail++ % sizeof(inbuf)];
}
