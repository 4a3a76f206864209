/*
 * The VM of the monitor and QMP fuzzers: two vCPUs that never run (their fds, like the VM's,
 * are -1), the monitor with its built-in and cpu_info commands, and no event loop (a harness
 * that needs one adds it). Made anew for each input.
 */
#ifndef TERN_FUZZ_IDLE_VM_H
#define TERN_FUZZ_IDLE_VM_H

#include <stdlib.h>
#include <string.h>

#include "vmm/cpu_state.h"
#include "vmm/monitor.h"
#include "vmm/vm.h"

static void idle_vm_init(struct vm *vm, struct tern_config *cfg)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->fd = -1;
	vm->cfg = cfg;
	vm->nvcpu = 2;
	for (int i = 0; i < vm->nvcpu; i++)
		vm->vcpu[i] = (struct vcpu){ .vm = vm, .fd = -1 };
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->run_lock, NULL);
	vm->monitor = monitor_create(vm);
	if (!vm->monitor || cpu_info_register(vm) < 0)
		abort();
}

#endif
