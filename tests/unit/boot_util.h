/* Helpers shared by the guest-boot unit tests: crafted kernel files and captured errors. */
#ifndef TERN_TEST_BOOT_UTIL_H
#define TERN_TEST_BOOT_UTIL_H

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static inline void tmp_init(void)
{
	strcpy(tmpdir, "/tmp/tern-boot-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(2);
	}
}

static inline void tmp_cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* Writes len bytes to tmpdir/name and returns the path (static storage per call slot). */
static inline const char *tmp_file(const char *name, const void *data, size_t len)
{
	static char paths[8][128];
	static int slot;
	char *p = paths[slot++ % 8];
	FILE *f;

	snprintf(p, 128, "%s/%s", tmpdir, name);
	f = fopen(p, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f)) {
		perror(p);
		exit(2);
	}
	return p;
}

/* stderr goes to a file between capture_begin and capture_end, which returns it. */
static int saved_stderr = -1;
static char captured[4096];

static inline void capture_begin(void)
{
	char p[128];
	int fd;

	fflush(stderr);
	snprintf(p, sizeof(p), "%s/stderr", tmpdir);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

static inline const char *capture_end(void)
{
	char p[128];
	ssize_t n;
	int fd;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	snprintf(p, sizeof(p), "%s/stderr", tmpdir);
	fd = open(p, O_RDONLY);
	n = fd < 0 ? 0 : read(fd, captured, sizeof(captured) - 1);
	captured[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	return captured;
}

/* Counts lines: every failure must print exactly one. */
static inline int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* A minimal x86_64 ELF: one PT_LOAD and optionally a PT_NOTE with Xen's PVH entry. */
struct test_elf {
	uint64_t paddr, vaddr, entry;
	uint32_t pvh_entry; /* 0: no note */
	const void *code;
	size_t code_len;
	uint64_t memsz;
};

static inline size_t build_elf(uint8_t *buf, size_t cap, const struct test_elf *t)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(buf + sizeof(*eh));
	size_t note_off = sizeof(*eh) + 2 * sizeof(*ph), code_off = 0x1000;
	int n = 0;

	memset(buf, 0, cap);
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = t->entry;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);

	ph[n++] = (Elf64_Phdr){.p_type = PT_LOAD,
			       .p_flags = PF_R | PF_X,
			       .p_offset = code_off,
			       .p_vaddr = t->vaddr,
			       .p_paddr = t->paddr,
			       .p_filesz = t->code_len,
			       .p_memsz = t->memsz,
			       .p_align = 0x1000};
	if (t->pvh_entry) {
		uint8_t *note = buf + note_off;
		uint32_t hdr[3] = {4, 4, 18};

		memcpy(note, hdr, 12);
		memcpy(note + 12, "Xen", 4);
		memcpy(note + 16, &t->pvh_entry, 4);
		ph[n++] = (Elf64_Phdr){
		    .p_type = PT_NOTE, .p_offset = note_off, .p_filesz = 20, .p_align = 4};
	}
	eh->e_phnum = n;
	memcpy(buf + code_off, t->code, t->code_len);
	return code_off + t->code_len;
}

#endif
