/*
 * Boot information, read exactly as OSv reads it so that the test guest fails where OSv
 * would: zero page 0x1FE (0xAA55), 0x202 ("HdrS"), 0x228 cmdline pointer, 0x1E8 e820 count,
 * 0x2D0 e820 table; or Xen's hvm_start_info for the PVH entry.
 */
#include "bootinfo.h"
#include "guest.h"
#include "lib.h"

char cmdline[CMDLINE_MAX];
const char *boot_protocol = "?";
struct mem_region mem_regions[MEM_MAX_REGIONS];
int mem_nregions;

struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
} __attribute__((packed));

/* xen/include/public/arch-x86/hvm/start_info.h */
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;		/* version >= 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

#define HVM_START_MAGIC 0x336ec578

static void copy_cmdline(uint64_t paddr)
{
	if (!paddr)
		return;
	if (paddr >= 0x100000000ULL) {
		printf("boot: cmdline at %#lx is above 4 GiB\n", paddr);
		return;
	}
	const char *s = (const char *)(uintptr_t)paddr;
	size_t n = 0;

	while (n < CMDLINE_MAX - 1 && s[n])
		n++;
	memcpy(cmdline, s, n);
	cmdline[n] = '\0';
}

static void add_region(uint64_t addr, uint64_t size, uint32_t type)
{
	if (mem_nregions < MEM_MAX_REGIONS)
		mem_regions[mem_nregions++] = (struct mem_region){ addr, size, type };
}

static int parse_zero_page(const uint8_t *zp)
{
	uint16_t sig = *(const uint16_t *)(zp + 0x1fe);
	uint32_t hdr = *(const uint32_t *)(zp + 0x202);
	unsigned n = zp[0x1e8];

	if (sig != 0xaa55 || hdr != 0x53726448) {
		printf("boot: zero page at %p is not a boot_params: 0x1fe = %#x (want 0xaa55), "
		       "0x202 = %#x (want \"HdrS\" 0x53726448)\n", zp, sig, hdr);
		return -1;
	}
	copy_cmdline(*(const uint32_t *)(zp + 0x228));
	if (n > 128) {
		printf("boot: zero page says %u e820 entries (max 128)\n", n);
		n = 128;
	}
	const struct e820_entry *e = (const void *)(zp + 0x2d0);
	for (unsigned i = 0; i < n; i++)
		add_region(e[i].addr, e[i].size, e[i].type);
	return 0;
}

static int parse_pvh(const struct hvm_start_info *si)
{
	if (si->magic != HVM_START_MAGIC) {
		printf("boot: hvm_start_info at %p: magic %#x (want %#x)\n", si, si->magic,
		       HVM_START_MAGIC);
		return -1;
	}
	copy_cmdline(si->cmdline_paddr);
	if (si->version < 1 || !si->memmap_paddr || !si->memmap_entries) {
		printf("boot: hvm_start_info version %u has no memory map\n", si->version);
		return -1;
	}
	const struct hvm_memmap_table_entry *e = (const void *)(uintptr_t)si->memmap_paddr;
	for (unsigned i = 0; i < si->memmap_entries; i++)
		add_region(e[i].addr, e[i].size, e[i].type);
	return 0;
}

int bootinfo_parse(uint64_t kind, uint64_t info)
{
	int r;

	if (kind == BOOT_PVH) {
		boot_protocol = "pvh";
		r = parse_pvh((const void *)(uintptr_t)info);
	} else {
		boot_protocol = "linux64";
		r = parse_zero_page((const void *)(uintptr_t)info);
	}
	if (!r && !mem_nregions) {
		printf("boot: empty memory map\n");
		r = -1;
	}
	return r;
}

/* Finds word (optionally followed by "=value") as a whole word of the cmdline. */
static const char *find_word(const char *name, int want_value)
{
	size_t n = strlen(name);

	for (const char *p = cmdline; *p;) {
		while (*p == ' ')
			p++;
		const char *w = p;

		while (*p && *p != ' ')
			p++;
		if ((size_t)(p - w) >= n && !strncmp(w, name, n)) {
			if (!want_value && (size_t)(p - w) == n)
				return w;
			if (want_value && w[n] == '=')
				return w + n + 1;
		}
	}
	return NULL;
}

int cmdline_has(const char *word)
{
	return find_word(word, 0) != NULL;
}

const char *cmdline_value(const char *name)
{
	return find_word(name, 1);
}

unsigned long cmdline_ulong(const char *name, unsigned long dflt)
{
	const char *v = cmdline_value(name);

	return v ? strtoul(v, NULL, 0) : dflt;
}
