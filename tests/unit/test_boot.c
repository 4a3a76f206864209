/*
 * guest-boot/ on a malloc'ed guest RAM: ELF and bzImage loading, every rejected input with
 * its one error line, the zero page, e820, PVH start_info, cmdline, initrd, ACPI tables,
 * GDT and page tables. TERN_ACPI_DUMP=DIR writes the ACPI tables there for `iasl -d`.
 */
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-boot/aml.h"
#include "guest-boot/internal.h"
#include "tests/unit/boot_util.h"
#include "tests/unit/unit.h"

#define RAM (64ULL << 20)

static struct guest_mem mem;
static uint8_t elfbuf[0x3000];

static void mem_reset(void)
{
	/* Garbage, not zeros: loaders must clear what they claim to clear. */
	memset(mem.base, 0xcc, mem.size);
}

static const uint8_t code[] = {0x90, 0x90, 0xf4, 0x11, 0x22, 0x33, 0x44, 0x55};

static const char *good_elf(uint64_t entry, uint32_t pvh)
{
	struct test_elf t = {.paddr = 0x200000,
			     .vaddr = 0x40200000,
			     .entry = entry,
			     .pvh_entry = pvh,
			     .code = code,
			     .code_len = sizeof(code),
			     .memsz = 0x3000};

	return tmp_file("good.elf", elfbuf, build_elf(elfbuf, sizeof(elfbuf), &t));
}

/* boot_load must fail with exactly one line containing want. */
static void expect_fail(const struct boot_cfg *cfg, const char *want, int line)
{
	struct boot_entry e;
	const char *err;
	int r;

	mem_reset();
	capture_begin();
	r = boot_load(&mem, cfg, &e);
	err = capture_end();
	if (r != -1 || !strstr(err, want) || count_lines(err) != 1 || strncmp(err, "tern: ", 6)) {
		unit_failed++;
		printf("FAIL %s:%d: want -1 and one line with \"%s\", got %d and \"%s\"\n",
		       __FILE__, line, want, r, err);
	} else {
		unit_passed++;
	}
}
#define EXPECT_FAIL(cfg, want) expect_fail(cfg, want, __LINE__)

static void test_elf_good(void)
{
	struct boot_cfg cfg = {.kernel = good_elf(0x200000, 0x200002), .ncpus = 1};
	struct boot_entry e;

	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_EQ(e.mode, BOOT_LINUX64);
	CHECK_EQ(e.rip, 0x200000);
	CHECK_EQ(e.rsi, BOOT_ZERO_PAGE_ADDR);
	CHECK_EQ(e.rsp, BOOT_STACK_TOP);
	CHECK_EQ(e.cr3, BOOT_PML4_ADDR);
	CHECK_EQ(e.gdt_base, BOOT_GDT_ADDR);
	CHECK_EQ(e.gdt_limit, 31);
	CHECK(!memcmp(mem.base + 0x200000, code, sizeof(code)));
	/* bss: memsz beyond filesz is zero, and nothing past memsz was touched */
	CHECK_EQ(mem.base[0x200000 + sizeof(code)], 0);
	CHECK_EQ(get64(mem.base + 0x202ff8), 0);
	CHECK_EQ(mem.base[0x203000], 0xcc);

	cfg.force_pvh = true;
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_EQ(e.mode, BOOT_PVH32);
	CHECK_EQ(e.rip, 0x200002);
	CHECK_EQ(e.rbx, BOOT_PVH_INFO_ADDR);
}

static void test_elf_entry_choice(void)
{
	struct boot_cfg cfg = {.ncpus = 1};
	struct boot_entry e;

	/* a virtual e_entry is no 64-bit entry: the PVH note is used */
	cfg.kernel = good_elf(0x40200000, 0x200004);
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_EQ(e.mode, BOOT_PVH32);
	CHECK_EQ(e.rip, 0x200004);

	cfg.kernel = good_elf(0, 0x200004);
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_EQ(e.mode, BOOT_PVH32);

	cfg.kernel = good_elf(0x40200000, 0);
	EXPECT_FAIL(&cfg, "entry point 0x40200000 is outside the loaded segments");
	/* In the segment, but past what the file fills in: zeros to run. */
	cfg.kernel = good_elf(0x202000, 0);
	EXPECT_FAIL(&cfg, "entry point 0x202000 is outside the loaded segments (or in their .bss)");
	cfg.kernel = good_elf(0x200000, 0);
	cfg.force_pvh = true;
	EXPECT_FAIL(&cfg, "no PVH entry");
	/* Linux writes the note's entry as a 64-bit word (_ASM_PTR): descsz 8 */
	{
		struct test_elf t = {.paddr = 0x200000, .vaddr = 0x40200000, .entry = 0x40200000,
				     .pvh_entry = 0x200006, .code = code, .code_len = sizeof(code),
				     .memsz = 0x3000};
		size_t len = build_elf(elfbuf, sizeof(elfbuf), &t);
		Elf64_Phdr *ph = (Elf64_Phdr *)(elfbuf + sizeof(Elf64_Ehdr));
		uint8_t *note = elfbuf + ph[1].p_offset;

		put32(note + 4, 8);
		put64(note + 16, 0x200006);
		ph[1].p_filesz = 24;
		cfg.kernel = tmp_file("pvh64.elf", elfbuf, len);
		cfg.force_pvh = false;
		mem_reset();
		CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
		CHECK_EQ(e.mode, BOOT_PVH32);
		CHECK_EQ(e.rip, 0x200006);
		/* an entry above 4 GiB is no 32-bit entry */
		put64(note + 16, 0x100200006ULL);
		cfg.kernel = tmp_file("pvh64-high.elf", elfbuf, len);
		EXPECT_FAIL(&cfg, "no PVH note");
		cfg.force_pvh = true;
	}
	/* a note pointing outside the image does not count */
	cfg.kernel = good_elf(0x200000, 0x900000);
	EXPECT_FAIL(&cfg, "no PVH entry");
}

static void test_elf_bad(void)
{
	struct boot_cfg cfg = {.ncpus = 1};
	struct boot_entry e;
	struct test_elf t = {.paddr = 0x200000,
			     .vaddr = 0x200000,
			     .entry = 0x200000,
			     .code = code,
			     .code_len = sizeof(code),
			     .memsz = 0x1000};
	size_t len;
	Elf64_Ehdr *eh = (Elf64_Ehdr *)elfbuf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(elfbuf + sizeof(*eh));
	char path[200];

	snprintf(path, sizeof(path), "%s/missing.elf", tmpdir);
	cfg.kernel = path;
	EXPECT_FAIL(&cfg, "kernel: ");
	EXPECT_FAIL(&cfg, "missing.elf: No such file or directory");
	/* The path quoted as it is would end the line early: still one line. */
	cfg.kernel = "/nonexistent/a\nb\x1b[2J.elf";
	EXPECT_FAIL(&cfg, "kernel: /nonexistent/a?b?[2J.elf: No such file or directory");
	/* A tab keeps it one line, and UTF-8 is not control characters: both shown as they are. */
	cfg.kernel = "/nonexistent/caf\xc3\xa9\tb.elf";
	EXPECT_FAIL(&cfg, "kernel: /nonexistent/caf\xc3\xa9\tb.elf: No such file or directory");
	/* C1 controls (CSI here), as UTF-8 or as a lone byte, and bytes that are no UTF-8: '?'. */
	cfg.kernel = "/nonexistent/\xc2\x9b" "2J\x9b" "2J\xc0\xaf\xed\xa0\x80\xe2\x82\xac\xf0\x9f\x90.elf";
	EXPECT_FAIL(&cfg, "kernel: /nonexistent/?2J?2J?????\xe2\x82\xac???.elf: No such file");
	/* A path of thousands of characters: the line is cut, but still says why. */
	{
		static char longpath[3100] = "/nonexistent/";

		for (size_t i = strlen(longpath); i + 2 < sizeof(longpath) - 10; i += 2)
			memcpy(longpath + i, "d/", 2);
		strcat(longpath, "k.elf");
		cfg.kernel = longpath;
		EXPECT_FAIL(&cfg, "d/d/d/k.elf: No such file or directory");
	}
	cfg.kernel = tmp_file("empty", "", 0);
	EXPECT_FAIL(&cfg, "empty: empty file");
	cfg.kernel = tmp_file("text", "hello, world\n", 13);
	EXPECT_FAIL(&cfg, "text: not an ELF or bzImage kernel");
	cfg.kernel = tmpdir;
	EXPECT_FAIL(&cfg, "not a regular file");
	/* A FIFO with no writer: refused at once, not waited on. */
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	CHECK_EQ(mkfifo(path, 0600), 0);
	cfg.kernel = path;
	EXPECT_FAIL(&cfg, "fifo: not a regular file");

	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	cfg.kernel = tmp_file("short.elf", elfbuf, 40);
	EXPECT_FAIL(&cfg, "truncated ELF header");
	cfg.kernel = tmp_file("nophdr.elf", elfbuf, 100);
	EXPECT_FAIL(&cfg, "program headers past the end");
	cfg.kernel = tmp_file("cutseg.elf", elfbuf, len - 4);
	EXPECT_FAIL(&cfg, "segment 0 ends past the end of the file");

	/* offsets that overflow when added must not wrap around */
	ph->p_offset = UINT64_MAX - 2;
	cfg.kernel = tmp_file("wrap.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "segment 0 ends past the end of the file");
	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	eh->e_phoff = UINT64_MAX - 8;
	cfg.kernel = tmp_file("wrap2.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "program headers past the end");

	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	elfbuf[EI_CLASS] = ELFCLASS32;
	cfg.kernel = tmp_file("32.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "not a 64-bit ELF");
	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	eh->e_machine = EM_AARCH64;
	cfg.kernel = tmp_file("arm.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "ELF for machine 183, not x86_64");
	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	eh->e_type = ET_DYN;
	cfg.kernel = tmp_file("dyn.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "not an executable");
	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	ph->p_filesz = 0x2000;
	ph->p_memsz = 0x1000;
	cfg.kernel = tmp_file("fsz.elf", elfbuf, sizeof(elfbuf));
	EXPECT_FAIL(&cfg, "filesz > memsz");

	t.paddr = RAM - 0x800;
	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	cfg.kernel = tmp_file("high.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "segment 0 (0x3fff800+0x1000) lies outside guest RAM (64 MiB)");
	t.paddr = UINT64_MAX - 0x10;
	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	cfg.kernel = tmp_file("wrap3.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "lies outside guest RAM");
	t.paddr = 0x8000;
	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	cfg.kernel = tmp_file("low.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "segment 0 (0x8000-0x9000) overlaps tern's boot tables");
	t.paddr = 0xe0000;
	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	cfg.kernel = tmp_file("acpi.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "overlaps tern's reserved area");

	/*
	 * Two segments on the same RAM: whichever comes last would silently overwrite the
	 * other's code or zero it as .bss (QEMU refuses such an image too). Touching ones are
	 * fine, in either order.
	 */
	t.paddr = 0x200000;
	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	ph[1] = ph[0];
	ph[1].p_paddr = 0x300000;
	ph[1].p_memsz = 0x100000;
	ph[0].p_memsz = 0x100000;
	eh->e_phnum = 2;
	eh->e_entry = 0x300000;
	cfg.kernel = tmp_file("touch.elf", elfbuf, len);
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	ph[0].p_paddr = 0x400000;
	ph[0].p_memsz = 0x1000;
	cfg.kernel = tmp_file("touch2.elf", elfbuf, len);
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	ph[0].p_paddr = 0x3ff000;
	ph[0].p_memsz = 0x2000;
	cfg.kernel = tmp_file("overlap.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "segments 1 (0x300000-0x400000) and 0 (0x3ff000-0x401000) overlap");
	/* .bss of one over the code of the next: the code would be zeroed */
	ph[0].p_paddr = 0x200000;
	ph[0].p_memsz = 0x100001;
	cfg.kernel = tmp_file("overlap-bss.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "segments 0 (0x200000-0x300001) and 1 (0x300000-0x400000) overlap");

	/*
	 * A PT_LOAD with file bytes but no memsz loads nothing: an entry in its file bytes
	 * would start the kernel on whatever RAM holds there.
	 */
	len = build_elf(elfbuf, sizeof(elfbuf), &t);
	ph[1] = ph[0];
	ph[1].p_paddr = 0x300000;
	ph[1].p_memsz = 0;
	eh->e_phnum = 2;
	eh->e_entry = 0x300000;
	cfg.kernel = tmp_file("nomemsz.elf", elfbuf, len);
	EXPECT_FAIL(&cfg, "segment 1 has filesz > memsz");
}

/* A kernel file of 20 GiB (sparse): only its headers and segments are read, not all of it. */
static void test_huge_kernel_file(void)
{
	struct boot_cfg cfg = {.kernel = good_elf(0x200000, 0), .ncpus = 1};
	struct boot_entry e;

	CHECK_EQ(truncate(cfg.kernel, 20ULL << 30), 0);
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_EQ(e.rip, 0x200000);
	CHECK(!memcmp(mem.base + 0x200000, code, sizeof(code)));
	unlink(cfg.kernel);
}

static void test_mem_limits(void)
{
	struct boot_cfg cfg = {.kernel = good_elf(0x200000, 0), .ncpus = 1};
	struct guest_mem saved = mem;
	struct boot_entry e;
	const char *err;

	/* rejected before anything is written, so a fake size is safe here */
	mem.size = 4ULL << 30;
	capture_begin();
	CHECK_EQ(boot_load(&mem, &cfg, &e), -1);
	err = capture_end();
	CHECK(strstr(err, "memory: 4096 MiB is more than the 3072 MiB") != NULL);
	mem.size = 1ULL << 20;
	capture_begin();
	CHECK_EQ(boot_load(&mem, &cfg, &e), -1);
	err = capture_end();
	CHECK(strstr(err, "too small") != NULL);
	mem = saved;
}

static void test_zero_page(void)
{
	struct boot_cfg cfg = {
	    .kernel = good_elf(0x200000, 0x200002), .cmdline = "--nopci", .ncpus = 1};
	struct boot_entry e;
	uint8_t *zp = mem.base + BOOT_ZERO_PAGE_ADDR, *e820 = zp + 0x2d0;

	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_EQ(get16(zp + 0x1fe), 0xaa55);
	CHECK(!memcmp(zp + 0x202, "HdrS", 4));
	CHECK(get16(zp + 0x206) >= 0x020c);
	CHECK_EQ(zp[0x210], 0xff);
	CHECK_EQ(get32(zp + 0x228), BOOT_CMDLINE_ADDR);
	CHECK_EQ(get32(zp + 0x238), BOOT_CMDLINE_MAX - 1);
	CHECK_EQ(get64(zp + 0x070), BOOT_ACPI_ADDR);
	CHECK_EQ(get32(zp + 0x218), 0); /* no initrd */
	CHECK_EQ(get32(zp + 0x21c), 0);
	CHECK_EQ(zp[0x100], 0); /* the rest was cleared, not left as garbage */
	CHECK_STR((char *)mem.base + BOOT_CMDLINE_ADDR, "--nopci");

	CHECK_EQ(zp[0x1e8], 3);
	CHECK_EQ(get64(e820 + 0), 0);
	CHECK_EQ(get64(e820 + 8), 0x9fc00);
	CHECK_EQ(get32(e820 + 16), 1);
	CHECK_EQ(get64(e820 + 20), 0x9fc00);
	CHECK_EQ(get64(e820 + 28), 0x100000 - 0x9fc00);
	CHECK_EQ(get32(e820 + 36), 2);
	CHECK_EQ(get64(e820 + 40), 0x100000);
	CHECK_EQ(get64(e820 + 48), RAM - 0x100000);
	CHECK_EQ(get32(e820 + 56), 1);
	CHECK_EQ(get64(e820 + 68), 0); /* no fourth entry */
}

static void test_pvh_info(void)
{
	struct boot_cfg cfg = {
	    .kernel = good_elf(0x200000, 0x200002), .force_pvh = true, .ncpus = 1};
	struct boot_entry e;
	uint8_t *si = mem.base + BOOT_PVH_INFO_ADDR, *mm;

	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_EQ(get32(si), 0x336ec578);
	CHECK_EQ(get32(si + 4), 1);
	CHECK_EQ(get32(si + 12), 0); /* no modules */
	CHECK_EQ(get64(si + 24), BOOT_CMDLINE_ADDR);
	CHECK_EQ(get64(si + 32), BOOT_ACPI_ADDR);
	CHECK_EQ(get32(si + 48), 3);
	mm = mem.base + get64(si + 40);
	CHECK(get64(si + 40) > BOOT_PVH_INFO_ADDR && get64(si + 40) < BOOT_ZERO_PAGE_ADDR);
	CHECK_EQ(get64(mm + 48), 0x100000);
	CHECK_EQ(get64(mm + 56), RAM - 0x100000);
	CHECK_EQ(get32(mm + 64), 1);
	CHECK_EQ(get32(mm + 24 + 16), 2);
	CHECK_EQ(mem.base[BOOT_CMDLINE_ADDR], 0); /* empty cmdline, NUL-terminated */
	/* the 32-bit GDT: code 0x08 is 32-bit (D set, L clear) */
	CHECK_EQ(get64(mem.base + BOOT_GDT_ADDR + 8), 0x00cf9b000000ffffULL);
}

static void test_cmdline(void)
{
	struct boot_cfg cfg = {
	    .kernel = good_elf(0x200000, 0), .cmdline = "--nopci /hello", .ncpus = 1, .ndevs = 3};
	struct boot_entry e;
	char buf[64], longline[BOOT_CMDLINE_MAX + 10];

	cfg.devs[0] = (struct boot_dev){0xd0000000, 0x1000, 5};
	cfg.devs[1] = (struct boot_dev){0xd0001000, 0x200000, 6};
	cfg.devs[2] = (struct boot_dev){0xd0400000, 0x300, 7};
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_STR((char *)mem.base + BOOT_CMDLINE_ADDR,
		  "--nopci /hello virtio_mmio.device=4K@0xd0000000:5 "
		  "virtio_mmio.device=2M@0xd0001000:6 virtio_mmio.device=768@0xd0400000:7");

	cfg.cmdline = NULL;
	cfg.ndevs = 1;
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_STR((char *)mem.base + BOOT_CMDLINE_ADDR, "virtio_mmio.device=4K@0xd0000000:5");
	cmdline_format_dev(buf, sizeof(buf), &(struct boot_dev){0xd0000000, 0x1000, 5});
	CHECK_STR(buf, "virtio_mmio.device=4K@0xd0000000:5");

	/* exactly at the limit is fine, one byte more with the device entry is not */
	memset(longline, 'x', sizeof(longline));
	longline[BOOT_CMDLINE_MAX - 1] = '\0';
	cfg.cmdline = longline;
	cfg.ndevs = 0;
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_EQ(strlen((char *)mem.base + BOOT_CMDLINE_ADDR), BOOT_CMDLINE_MAX - 1);
	longline[BOOT_CMDLINE_MAX - 20] = '\0';
	cfg.ndevs = 1;
	EXPECT_FAIL(&cfg, "cmdline: 2063 bytes (with 1 virtio_mmio.device= entries) is longer than "
			  "the limit of 2047");
	longline[BOOT_CMDLINE_MAX - 20] = 'x';
	longline[BOOT_CMDLINE_MAX - 1] = 'x';
	longline[BOOT_CMDLINE_MAX + 9] = '\0';
	cfg.ndevs = 0;
	EXPECT_FAIL(&cfg, "cmdline: 2057 bytes");
}

/* A fake bzImage: 1 setup sector after the boot sector, then 8 KiB of "code". */
static size_t build_bzimage(uint8_t *b, uint16_t version)
{
	size_t len = 1024 + 8192;

	memset(b, 0, len);
	b[0x1f1] = 1; /* setup_sects */
	b[0x1fe] = 0x55;
	b[0x1ff] = 0xaa;
	b[0x200] = 0xeb; /* jmp over the header to 0x268 */
	b[0x201] = 0x66;
	memcpy(b + 0x202, "HdrS", 4);
	put16(b + 0x206, version);
	b[0x211] = 0x01;	      /* LOADED_HIGH */
	put32(b + 0x214, 0x100000);   /* code32_start */
	put32(b + 0x22c, 0x37ffffff); /* initrd_addr_max */
	put32(b + 0x230, 0x200000);   /* kernel_alignment */
	put16(b + 0x236, 0x03);	      /* XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G */
	put32(b + 0x238, 255);	      /* cmdline_size, the kernel's own limit */
	put32(b + 0x260, 0x40000);    /* init_size */
	put32(b + 0x1f4, 8192 / 16);  /* syssize: the code, in paragraphs */
	put64(b + 0x250, 0x1234);     /* setup_data: the loader's, never the file's */
	put32(b + 0x23c, 7);	      /* hardware_subarch: likewise */
	b[0x268] = 0x77;	      /* past the header: must not be copied */
	for (size_t i = 1024; i < len; i++)
		b[i] = i * 7;
	return len;
}

static void test_bzimage(void)
{
	static uint8_t bz[1024 + 8192];
	static uint8_t rd[10000];
	size_t len = build_bzimage(bz, 0x020f);
	struct boot_cfg cfg = {
	    .kernel = tmp_file("bzImage", bz, len), .cmdline = "console=ttyS0", .ncpus = 1};
	struct boot_entry e;
	uint8_t *zp = mem.base + BOOT_ZERO_PAGE_ADDR;
	uint32_t rd_addr;

	for (size_t i = 0; i < sizeof(rd); i++)
		rd[i] = i * 13;
	cfg.initrd = tmp_file("initrd", rd, sizeof(rd));
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_EQ(e.mode, BOOT_LINUX64);
	CHECK_EQ(e.rip, 0x100200);
	CHECK(!memcmp(mem.base + 0x100000, bz + 1024, 8192));
	CHECK_EQ(zp[0x1f1], 1);
	CHECK_EQ(get16(zp + 0x206), 0x020f);
	CHECK_EQ(get32(zp + 0x230), 0x200000);
	CHECK_EQ(get32(zp + 0x260), 0x40000);
	CHECK_EQ(zp[0x268], 0);
	CHECK_EQ(zp[0x210], 0xff);
	CHECK_EQ(zp[0x211], 0x81); /* LOADED_HIGH | CAN_USE_HEAP */
	CHECK_EQ(get16(zp + 0x224), 0xfe00);
	CHECK_EQ(get32(zp + 0x228), BOOT_CMDLINE_ADDR);
	CHECK_EQ(get32(zp + 0x238), 255); /* the kernel's, not overwritten */
	CHECK_EQ(get64(zp + 0x250), 0);
	CHECK_EQ(get32(zp + 0x23c), 0);
	CHECK_EQ(get16(zp + 0x1fe), 0xaa55);
	CHECK_EQ(zp[0x1e8], 3);
	rd_addr = get32(zp + 0x218);
	CHECK_EQ(get32(zp + 0x21c), sizeof(rd));
	CHECK_EQ(rd_addr % 4096, 0);
	CHECK(rd_addr >= 0x100000 + 0x40000);
	CHECK(rd_addr + sizeof(rd) <= RAM && rd_addr + sizeof(rd) > RAM - 8192);
	CHECK(!memcmp(mem.base + rd_addr, rd, sizeof(rd)));

	cfg.force_pvh = true;
	EXPECT_FAIL(&cfg, "no PVH entry");
	cfg.force_pvh = false;
	cfg.initrd = NULL;
	put32(bz + 0x238, 8);
	cfg.kernel = tmp_file("bz-shortcmd", bz, len);
	EXPECT_FAIL(&cfg, "cmdline: 13 bytes is longer than the kernel's limit of 8");
	cfg.kernel = tmp_file("old-bzImage", bz, build_bzimage(bz, 0x0209));
	EXPECT_FAIL(&cfg, "bzImage boot protocol 2.09 is too old");
	build_bzimage(bz, 0x020f);
	put16(bz + 0x236, 0);
	cfg.kernel = tmp_file("bz32", bz, len);
	EXPECT_FAIL(&cfg, "no 64-bit entry point");
	build_bzimage(bz, 0x020f);
	cfg.kernel = tmp_file("bzshort", bz, 1024);
	EXPECT_FAIL(&cfg, "truncated bzImage");
	cfg.kernel = tmp_file("bzshort2", bz, 0x280);
	EXPECT_FAIL(&cfg, "truncated bzImage setup header");
	put32(bz + 0x260, RAM);
	cfg.kernel = tmp_file("bzbig", bz, len);
	EXPECT_FAIL(&cfg, "bzImage does not fit in guest RAM of 64 MiB");
	build_bzimage(bz, 0x020f);
	put32(bz + 0x230, 0x3000);
	cfg.kernel = tmp_file("bz-align", bz, len);
	EXPECT_FAIL(&cfg, "bzImage kernel_alignment 0x3000 is not a power of two");
	/* Cut short of what syssize says: refused, not started half-loaded. */
	build_bzimage(bz, 0x020f);
	cfg.kernel = tmp_file("bz-cut", bz, len - 16);
	EXPECT_FAIL(&cfg, "truncated bzImage: 8176 bytes of protected-mode code after 1024 of "
			  "setup, its header says 8192");
	put32(bz + 0x260, 0);
	cfg.kernel = tmp_file("bz-init0", bz, len);
	EXPECT_FAIL(&cfg, "bzImage init_size 0 is smaller than its code");
	build_bzimage(bz, 0x020f);
	bz[0x201] = 0;
	cfg.kernel = tmp_file("bz-jump0", bz, len);
	EXPECT_FAIL(&cfg, "bzImage setup header ends at 0x202, before protocol 2.12's fields");
}

/* The 64-bit entry's page tables map 1G: a kernel above would fault on its first fetch. */
static void test_above_ident_map(void)
{
	struct guest_mem big = {.size = 3ULL << 30};
	struct test_elf t = {.paddr = 0x40000000, .vaddr = 0x40000000, .entry = 0x40000000,
			     .code = code, .code_len = sizeof(code), .memsz = 0x1000};
	struct boot_cfg cfg = {.ncpus = 1};
	struct boot_entry e;
	const char *err;

	big.base = mmap(NULL, big.size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(big.base != MAP_FAILED);
	if (big.base == MAP_FAILED)
		return;
	cfg.kernel = tmp_file("high.elf", elfbuf, build_elf(elfbuf, sizeof(elfbuf), &t));
	capture_begin();
	CHECK_EQ(boot_load(&big, &cfg, &e), -1);
	err = capture_end();
	CHECK(strstr(err, "ends at 0x40001000, above the first 1 GiB") != NULL);
	/* Entered through PVH, with paging off, it boots. */
	t.pvh_entry = 0x40000000;
	cfg.force_pvh = true;
	cfg.kernel = tmp_file("high-pvh.elf", elfbuf, build_elf(elfbuf, sizeof(elfbuf), &t));
	CHECK_EQ(boot_load(&big, &cfg, &e), 0);
	CHECK_EQ(e.mode, BOOT_PVH32);
	munmap(big.base, big.size);
}

/* The 64-bit entry runs the kernel from pref_address, 16M for Linux, not from 1M. */
static void test_bzimage_pref_address(void)
{
	static uint8_t bz[1024 + 8192];
	static uint8_t rd[10 << 20];
	size_t len = build_bzimage(bz, 0x020f);
	struct boot_cfg cfg = {.ncpus = 1};

	put64(bz + 0x258, 0x1000000);
	put32(bz + 0x260, 49 << 20); /* fits from 1M, not from 16M */
	cfg.kernel = tmp_file("bz-pref", bz, len);
	EXPECT_FAIL(&cfg, "decompresses at 0x1000000 (init_size 50176 KiB)");
	/* Kernel to 56M: a 10M initrd no longer fits below 64M. */
	put32(bz + 0x260, 40 << 20);
	cfg.kernel = tmp_file("bz-pref2", bz, len);
	cfg.initrd = tmp_file("rd10m", rd, sizeof(rd));
	EXPECT_FAIL(&cfg, "does not fit between the kernel's end (0x3800000)");
}

static void test_initrd(void)
{
	struct boot_cfg cfg = {.kernel = good_elf(0x200000, 0x200002), .ncpus = 1};
	struct boot_entry e;
	uint8_t *big = calloc(1, RAM);
	char path[200];

	snprintf(path, sizeof(path), "%s/no-initrd", tmpdir);
	cfg.initrd = path;
	EXPECT_FAIL(&cfg, "initrd: ");
	EXPECT_FAIL(&cfg, "no-initrd: No such file or directory");
	cfg.initrd = tmp_file("empty-initrd", "", 0);
	EXPECT_FAIL(&cfg, "empty-initrd: empty file");
	cfg.initrd = tmp_file("big-initrd", big, RAM - 0x200000);
	EXPECT_FAIL(&cfg, "does not fit between the kernel's end (0x203000)");
	/* After a kernel below 1M, still not over the cmdline, EBDA and ACPI tables. */
	{
		struct test_elf t = {.paddr = 0x10000, .vaddr = 0x10000, .entry = 0x10000,
				     .code = code, .code_len = sizeof(code), .memsz = 0x1000};

		cfg.kernel = tmp_file("low.elf", elfbuf, build_elf(elfbuf, sizeof(elfbuf), &t));
		cfg.initrd = tmp_file("big-initrd2", big, RAM - 0x12000);
		EXPECT_FAIL(&cfg, "does not fit between the kernel's end (0x100000)");
		cfg.kernel = good_elf(0x200000, 0x200002);
	}
	free(big);

	/* PVH hands the initrd over as module 0 */
	cfg.initrd = tmp_file("small-initrd", "0123456789", 10);
	cfg.force_pvh = true;
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	{
		uint8_t *si = mem.base + BOOT_PVH_INFO_ADDR, *mod;

		CHECK_EQ(get32(si + 12), 1);
		mod = mem.base + get64(si + 16);
		CHECK_EQ(get64(mod), RAM - 4096);
		CHECK_EQ(get64(mod + 8), 10);
		CHECK(!memcmp(mem.base + RAM - 4096, "0123456789", 10));
	}
}

static void check_table(uint64_t addr, const char *sig, int line)
{
	uint8_t *t = mem.base + addr, sum = 0;
	uint32_t len = get32(t + 4);

	for (uint32_t i = 0; i < len; i++)
		sum += t[i];
	if (memcmp(t, sig, 4) || sum || len < 36 || addr + len > 0x100000) {
		unit_failed++;
		printf("FAIL %s:%d: table %s at 0x%llx: bad signature, length or checksum\n",
		       __FILE__, line, sig, (unsigned long long)addr);
	} else {
		unit_passed++;
	}
}
#define CHECK_TABLE(addr, sig) check_table(addr, sig, __LINE__)

static void dump_table(const char *dir, const char *name, uint64_t addr, uint32_t len)
{
	char p[300];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s.dat", dir, name);
	f = fopen(p, "wb");
	if (f) {
		fwrite(mem.base + addr, 1, len, f);
		fclose(f);
	}
}

/*
 * Walks the AML subset the DSDT uses (Scope, Device, Name, Package, Buffer, strings and
 * integers), checking that every PkgLength ends inside its parent, that a Package holds the
 * elements it says, that a Buffer's size is its bytes and that a ResourceTemplate's
 * descriptors end with the end tag exactly at its end. It counts what it found.
 */
struct aml_walk {
	int devices, packages, buffers;
};

static const uint8_t *walk_pkglength(const uint8_t *p, const uint8_t *end, const uint8_t **pkg_end)
{
	const uint8_t *start = p;
	unsigned n = p < end ? *p >> 6 : 0;
	uint32_t len;

	if (p + 1 + n > end || (n && (*p & 0x30)))
		return NULL;
	len = n ? *p & 0x0f : *p & 0x3f;
	for (unsigned i = 1; i <= n; i++)
		len |= (uint32_t)p[i] << (4 + 8 * (i - 1));
	/* the shortest encoding, as iasl writes it and tern's emitter promises */
	if ((n == 1 && len <= 0x40) || (n == 2 && len <= 0x1000) || (n == 3 && len <= 0x100000))
		return NULL;
	*pkg_end = start + len;
	return *pkg_end > end || *pkg_end < p + 1 + n ? NULL : p + 1 + n;
}

static const uint8_t *walk_name(const uint8_t *p, const uint8_t *end)
{
	if (p < end && *p == '\\')
		p++;
	if (p + 4 > end)
		return NULL;
	for (int i = 0; i < 4; i++) {
		bool digit = i && p[i] >= '0' && p[i] <= '9';

		if (!(p[i] == '_' || (p[i] >= 'A' && p[i] <= 'Z') || digit))
			return NULL;
	}
	return p + 4;
}

static const uint8_t *walk_integer(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	static const int size[] = {[0x0a] = 1, [0x0b] = 2, [0x0c] = 4, [0x0e] = 8};

	if (p >= end)
		return NULL;
	if (*p <= 1) {
		*v = *p;
		return p + 1;
	}
	if (*p > 0x0e || !size[*p] || p + 1 + size[*p] > end)
		return NULL;
	*v = 0;
	for (int i = 0; i < size[*p]; i++)
		*v |= (uint64_t)p[1 + i] << (8 * i);
	return p + 1 + size[*p];
}

static bool walk_resources(const uint8_t *p, const uint8_t *end)
{
	while (p < end) {
		/* a small item's length is in its tag; a large item's 16-bit length follows it */
		size_t len = 1u + (*p & 7);

		if (*p & 0x80)
			len = p + 3 <= end ? 3u + get16(p + 1) : SIZE_MAX;
		if (len > (size_t)(end - p))
			return false;
		if (*p == 0x79)
			return p + len == end;
		p += len;
	}
	return false;
}

/* One term from p: where it ends, or NULL if it is malformed or runs past end. */
static const uint8_t *walk_term(const uint8_t *p, const uint8_t *end, struct aml_walk *w)
{
	const uint8_t *body, *pkg_end;
	uint64_t v;

	if (p >= end)
		return NULL;
	switch (*p) {
	case 0x08: /* Name */
		p = walk_name(p + 1, end);
		return p ? walk_term(p, end, w) : NULL;
	case 0x0d: /* String */
		body = memchr(p + 1, 0, end - p - 1);
		return body ? body + 1 : NULL;
	case 0x10: /* Scope */
	case 0x5b: /* ExtOp: only Device */
		if (*p == 0x5b && (p + 1 >= end || *++p != 0x82))
			return NULL;
		w->devices += *p == 0x82;
		body = walk_pkglength(p + 1, end, &pkg_end);
		body = body ? walk_name(body, pkg_end) : NULL;
		while (body && body < pkg_end)
			body = walk_term(body, pkg_end, w);
		return body == pkg_end ? pkg_end : NULL;
	case 0x11: /* Buffer */
		w->buffers++;
		body = walk_pkglength(p + 1, end, &pkg_end);
		body = body ? walk_integer(body, pkg_end, &v) : NULL;
		if (!body || v != (uint64_t)(pkg_end - body) || !walk_resources(body, pkg_end))
			return NULL;
		return pkg_end;
	case 0x12: /* Package */
		w->packages++;
		body = walk_pkglength(p + 1, end, &pkg_end);
		if (!body || body >= pkg_end)
			return NULL;
		v = *body++;
		while (body && body < pkg_end && v--)
			body = walk_term(body, pkg_end, w);
		return body == pkg_end && v == 0 ? pkg_end : NULL;
	default:
		return walk_integer(p, end, &v);
	}
}

static bool walk_dsdt(const uint8_t *t, struct aml_walk *w)
{
	const uint8_t *p = t + 36, *end = t + get32(t + 4);

	*w = (struct aml_walk){0};
	while (p && p < end)
		p = walk_term(p, end, w);
	return p == end;
}

/* The most the tables hold: 64 vCPUs, every device slot, all of it well-formed AML. */
static void test_acpi_max(void)
{
	struct boot_cfg cfg = {.kernel = good_elf(0x200000, 0), .ncpus = 64,
			       .ndevs = BOOT_MAX_DEVS};
	uint8_t *fadt, *dsdt, *madt, *x;
	struct aml_walk w;
	struct boot_entry e;

	for (int i = 0; i < BOOT_MAX_DEVS; i++)
		cfg.devs[i] = (struct boot_dev){0xd0000000 + 0x1000 * i, 0x1000, 5 + i};
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	x = mem.base + get64(mem.base + BOOT_ACPI_ADDR + 24);
	fadt = mem.base + get64(x + 36);
	madt = mem.base + get64(x + 44);
	dsdt = mem.base + get64(fadt + 140);
	CHECK_TABLE(get64(x + 44), "APIC");
	CHECK_EQ(get32(madt + 4), 44 + 64 * 8 + 12);
	CHECK_EQ(madt[44 + 63 * 8 + 3], 63); /* the last LAPIC: APIC ID 63 */
	CHECK_TABLE(get64(fadt + 140), "DSDT");
	CHECK(walk_dsdt(dsdt, &w));
	CHECK_EQ(w.devices, BOOT_MAX_DEVS + 2); /* and COM1, PEVT */
	CHECK_EQ(w.buffers, BOOT_MAX_DEVS + 2);
	CHECK_EQ(w.packages, 1); /* _S5_ */
	/* the last device, VR0F: base 0xd000f000, IRQ 20 */
	CHECK(memmem(dsdt, get32(dsdt + 4), "VR0F\x08_HID\x0dLNRO0005", 19) != NULL);
	CHECK(memmem(dsdt, get32(dsdt + 4),
		     "\x00\xf0\x00\xd0\x00\x10\x00\x00\x89\x06\x00\x03\x01\x14", 14) != NULL);
	/* every table ends before the reset vector's code */
	CHECK(get64(fadt + 140) + get32(dsdt + 4) <= BOOT_RESET_VECTOR);
	CHECK(get64(x + 44) + get32(madt + 4) <= BOOT_RESET_VECTOR);
}

static void test_acpi(void)
{
	struct boot_cfg cfg = {.kernel = good_elf(0x200000, 0), .ncpus = 2, .ndevs = 2};
	struct boot_entry e;
	uint8_t *r = mem.base + BOOT_ACPI_ADDR, *x, *fadt = NULL, *madt = NULL, *dsdt;
	uint8_t sum = 0;
	uint64_t xsdt, dsdt_addr = 0, fadt_addr = 0, madt_addr = 0;
	const char *dir = getenv("TERN_ACPI_DUMP");

	cfg.devs[0] = (struct boot_dev){0xd0000000, 0x1000, 5};
	cfg.devs[1] = (struct boot_dev){0xd0001000, 0x1000, 6};
	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK(!memcmp(r, "RSD PTR ", 8));
	CHECK_EQ(r[15], 2);
	/* The reset vector: mov al, 0xfe; out 0x64, al; hlt; jmp back to the hlt */
	CHECK(!memcmp(mem.base + BOOT_RESET_VECTOR, "\xb0\xfe\xe6\x64\xf4\xeb\xfd", 7));
	for (int i = 0; i < 20; i++)
		sum += r[i];
	CHECK_EQ(sum, 0);
	for (int i = 20; i < 36; i++)
		sum += r[i];
	CHECK_EQ(sum, 0);
	CHECK_EQ(get32(r + 20), 36);
	xsdt = get64(r + 24);
	CHECK_TABLE(xsdt, "XSDT");
	x = mem.base + xsdt;
	CHECK_EQ(get32(x + 4), 36 + 16);
	for (int i = 0; i < 2; i++) {
		uint64_t a = get64(x + 36 + 8 * i);

		if (!memcmp(mem.base + a, "FACP", 4))
			fadt_addr = a;
		if (!memcmp(mem.base + a, "APIC", 4))
			madt_addr = a;
	}
	CHECK(fadt_addr && madt_addr);
	if (!fadt_addr || !madt_addr)
		return;
	fadt = mem.base + fadt_addr;
	madt = mem.base + madt_addr;
	CHECK_TABLE(fadt_addr, "FACP");
	CHECK(fadt[8] >= 5);
	/* HW_REDUCED_ACPI, RESET_REG_SUP, and no fixed-feature power or sleep button */
	CHECK_EQ(get32(fadt + 112), (1u << 20) | (1u << 10) | (1u << 4) | (1u << 5));
	CHECK_EQ(get16(fadt + 109) & (1u << 1), 0); /* no 8042: only its reset line is there */
	/* Sleep control and status: one byte each in I/O space, where acpi_sleep.c listens */
	CHECK_EQ(fadt[244], 1);
	CHECK_EQ(get64(fadt + 248), BOOT_SLEEP_CONTROL_PORT);
	CHECK_EQ(fadt[256], 1);
	CHECK_EQ(get64(fadt + 260), BOOT_SLEEP_STATUS_PORT);
	dsdt_addr = get64(fadt + 140);
	CHECK_EQ(get32(fadt + 40), dsdt_addr);
	CHECK_TABLE(dsdt_addr, "DSDT");
	CHECK_TABLE(madt_addr, "APIC");
	CHECK_EQ(get32(madt + 4), 44 + 2 * 8 + 12);
	CHECK_EQ(get32(madt + 36), 0xfee00000);
	CHECK_EQ(get32(madt + 40), 1); /* PCAT_COMPAT: KVM's irqchip has the 8259 pair */
	CHECK_EQ(madt[44], 0);	       /* LAPIC, cpu 0 */
	CHECK_EQ(madt[52 + 3], 1);     /* LAPIC, cpu 1: APIC id 1 */
	CHECK_EQ(madt[60], 1);	       /* IOAPIC */
	CHECK_EQ(get32(madt + 64), 0xfec00000);
	CHECK_EQ(get32(madt + 68), 0);

	dsdt = mem.base + dsdt_addr;
	CHECK(memmem(dsdt, get32(dsdt + 4), "LNRO0005", 9) != NULL);
	CHECK(memmem(dsdt, get32(dsdt + 4), "COM1", 4) != NULL);
	/* Memory32Fixed of device 1: RW, base, 4 KiB; then its Interrupt, edge, high, irq 6 */
	CHECK(memmem(dsdt, get32(dsdt + 4),
		     "\x86\x09\x00\x01\x00\x10\x00\xd0\x00\x10\x00\x00"
		     "\x89\x06\x00\x03\x01\x06\x00\x00\x00\x79\x00",
		     23) != NULL);
	/* Name(_S5_, Package(4) { 5, 5, 0, 0 }) */
	CHECK(memmem(dsdt, get32(dsdt + 4), "\x08_S5_\x12\x08\x04\x0a\x05\x0a\x05\x00\x00", 14) !=
	      NULL);
	/* EISAID("PNP0501") */
	CHECK(memmem(dsdt, get32(dsdt + 4), "\x0c\x41\xd0\x05\x01", 5) != NULL);
	{
		struct aml_walk w;

		CHECK(walk_dsdt(dsdt, &w));
		CHECK_EQ(w.devices, 4);
	}
	if (dir) {
		dump_table(dir, "rsdp", BOOT_ACPI_ADDR, 36);
		dump_table(dir, "xsdt", xsdt, get32(x + 4));
		dump_table(dir, "facp", fadt_addr, get32(fadt + 4));
		dump_table(dir, "apic", madt_addr, get32(madt + 4));
		dump_table(dir, "dsdt", dsdt_addr, get32(dsdt + 4));
	}
}

static void test_aml(void)
{
	uint8_t buf[512];
	struct aml a;
	size_t m;

	aml_init(&a, buf, sizeof(buf));
	aml_eisaid(&a, "PNP0501");
	CHECK_EQ(a.len, 5);
	CHECK_EQ(get32(buf + 1), 0x0105d041);

	/* a package with 100 bytes of body takes a 2-byte PkgLength of 102 */
	aml_init(&a, buf, sizeof(buf));
	m = aml_scope_begin(&a, "\\_SB_");
	for (int i = 0; i < 95; i++)
		aml_byte(&a, 0xa3);
	aml_pkg_end(&a, m);
	CHECK_EQ(a.len, 1 + 2 + 5 + 95);
	CHECK_EQ(buf[1], 0x40 | (102 & 0xf));
	CHECK_EQ(buf[2], 102 >> 4);
	CHECK_EQ(buf[3], 0x5c);

	/* PkgLength counts itself: 62 bytes of body fit one byte (63), 63 take two (65) */
	for (int body = 62; body <= 63; body++) {
		aml_init(&a, buf, sizeof(buf));
		m = a.len;
		for (int i = 0; i < body; i++)
			aml_byte(&a, 0xa3);
		aml_pkg_end(&a, m);
		CHECK_EQ(a.len, body + (body == 62 ? 1 : 2));
		CHECK_EQ(buf[0], body == 62 ? 63 : 0x40 | (65 & 0xf));
	}

	/* ... 4093 fit two (4095 = 0xfff), 4094 take three (4097) */
	for (int body = 4093; body <= 4094; body++) {
		static uint8_t big[4100];

		aml_init(&a, big, sizeof(big));
		for (int i = 0; i < body; i++)
			aml_byte(&a, 0xa3);
		aml_pkg_end(&a, 0);
		CHECK(!a.overflow);
		if (body == 4093)
			CHECK(big[0] == 0x4f && big[1] == 0xff && big[2] == 0xa3);
		else
			CHECK(big[0] == 0x81 && big[1] == 0x00 && big[2] == 0x01 && big[3] == 0xa3);
	}

	aml_init(&a, buf, sizeof(buf));
	aml_integer(&a, 0x1234);
	CHECK_EQ(a.len, 3);
	CHECK_EQ(buf[0], 0x0b);
	aml_integer(&a, 0x123456789ULL);
	CHECK_EQ(a.len, 12);

	/* overflow is sticky and reported */
	aml_init(&a, buf, 4);
	aml_string(&a, "LNRO0005");
	CHECK(a.overflow);
}

static void test_tables(void)
{
	struct boot_cfg cfg = {.kernel = good_elf(0x200000, 0), .ncpus = 1};
	struct boot_entry e;
	uint8_t *gdt = mem.base + BOOT_GDT_ADDR, *pd = mem.base + BOOT_PD_ADDR;

	mem_reset();
	CHECK_EQ(boot_load(&mem, &cfg, &e), 0);
	CHECK_EQ(get64(gdt), 0);
	CHECK_EQ(get64(gdt + 8), 0x00af9b000000ffffULL);  /* 64-bit code, 0x08 */
	CHECK_EQ(get64(gdt + 16), 0x00cf93000000ffffULL); /* data, 0x10 */
	CHECK_EQ(get64(gdt + 24), 0x00008b0000000067ULL); /* TSS, 0x18 */
	CHECK_EQ(get64(mem.base + BOOT_PML4_ADDR), BOOT_PDPT_ADDR | 3);
	CHECK_EQ(get64(mem.base + BOOT_PML4_ADDR + 8), 0);
	CHECK_EQ(get64(mem.base + BOOT_PDPT_ADDR), BOOT_PD_ADDR | 3);
	CHECK_EQ(get64(mem.base + BOOT_PDPT_ADDR + 8), 0);
	CHECK_EQ(get64(pd), 0x83);
	CHECK_EQ(get64(pd + 8), 0x200083);
	CHECK_EQ(get64(pd + 511 * 8), (511ULL << 21) | 0x83);
}

/* -cpu's names and the words a migration compares. */
static void test_cpu_feature_names(void)
{
	struct boot_cpu m, m2;
	uint32_t leaf, sub;
	char name[64];
	int reg;

	CHECK_EQ(boot_cpu_feature("avx2", &m), 0);
	boot_cpu_word_id(2, &leaf, &sub, &reg);
	CHECK(leaf == 7 && sub == 0 && reg == 1 && m.w[2] == 1u << 5);
	CHECK_EQ(boot_cpu_feature("sse4_2", &m), 0);
	CHECK_EQ(boot_cpu_feature("sse4.2", &m2), 0);
	CHECK(!memcmp(&m, &m2, sizeof(m)) && m.w[0] == 1u << 20);
	CHECK_EQ(boot_cpu_feature("kvmclock", &m), 0);	/* both of KVM's clock bits */
	CHECK_EQ(m.w[BOOT_CPU_WORDS - 1], 1u << 0 | 1u << 3);
	CHECK_EQ(boot_cpu_feature("AVX2", &m), -1);
	boot_cpu_bit_name(7, 0, 1, 16, name, sizeof(name));
	CHECK_STR(name, "avx512f");
	boot_cpu_bit_name(1, 0, 2, 0, name, sizeof(name));
	CHECK_STR(name, "sse3");
	boot_cpu_bit_name(1, 0, 2, 31, name, sizeof(name));
	CHECK_STR(name, "cpuid 0x1.0 ecx bit 31");
	boot_cpu_bit_name(0xd, 0, 0, 5, name, sizeof(name));
	CHECK_STR(name, "XSAVE state component 5");
	boot_cpu_bit_name(0xd, 0, 3, 1, name, sizeof(name));
	CHECK_STR(name, "XSAVE state component 33");
	boot_cpu_bit_name(0x24, 0, 1, 3, name, sizeof(name));
	CHECK_STR(name, "cpuid 0x24.0 ebx bit 3");
}

/* Hiding avx takes along what needs it, and the state they all had in XCR0. */
static void test_cpu_feature_follow(void)
{
	struct boot_cpu f, m;

	memset(&f, 0xff, sizeof(f));
	CHECK_EQ(boot_cpu_feature("avx", &m), 0);
	f.w[0] &= ~m.w[0];
	boot_cpu_follow(&f);
	for (const char *const *n = (const char *const[]){ "avx2", "fma", "f16c", "avx512f",
							     "avx10", NULL };
	     *n; n++) {
		CHECK_EQ(boot_cpu_feature(*n, &m), 0);
		for (int i = 0; i < BOOT_CPU_WORDS; i++)
			CHECK_EQ(f.w[i] & m.w[i], 0);
	}
	CHECK_EQ(f.w[8] & (1u << 2 | 7u << 5), 0);	/* 0xd.0 eax: YMM, AVX-512 */
	CHECK_EQ(f.w[8] & 1u << 9, 1u << 9);		/* PKRU: pku is still there */
	CHECK_EQ(boot_cpu_feature("sse4.2", &m), 0);
	CHECK_EQ(f.w[0] & m.w[0], m.w[0]);		/* unrelated: untouched */
}

int main(void)
{
	mem.size = RAM;
	mem.base = malloc(RAM);
	if (!mem.base)
		return 2;
	tmp_init();
	test_elf_good();
	test_elf_entry_choice();
	test_elf_bad();
	test_huge_kernel_file();
	test_mem_limits();
	test_zero_page();
	test_pvh_info();
	test_cmdline();
	test_bzimage();
	test_bzimage_pref_address();
	test_above_ident_map();
	test_initrd();
	test_acpi();
	test_acpi_max();
	test_aml();
	test_tables();
	test_cpu_feature_names();
	test_cpu_feature_follow();
	tmp_cleanup();
	free(mem.base);
	return unit_summary();
}
