/* Ring-3 side of the system calls (entry.S) and port I/O (allowed in ring 3 by IOPL=3). */
#ifndef SYS_H
#define SYS_H

#include <stdint.h>
#include "guest.h"

static inline uint64_t syscall2(uint64_t n, uint64_t a, uint64_t b)
{
	/* The handlers touch only rax, rcx, rdx; iretq restores the flags. */
	asm volatile("call syscall_gate"
		     : "+a"(n), "+D"(a), "+S"(b)
		     :
		     : "rcx", "rdx", "memory", "cc");
	return n;
}

static inline void sys_serial_write(const char *buf, uint64_t n)
{
	syscall2(SYS_SERIAL_WRITE, (uint64_t)(uintptr_t)buf, n);
}
static inline uint64_t sys_serial_read(char *buf, uint64_t max)
{
	return syscall2(SYS_SERIAL_READ, (uint64_t)(uintptr_t)buf, max);
}
#define OUTB_ENTRY(port, val) ((uint32_t)(port) | (uint32_t)(val) << 16)
static inline void sys_outb_list(const uint32_t *list, uint64_t n)
{
	syscall2(SYS_OUTB_LIST, (uint64_t)(uintptr_t)list, n);
}
static inline void sys_halt(void) { syscall2(SYS_HALT, 0, 0); }
static inline void wrmsr(uint32_t msr, uint64_t v) { syscall2(SYS_WRMSR, msr, v); }
static inline uint64_t rdmsr(uint32_t msr) { return syscall2(SYS_RDMSR, msr, 0); }
static inline void irq_enable(int on) { syscall2(SYS_IRQ, on, 0); }
static inline uint64_t read_cr2(void) { return syscall2(SYS_READ_CR2, 0, 0); }
__attribute__((noreturn)) static inline void crash(void)
{
	syscall2(SYS_CRASH, 0, 0);
	__builtin_unreachable();
}

static inline void outb(uint16_t port, uint8_t v)
{
	asm volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	asm volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static inline void cpu_relax(void) { asm volatile("pause" ::: "memory"); }
#define barrier() asm volatile("" ::: "memory")

static inline uint32_t mmio_read32(uint64_t addr) { return *(volatile uint32_t *)addr; }
static inline void mmio_write32(uint64_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }

/* Pending interrupt vectors (bit = vector - VEC_FIRST), set by ring 0. */
extern volatile uint64_t irq_pending;
static inline uint64_t irq_take(void)
{
	/* xchg is one instruction: ring 0 (the only other writer) cannot split it. */
	return __atomic_exchange_n(&irq_pending, 0, __ATOMIC_SEQ_CST);
}
#define IRQ_BIT(vec) (1ULL << ((vec) - VEC_FIRST))

#endif
