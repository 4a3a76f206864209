/*
 * The CPU state a kernel starts in. GDT layout (Firecracker's): 0x00 null, 0x08 code,
 * 0x10 data, 0x18 TSS. The code segment is 64-bit for the Linux entry and 32-bit for PVH;
 * kernels load their own GDT at once, this one only has to be valid until then.
 * The 64-bit entry also gets identity page tables for the first 1 GiB (2 MiB pages).
 */
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "guest-boot/internal.h"
#include "vmm/util.h"

#define GDT_ENTRIES 4
#define SEL_CODE 0x08
#define SEL_DATA 0x10
#define SEL_TSS 0x18

#define CR0_PE (1u << 0)
#define CR0_ET (1u << 4)
#define CR0_NE (1u << 5)
#define CR0_PG (1u << 31)
#define CR4_PAE (1u << 5)
#define EFER_LME (1u << 8)
#define EFER_LMA (1u << 10)

#define PTE_PRESENT 0x1
#define PTE_RW 0x2
#define PTE_PS 0x80

/* flags: the descriptor's access byte (bits 0-7) and flags nibble (bits 12-15). */
static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0x000f0000) << 32) | ((uint64_t)(base & 0x00ffffff) << 16) |
	       (limit & 0xffff);
}

static void gdt_table(enum boot_mode mode, uint64_t gdt[GDT_ENTRIES])
{
	gdt[0] = 0;
	/* 0xa09b: 64-bit (L), present, exec/read, accessed; 0xc09b: the same, 32-bit (D) */
	gdt[1] = gdt_entry(mode == BOOT_LINUX64 ? 0xa09b : 0xc09b, 0, 0xfffff);
	gdt[2] = gdt_entry(0xc093, 0, 0xfffff); /* flat read/write data, 4 GiB */
	gdt[3] = gdt_entry(0x008b, 0, 0x67);	/* busy TSS: VM entry wants a usable TR */
}

static struct kvm_segment gdt_segment(uint64_t e, uint16_t sel)
{
	struct kvm_segment s = {
	    .base = ((e >> 16) & 0xffffff) | ((e >> 32) & 0xff000000),
	    .limit = (e & 0xffff) | ((e >> 32) & 0xf0000),
	    .selector = sel,
	    .type = (e >> 40) & 0xf,
	    .s = (e >> 44) & 1,
	    .dpl = (e >> 45) & 3,
	    .present = (e >> 47) & 1,
	    .avl = (e >> 52) & 1,
	    .l = (e >> 53) & 1,
	    .db = (e >> 54) & 1,
	    .g = (e >> 55) & 1,
	};

	if (s.g)
		s.limit = (s.limit << 12) | 0xfff;
	s.unusable = !s.present;
	return s;
}

static void entry_page_tables(struct guest_mem *mem)
{
	uint8_t *pml4 = mem->base + BOOT_PML4_ADDR, *pdpt = mem->base + BOOT_PDPT_ADDR;
	uint8_t *pd = mem->base + BOOT_PD_ADDR;

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	put64(pml4, BOOT_PDPT_ADDR | PTE_PRESENT | PTE_RW);
	put64(pdpt, BOOT_PD_ADDR | PTE_PRESENT | PTE_RW);
	for (uint64_t i = 0; i < 512; i++)
		put64(pd + i * 8, (i << 21) | PTE_PRESENT | PTE_RW | PTE_PS);
}

void entry_build(struct guest_mem *mem, enum boot_mode mode, uint64_t rip, struct boot_entry *out)
{
	uint64_t gdt[GDT_ENTRIES];

	gdt_table(mode, gdt);
	for (int i = 0; i < GDT_ENTRIES; i++)
		put64(mem->base + BOOT_GDT_ADDR + 8 * i, gdt[i]);
	*out = (struct boot_entry){
	    .mode = mode,
	    .rip = rip,
	    .rsp = BOOT_STACK_TOP,
	    .gdt_base = BOOT_GDT_ADDR,
	    .gdt_limit = sizeof(gdt) - 1,
	};
	if (mode == BOOT_LINUX64) {
		entry_page_tables(mem);
		out->cr3 = BOOT_PML4_ADDR;
		out->rsi = BOOT_ZERO_PAGE_ADDR;
	} else {
		out->rbx = BOOT_PVH_INFO_ADDR;
	}
}

static void entry_sregs(const struct boot_entry *e, struct kvm_sregs *s)
{
	uint64_t gdt[GDT_ENTRIES];

	gdt_table(e->mode, gdt);
	s->cs = gdt_segment(gdt[SEL_CODE / 8], SEL_CODE);
	s->ds = s->es = s->fs = s->gs = s->ss = gdt_segment(gdt[SEL_DATA / 8], SEL_DATA);
	s->tr = gdt_segment(gdt[SEL_TSS / 8], SEL_TSS);
	s->gdt.base = e->gdt_base;
	s->gdt.limit = e->gdt_limit;
	s->idt.base = 0;
	s->idt.limit = 0;
	if (e->mode == BOOT_LINUX64) {
		s->cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
		s->cr3 = e->cr3;
		s->cr4 = CR4_PAE;
		s->efer = EFER_LME | EFER_LMA;
	} else {
		s->cr0 = CR0_PE | CR0_ET;
		s->cr3 = 0;
		s->cr4 = 0;
		s->efer = 0;
	}
}

int boot_setup_vcpu(int vcpu_fd, const struct boot_entry *e)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
	    .rflags = 0x2,
	    .rip = e->rip,
	    .rsi = e->rsi,
	    .rbx = e->rbx,
	    .rsp = e->rsp,
	    .rbp = e->rsp,
	};
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};

	/* Start from KVM's reset state so that LDT, APIC base and the rest stay sane. */
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
		perrorf("boot: KVM_GET_SREGS");
		return -1;
	}
	entry_sregs(e, &sregs);
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
		perrorf("boot: KVM_SET_SREGS");
		return -1;
	}
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0) {
		perrorf("boot: KVM_SET_REGS");
		return -1;
	}
	if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0) {
		perrorf("boot: KVM_SET_FPU");
		return -1;
	}
	return 0;
}
