/*
 * Fill the IDT from ring 3: every page is mapped U|RW, and building 256 gates in ring 0
 * would cost thousands of emulated instructions. Ring 0 has already lidt'd this table.
 */
#include "lib.h"
#include "sys.h"

extern uint64_t idt[256 * 2];
extern const uint64_t exc_stubs[32], irq_stubs[VEC_COUNT], spurious_stub[1];
extern char ud_entry[];

static void set_gate(unsigned vec, uint64_t handler, unsigned ist)
{
	/* 64-bit interrupt gate (IF cleared on entry), DPL 0, present. */
	idt[vec * 2] = (handler & 0xffff) | (uint64_t)KERNEL_CS << 16 | (uint64_t)ist << 32 |
		       0x8eULL << 40 | ((handler >> 16) & 0xffff) << 48;
	idt[vec * 2 + 1] = handler >> 32;
}

void idt_init(void)
{
	for (unsigned v = 0; v < 32; v++)
		set_gate(v, exc_stubs[v], v == 2 || v == 8 ? 1 : 0);
	set_gate(6, (uintptr_t)ud_entry, 0);	/* the system-call gate */
	for (unsigned v = 0; v < VEC_COUNT; v++)
		set_gate(VEC_FIRST + v, irq_stubs[v], 0);
	set_gate(VEC_SPURIOUS, spurious_stub[0], 0);
}
