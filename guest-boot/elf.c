/*
 * ELF64 kernels (OSv's loader.elf, Linux's vmlinux): every PT_LOAD goes to its physical
 * address; the 64-bit entry is e_entry, the PVH entry comes from a Xen PT_NOTE.
 * Nothing in the file is trusted: every offset and size is checked against the file and RAM.
 */
#include <elf.h>
#include <inttypes.h>
#include <stdlib.h>

#include "guest-boot/internal.h"
#include "vmm/util.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
/* Linux's default initrd_addr_max, for kernels that have no setup header to say otherwise. */
#define ELF_INITRD_ADDR_MAX 0x37ffffffULL

/* Low-memory areas tern fills in at boot; a segment there would be overwritten. */
static const struct {
	uint64_t start, end;
	const char *what;
} boot_areas[] = {
    {BOOT_GDT_ADDR, BOOT_PD_ADDR + 0x1000,
     "boot tables (GDT, PVH info, zero page, stack, page tables)"},
    {BOOT_CMDLINE_ADDR, BOOT_CMDLINE_ADDR + BOOT_CMDLINE_MAX, "cmdline"},
    {BOOT_EBDA_START, BOOT_HIMEM_START, "reserved area (EBDA, ACPI tables)"},
};

/* A PT_NOTE larger than this is no kernel's: it is not read (the PVH note is 20 bytes). */
#define ELF_NOTES_MAX (1 << 20)

bool elf_detect(const struct boot_file *f)
{
	return f->len >= SELFMAG && !memcmp(f->data, ELFMAG, SELFMAG);
}

static int elf_check_header(const struct boot_file *f, const Elf64_Ehdr *eh)
{
	if (f->len < EI_NIDENT || f->data[EI_CLASS] != ELFCLASS64) {
		errorf("%s: %s: not a 64-bit ELF", f->what, f->path);
		return -1;
	}
	if (f->len < sizeof(*eh)) {
		errorf("%s: %s: truncated ELF header (%" PRIu64 " bytes)", f->what, f->path,
		       f->size);
		return -1;
	}
	if (f->data[EI_DATA] != ELFDATA2LSB) {
		errorf("%s: %s: big-endian ELF, not x86_64", f->what, f->path);
		return -1;
	}
	if (eh->e_machine != EM_X86_64) {
		errorf("%s: %s: ELF for machine %u, not x86_64", f->what, f->path, eh->e_machine);
		return -1;
	}
	if (eh->e_type != ET_EXEC) {
		errorf("%s: %s: ELF type %u is not an executable (ET_EXEC)", f->what, f->path,
		       eh->e_type);
		return -1;
	}
	if (eh->e_phnum == 0 || eh->e_phnum == PN_XNUM || eh->e_phentsize != sizeof(Elf64_Phdr)) {
		errorf("%s: %s: ELF has no usable program headers", f->what, f->path);
		return -1;
	}
	if (eh->e_phoff > f->size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > f->size - eh->e_phoff) {
		errorf("%s: %s: truncated ELF: program headers past the end of the file", f->what,
		       f->path);
		return -1;
	}
	return 0;
}

/*
 * Every PT_LOAD, even one of memsz 0 that loads nothing: elf_in_segment() takes the file bytes
 * as loaded, and an entry there would run whatever RAM holds.
 */
static int elf_check_sizes(const struct boot_file *f, int i, const Elf64_Phdr *ph)
{
	if (ph->p_filesz > ph->p_memsz) {
		errorf("%s: %s: segment %d has filesz > memsz", f->what, f->path, i);
		return -1;
	}
	return 0;
}

static int elf_check_segment(const struct guest_mem *mem, const struct boot_file *f, int i,
			     const Elf64_Phdr *ph)
{
	uint64_t start = ph->p_paddr, end;

	if (ph->p_offset > f->size || ph->p_filesz > f->size - ph->p_offset) {
		errorf("%s: %s: truncated ELF: segment %d ends past the end of the file", f->what,
		       f->path, i);
		return -1;
	}
	if (!mem_fits(mem, start, ph->p_memsz)) {
		errorf("%s: %s: segment %d (0x%" PRIx64 "+0x%" PRIx64
		       ") lies outside guest RAM (%" PRIu64 " MiB)",
		       f->what, f->path, i, start, ph->p_memsz, mem->size >> 20);
		return -1;
	}
	end = start + ph->p_memsz; /* inside RAM: no wrap */
	for (size_t a = 0; a < ARRAY_SIZE(boot_areas); a++) {
		if (start < boot_areas[a].end && end > boot_areas[a].start) {
			errorf("%s: %s: segment %d (0x%" PRIx64 "-0x%" PRIx64
			       ") overlaps tern's %s at 0x%" PRIx64 "-0x%" PRIx64,
			       f->what, f->path, i, start, end, boot_areas[a].what,
			       boot_areas[a].start, boot_areas[a].end);
			return -1;
		}
	}
	return 0;
}

/* Walks the notes of one PT_NOTE segment (already bounds-checked) for Xen's PVH entry. */
static void elf_find_pvh(const uint8_t *p, uint64_t len, struct kernel_info *ki)
{
	while (len >= 12) {
		uint32_t namesz = get32(p), descsz = get32(p + 4), type = get32(p + 8);
		uint64_t name_len = ALIGN_UP((uint64_t)namesz, 4);
		uint64_t desc_len = ALIGN_UP((uint64_t)descsz, 4);

		if (name_len > len - 12 || desc_len > len - 12 - name_len)
			return;
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && !memcmp(p + 12, "Xen", 4)) {
			const uint8_t *desc = p + 12 + name_len;
			uint64_t entry = descsz >= 8 ? get64(desc) : descsz >= 4 ? get32(desc) : 0;

			if (entry && entry <= UINT32_MAX) {
				ki->has_pvh = true;
				ki->pvh_entry = entry;
			}
			return;
		}
		p += 12 + name_len + desc_len;
		len -= 12 + name_len + desc_len;
	}
}

/* The entry must be in what the file fills in: .bss (past p_filesz) is zeros. */
static bool elf_in_segment(const Elf64_Phdr *ph, uint64_t addr)
{
	return ph->p_type == PT_LOAD && addr >= ph->p_paddr && addr - ph->p_paddr < ph->p_filesz;
}

/* A PT_NOTE's notes, read if they are in the file and of a note's size. */
static int elf_note(const struct boot_file *f, const Elf64_Phdr *ph, struct kernel_info *ki)
{
	uint8_t *notes;

	if (ph->p_offset > f->size || ph->p_filesz > f->size - ph->p_offset ||
	    ph->p_filesz > ELF_NOTES_MAX)
		return 0;
	notes = malloc(ph->p_filesz);
	if (!notes) {
		errorf("%s: %s: out of memory", f->what, f->path);
		return -1;
	}
	if (file_pread(f, notes, ph->p_filesz, ph->p_offset) < 0) {
		free(notes);
		return -1;
	}
	elf_find_pvh(notes, ph->p_filesz, ki);
	free(notes);
	return 0;
}

/* Every PT_LOAD straight from the file into guest RAM, .bss zeroed. */
static int elf_load_segments(struct guest_mem *mem, const struct boot_file *f,
			     const Elf64_Phdr *ph, int n, struct kernel_info *ki)
{
	int nload = 0;

	for (int i = 0; i < n; i++) {
		if (ph[i].p_type == PT_NOTE && elf_note(f, &ph[i], ki) < 0)
			return -1;
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (elf_check_sizes(f, i, &ph[i]) < 0)
			return -1;
		if (ph[i].p_memsz == 0)
			continue;
		if (elf_check_segment(mem, f, i, &ph[i]) < 0 ||
		    file_pread(f, mem->base + ph[i].p_paddr, ph[i].p_filesz, ph[i].p_offset) < 0)
			return -1;
		memset(mem->base + ph[i].p_paddr + ph[i].p_filesz, 0,
		       ph[i].p_memsz - ph[i].p_filesz);
		ki->end = MAX(ki->end, ph[i].p_paddr + ph[i].p_memsz);
		nload++;
	}
	if (!nload) {
		errorf("%s: %s: ELF has no loadable segment", f->what, f->path);
		return -1;
	}
	return 0;
}

struct elf_span {
	uint64_t start, end;
	int i;
};

static int elf_span_cmp(const void *a, const void *b)
{
	const struct elf_span *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * Two PT_LOADs on the same RAM: the later one in the file overwrites the other's code, or
 * zeroes it as its .bss, and the kernel runs whatever is left (QEMU refuses such an image
 * too). Sorted by start, any overlap shows between neighbours. Called once every segment is
 * known to lie inside RAM, so no end wraps.
 */
static int elf_check_overlap(const struct boot_file *f, const Elf64_Phdr *ph, int n)
{
	struct elf_span *s = malloc((size_t)n * sizeof(*s));
	int ns = 0, r = 0;

	if (!s) {
		errorf("%s: %s: out of memory", f->what, f->path);
		return -1;
	}
	for (int i = 0; i < n; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_memsz)
			s[ns++] = (struct elf_span){ph[i].p_paddr, ph[i].p_paddr + ph[i].p_memsz, i};
	qsort(s, ns, sizeof(*s), elf_span_cmp);
	for (int k = 1; k < ns && !r; k++) {
		if (s[k].start < s[k - 1].end) {
			errorf("%s: %s: segments %d (0x%" PRIx64 "-0x%" PRIx64 ") and %d (0x%" PRIx64
			       "-0x%" PRIx64 ") overlap",
			       f->what, f->path, s[k - 1].i, s[k - 1].start, s[k - 1].end, s[k].i,
			       s[k].start, s[k].end);
			r = -1;
		}
	}
	free(s);
	return r;
}

int elf_load(struct guest_mem *mem, const struct boot_file *f, struct kernel_info *ki)
{
	Elf64_Ehdr eh;
	Elf64_Phdr *ph;
	bool entry_ok = false, pvh_ok = false;

	memcpy(&eh, f->data, MIN(sizeof(eh), f->len));
	if (elf_check_header(f, &eh) < 0)
		return -1;
	*ki = (struct kernel_info){.initrd_max = ELF_INITRD_ADDR_MAX,
				   .version = 0x020c,
				   .cmdline_max = BOOT_CMDLINE_MAX - 1};
	/* At most 65534 of 56 bytes: elf_check_header() found them inside the file. */
	ph = malloc((size_t)eh.e_phnum * sizeof(*ph));
	if (!ph) {
		errorf("%s: %s: out of memory", f->what, f->path);
		return -1;
	}
	if (file_pread(f, ph, (uint64_t)eh.e_phnum * sizeof(*ph), eh.e_phoff) < 0 ||
	    elf_load_segments(mem, f, ph, eh.e_phnum, ki) < 0 ||
	    elf_check_overlap(f, ph, eh.e_phnum) < 0) {
		free(ph);
		return -1;
	}
	/* The entries count only if they land in what was loaded: a virtual e_entry does not. */
	for (int i = 0; i < eh.e_phnum; i++) {
		entry_ok |= eh.e_entry && elf_in_segment(&ph[i], eh.e_entry);
		pvh_ok |= ki->has_pvh && elf_in_segment(&ph[i], ki->pvh_entry);
	}
	free(ph);
	ki->has_entry64 = entry_ok;
	ki->entry64 = eh.e_entry;
	ki->has_pvh = pvh_ok;
	return 0;
}
