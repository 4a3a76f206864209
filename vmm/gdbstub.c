/*
 * A GDB remote stub (-gdb tcp::1234, or -s), as QEMU's: gdb attaches (`target remote :1234`)
 * and the guest stops; gdb reads and writes registers and memory (guest virtual addresses,
 * through the current vCPU's page tables), sets breakpoints and watchpoints, single-steps and
 * continues, and Ctrl-C stops the guest again. All-stop: every vCPU stops when one does; each
 * is a thread to gdb. One debugger at a time, on the I/O thread; while one is attached the
 * guest is not migrated away from it.
 *
 * As in QEMU, `break` writes an int3 into guest memory (taken out again when gdb removes it or
 * leaves), while `hbreak` and the watchpoints use the CPU's four debug registers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/epoll.h>

#include "vmm/gdbstub.h"
#include "vmm/util.h"
#include "vmm/vm.h"
#include "vmm/migration/migration.h"
#include "vmm/migration/transport.h"

#define GDB_PACKET_MAX 4096	/* payload, as qSupported tells gdb */
#define GDB_MAX_BP 64
#define GDB_MAX_HW 4		/* DR0-DR3 */
#define BP_VECTOR 3
/* 'g': rax..r15 and rip (8 bytes each), eflags, cs ss ds es fs gs (4 each) */
#define GDB_REGS_LEN (16 * 8 + 8 + 4 + 6 * 4)
#define DR6_BS (1ULL << 14)	/* the #DB came from a single step */
#define PAGE_SIZE 4096ULL
#define EFER_LMA (1ULL << 10)
#define CR4_LA57 (1ULL << 12)

/* No features: gdb takes its own amd64 registers, of which 'g' sends the first 24. */
static const char target_xml[] =
	"<?xml version=\"1.0\"?><!DOCTYPE target SYSTEM \"gdb-target.dtd\">"
	"<target><architecture>i386:x86-64</architecture></target>";

/* gdb's Z types: 0 break, 1 hbreak, 2 watch (write), 3 rwatch (no such DR kind), 4 awatch. */
struct gdb_bp {
	uint64_t addr;
	unsigned type, len;
	uint8_t *host, orig;	/* break: where the int3 sits in tern's map of RAM, and what it hid */
};

struct gdbstub {
	struct vm *vm;
	struct mig_uri uri;
	int listen_fd, fd;
	int stop_fd;		/* eventfd: a vCPU stopped on a breakpoint or a step */
	int hit;		/* which: atomic, -1 when none */
	struct kvm_debug_exit_arch why[CONFIG_MAX_VCPUS];	/* each vCPU's stop, before hit */
	char in[2 * GDB_PACKET_MAX + 8];
	size_t in_len;
	bool no_ack;
	bool broken;		/* a send failed: the client goes once the packet is handled */
	bool running;		/* gdb resumed the guest and waits for a stop reply */
	int cur;		/* the vCPU that g, m and s act on (Hg) */
	uint32_t step_flags;	/* KVM_GUESTDBG_SINGLESTEP, with BLOCKIRQ where KVM has it */
	struct gdb_bp bp[GDB_MAX_BP];
	int nbp;
};

/* Never waits: a debugger that does not read its replies is let go, not waited for. */
static void gdb_write(struct gdbstub *g, const char *buf, size_t n)
{
	if (!g->broken && send(g->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n) {
		errorf("gdb: the debugger does not take its replies: letting it go");
		g->broken = true;
	}
}

static void gdb_send(struct gdbstub *g, const char *data)
{
	char buf[2 * GDB_PACKET_MAX + 8];
	uint8_t sum = 0;
	size_t n = 0;

	buf[n++] = '$';
	for (const char *p = data; *p && n < sizeof(buf) - 5; p++) {
		/* gdb's escapes: '}' then the byte ^ 0x20. */
		if (*p == '$' || *p == '#' || *p == '}' || *p == '*') {
			buf[n++] = '}';
			sum += '}';
			buf[n++] = *p ^ 0x20;
			sum += *p ^ 0x20;
		} else {
			buf[n++] = *p;
			sum += *p;
		}
	}
	n += snprintf(buf + n, sizeof(buf) - n, "#%02x", sum);
	gdb_write(g, buf, n);
}

/* out: 2 * len + 1 bytes, terminated also when len is 0 (m ADDR,0). */
static void hex_encode(char *out, const void *in, size_t len)
{
	const uint8_t *b = in;

	out[0] = '\0';
	for (size_t i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static int hex_nibble(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* len bytes from hex; -1 if it is shorter or not hex. */
static int hex_decode(void *out, const char *in, size_t len)
{
	uint8_t *b = out;

	for (size_t i = 0; i < len; i++) {
		int hi = hex_nibble(in[2 * i]), lo = hi < 0 ? -1 : hex_nibble(in[2 * i + 1]);

		if (lo < 0)
			return -1;
		b[i] = hi << 4 | lo;
	}
	return 0;
}

/* "ADDR,LEN" (and what follows in *end); -1 when malformed. */
static int parse_addr_len(const char *p, uint64_t *addr, uint64_t *len, char **end)
{
	char *e;

	errno = 0;
	*addr = strtoull(p, &e, 16);
	if (e == p || *e != ',')
		return -1;
	p = e + 1;
	*len = strtoull(p, &e, 16);
	if (e == p || errno)
		return -1;
	*end = e;
	return 0;
}

/*
 * Whether the current vCPU can form linear address gva: canonical in long mode (48 bits, 57
 * with LA57), below 4 GiB otherwise. KVM_TRANSLATE walks the tables with the index bits only,
 * so 0x1000000000401000 would read what 0x401000 holds instead of failing.
 */
static bool gdb_addressable(struct gdbstub *g, uint64_t gva)
{
	struct kvm_sregs s;
	int bits;

	if (ioctl(g->vm->vcpu[g->cur].fd, KVM_GET_SREGS, &s) < 0)
		return false;
	if (!(s.efer & EFER_LMA))
		return gva >> 32 == 0;
	bits = s.cr4 & CR4_LA57 ? 57 : 48;
	return (uint64_t)((int64_t)(gva << (64 - bits)) >> (64 - bits)) == gva;
}

/* The guest's view of RAM through the current vCPU's page tables, a page at a time. */
static uint8_t *gdb_guest_ptr(struct gdbstub *g, uint64_t gva, uint64_t len)
{
	struct kvm_translation t = { .linear_address = gva };

	if (!gdb_addressable(g, gva) || ioctl(g->vm->vcpu[g->cur].fd, KVM_TRANSLATE, &t) < 0 ||
	    !t.valid)
		return NULL;
	return vm_gpa(g->vm, t.physical_address, len);
}

/* What the debugger writes counts as dirty, as the devices' writes do. */
static void gdb_dirty(struct gdbstub *g, const uint8_t *host, uint64_t len)
{
	vm_mark_dirty(g->vm, host - g->vm->ram, len);
}

/* Copies between gdb's buffer and guest memory; -1 at the first unmapped page. */
static int gdb_access(struct gdbstub *g, uint64_t gva, uint8_t *buf, uint64_t len, bool write)
{
	/* The last byte of the address space is gdb's to read; past it is not. */
	if (len && gva + len - 1 < gva)
		return -1;
	while (len) {
		uint64_t n = MIN(len, PAGE_SIZE - (gva & (PAGE_SIZE - 1)));
		uint8_t *p = gdb_guest_ptr(g, gva, n);

		if (!p)
			return -1;
		if (write) {
			memcpy(p, buf, n);
			gdb_dirty(g, p, n);
		} else
			memcpy(buf, p, n);
		gva += n, buf += n, len -= n;
	}
	return 0;
}

/*
 * The debug registers for hbreak and the watchpoints, in the order of g->bp: the addresses,
 * and DR7 with each enabled globally, its kind and its length, as QEMU sets it. Returns how
 * many are in use.
 */
static int gdb_debugregs(const struct gdbstub *g, struct kvm_guest_debug_arch *a)
{
	int n = 0;

	a->debugreg[7] = 0x600;	/* GE, and bit 10, which is always 1 */
	for (int i = 0; i < g->nbp; i++) {
		const struct gdb_bp *b = &g->bp[i];
		/* R/W: 00 execute, 01 write, 11 read or write; LEN: 00 1, 01 2, 11 4, 10 8 bytes */
		uint64_t rw = b->type == 1 ? 0 : b->type == 2 ? 1 : 3;
		uint64_t len = b->type == 1 ? 0 : b->len == 8 ? 2 : b->len == 4 ? 3 : b->len - 1;

		if (b->type == 0)
			continue;
		a->debugreg[n] = b->addr;
		a->debugreg[7] |= 2ULL << (2 * n) | rw << (16 + 4 * n) | len << (18 + 4 * n);
		n++;
	}
	return n;
}

/* Applies the breakpoints and the single step (of the current vCPU) to every vCPU, parked. */
static int gdb_set_debug(struct gdbstub *g, bool step)
{
	struct kvm_guest_debug_arch regs = { 0 };
	int hw = gdb_debugregs(g, &regs);
	bool sw = g->nbp > hw;

	for (int i = 0; i < g->vm->nvcpu; i++) {
		struct kvm_guest_debug d = { .arch = regs };

		if (sw || hw || (step && i == g->cur))
			d.control = KVM_GUESTDBG_ENABLE | (sw ? KVM_GUESTDBG_USE_SW_BP : 0) |
				    (hw ? KVM_GUESTDBG_USE_HW_BP : 0);
		if (step && i == g->cur)
			d.control |= g->step_flags;
		if (ioctl(g->vm->vcpu[i].fd, KVM_SET_GUEST_DEBUG, &d) < 0) {
			perrorf("gdb: KVM_SET_GUEST_DEBUG");
			return -1;
		}
	}
	return 0;
}

/* The guest stopped for a debugger that is gone (or leaves) runs on. */
static void gdb_resume_orphan(struct gdbstub *g)
{
	char ignored[160];

	if (vm_state(g->vm) == RUN_STATE_DEBUG)
		vm_cont(g->vm, false, ignored, sizeof(ignored));
}

/* The breakpoint that stopped the guest: an int3's, or the debug register DR6 names. */
static const struct gdb_bp *gdb_hit_bp(const struct gdbstub *g,
				       const struct kvm_debug_exit_arch *why)
{
	int hw = 0;

	for (int i = 0; i < g->nbp; i++) {
		const struct gdb_bp *b = &g->bp[i];

		if (b->type == 0 ? why->exception == BP_VECTOR && why->pc == b->addr
				 : why->exception != BP_VECTOR && !(why->dr6 & DR6_BS) &&
					   (why->dr6 & (1ULL << hw)))
			return b;
		hw += b->type != 0;
	}
	return NULL;
}

/* T: the signal (5 SIGTRAP, 2 SIGINT), the breakpoint if one stopped it, and the thread. */
static void gdb_stop_reply(struct gdbstub *g, int signal, const struct kvm_debug_exit_arch *why)
{
	static const char *const reason[] = { "swbreak:", "hwbreak:", "watch:", "", "awatch:" };
	const struct gdb_bp *b = why ? gdb_hit_bp(g, why) : NULL;
	char buf[96];
	int n = snprintf(buf, sizeof(buf), "T%02x", signal);

	if (b && b->type >= 2)
		n += snprintf(buf + n, sizeof(buf) - n, "%s%llx;", reason[b->type],
			      (unsigned long long)b->addr);
	else if (b)
		n += snprintf(buf + n, sizeof(buf) - n, "%s;", reason[b->type]);
	snprintf(buf + n, sizeof(buf) - n, "thread:%02x;", g->cur + 1);
	g->running = false;
	gdb_send(g, buf);
}

static void gdb_resume(struct gdbstub *g, bool step)
{
	char err[160];

	if (gdb_set_debug(g, step) < 0) {
		gdb_send(g, "E01");
		return;
	}
	if (vm_cont(g->vm, false, err, sizeof(err)) < 0) {
		errorf("gdb: cannot resume the guest: %s", err);
		gdb_send(g, "E01");
		return;
	}
	g->running = true;
}

static void gdb_read_regs(struct gdbstub *g)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	int fd = g->vm->vcpu[g->cur].fd;
	uint8_t raw[GDB_REGS_LEN];
	char hex[2 * GDB_REGS_LEN + 1];

	if (ioctl(fd, KVM_GET_REGS, &r) < 0 || ioctl(fd, KVM_GET_SREGS, &s) < 0) {
		gdb_send(g, "E01");
		return;
	}
	uint64_t q[17] = { r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8,
			   r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip };
	uint32_t d[7] = { r.rflags, s.cs.selector, s.ss.selector, s.ds.selector,
			  s.es.selector, s.fs.selector, s.gs.selector };

	memcpy(raw, q, sizeof(q));
	memcpy(raw + sizeof(q), d, sizeof(d));
	hex_encode(hex, raw, sizeof(raw));
	gdb_send(g, hex);
}

/* Register n (gdb's numbering) set to v; the segment selectors are left as they are. */
static void gdb_write_reg(struct kvm_regs *r, unsigned n, uint64_t v)
{
	__u64 *q[17] = { &r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi,
			    &r->rbp, &r->rsp, &r->r8,  &r->r9,  &r->r10, &r->r11,
			    &r->r12, &r->r13, &r->r14, &r->r15, &r->rip };

	if (n < 17)
		*q[n] = v;
	else if (n == 17)
		r->rflags = (uint32_t)v;
}

/* G: the whole 'g' block; P n=v: one register. */
static void gdb_write_regs(struct gdbstub *g, const char *p, bool one)
{
	int fd = g->vm->vcpu[g->cur].fd;
	struct kvm_regs r;
	uint8_t raw[GDB_REGS_LEN];
	int ok = ioctl(fd, KVM_GET_REGS, &r);
	char *e;

	if (ok == 0 && one) {
		unsigned long n = strtoul(p, &e, 16);
		uint64_t v = 0;

		/* The segment selectors (18-23) are read-only here. */
		if (e == p || *e != '=' || n > 17 || strlen(e + 1) != (n < 17 ? 16 : 8) ||
		    hex_decode(&v, e + 1, n < 17 ? 8 : 4) < 0)
			ok = -1;
		else
			gdb_write_reg(&r, n, v);
	} else if (ok == 0 && hex_decode(raw, p, sizeof(raw)) == 0) {
		for (unsigned n = 0; n < 18; n++) {
			uint64_t v = 0;

			memcpy(&v, raw + 8 * n, n < 17 ? 8 : 4);
			gdb_write_reg(&r, n, v);
		}
	} else {
		ok = -1;
	}
	gdb_send(g, ok == 0 && ioctl(fd, KVM_SET_REGS, &r) == 0 ? "OK" : "E01");
}

static void gdb_read_mem(struct gdbstub *g, const char *p)
{
	uint64_t addr, len;
	uint8_t buf[GDB_PACKET_MAX / 2];
	char hex[GDB_PACKET_MAX + 1];
	char *end;

	if (parse_addr_len(p, &addr, &len, &end) < 0 || *end) {
		gdb_send(g, "E01");
		return;
	}
	len = MIN(len, sizeof(buf));
	if (gdb_access(g, addr, buf, len, false) < 0) {
		gdb_send(g, "E14");	/* EFAULT, as gdbserver says it */
		return;
	}
	hex_encode(hex, buf, len);
	gdb_send(g, hex);
}

static void gdb_write_mem(struct gdbstub *g, const char *p)
{
	uint64_t addr, len;
	uint8_t buf[GDB_PACKET_MAX / 2];
	char *end;

	if (parse_addr_len(p, &addr, &len, &end) < 0 || *end != ':' || len > sizeof(buf) ||
	    strlen(end + 1) != 2 * len || hex_decode(buf, end + 1, len) < 0)
		gdb_send(g, "E01");
	else
		gdb_send(g, gdb_access(g, addr, buf, len, true) < 0 ? "E14" : "OK");
}

static struct gdb_bp *gdb_find_bp(struct gdbstub *g, unsigned type, uint64_t addr,
				  uint64_t len)
{
	for (int i = 0; i < g->nbp; i++)
		if (g->bp[i].type == type && g->bp[i].addr == addr && g->bp[i].len == len)
			return &g->bp[i];
	return NULL;
}

static int gdb_hw_used(const struct gdbstub *g)
{
	int n = 0;

	for (int i = 0; i < g->nbp; i++)
		n += g->bp[i].type != 0;
	return n;
}

/* A new one, in its int3 or (checked by the caller) its debug register; -1 with gdb's errno. */
static int gdb_insert_bp(struct gdbstub *g, unsigned type, uint64_t addr, uint64_t len)
{
	struct gdb_bp b = { .addr = addr, .type = type, .len = len };

	if (g->nbp == GDB_MAX_BP || (type != 0 && gdb_hw_used(g) == GDB_MAX_HW))
		return 0x1c;	/* ENOSPC */
	if (type == 0) {
		b.host = gdb_guest_ptr(g, addr, 1);
		if (!b.host)
			return 0x0e;	/* EFAULT */
		b.orig = *b.host;
		*b.host = 0xcc;
		gdb_dirty(g, b.host, 1);
	}
	g->bp[g->nbp++] = b;
	return 0;
}

static void gdb_remove_bp(struct gdbstub *g, struct gdb_bp *b)
{
	if (b->type == 0) {
		*b->host = b->orig;
		gdb_dirty(g, b->host, 1);
	}
	*b = g->bp[--g->nbp];
}

/*
 * Z/z TYPE,ADDR,KIND, armed at once (the vCPUs are parked): a watchpoint covers 1, 2, 4 or 8
 * bytes aligned to its length, as the CPU watches, and others are refused, as by QEMU. rwatch
 * (3) is not offered: x86 watches writes, or reads and writes together.
 */
static void gdb_breakpoint(struct gdbstub *g, const char *p, bool insert)
{
	unsigned type = p[0] - '0';
	uint64_t addr, len;
	struct gdb_bp *b;
	char *end, err[4];
	int e = 0;

	if (type > 4 || type == 3 || p[1] != ',') {
		gdb_send(g, "");
		return;
	}
	if (parse_addr_len(p + 2, &addr, &len, &end) < 0 ||
	    (type >= 2 && (len > 8 || !len || (len & (len - 1)) || (addr & (len - 1))))) {
		gdb_send(g, "E01");
		return;
	}
	if (type < 2)
		len = 1;
	b = gdb_find_bp(g, type, addr, len);
	if (!insert && b)
		gdb_remove_bp(g, b);
	else if (insert && !b)
		e = gdb_insert_bp(g, type, addr, len);
	if (!e && gdb_set_debug(g, false) < 0)
		e = 0x05;	/* EIO */
	snprintf(err, sizeof(err), "E%02x", e);
	gdb_send(g, e ? err : "OK");
}

static void gdb_remove_all_bp(struct gdbstub *g)
{
	while (g->nbp)
		gdb_remove_bp(g, &g->bp[g->nbp - 1]);
}

/* Hg/Hc N, T N: thread N is vCPU N - 1; 0 and -1 mean any; -1 for what is not a thread. */
static int gdb_thread(struct gdbstub *g, const char *p)
{
	char *e;
	long n = strtol(p, &e, 16);

	if (e == p || *e)
		return -1;
	if (!strcmp(p, "-1") || n == 0)
		return g->cur;
	return n >= 1 && n <= g->vm->nvcpu ? n - 1 : -1;
}

static void gdb_query(struct gdbstub *g, const char *p)
{
	char buf[GDB_PACKET_MAX];
	uint64_t off, len;
	char *end;

	if (!strncmp(p, "qSupported", 10)) {
		snprintf(buf, sizeof(buf),
			 "PacketSize=%x;qXfer:features:read+;swbreak+;hwbreak+;QStartNoAckMode+",
			 GDB_PACKET_MAX);
		gdb_send(g, buf);
	} else if (!strcmp(p, "qAttached")) {
		gdb_send(g, "1");
	} else if (!strcmp(p, "qC")) {
		snprintf(buf, sizeof(buf), "QC%02x", g->cur + 1);
		gdb_send(g, buf);
	} else if (!strcmp(p, "qfThreadInfo")) {
		size_t n = snprintf(buf, sizeof(buf), "m");

		for (int i = 0; i < g->vm->nvcpu; i++)
			n += snprintf(buf + n, sizeof(buf) - n, "%s%02x", i ? "," : "", i + 1);
		gdb_send(g, buf);
	} else if (!strcmp(p, "qsThreadInfo")) {
		gdb_send(g, "l");
	} else if (!strncmp(p, "qXfer:features:read:target.xml:", 31) &&
		   parse_addr_len(p + 31, &off, &len, &end) == 0) {
		off = MIN(off, sizeof(target_xml) - 1);
		len = MIN(len, MIN(sizeof(buf) - 2, sizeof(target_xml) - 1 - off));
		snprintf(buf, sizeof(buf), "%c%.*s", off + len < sizeof(target_xml) - 1 ? 'm' : 'l',
			 (int)len, target_xml + off);
		gdb_send(g, buf);
	} else if (!strcmp(p, "qSymbol::")) {
		gdb_send(g, "OK");
	} else {
		gdb_send(g, "");
	}
}

static void gdb_detach(struct gdbstub *g);

static void gdb_packet(struct gdbstub *g, char *p)
{
	int n;

	/* gdb's view: the guest is stopped whenever it talks to us, except to interrupt it. */
	vm_debug_stop(g->vm);
	switch (p[0]) {
	case '?':
		gdb_stop_reply(g, 5, NULL);
		break;
	case 'q':
		gdb_query(g, p);
		break;
	case 'Q':
		gdb_send(g, strcmp(p, "QStartNoAckMode") ? "" : "OK");
		g->no_ack |= !strcmp(p, "QStartNoAckMode");
		break;
	case 'H':
		n = p[1] == 'g' || p[1] == 'c' ? gdb_thread(g, p + 2) : -1;
		if (n >= 0 && p[1] == 'g')
			g->cur = n;
		gdb_send(g, n >= 0 ? "OK" : "E01");
		break;
	case 'T':
		gdb_send(g, gdb_thread(g, p + 1) >= 0 ? "OK" : "E01");
		break;
	case 'g':
		gdb_read_regs(g);
		break;
	case 'G':
	case 'P':
		gdb_write_regs(g, p + 1, p[0] == 'P');
		break;
	case 'm':
		gdb_read_mem(g, p + 1);
		break;
	case 'M':
		gdb_write_mem(g, p + 1);
		break;
	case 'c':
	case 's':
		/* An address to resume at is not taken: gdb itself never sends one. */
		if (p[1])
			gdb_send(g, "E01");
		else
			gdb_resume(g, p[0] == 's');
		break;
	case 'Z':
	case 'z':
		gdb_breakpoint(g, p + 1, p[0] == 'Z');
		break;
	case 'D':
		gdb_send(g, "OK");
		gdb_detach(g);
		break;
	case 'k':
		vm_request_exit(g->vm, 0, "host-ui", "terminated by gdb (kill)");
		break;
	default:
		gdb_send(g, "");	/* not supported: gdb does without */
	}
}

/* A vCPU thread: it has parked itself; the I/O thread stops the rest (gdb_stopped). */
static void gdb_debug_exit(void *opaque, int vcpu, const struct kvm_debug_exit_arch *why)
{
	struct gdbstub *g = opaque;
	int none = -1;
	uint64_t one = 1;

	/* The first vCPU to stop is the one gdb hears of. */
	g->why[vcpu] = *why;
	if (__atomic_compare_exchange_n(&g->hit, &none, vcpu, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE) &&
	    write(g->stop_fd, &one, sizeof(one)) < 0)
		perrorf("gdb: eventfd");
}

static void gdb_stopped(void *opaque, uint32_t events)
{
	struct gdbstub *g = opaque;
	uint64_t v;
	int vcpu;

	if (read(g->stop_fd, &v, sizeof(v)) < 0)
		return;
	vm_debug_stop(g->vm);
	vcpu = __atomic_exchange_n(&g->hit, -1, __ATOMIC_ACQ_REL);
	if (g->fd < 0) {
		gdb_resume_orphan(g);	/* the debugger has gone meanwhile */
		return;
	}
	if (vcpu < 0 || !g->running)
		return;
	g->cur = vcpu;
	gdb_set_debug(g, false);
	gdb_stop_reply(g, 5, &g->why[vcpu]);
}

/* The debugger leaves (D, or it hung up): its breakpoints go, and the guest runs on. */
static void gdb_detach(struct gdbstub *g)
{
	vm_debug_stop(g->vm);
	gdb_remove_all_bp(g);
	gdb_set_debug(g, false);
	evloop_del(&g->vm->loop, g->fd);
	close(g->fd);
	g->fd = -1;
	g->running = false;
	gdb_resume_orphan(g);
}

/* Packets are $DATA#CS; a lone 0x03 is Ctrl-C; acks (+/-) from gdb are not needed. */
static void gdb_parse(struct gdbstub *g)
{
	size_t i = 0;

	while (i < g->in_len && g->fd >= 0) {
		char *hash;
		uint8_t sum = 0, want;

		if (g->in[i] == 0x03) {
			i++;
			if (g->running) {
				vm_debug_stop(g->vm);
				gdb_set_debug(g, false);
				gdb_stop_reply(g, 2, NULL);
			}
			continue;
		}
		if (g->in[i] != '$') {
			i++;
			continue;
		}
		hash = memchr(g->in + i, '#', g->in_len - i);
		if (!hash || hash + 3 > g->in + g->in_len)
			break;	/* the rest has not come yet */
		for (char *p = g->in + i + 1; p < hash; p++)
			sum += *p;
		*hash = '\0';
		if (hex_decode(&want, hash + 1, 1) < 0 || want != sum) {
			if (!g->no_ack)
				gdb_write(g, "-", 1);
		} else {
			if (!g->no_ack)
				gdb_write(g, "+", 1);
			gdb_packet(g, g->in + i + 1);
		}
		i = hash + 3 - g->in;
	}
	memmove(g->in, g->in + i, g->in_len - i);
	g->in_len -= i;
}

static void gdb_readable(void *opaque, uint32_t events)
{
	struct gdbstub *g = opaque;
	ssize_t n;

	/* A packet larger than the buffer is garbage: drop it. */
	if (g->in_len == sizeof(g->in))
		g->in_len = 0;
	n = recv(g->fd, g->in + g->in_len, sizeof(g->in) - g->in_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		gdb_detach(g);
		return;
	}
	g->in_len += n;
	gdb_parse(g);
	if (g->fd >= 0 && g->broken)
		gdb_detach(g);
}

/*
 * A guest on its way in or out: gdb's breakpoints and writes would go astray. A destination
 * started with -incoming defer is on its way in before migrate_incoming, which asks no
 * blocker: the arriving memory would bury gdb's int3s, and its detach write their old bytes
 * over the guest's.
 */
static bool gdb_migrating(struct gdbstub *g)
{
	struct migration_info i;

	migration_query(g->vm, &i);
	return i.incoming || vm_state(g->vm) == RUN_STATE_INMIGRATE ||
	       !strcmp(i.status, "setup") || !strcmp(i.status, "active");
}

static void gdb_accept(void *opaque, uint32_t events)
{
	struct gdbstub *g = opaque;
	int fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	int one = 1, idle = 10, intvl = 5, cnt = 3;

	if (fd < 0)
		return;
	/* One debugger at a time, and none while the guest migrates. */
	if (g->fd >= 0 || gdb_migrating(g)) {
		close(fd);
		return;
	}
	/* A debugger whose host vanished must not keep the guest stopped for ever (tcp only). */
	if (g->uri.kind == MIG_TCP &&
	    (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0 ||
	     setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
	     setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
	     setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0))
		perrorf("gdb: keepalive");
	if (evloop_add(&g->vm->loop, fd, EPOLLIN, gdb_readable, g) < 0) {
		close(fd);
		return;
	}
	g->fd = fd;
	g->in_len = 0;
	g->no_ack = false;
	g->broken = false;
	g->cur = 0;
	/* As QEMU: the guest stops when the debugger comes. */
	vm_debug_stop(g->vm);
}

static int gdb_blocker(void *opaque, char *why, size_t len)
{
	struct gdbstub *g = opaque;

	if (g->fd < 0)
		return 0;
	snprintf(why, len, "a debugger (gdb) is attached: detach it first");
	return 1;
}

static void gdb_destroy(void *opaque)
{
	struct gdbstub *g = opaque;

	if (g->fd >= 0)
		close(g->fd);
	if (g->listen_fd >= 0) {
		evloop_del(&g->vm->loop, g->listen_fd);
		close(g->listen_fd);
	}
	/* Only a socket we made: a path we could not listen at may be somebody's file. */
	if (g->listen_fd >= 0 && g->uri.kind == MIG_UNIX)
		unlink(g->uri.path);
	if (g->stop_fd >= 0)
		close(g->stop_fd);
	g->vm->debug_fn = NULL;
	free(g);
}

static const struct device_ops gdb_ops = {
	.name = "gdbstub",
	.blocker = gdb_blocker,
	.destroy = gdb_destroy,
};

int gdbstub_create(struct vm *vm, const char *spec)
{
	struct gdbstub *g = calloc(1, sizeof(*g));
	char err[300], addr[300];
	int caps;

	if (!g) {
		perrorf("gdb: calloc");
		return -1;
	}
	*g = (struct gdbstub){ .vm = vm, .listen_fd = -1, .fd = -1, .hit = -1,
			       .step_flags = KVM_GUESTDBG_SINGLESTEP };
	/* A step goes into the guest's code, not into the timer interrupt's handler. */
	caps = ioctl(vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_GUEST_DEBUG2);
	if (caps > 0 && (caps & KVM_GUESTDBG_BLOCKIRQ))
		g->step_flags |= KVM_GUESTDBG_BLOCKIRQ;
	g->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->stop_fd < 0) {
		perrorf("gdb: eventfd");
		free(g);
		return -1;
	}
	if (vm_register_device(vm, &gdb_ops, g) < 0) {
		close(g->stop_fd);
		free(g);
		return -1;
	}
	/* config.c checked the address and its options (server, nowait): the stub listens. */
	snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(spec, ","), spec);
	if (mig_uri_parse(addr, &g->uri, err, sizeof(err)) < 0 ||
	    (g->listen_fd = mig_uri_listen(&g->uri, err, sizeof(err))) < 0) {
		errorf("-gdb: %s", err);
		return -1;
	}
	if (evloop_add(&vm->loop, g->listen_fd, EPOLLIN, gdb_accept, g) < 0 ||
	    evloop_add(&vm->loop, g->stop_fd, EPOLLIN, gdb_stopped, g) < 0)
		return -1;
	vm->debug_opaque = g;
	vm->debug_fn = gdb_debug_exit;
	return 0;
}
