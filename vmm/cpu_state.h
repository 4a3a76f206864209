/*
 * The machine state KVM keeps for us, as devices with save/load hooks: the vCPU (registers,
 * FPU/XSAVE, MSRs, LAPIC, events), the in-kernel irqchip and PIT, and kvmclock; and the
 * monitor's `info registers` (cpu_info.c).
 */
#ifndef TERN_CPU_STATE_H
#define TERN_CPU_STATE_H

struct vm;

/* The CPUID every vCPU gets (-cpu), and its part in a migration's hello. */
int cpu_model_create(struct vm *vm);
/* Each vCPU's registers, MSRs, LAPIC and events, as a device node per vCPU. */
int cpu_state_register(struct vm *vm);
int irqchip_state_register(struct vm *vm);
int kvmclock_register(struct vm *vm);
int cpu_info_register(struct vm *vm);

#endif
