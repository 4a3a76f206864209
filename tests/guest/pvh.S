/*
 * PVH entry (XEN_ELFNOTE_PHYS32_ENTRY), as QEMU's -kernel and Firecracker use when the note
 * exists: 32-bit protected mode, paging off, EBX = hvm_start_info. Enable PAE paging with the
 * static tables, enter long mode and join the 64-bit path.
 */
#include "guest.h"

	/* Xen ELF note. QEMU reads the descriptor as a pointer-sized value: .quad, as Linux. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 2f - 1f			/* namesz */
	.long 4f - 3f			/* descsz */
	.long 18			/* XEN_ELFNOTE_PHYS32_ENTRY */
1:	.asciz "Xen"
2:	.balign 4
3:	.quad pvh_entry
4:	.balign 4

	.section .text.entry, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	mov $PORT_MARKER, %dx
	mov $1, %al
	out %al, %dx
	rdtsc
	mov %eax, tsc_entry
	mov %edx, tsc_entry + 4

	mov %ebx, %esi			/* hvm_start_info */
	lgdt gdt_desc
	mov %cr4, %eax
	or $0x20, %eax			/* PAE */
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx		/* EFER.LME */
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax		/* PG | PE */
	mov %eax, %cr0
	ljmp $KERNEL_CS, $pvh64

	.code64
pvh64:
	mov %esi, %esi			/* upper halves are undefined after the mode switch */
	mov $BOOT_PVH, %edi
	jmp boot_common
