/*
 * The human monitor (vmm/monitor.c): keys from a terminal or a socket go through its line
 * editor (escape sequences, UTF-8, backspace) and its command parser (quotes, words, the
 * longest command name) to the commands that need no KVM: help, info, stop, cont, quit, cpu
 * and info registers (which fail without vCPUs, as they may). The VM has two vCPUs that never
 * run; their fds are -1.
 *
 * Input: byte 0 bit 0 echo (a terminal), then the keys, in reads that end after each '\r'
 * (as a socket brings them), so a line or a sequence may be split.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/idle_vm.h"

/* The output must be what was asked for: it is only counted. */
static void out(void *opaque, const char *buf, size_t len)
{
	size_t *n = opaque;

	if (len && !buf)
		abort();
	*n += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tern_config cfg = { .name = "fuzz" };
	static struct vm vm;
	struct mon_session *s;
	size_t n = 0;

	if (size < 1)
		return 0;
	idle_vm_init(&vm, &cfg);
	if (evloop_init(&vm.loop) < 0)
		abort();
	s = monitor_session_new(vm.monitor, out, &n, data[0] & 1);
	for (size_t i = 1; i < size;) {
		const uint8_t *cr = memchr(data + i, '\r', size - i);
		size_t len = cr ? (size_t)(cr - (data + i)) + 1 : size - i;

		monitor_session_input(s, (const char *)data + i, len);
		i += len;
	}
	monitor_session_close(s);
	monitor_destroy(vm.monitor);
	evloop_destroy(&vm.loop);
	pthread_mutex_destroy(&vm.lock);
	pthread_mutex_destroy(&vm.run_lock);
	return 0;
}
