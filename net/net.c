/*
 * The NICs of the command line, and the monitor commands that concern them. NICs are found
 * again through the VM's device list, so nothing here keeps state of its own.
 */
#include <string.h>

#include "net/net.h"
#include "net/virtio_net.h"
#include "vmm/monitor.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static void cmd_info_network(struct mon_session *s, int argc, char **argv)
{
	monitor_info_devices(s, "network", "no network devices");
}

static void cmd_announce_self(struct mon_session *s, int argc, char **argv)
{
	struct vm *vm = monitor_session_vm(s);

	for (int i = 0; i < vm->ndev; i++) {
		struct virtio_net *n = virtio_net_of(&vm->dev[i]);

		if (n)
			virtio_net_announce(n);
	}
}

int net_create(struct vm *vm)
{
	const struct tern_config *c = vm->cfg;

	for (int i = 0; i < c->n_nic; i++) {
		const struct netdev_cfg *nd = config_netdev_of(c, c->nic[i].netdev);

		/* config_parse() checked that every NIC names a -netdev. */
		if (!virtio_net_create(vm, nd, c->nic[i].mac))
			return -1;
	}
	if (monitor_add_command(vm->monitor, "info network", NULL,
				"show the NICs, their taps, bridges and counters",
				cmd_info_network) < 0 ||
	    monitor_add_command(vm->monitor, "announce_self", NULL,
				"send RARP announcements of the guest's MACs now",
				cmd_announce_self) < 0)
		return -1;
	return 0;
}
