/* virtio-blk on a raw image or block device of the host (virtio 1.x, section 5.2). */
#ifndef TERN_VIRTIO_BLK_H
#define TERN_VIRTIO_BLK_H

struct vm;
struct tern_config;

/* Opens every -drive image once, so a bad one is the error a user sees, before /dev/kvm. */
int virtio_blk_check_drives(const struct tern_config *c);

/* The disks of the command line (-drive, -device virtio-blk), and `info block`. */
int virtio_blk_create_all(struct vm *vm);

#endif
