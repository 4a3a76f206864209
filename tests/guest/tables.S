/*
 * Static, pre-initialised boot tables. On kvm_pvm every ring-0 instruction is emulated
 * (~1 us each), so nothing here is built by a loop at run time: the assembler writes the
 * page tables and the GDT into the image, and ring 0 only loads them.
 */
#include "guest.h"

	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + 0x7		/* P | RW | U */
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x0000 + 0x7
	.quad pd + 0x1000 + 0x7
	.quad pd + 0x2000 + 0x7
	.quad pd + 0x3000 + 0x7
	.fill 508, 8, 0
/*
 * Identity map of 0-4 GiB with 2 MiB pages, P | RW | U | PS everywhere: ring 3 reaches RAM,
 * the virtio-mmio window (0xd0000000) and the IOAPIC/LAPIC (0xfec00000). The last GiB (the
 * MMIO hole) is mapped uncached (PCD | PWT), as device memory should be.
 */
pd:
	.set addr, 0
	.rept 2048
	.if addr >= 0xc0000000
	.quad addr | 0x9f
	.else
	.quad addr | 0x87
	.endif
	.set addr, addr + 0x200000
	.endr

	.section .data, "aw"
	.balign 16
	.globl gdt
gdt:
	.quad 0				/* 0x00 null */
	.quad 0x00af9b000000ffff	/* 0x08 kernel code, 64-bit */
	.quad 0x00cf93000000ffff	/* 0x10 kernel data */
	.quad 0x00cff3000000ffff	/* 0x18 user data, DPL 3 */
	.quad 0x00affb000000ffff	/* 0x20 user code, 64-bit, DPL 3 */
	/* 0x28 64-bit TSS; the base is split by the linker script (guest.ld) */
	.word tss_end - tss - 1
	.word tss_base_0_15
	.byte tss_base_16_23
	.byte 0x89			/* present, available 64-bit TSS */
	.byte 0
	.byte tss_base_24_31
	.long 0				/* base 32-63: the image lives below 4 GiB */
	.long 0
gdt_end:

	.balign 8
	.word 0, 0, 0
	.globl gdt_desc
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt

	.word 0, 0, 0
	.globl idt_desc
idt_desc:
	.word 256 * 16 - 1
	.quad idt

	/* Loaded to crash: no vector can be delivered, so the next fault is a triple fault. */
	.word 0, 0, 0
	.globl null_idt_desc
null_idt_desc:
	.word 0
	.quad 0

	.balign 16
	.globl tss
tss:
	.long 0
	.quad kstack_top		/* rsp0: stack for interrupts/exceptions from ring 3 */
	.quad 0, 0			/* rsp1, rsp2 */
	.quad 0
	.quad ist1_stack_top		/* ist1: #DF and NMI, so a broken kstack still reports */
	.quad 0, 0, 0, 0, 0, 0		/* ist2-7 */
	.quad 0
	.word 0
	.word iomap - tss
	/*
	 * An all-open I/O permission bitmap. IOPL=3 should make it moot, but kvm_pvm raises
	 * #GP for port I/O in ring 3 without one.
	 */
iomap:
	.fill 8192, 1, 0
	.byte 0xff
tss_end:

	/* The IDT is filled by ring 3 (idt.c) before interrupts are enabled. */
	.section .bss, "aw", @nobits
	.balign 4096
	.globl idt
idt:
	.skip 256 * 16

	/* Stacks: not zeroed by ring 3 at start (it runs on ustack). */
	.section .stack, "aw", @nobits
	.balign 4096
	.skip 16384
	.globl kstack_top
kstack_top:
	.skip 4096
	.globl ist1_stack_top
ist1_stack_top:
	.skip 131072
	.globl ustack_top
ustack_top:
