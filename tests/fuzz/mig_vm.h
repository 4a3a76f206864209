/*
 * The small VM the migration fuzzers (fuzz_stream.c, fuzz_answer.c) migrate, without
 * /dev/kvm: RAM_PAGES of RAM, the serial port, a virtio-blk disk on a memfd, kvmclock, the
 * irqchip and one vCPU's state (no vCPU thread). The VM's and the vCPU's fd are /dev/null,
 * and the ioctl() below answers for it as KVM would; other fds go to the kernel. A harness
 * includes this once; the caller's thread is the VM's I/O thread.
 */
#ifndef TERN_FUZZ_MIG_VM_H
#define TERN_FUZZ_MIG_VM_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/kvm.h>

#include "vmm/chardev.h"
#include "vmm/config.h"
#include "vmm/migration/internal.h"
#include "vmm/cpu_state.h"
#include "vmm/monitor.h"
#include "vmm/serial.h"
#include "vmm/virtio_blk.h"
#include "vmm/vm.h"

#define RAM_PAGES 64
#define DISK_BYTES (64 << 10)

static int kvm_stub_fd = -1;
static struct chardev serial_chr;	/* its input is the harness's to feed */

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd != kvm_stub_fd || fd < 0)
		return syscall(SYS_ioctl, fd, req, arg);
	/* What KVM would hand back: zeros, but for what irqchip_check compares. */
	if ((_IOC_DIR(req) & _IOC_READ) && arg)
		memset(arg, 0, _IOC_SIZE(req));
	/* Every MSR taken or given, as KVM does for the ones it has. */
	if (req == KVM_SET_MSRS || req == KVM_GET_MSRS)
		return ((struct kvm_msrs *)arg)->nmsrs;
	if (req == KVM_GET_IRQCHIP) {
		struct kvm_irqchip *c = arg;
		uint32_t id = c->chip_id;

		memset(c, 0, sizeof(*c));
		c->chip_id = id;
		if (id == KVM_IRQCHIP_IOAPIC)
			c->chip.ioapic.base_address = VM_IOAPIC_BASE;
		else
			c->chip.pic.elcr_mask = id == KVM_IRQCHIP_PIC_MASTER ? 0xf8 : 0xde;
	}
	return 0;
}

static int discard_write(struct chardev *c, const uint8_t *buf, size_t len)
{
	(void)c, (void)buf, (void)len;
	return 0;
}

/* The VM, or NULL; extra (may be NULL) adds devices after the disk. */
static struct vm *mig_vm_create(int (*extra)(struct vm *vm))
{
	static struct tern_config cfg;
	static char drive[64];
	char *argv[] = { "tern", "-kernel", "none", "-sandbox", "off", "-drive", drive,
			 "-device", "virtio-blk,drive=d0,serial=fuzz", NULL };
	int img = memfd_create("fuzz-mig-disk", 0);
	struct vm *vm = calloc(1, sizeof(*vm));

	kvm_stub_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (!vm || img < 0 || kvm_stub_fd < 0 || ftruncate(img, DISK_BYTES) < 0)
		return NULL;
	snprintf(drive, sizeof(drive), "file=/proc/self/fd/%d,if=none,id=d0", img);
	vm->fd = vm->kvm_fd = kvm_stub_fd;
	vm->cfg = &cfg;
	vm->ram_size = RAM_PAGES * 4096;
	vm->ram = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	serial_chr = (struct chardev){ .write = discard_write, .fd = -1 };
	if (vm->ram == MAP_FAILED || dirty_init(&vm->dirty, vm->ram_size) < 0 ||
	    evloop_init(&vm->loop) < 0 || config_parse(&cfg, 9, argv) != 0 || !monitor_create(vm) ||
	    !serial_create(vm, &serial_chr) || virtio_blk_create_all(vm) < 0 ||
	    (extra && extra(vm) < 0) || kvmclock_register(vm) < 0 ||
	    irqchip_state_register(vm) < 0)
		return NULL;
	/* A vCPU's state device, but no vCPU thread: arriving pauses and resumes none. */
	vm->nvcpu = 1;
	vm->vcpu[0].fd = kvm_stub_fd;
	if (cpu_state_register(vm) < 0)
		return NULL;
	vm->nvcpu = 0;
	/* evloop_call from here runs the hook here: this thread is the I/O thread. */
	vm->loop.thread = pthread_self();
	return vm;
}

/* Each input starts from the same VM, in state s (the RAM is the caller's to set). */
static void mig_vm_reset(struct vm *vm, enum vm_runstate s)
{
	vm->exiting = false;
	vm->exit_code = 0;
	vm->state = s;
	vm->autostart = true;
	vm->stop_pending = false;
	__atomic_store_n(&vm->loop.stop, false, __ATOMIC_RELEASE);
}

/*
 * Every record's checksum made right, from off on (a source's stream has a 16-byte header): a
 * mutated record fails its checksum, and the fuzzer would never get past it to what lies
 * behind (the tree, the pages). The reader still reads exactly these bytes.
 */
static void mig_fix_checksums(uint8_t *p, size_t size, size_t off)
{
	while (off <= size && size - off >= sizeof(struct rec_hdr)) {
		struct rec_hdr h;
		uint32_t crc;

		memcpy(&h, p + off, sizeof(h));
		if (h.len > size - off - sizeof(h) || size - off - sizeof(h) - h.len < 4)
			return;
		crc = crc32c(0, p + off, sizeof(h) + h.len);
		memcpy(p + off + sizeof(h) + h.len, &crc, 4);
		off += sizeof(h) + h.len + 4;
	}
}

#endif
