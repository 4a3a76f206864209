/* Interrupt controllers: 8259 PIC (masked), x2APIC (timer, EOI), IOAPIC (device lines). */
#ifndef APIC_H
#define APIC_H

#include <stdint.h>

int apic_init(void);			/* mask the PIC, enable the x2APIC; 0 on success */
void apic_timer_start(uint32_t period_us);	/* periodic, vector VEC_TIMER */
uint32_t apic_timer_mhz(uint32_t *measured);	/* the rate in use; *measured vs kvmclock */
void ioapic_init(void);
void ioapic_route(unsigned irq, unsigned vector);	/* edge, active high, to this CPU */
void ioapic_mask(unsigned irq);

#endif
