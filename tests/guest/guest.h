/*
 * tern's test unikernel: constants shared by the assembly and the C code.
 *
 * The guest boots like OSv (64-bit Linux-boot entry with RSI = zero page, or the PVH note),
 * then runs everything in ring 3 with IOPL=3: on kvm_pvm ring-0 code is emulated and
 * ~2000x slower, so ring 0 only holds the boot stub, interrupt entry and a few system calls.
 */
#ifndef GUEST_H
#define GUEST_H

/* GDT selectors (tables.S). */
#define KERNEL_CS	0x08
#define KERNEL_DS	0x10
#define USER_DS		(0x18 | 3)
#define USER_CS		(0x20 | 3)
#define TSS_SEL		0x28

/* How we were entered: the first argument of kmain(). */
#define BOOT_LINUX64	1	/* info = zero page (boot_params) */
#define BOOT_PVH	2	/* info = hvm_start_info */

/* Debug/boot-marker port, as OSv: 1 = first instruction (tern), 123 = booted. */
#define PORT_MARKER	0x3f0

/*
 * Port I/O costs ~80 us from ring 3 on kvm_pvm (it goes through #GP and the emulator) but
 * ~10-15 us from ring 0, so the serial byte pumps and init sequences are system calls.
 *
 * System calls: ring 3 calls syscall_gate (ud2; ret), the #UD handler sees the gate's
 * address, steps over the ud2 and dispatches on rax; arguments in rdi, rsi.
 */
#define SYS_HALT	0	/* sti; hlt until an interrupt unless one is already pending */
#define SYS_WRMSR	1	/* wrmsr(ecx = rdi, rsi) */
#define SYS_RDMSR	2	/* rax = rdmsr(ecx = rdi) */
#define SYS_IRQ		3	/* rdi != 0: run ring 3 with interrupts enabled, else disabled */
#define SYS_CRASH	4	/* triple fault (null IDT, then fault) */
#define SYS_READ_CR2	5	/* rax = cr2 (for diagnostics) */
#define SYS_SERIAL_WRITE 6	/* write rsi bytes at rdi to COM1, waiting on LSR.THRE */
#define SYS_SERIAL_READ	7	/* rax = bytes read from COM1 into rdi (at most rsi) */
#define SYS_OUTB_LIST	8	/* rsi writes from the u32s at rdi: port | value << 16 */

/*
 * Interrupt vectors. Every vector in [VEC_FIRST, VEC_FIRST + 64) has a stub that sets bit
 * (vector - VEC_FIRST) in irq_pending and sends the x2APIC EOI.
 */
#define VEC_FIRST	0x20
#define VEC_IRQ(n)	(VEC_FIRST + (n))	/* IOAPIC line n (0..23) */
#define VEC_TIMER	0x40			/* local APIC timer */
#define VEC_COUNT	64
#define VEC_SPURIOUS	0xff

#endif
