/* Network devices: a virtio-net NIC per -device, each on a tap backend. */
#ifndef TERN_NET_H
#define TERN_NET_H

struct vm;

/* Creates every NIC of vm->cfg; registers them with the VM. */
int net_create(struct vm *vm);

#endif
