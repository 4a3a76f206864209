/*
 * Linux bzImages, entered at their 64-bit entry (boot protocol 2.12+, XLF_KERNEL_64): the
 * protected-mode code goes to 0x100000 and runs from +0x200; the setup header travels in the
 * zero page. See Linux Documentation/arch/x86/boot.rst.
 */
#include <inttypes.h>

#include "guest-boot/internal.h"
#include "vmm/util.h"

/* Offsets in the file's first sector, as in struct setup_header / boot_params. */
#define HDR_START 0x1f1 /* setup_sects */
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202 /* "HdrS" */
#define HDR_VERSION 0x206
#define HDR_LOADFLAGS 0x211
#define HDR_SYSSIZE 0x1f4 /* the protected-mode code's size, in 16-byte units */
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_HARDWARE_SUBARCH 0x23c /* and hardware_subarch_data at 0x240: the loader's */
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_SETUP_DATA 0x250 /* the loader's: a list the kernel walks */
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define HDR_END_MAX 0x290 /* boot_params.edd_mbr_sig_buffer follows the header */

#define LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x01
#define BZ_MIN_VERSION 0x020c
#define BZ_ENTRY64_OFFSET 0x200

bool bzimage_detect(const struct boot_file *f)
{
	return f->len >= HDR_MAGIC + 4 && !memcmp(f->data + HDR_MAGIC, "HdrS", 4);
}

static int bzimage_check(const struct boot_file *f, uint64_t *setup_size)
{
	const uint8_t *d = f->data;
	uint16_t version;
	unsigned sects;

	if (f->len < HDR_END_MAX) {
		errorf("%s: %s: truncated bzImage setup header", f->what, f->path);
		return -1;
	}
	version = get16(d + HDR_VERSION);
	if (version < BZ_MIN_VERSION) {
		errorf("%s: %s: bzImage boot protocol %u.%02u is too old (tern needs 2.12+ for the "
		       "64-bit entry)",
		       f->what, f->path, version >> 8, version & 0xff);
		return -1;
	}
	if (!(d[HDR_LOADFLAGS] & LOADED_HIGH) || !(get16(d + HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
		errorf("%s: %s: bzImage has no 64-bit entry point (xloadflags)", f->what, f->path);
		return -1;
	}
	/* The header ends where its leading jump lands; 2.12's fields must be in it. */
	if (HDR_MAGIC + d[HDR_JUMP + 1] < HDR_INIT_SIZE + 4) {
		errorf("%s: %s: bzImage setup header ends at 0x%x, before protocol 2.12's fields",
		       f->what, f->path, HDR_MAGIC + d[HDR_JUMP + 1]);
		return -1;
	}
	sects = d[HDR_START] ? d[HDR_START] : 4; /* 0 means 4, for old kernels */
	*setup_size = (uint64_t)(sects + 1) * 512;
	/* Linux's build pads the code to exactly syssize paragraphs: fewer bytes is a cut file. */
	if (*setup_size >= f->size || f->size - *setup_size < (uint64_t)get32(d + HDR_SYSSIZE) * 16 ||
	    f->size - *setup_size <= BZ_ENTRY64_OFFSET) {
		errorf("%s: %s: truncated bzImage: %" PRIu64 " bytes of protected-mode code after "
		       "%" PRIu64 " of setup, its header says %" PRIu64,
		       f->what, f->path, f->size > *setup_size ? f->size - *setup_size : 0,
		       *setup_size, (uint64_t)get32(d + HDR_SYSSIZE) * 16);
		return -1;
	}
	if (get32(d + HDR_INIT_SIZE) < f->size - *setup_size) {
		errorf("%s: %s: bzImage init_size %" PRIu32 " is smaller than its code", f->what,
		       f->path, get32(d + HDR_INIT_SIZE));
		return -1;
	}
	return 0;
}

/*
 * Where the kernel decompresses: its 64-bit entry moves it to the higher of pref_address and
 * the load address aligned to kernel_alignment (arch/x86/boot/compressed/head_64.S), and
 * needs init_size bytes from there.
 */
static int bzimage_run_addr(const struct boot_file *f, uint64_t *addr)
{
	uint32_t align = get32(f->data + HDR_KERNEL_ALIGNMENT);

	if (!align || (align & (align - 1))) {
		errorf("%s: %s: bzImage kernel_alignment 0x%" PRIx32 " is not a power of two",
		       f->what, f->path, align);
		return -1;
	}
	*addr = MAX(get64(f->data + HDR_PREF_ADDRESS), ALIGN_UP(BOOT_KERNEL_ADDR, align));
	return 0;
}

int bzimage_load(struct guest_mem *mem, const struct boot_file *f, struct kernel_info *ki)
{
	uint64_t setup_size, code_size, run, init_size;
	size_t hdr_end;

	if (bzimage_check(f, &setup_size) < 0 || bzimage_run_addr(f, &run) < 0)
		return -1;
	code_size = f->size - setup_size;
	init_size = get32(f->data + HDR_INIT_SIZE);
	if (!mem_fits(mem, BOOT_KERNEL_ADDR, code_size) || !mem_fits(mem, run, init_size)) {
		errorf("%s: %s: bzImage does not fit in guest RAM of %" PRIu64 " MiB: it is "
		       "loaded at 0x%llx (%" PRIu64 " KiB) and decompresses at 0x%" PRIx64
		       " (init_size %" PRIu64 " KiB)",
		       f->what, f->path, mem->size >> 20, BOOT_KERNEL_ADDR, code_size >> 10, run,
		       init_size >> 10);
		return -1;
	}
	if (file_pread(f, mem->base + BOOT_KERNEL_ADDR, code_size, setup_size) < 0)
		return -1;

	*ki = (struct kernel_info){
	    .bzimage = true,
	    .has_entry64 = true,
	    .entry64 = BOOT_KERNEL_ADDR + BZ_ENTRY64_OFFSET,
	    .end = MAX(BOOT_KERNEL_ADDR + code_size, run + init_size),
	    .initrd_max = get32(f->data + HDR_INITRD_ADDR_MAX),
	    .version = get16(f->data + HDR_VERSION),
	    .cmdline_max = MIN(get32(f->data + HDR_CMDLINE_SIZE), BOOT_CMDLINE_MAX - 1),
	};
	/* The header ends where its leading jump lands: 0x202 + the jump's byte offset. */
	hdr_end = MIN((size_t)HDR_MAGIC + f->data[HDR_JUMP + 1], (size_t)HDR_END_MAX);
	ki->setup_hdr_len = hdr_end - HDR_START;
	memcpy(ki->setup_hdr, f->data + HDR_START, ki->setup_hdr_len);
	/*
	 * The loader's fields (bzimage_check() found them in the header) are ours: none here.
	 * The offset first: setup_hdr + 0x23c alone would point far past the array (UB).
	 */
	memset(ki->setup_hdr + (HDR_HARDWARE_SUBARCH - HDR_START), 0, 12);
	memset(ki->setup_hdr + (HDR_SETUP_DATA - HDR_START), 0, 8);
	return 0;
}
