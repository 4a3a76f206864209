/*
 * The gdb remote protocol (vmm/gdbstub.c), as a debugger's TCP stream brings it: framing,
 * checksums, Ctrl-C, and every packet's handler, with breakpoints written into guest RAM.
 *
 * The stub's functions are static, so its source is included here, with the few calls that
 * need KVM or a socket turned into this harness's: the vCPU ioctls (long mode, guest virtual
 * = guest physical ^ 0x2000, so accesses cross pages), the socket's recv and send (the input,
 * in chunks; replies are checked for framing and checksum) and the event loop.
 *
 * Input: the stream comes in chunks, each byte below 0x08 but Ctrl-C (0x03) starting a new
 * one; if the guest runs when such a chunk comes, a vCPU stops first (on a breakpoint, a
 * watchpoint or a step, by that byte). FUZZ_SHOW=1 prints the replies.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/kvm.h>

#define FUZZ_FD 1000 /* the debugger's socket: never a real fd */
#define RAM_SIZE (64 * 1024)

int fuzz_ioctl(int fd, unsigned long req, ...);
ssize_t fuzz_send(int fd, const void *buf, size_t n, int flags);
ssize_t fuzz_recv(int fd, void *buf, size_t n, int flags);
int fuzz_close(int fd);

#define ioctl fuzz_ioctl
#define send fuzz_send
#define recv fuzz_recv
#define close fuzz_close
#define evloop_del fuzz_evloop_del
#define vm_request_exit fuzz_vm_request_exit
#define gdbstub_create fuzz_gdbstub_create /* the real one is linked in too */
#include "vmm/gdbstub.c"
#undef ioctl
#undef send
#undef recv
#undef close

/* The input left to feed, and the replies' check. */
static const uint8_t *in_p;
static size_t in_left;

int fuzz_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (req == KVM_GET_SREGS) {
		struct kvm_sregs *s = arg;

		memset(s, 0, sizeof(*s));
		s->efer = EFER_LMA;
		s->cs.selector = 0x8;
	} else if (req == KVM_GET_REGS) {
		struct kvm_regs *r = arg;

		memset(r, 0, sizeof(*r));
		r->rip = 0x1000;
		r->rflags = 2;
	} else if (req == KVM_TRANSLATE) {
		struct kvm_translation *t = arg;

		t->physical_address = t->linear_address ^ 0x2000;
		t->valid = t->linear_address < (1ULL << 40);
	}
	return 0;
}

/* Each reply must be $DATA#CS with the right sum, or a lone ack. */
static void check_reply(const char *buf, size_t n)
{
	uint8_t sum = 0;

	if (n == 1 && (buf[0] == '+' || buf[0] == '-'))
		return;
	if (n < 4 || buf[0] != '$' || buf[n - 3] != '#')
		abort();
	for (size_t i = 1; i < n - 3; i++) {
		if (buf[i] == '$' || buf[i] == '#')
			abort();
		sum += (uint8_t)buf[i];
	}
	if (hex_nibble(buf[n - 2]) << 4 != (sum & 0xf0) || hex_nibble(buf[n - 1]) != (sum & 0xf))
		abort();
}

ssize_t fuzz_send(int fd, const void *buf, size_t n, int flags)
{
	if (fd != FUZZ_FD)
		abort();
	check_reply(buf, n);
	if (getenv("FUZZ_SHOW"))
		fprintf(stderr, "reply: %.*s\n", (int)n, (const char *)buf);
	return n;
}

/* One chunk: up to the next byte below 0x08 (not taken), or what fits. */
ssize_t fuzz_recv(int fd, void *buf, size_t n, int flags)
{
	size_t k = 0;

	if (fd != FUZZ_FD)
		abort();
	while (k < n && k < in_left && (k == 0 || in_p[k] >= 0x08 || in_p[k] == 0x03))
		k++;
	memcpy(buf, in_p, k);
	in_p += k, in_left -= k;
	return k;
}

int fuzz_close(int fd)
{
	return fd == FUZZ_FD ? 0 : close(fd);
}

void fuzz_evloop_del(struct evloop *l, int fd)
{
}

void fuzz_vm_request_exit(struct vm *vm, int code, const char *cause, const char *why)
{
	vm->exiting = true;
}

/* A vCPU stops on a breakpoint, a watchpoint (DR6 bit) or a step, as KVM would tell it. */
static void guest_stop(struct gdbstub *g, uint8_t how)
{
	struct kvm_debug_exit_arch why = { 0 };
	int vcpu = how & 1;

	if (how & 2) {
		why.exception = BP_VECTOR;
		why.pc = g->nbp ? g->bp[how % g->nbp].addr : 0x1000;
	} else {
		why.exception = 1;
		why.dr6 = how & 4 ? DR6_BS : 1ULL << (how >> 3 & 3);
	}
	gdb_debug_exit(g, vcpu, &why);
	gdb_stopped(g, EPOLLIN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vm vm;
	static uint8_t ram[RAM_SIZE];
	static int stop_fd = -1;
	struct gdbstub *g;

	if (stop_fd < 0)
		stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (stop_fd < 0)
		abort();
	memset(&vm, 0, sizeof(vm));
	pthread_mutex_init(&vm.lock, NULL);
	pthread_mutex_init(&vm.run_lock, NULL);
	vm.ram = ram;
	vm.ram_size = sizeof(ram);
	vm.nvcpu = 2;
	for (int i = 0; i < vm.nvcpu; i++)
		vm.vcpu[i] = (struct vcpu){ .vm = &vm, .fd = -1 };
	vm.state = RUN_STATE_RUNNING;
	memset(ram, 0x90, sizeof(ram));

	g = calloc(1, sizeof(*g));
	if (!g)
		return 0;
	*g = (struct gdbstub){ .vm = &vm, .listen_fd = -1, .fd = FUZZ_FD, .stop_fd = stop_fd,
			       .hit = -1, .step_flags = KVM_GUESTDBG_SINGLESTEP };
	vm_debug_stop(&vm);	/* as gdb_accept() */
	in_p = data;
	in_left = size;
	while (g->fd >= 0) {
		if (in_left && in_p[0] < 0x08 && in_p[0] != 0x03 && g->running)
			guest_stop(g, in_p[0]);
		gdb_readable(g, EPOLLIN);
	}
	free(g);
	pthread_mutex_destroy(&vm.lock);
	pthread_mutex_destroy(&vm.run_lock);
	return 0;
}
