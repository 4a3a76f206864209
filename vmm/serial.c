/*
 * COM1 as a 16550A: enough for OSv and Linux console drivers. Output busy-waits on LSR.THRE,
 * which always reads set because bytes leave at once; input is a FIFO that raises IRQ 4.
 * Register accesses come from the vCPU threads, input from the I/O thread: one lock. Output
 * reaches the backend outside it (serial_flush), so a slow stdout stalls only the vCPU that
 * writes, never the I/O thread's input (and with it virtio, the monitor, a migration).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/chardev.h"
#include "vmm/serial.h"
#include "vmm/state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define SERIAL_BASE 0x3f8
#define SERIAL_IRQ 4
/*
 * What the console holds for a guest that reads slowly: a paste of a page or two into a paused
 * or busy guest arrives whole. Beyond it input is dropped, so that Ctrl-A x still reaches tern
 * from a guest that reads nothing.
 */
#define SERIAL_RX_SIZE (64 << 10)
#define SERIAL_TX_SIZE 4096

enum { UART_RBR_THR, UART_IER, UART_IIR_FCR, UART_LCR, UART_MCR, UART_LSR, UART_MSR, UART_SCR };

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB 0x80
#define MCR_MASK 0x1f /* a 16550A's MCR has no bits 5-7 */
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_DCD_DSR_CTS 0xb0

/* Registers, in the order they travel in the migration stream. */
struct serial_regs {
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm, thri_pending;
};

struct serial {
	struct vm *vm;
	struct chardev *chr;
	pthread_mutex_t lock;
	struct serial_regs r;
	int irq_level;
	uint8_t rx[SERIAL_RX_SIZE];
	unsigned rx_head, rx_len;
	/*
	 * A break (Ctrl-A b) is a NUL in the FIFO that LSR flags (BI) once it is next to read,
	 * until LSR is read: brk is its place from the head, 1 for next, 0 for none. It is not
	 * carried by a migration (its NUL arrives as a plain one): a break is a moment.
	 */
	unsigned brk;
	/*
	 * Bytes written to THR, on their way to the backend: one thread at a time (flushing)
	 * writes them out, in order. Empty whenever no vCPU is in serial_io(), so a migration
	 * has nothing to carry.
	 */
	uint8_t tx[SERIAL_TX_SIZE];
	unsigned tx_len;
	bool flushing;
	pthread_cond_t tx_room;
};

/* Bits 7-6 say the FIFOs are on, as the driver's FCR asked: Linux tells a 16550A by them. */
static uint8_t serial_iir(struct serial *s)
{
	uint8_t fifo = s->r.fcr & FCR_ENABLE ? IIR_FIFO : 0;

	if ((s->r.ier & IER_RLSI) && s->brk == 1)
		return IIR_RLSI | fifo;
	if ((s->r.ier & IER_RDI) && s->rx_len)
		return IIR_RDI | fifo;
	if ((s->r.ier & IER_THRI) && s->r.thri_pending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

/* Called with the lock held whenever something that feeds IIR changed. */
static void serial_update_irq(struct serial *s)
{
	int level = !(serial_iir(s) & IIR_NONE);

	if (level != s->irq_level) {
		s->irq_level = level;
		vm_irq_line(s->vm, SERIAL_IRQ, level);
	}
}

static uint8_t serial_read(struct serial *s, unsigned reg)
{
	uint8_t v;

	switch (reg) {
	case UART_RBR_THR:
		if (s->r.lcr & LCR_DLAB)
			return s->r.dll;
		if (!s->rx_len)
			return 0;
		if (s->brk)
			s->brk--;
		v = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % SERIAL_RX_SIZE;
		s->rx_len--;
		return v;
	case UART_IER:
		return (s->r.lcr & LCR_DLAB) ? s->r.dlm : s->r.ier;
	case UART_IIR_FCR:
		v = serial_iir(s);
		/* Reading IIR acknowledges a THR-empty interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			s->r.thri_pending = 0;
		return v;
	case UART_LCR:
		return s->r.lcr;
	case UART_MCR:
		return s->r.mcr;
	case UART_LSR:
		v = LSR_THRE | LSR_TEMT | (s->rx_len ? LSR_DR : 0);
		/* Read, BI goes, and the line-status interrupt with it (its NUL stays), as on
		 * a 16550: Linux keeps BI in lsr_saved_flags until it reads the NUL. */
		if (s->brk == 1) {
			v |= LSR_BI;
			s->brk = 0;
		}
		return v;
	case UART_MSR:
		if (!(s->r.mcr & MCR_LOOP))
			return MSR_DCD_DSR_CTS;
		/* Loopback wires DTR, RTS, OUT1, OUT2 to DSR, CTS, RI, DCD (Linux's LOOP test). */
		return (s->r.mcr & 0x01) << 5 | (s->r.mcr & 0x02) << 3 | (s->r.mcr & 0x0c) << 4;
	default:
		return s->r.scr;
	}
}

/* A received byte, into the FIFO; one that finds it full is lost, as on an overrun. */
static void serial_rx_put(struct serial *s, uint8_t v)
{
	if (s->rx_len == SERIAL_RX_SIZE)
		return;
	s->rx[(s->rx_head + s->rx_len) % SERIAL_RX_SIZE] = v;
	s->rx_len++;
}

/* Queues an output byte (lock held); a full buffer waits for the thread writing it out. */
static void serial_tx(struct serial *s, uint8_t v)
{
	while (s->tx_len == SERIAL_TX_SIZE)
		pthread_cond_wait(&s->tx_room, &s->lock);
	s->tx[s->tx_len++] = v;
}

/* Output waits on a backend that takes nothing only until the vCPUs must stop. */
static bool serial_give_up(void *vm)
{
	return vcpus_stopping(vm);
}

/*
 * Writes the queued output to the backend, without the lock. A thread that finds another
 * one at it leaves its bytes to that one, which loops until none are left.
 */
static void serial_flush(struct serial *s)
{
	uint8_t buf[SERIAL_TX_SIZE];
	unsigned len;

	pthread_mutex_lock(&s->lock);
	if (s->flushing) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	s->flushing = true;
	while ((len = s->tx_len)) {
		memcpy(buf, s->tx, len);
		s->tx_len = 0;
		pthread_cond_broadcast(&s->tx_room);
		pthread_mutex_unlock(&s->lock);
		if (s->chr->write(s->chr, buf, len) < 0) {
			/* Nobody reads the output and the vCPUs must stop: it is dropped. */
			pthread_mutex_lock(&s->lock);
			s->tx_len = 0;
			pthread_cond_broadcast(&s->tx_room);
			break;
		}
		pthread_mutex_lock(&s->lock);
	}
	s->flushing = false;
	pthread_mutex_unlock(&s->lock);
}

static void serial_write(struct serial *s, unsigned reg, uint8_t v)
{
	switch (reg) {
	case UART_RBR_THR:
		if (s->r.lcr & LCR_DLAB) {
			s->r.dll = v;
			return;
		}
		/* In loopback the byte comes back on RBR instead of going out. */
		if (s->r.mcr & MCR_LOOP)
			serial_rx_put(s, v);
		else
			serial_tx(s, v);
		s->r.thri_pending = 1;
		return;
	case UART_IER:
		if (s->r.lcr & LCR_DLAB) {
			s->r.dlm = v;
			return;
		}
		/* Enabling THRI while THR is empty raises it at once, as real UARTs do. */
		if ((v & IER_THRI) && !(s->r.ier & IER_THRI))
			s->r.thri_pending = 1;
		s->r.ier = v & 0x0f;
		return;
	case UART_IIR_FCR:
		s->r.fcr = v;
		if (v & FCR_CLEAR_RX)
			s->rx_len = s->brk = 0;
		return;
	case UART_LCR:
		s->r.lcr = v;
		return;
	case UART_MCR:
		s->r.mcr = v & MCR_MASK;
		return;
	case UART_SCR:
		s->r.scr = v;
		return;
	}
}

static void serial_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial *s = opaque;
	unsigned reg = addr - SERIAL_BASE;

	pthread_mutex_lock(&s->lock);
	if (is_write)
		serial_write(s, reg, data[0]);
	else
		data[0] = serial_read(s, reg);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	if (is_write && reg == UART_RBR_THR)
		serial_flush(s);
}

static void serial_input(void *opaque, const uint8_t *buf, size_t len)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < len && s->rx_len < SERIAL_RX_SIZE; i++)
		serial_rx_put(s, buf[i]);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

/* A line break from the console (Ctrl-A b): Linux's 8250 driver takes it as magic SysRq. */
static void serial_break(void *opaque)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	if (!s->brk && s->rx_len < SERIAL_RX_SIZE) {
		serial_rx_put(s, 0);
		s->brk = s->rx_len;
		serial_update_irq(s);
	}
	pthread_mutex_unlock(&s->lock);
}

static int serial_save(void *opaque, void *fdt)
{
	struct serial *s = opaque;
	uint8_t rx[SERIAL_RX_SIZE];
	int err;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->rx_len; i++)
		rx[i] = s->rx[(s->rx_head + i) % SERIAL_RX_SIZE];
	err = state_put_blob(fdt, "regs", &s->r, sizeof(s->r)) ||
	      state_put_blob(fdt, "rx", rx, s->rx_len);
	pthread_mutex_unlock(&s->lock);
	return err ? -1 : 0;
}

/*
 * A stream is trusted no more than the guest: registers it could never have set (IER's bits
 * 4-7, MCR's 5-7, a THR-empty flag other than 0 or 1) are refused.
 */
static int serial_check_regs(const struct serial_regs *r)
{
	if ((r->ier & ~0x0f) || (r->mcr & ~MCR_MASK) || r->thri_pending > 1) {
		errorf("serial@3f8: the stream's IER %#x, MCR %#x or THR-empty flag %u is beyond a "
		       "16550A's", r->ier, r->mcr, r->thri_pending);
		return -1;
	}
	return 0;
}

/* All or nothing: a refused state leaves the device as it was. */
static int serial_load(void *opaque, const void *fdt, int node)
{
	struct serial *s = opaque;
	struct serial_regs r;
	uint8_t rx[SERIAL_RX_SIZE];
	int n;

	if (state_get_blob(fdt, node, "regs", &r, sizeof(r)) < 0 || serial_check_regs(&r) < 0 ||
	    (n = state_get_var(fdt, node, "rx", rx, sizeof(rx))) < 0)
		return -1;
	pthread_mutex_lock(&s->lock);
	s->r = r;
	memcpy(s->rx, rx, n);
	s->rx_head = 0;
	s->rx_len = n;
	s->brk = 0;
	/* The irqchip's state travels on its own; just resync our view of the line. */
	s->irq_level = -1;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void serial_destroy(void *opaque)
{
	struct serial *s = opaque;

	pthread_cond_destroy(&s->tx_room);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const struct device_ops serial_ops = {
	.name = "serial@3f8",
	.save = serial_save,
	.load = serial_load,
	.destroy = serial_destroy,
};

struct serial *serial_create(struct vm *vm, struct chardev *chr)
{
	struct serial *s = calloc(1, sizeof(*s));

	if (!s) {
		perrorf("serial: calloc");
		return NULL;
	}
	s->vm = vm;
	s->chr = chr;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->tx_room, NULL);
	chr->input = serial_input;
	chr->input_opaque = s;
	chr->brk = serial_break;
	chr->give_up = serial_give_up;
	chr->give_up_opaque = s->vm;
	if (iobus_register(&vm->pio, SERIAL_BASE, 8, serial_io, s) < 0 ||
	    vm_register_device(vm, &serial_ops, s) < 0) {
		serial_destroy(s);
		return NULL;
	}
	return s;
}
