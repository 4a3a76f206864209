/*
 * Ring-0 entry points: exception stubs, interrupt stubs, the system-call gate (#UD).
 *
 * Rules of this platform (PLATFORM.md): never iret from ring 0 to ring 0, no int n, no
 * syscall, no SSE in ring 0, and every ring-0 instruction is emulated. So the handlers are
 * short, run with IF=0 (interrupt gates), and return only to ring 3.
 */
#include "guest.h"

	.text
	.code64

/* Ring 3 calls this; the #UD handler recognises the address, skips the ud2 and dispatches. */
	.globl syscall_gate
syscall_gate:
	ud2
	ret

/* Frame on entry: rip, cs, rflags, rsp, ss (no error code). */
	.globl ud_entry
ud_entry:
	cmpq $syscall_gate, (%rsp)
	jne 9f
	addq $2, (%rsp)
	cmp $SYS_HALT, %rax
	je sys_halt
	cmp $SYS_WRMSR, %rax
	je sys_wrmsr
	cmp $SYS_RDMSR, %rax
	je sys_rdmsr
	cmp $SYS_IRQ, %rax
	je sys_irq
	cmp $SYS_CRASH, %rax
	je sys_crash
	cmp $SYS_READ_CR2, %rax
	je sys_read_cr2
	cmp $SYS_SERIAL_WRITE, %rax
	je sys_serial_write
	cmp $SYS_SERIAL_READ, %rax
	je sys_serial_read
	cmp $SYS_OUTB_LIST, %rax
	je sys_outb_list
	mov $-1, %rax
	iretq
9:	pushq $0
	pushq $6
	jmp exc_common

/*
 * Halt until an interrupt, unless one came since ring 3 last looked (it reads irq_pending
 * with xchg, then calls us: an interrupt in between must not be slept through). The
 * interrupt is taken here in ring 0 and irq_common returns by hand to ring 3 through the
 * #UD frame at the top of the kernel stack.
 */
sys_halt:
	cmpq $0, irq_pending
	jne 1f
	sti
	hlt
	cli
1:	iretq

sys_wrmsr:
	mov %edi, %ecx
	mov %rsi, %rax
	mov %rsi, %rdx
	shr $32, %rdx
	wrmsr
	iretq

sys_rdmsr:
	mov %edi, %ecx
	rdmsr
	shl $32, %rdx
	or %rdx, %rax
	iretq

sys_irq:
	andq $~0x200, 16(%rsp)
	test %rdi, %rdi
	jz 1f
	orq $0x200, 16(%rsp)
1:	iretq

/* Port I/O is ~6x cheaper from ring 0 here (guest.h): the serial byte pumps. */
sys_serial_write:
	test %rsi, %rsi
	jz 3f
2:	mov $0x3fd, %dx
	in %dx, %al
	test $0x20, %al
	jz 2b
	mov $0x3f8, %dx
	mov (%rdi), %al
	out %al, %dx
	inc %rdi
	dec %rsi
	jnz 2b
3:	iretq

sys_serial_read:
	xor %ecx, %ecx
1:	cmp %rsi, %rcx
	jae 2f
	mov $0x3fd, %dx
	in %dx, %al
	cmp $0xff, %al		/* no UART at all (QEMU's -serial none): nothing to read */
	je 2f
	test $0x01, %al
	jz 2f
	mov $0x3f8, %dx
	in %dx, %al
	mov %al, (%rdi, %rcx)
	inc %rcx
	jmp 1b
2:	mov %rcx, %rax
	iretq

sys_outb_list:
	test %rsi, %rsi
	jz 2f
1:	mov (%rdi), %eax
	mov %eax, %edx
	shr $16, %eax
	out %al, %dx
	add $4, %rdi
	dec %rsi
	jnz 1b
2:	iretq

sys_read_cr2:
	mov %cr2, %rax
	iretq

	.globl sys_crash
sys_crash:
	lidt null_idt_desc
	ud2

/*
 * Interrupts: vector pushed by the stub. Record it, EOI through the x2APIC MSR, return.
 * If the interrupt hit ring 0, it can only be the sti;hlt of sys_halt: resume ring 3 from
 * the #UD frame (rip already past the ud2) instead of iret'ing to ring 0.
 */
irq_common:
	push %rax
	push %rcx
	push %rdx
	mov 24(%rsp), %rax
	cmp $VEC_SPURIOUS, %eax
	je 1f				/* spurious: no EOI */
	sub $VEC_FIRST, %eax
	bts %rax, irq_pending
	mov apic_eoi_mmio, %rcx
	test %rcx, %rcx
	jnz 3f
	mov $0x80b, %ecx
	xor %eax, %eax
	xor %edx, %edx
	wrmsr
1:	pop %rdx
	pop %rcx
	pop %rax
	add $8, %rsp
	testb $3, 8(%rsp)
	jnz 2f
	mov $kstack_top - 40, %rsp
2:	iretq
3:	movl $0, (%rcx)			/* xAPIC (no x2APIC, e.g. QEMU TCG): EOI register */
	jmp 1b

/* Exceptions: all registers saved, then fault() prints them and triple-faults. */
exc_common:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, %rdi
	and $-16, %rsp
	call fault
	jmp sys_crash

/* Stub tables, read by idt.c (ring 3) to fill the IDT. */
	.section .rodata
	.balign 8
	.globl exc_stubs
exc_stubs:
	.set vec, 0
	.rept 32
	.pushsection .text
1:
	.if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0
	.endif
	pushq $vec
	jmp exc_common
	.popsection
	.quad 1b
	.set vec, vec + 1
	.endr

	.globl irq_stubs
irq_stubs:
	.set vec, VEC_FIRST
	.rept VEC_COUNT
	.pushsection .text
1:	pushq $vec
	jmp irq_common
	.popsection
	.quad 1b
	.set vec, vec + 1
	.endr

	.globl spurious_stub
spurious_stub:
	.pushsection .text
1:	pushq $VEC_SPURIOUS
	jmp irq_common
	.popsection
	.quad 1b

	.section .bss
	.balign 8
	.globl irq_pending
irq_pending:
	.quad 0
	/* Address of the xAPIC EOI register, or 0 for the x2APIC EOI MSR (apic.c). */
	.globl apic_eoi_mmio
apic_eoi_mmio:
	.quad 0
