/*
 * guest-boot/ on a real vCPU: boot a crafted ELF through the 64-bit entry and through PVH,
 * with tern's CPUID, and let the guest report what it sees over port 0xf4:
 * its RSI/EBX (zero page / start_info), CR3, RSP, CPUID 0x40000000's signature, and a value
 * read through the identity map. Skipped (not failed) where /dev/kvm cannot be opened: exit
 * status 77 after one line saying why, which tests/test_unit.py reports as a skip.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "guest-boot/internal.h"
#include "tests/unit/boot_util.h"
#include "tests/unit/unit.h"

#define RAM (32ULL << 20)
#define UNIT_EXIT_SKIP 77	/* automake's "skipped" */
#define REPORT_PORT 0xf4

/*
 * Valid in both 32- and 64-bit mode: each `out %eax, $0xf4` reports one value.
 *   mov %esi,%eax; out      (zero page, 64-bit) / garbage in PVH
 *   mov %ebx,%eax; out      (start_info in PVH)
 *   mov %esp,%eax; out
 *   mov $0x40000000,%eax; cpuid; mov %ebx,%eax; out
 *   mov 0x200000+0x80,%eax (absolute); out   -- reads through paging / flat segments
 *   hlt
 */
/* clang-format off */
static const uint8_t guest_code[] = {
	0x89, 0xf0, 0xe7, REPORT_PORT,
	0x89, 0xd8, 0xe7, REPORT_PORT,
	0x89, 0xe0, 0xe7, REPORT_PORT,
	0xb8, 0x00, 0x00, 0x00, 0x40, 0x0f, 0xa2, 0x89, 0xd8, 0xe7, REPORT_PORT,
	0x8b, 0x04, 0x25, 0x80, 0x00, 0x20, 0x00, 0xe7, REPORT_PORT,
	0xf4,
};
/* clang-format on */

struct vm {
	int kvm, fd, vcpu;
	struct kvm_run *run;
	struct guest_mem mem;
};

static int vm_open(struct vm *vm)
{
	struct kvm_userspace_memory_region r = {.slot = 0, .memory_size = RAM};
	long run_size;

	vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm < 0)
		return -1;
	vm->fd = ioctl(vm->kvm, KVM_CREATE_VM, 0);
	vm->mem.size = RAM;
	vm->mem.base = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r.userspace_addr = (uintptr_t)vm->mem.base;
	if (vm->fd < 0 || vm->mem.base == MAP_FAILED ||
	    ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return -1;
	vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
	run_size = ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->vcpu < 0 || run_size <= 0)
		return -1;
	vm->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu, 0);
	return vm->run == MAP_FAILED ? -1 : 0;
}

/* The VMM's CPUID set-up for one vCPU: KVM's, less off (may be NULL). */
static int setup_cpuid(int kvm, int vcpu, uint32_t apic_id, const struct boot_cpu *off)
{
	struct kvm_cpuid2 *c = boot_cpuid_new(kvm);
	int r;

	if (!c)
		return -1;
	if (off)
		boot_cpuid_clear(c, off);
	r = boot_cpuid_set(vcpu, c, apic_id);
	free(c);
	return r;
}

/* Runs until hlt, collecting the reported values; returns how many, or -1. */
static int vm_run(struct vm *vm, uint32_t *out, int max)
{
	int n = 0;

	for (int exits = 0; exits < 100; exits++) {
		if (ioctl(vm->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			perror("KVM_RUN");
			return -1;
		}
		switch (vm->run->exit_reason) {
		case KVM_EXIT_HLT:
			return n;
		case KVM_EXIT_IO:
			if (vm->run->io.port == REPORT_PORT && vm->run->io.size == 4 && n < max)
				memcpy(&out[n++], (uint8_t *)vm->run + vm->run->io.data_offset, 4);
			break;
		default:
			printf("unexpected exit %u\n", vm->run->exit_reason);
			return -1;
		}
	}
	return -1;
}

static void vm_close(struct vm *vm)
{
	close(vm->vcpu);
	close(vm->fd);
	close(vm->kvm);
	munmap(vm->mem.base, RAM);
}

static void test_boot_mode(bool pvh)
{
	static uint8_t elf[0x2000];
	struct test_elf t = {.paddr = 0x200000,
			     .vaddr = 0x200000,
			     .entry = 0x200000,
			     .pvh_entry = 0x200000,
			     .code = guest_code,
			     .code_len = sizeof(guest_code),
			     .memsz = 0x1000};
	struct boot_cfg cfg = {.force_pvh = pvh, .ncpus = 1};
	struct boot_entry e;
	struct kvm_sregs s;
	struct vm vm;
	uint32_t v[8];
	int n;

	if (vm_open(&vm) < 0) {
		printf("FAIL: cannot set up a VM: %s\n", strerror(errno));
		unit_failed++;
		return;
	}
	cfg.kernel = tmp_file("kvm.elf", elf, build_elf(elf, sizeof(elf), &t));
	CHECK_EQ(boot_load(&vm.mem, &cfg, &e), 0);
	put32(vm.mem.base + 0x200080, 0x5eed1234);
	CHECK_EQ(setup_cpuid(vm.kvm, vm.vcpu, 0, NULL), 0);
	CHECK_EQ(boot_setup_vcpu(vm.vcpu, &e), 0);
	CHECK_EQ(ioctl(vm.vcpu, KVM_GET_SREGS, &s), 0);
	if (pvh) {
		CHECK_EQ(s.cr0 & 0x80000001, 1);
		CHECK_EQ(s.efer, 0);
		CHECK_EQ(s.cs.db, 1);
	} else {
		CHECK_EQ(s.cr0 & 0x80000001, 0x80000001);
		CHECK_EQ(s.efer & 0x500, 0x500);
		CHECK_EQ(s.cs.l, 1);
	}
	n = vm_run(&vm, v, 8);
	CHECK_EQ(n, 5);
	if (n == 5) {
		if (!pvh)
			CHECK_EQ(v[0], BOOT_ZERO_PAGE_ADDR);
		else
			CHECK_EQ(v[1], BOOT_PVH_INFO_ADDR);
		CHECK_EQ(v[2], BOOT_STACK_TOP);
		CHECK_EQ(v[3], 0x4b4d564b); /* "KVMK" */
		CHECK_EQ(v[4], 0x5eed1234);
	}
	vm_close(&vm);
}

/*
 * The CPUID a vCPU with APIC ID 3 got, sse4.2 and avx hidden: its ID, one logical CPU and one
 * core in its package, hypervisor bit, no YMM state to enable, KVM leaves with kvmclock; and
 * the feature words say the same.
 */
static void test_cpuid(void)
{
	struct {
		struct kvm_cpuid2 c;
		struct kvm_cpuid_entry2 e[512];
	} c = {.c.nent = 512};
	struct vm vm;
	struct boot_cpu off, avx, f;
	bool sig = false, feat = false;

	if (vm_open(&vm) < 0) {
		unit_failed++;
		return;
	}
	CHECK_EQ(boot_cpu_feature("sse4.2", &off), 0);
	CHECK_EQ(boot_cpu_feature("avx", &avx), 0);
	off.w[0] |= avx.w[0];
	CHECK_EQ(setup_cpuid(vm.kvm, vm.vcpu, 3, &off), 0);
	CHECK_EQ(ioctl(vm.vcpu, KVM_GET_CPUID2, &c), 0);
	boot_cpuid_features(&c.c, &f);
	CHECK_EQ(f.w[0] & off.w[0], 0);
	for (unsigned i = 0; i < c.c.nent; i++) {
		struct kvm_cpuid_entry2 *e = &c.e[i];

		if (e->function == 1) {
			CHECK_EQ(e->ebx >> 24, 3);
			CHECK_EQ(e->ebx >> 16 & 0xff, 1);
			CHECK(e->ecx & (1u << 31));
			CHECK_EQ(e->ecx & (1u << 20 | 1u << 28), 0);	/* sse4.2, avx */
			CHECK_EQ(e->ecx, f.w[0]);
		}
		if (e->function == 0xd && e->index == 0)
			CHECK_EQ(e->eax & 1u << 2, 0);	/* no YMM state without avx */
		if (e->function == 0xb && e->index == 0) {
			CHECK_EQ(e->eax & 0x1f, 0);
			CHECK_EQ(e->edx, 3);
		}
		if (e->function == 0x80000008)
			CHECK_EQ(e->ecx & 0xf0ff, 0);
		if (e->function == 0x8000001e)	/* AMD: extended APIC ID, core 0, node 0 */
			CHECK(e->eax == 3 && e->ebx == 0 && e->ecx == 0);
		if (e->function == 0x40000000) {
			sig = true;
			CHECK_EQ(e->eax, 0x40000001);
			CHECK(!memcmp(&e->ebx, "KVMK", 4) && !memcmp(&e->ecx, "VMKV", 4));
		}
		if (e->function == 0x40000001) {
			feat = true;
			CHECK(e->eax & ((1u << 0) | (1u << 3))); /* kvmclock */
		}
	}
	CHECK(sig && feat);

	/* failures are one line naming the ioctl */
	capture_begin();
	CHECK_EQ(setup_cpuid(vm.kvm, vm.kvm, 0, NULL), -1);
	CHECK(!strncmp(capture_end(), "tern: cpuid: KVM_SET_CPUID2: ", 29));
	capture_begin();
	CHECK_EQ(boot_setup_vcpu(-1, &(struct boot_entry){ 0 }), -1);
	CHECK_STR(capture_end(), "tern: boot: KVM_GET_SREGS: Bad file descriptor\n");
	vm_close(&vm);
}

int main(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("no usable /dev/kvm on this machine (/dev/kvm: %s)\n", strerror(errno));
		return UNIT_EXIT_SKIP;
	}
	close(fd);
	tmp_init();
	test_cpuid();
	test_boot_mode(false);
	test_boot_mode(true);
	tmp_cleanup();
	return unit_summary();
}
