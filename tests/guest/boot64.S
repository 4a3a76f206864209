/*
 * 64-bit entry (Linux boot protocol, as OSv's ELF is booted "Firecracker style"): long mode,
 * the VMM's page tables, RSI = zero page. Everything here runs in ring 0, i.e. emulated on
 * kvm_pvm: load the static tables and leave for ring 3 at once.
 */
#include "guest.h"

	.section .text.entry, "ax"
	.code64
	.globl entry64
entry64:
	/* First instructions: tern stamps "exec to first guest instruction" on this write. */
	mov $PORT_MARKER, %dx
	mov $1, %al
	out %al, %dx
	rdtsc				/* for "entry to booted" (main.c) */
	mov %eax, tsc_entry
	mov %edx, tsc_entry + 4

	mov $BOOT_LINUX64, %edi		/* rsi = zero page, kept for kmain */
	mov $pml4, %eax
	mov %rax, %cr3			/* our 0-4 GiB map with U set; the VMM's maps 1 GiB */
	lgdt gdt_desc

	/* Joined by the PVH path: edi = boot kind, rsi = boot info, our GDT and CR3 loaded. */
	.globl boot_common
boot_common:
	mov $kstack_top, %rsp
	mov $TSS_SEL, %ax
	ltr %ax
	lidt idt_desc			/* empty until ring 3 fills it; IF stays 0 until then */

	/*
	 * CS is never reloaded in ring 0 (a far return would be one more emulated transition):
	 * iretq takes the user CS/SS from our GDT, and interrupt gates name KERNEL_CS.
	 */
	pushq $USER_DS
	pushq $ustack_top
	pushq $0x3002			/* IOPL=3 (port I/O from ring 3), IF=0 */
	pushq $USER_CS
	pushq $ring3_start
	iretq

	.data
	.balign 8
	.globl tsc_entry
tsc_entry:
	.quad 0

	.text
/* Ring 3 from here on. */
ring3_start:
	mov %rdi, %r12
	mov %rsi, %r13
	/* Zero .bss ourselves: do not rely on the loader zero-filling memsz. */
	mov $__bss_start, %edi
	mov $__bss_end, %ecx
	sub %edi, %ecx
	xor %eax, %eax
	cld
	rep stosb
	mov %r12, %rdi
	mov %r13, %rsi
	call kmain
	ud2
