/*
 * virtio-blk on a raw image or block device of the host: one request queue, served by a thread
 * of its own with plain pread/pwrite, in the order the requests come. The host I/O runs without
 * the device's lock, so neither the I/O thread (the NIC, the monitor, a migration) nor a vCPU
 * touching the device's registers waits for the disk. A reset or a migration's stop waits for
 * the requests at hand (virtio_blk_quiesce), as QEMU drains its requests.
 *
 * Migration: the image itself is not copied. Both sides open the same file (the same host, or
 * shared storage), as QEMU without block migration. The source flushes what the guest wrote
 * at the stop, before the hand-over; the hello makes both sides agree on size and mode.
 *
 * Two guests must never write one image at once, so it is locked (an OFD lock on the whole
 * file: shared for a read-only drive, exclusive otherwise) and a second tern on it is refused.
 * A destination opens it unlocked; the source lets it go at its stop and the destination takes
 * it with the guest's state, which comes after. A source whose migration fails takes it back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <libfdt.h>

#include "vmm/monitor.h"
#include "vmm/sandbox.h"
#include "vmm/util.h"
#include "vmm/virtio_blk.h"
#include "vmm/virtio_mmio.h"
#include "vmm/vm.h"

#define VIRTIO_ID_BLOCK 2

enum { F_SEG_MAX = 2, F_RO = 5, F_BLK_SIZE = 6, F_FLUSH = 9 };
#define BIT(f) (1ULL << (f))
#define BLK_FEATURES                                                                               \
	(BIT(F_SEG_MAX) | BIT(F_BLK_SIZE) | BIT(F_FLUSH) | BIT(VIRTIO_F_RING_INDIRECT_DESC) |      \
	 BIT(VIRTIO_F_RING_EVENT_IDX) | BIT(VIRTIO_F_VERSION_1))

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8 };
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };

#define SECTOR 512
#define BLK_ID_BYTES 20
/* Requests a call (see virtio_mmio_serve()): bounds how long a stop waits for a busy disk. */
#define BLK_BURST 16
/* Longer reads and writes are refused (IOERR): far beyond what drivers send (Linux: 1280 KiB),
 * and a stop waits for the request at hand. */
#define BLK_MAX_REQUEST (64ULL << 20)

struct virtio_blk_config {
	uint64_t capacity; /* in 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	struct {
		uint16_t cylinders;
		uint8_t heads, sectors;
	} geometry;
	uint32_t blk_size;
} __attribute__((packed));

struct virtio_blk_req {
	uint32_t type, reserved;
	uint64_t sector;
};

struct virtio_blk {
	struct vm *vm;
	struct virtio_mmio v;
	/* The shared ops, with F_RO for a read-only drive. */
	struct virtio_dev_ops ops;
	struct virtio_blk_config config;
	const struct drive_cfg *drive;
	char serial[BLK_ID_BYTES];
	int fd;
	uint64_t size;
	bool paused;	/* migration's stop-and-copy: no guest memory writes, no disk writes */
	bool unflushed; /* written since the last fdatasync */
	bool io_failed; /* a host I/O error was printed; later ones are only counted */
	bool locked;
	bool flush_failed; /* at the stop: the migration must not go on */
	bool sync_lost;	   /* fdatasync failed: writes may be lost, every flush fails */
	/*
	 * The worker, under v.lock: started (1) or failed to (-1); kicked; serving the queue (with
	 * v.lock let go for host I/O); threads waiting for it to stop serving (quiescers).
	 */
	pthread_t worker;
	bool has_worker, kicked, serving, stopping;
	int worker_state, quiescers;
	pthread_cond_t wake, idle;
	uint64_t rd_ops, rd_bytes, wr_ops, wr_bytes, flushes, errors;
	struct virtq_chain chain;
};

/* --- the image -------------------------------------------------------------------------- */

/* Takes (lock) or lets go of the image's lock; -1 with errno if another process holds it. */
static int drive_lock(int fd, const struct drive_cfg *d, bool lock)
{
	struct flock fl = {.l_type = d->readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};

	if (!lock)
		fl.l_type = F_UNLCK;
	return fcntl(fd, F_OFD_SETLK, &fl);
}

static void drive_lock_failed(const struct drive_cfg *d)
{
	if (errno == EAGAIN || errno == EACCES)
		errorf("-drive file=%s: in use by another process (locked%s): is another guest "
		       "running on it?",
		       d->file, d->readonly ? " for writing" : "");
	else
		perrorf("-drive file=%s: lock", d->file);
}

/* Opens the image and finds its size; a qcow2 file is refused unless format=raw says to take
 * it as it is. The fd, or -1 after one line. */
static int drive_open(const struct drive_cfg *d, uint64_t *size, bool lock)
{
	int fd = open(d->file, (d->readonly ? O_RDONLY : O_RDWR) | (d->sync_writes ? O_DSYNC : 0) |
				   O_CLOEXEC);
	struct stat st;
	char magic[4];

	if (fd < 0 || fstat(fd, &st) < 0) {
		perrorf("-drive file=%s", d->file);
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0) {
			perrorf("-drive file=%s: BLKGETSIZE64", d->file);
			goto fail;
		}
	} else if (S_ISREG(st.st_mode)) {
		*size = st.st_size;
	} else {
		errorf("-drive file=%s: not a regular file or block device", d->file);
		goto fail;
	}
	if (!d->raw && pread(fd, magic, 4, 0) == 4 && !memcmp(magic, "QFI\xfb", 4)) {
		errorf("-drive file=%s: a qcow2 image; tern reads raw images (qemu-img convert -O "
		       "raw), or add format=raw to take it as it is",
		       d->file);
		goto fail;
	}
	if (lock && drive_lock(fd, d, true) < 0) {
		drive_lock_failed(d);
		goto fail;
	}
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

int virtio_blk_check_drives(const struct tern_config *c)
{
	uint64_t size;

	for (int i = 0; i < c->n_drive; i++) {
		int fd = drive_open(&c->drive[i], &size, !c->incoming);

		if (fd < 0)
			return -1;
		close(fd);
	}
	return 0;
}

/* The device's lock follows the guest: held where it may run, let go where it may not. */
static int blk_set_lock(struct virtio_blk *b, bool lock)
{
	if (lock == b->locked)
		return 0;
	if (drive_lock(b->fd, b->drive, lock) < 0) {
		drive_lock_failed(b->drive);
		return -1;
	}
	b->locked = lock;
	return 0;
}

/* --- requests ---------------------------------------------------------------------------- */

/*
 * Bytes [skip, skip + len) of the chain's segments first .. first + n - 1, as a list of their
 * own (with each piece's guest address). Returns its length.
 */
static unsigned blk_slice(const struct virtq_chain *c, unsigned first, unsigned n, uint64_t skip,
			  uint64_t len, struct iovec *iov, uint64_t *gpa)
{
	unsigned k = 0;

	for (unsigned i = first; i < first + n && len; i++) {
		uint64_t l = c->iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l = MIN(l - skip, len);
		iov[k].iov_base = (uint8_t *)c->iov[i].iov_base + skip;
		iov[k].iov_len = l;
		gpa[k++] = c->gpa[i] + skip;
		skip = 0;
		len -= l;
	}
	return k;
}

/* One segment, retrying short transfers. */
static int blk_pio(int fd, bool write, uint8_t *p, size_t len, off_t off)
{
	while (len) {
		ssize_t r = write ? pwrite(fd, p, len, off) : pread(fd, p, len, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			if (write) {
				errno = EIO;
				return -1;
			}
			/* The file shrank under us: past its end reads as zeros. */
			memset(p, 0, len);
			return 0;
		}
		p += r;
		len -= r;
		off += r;
	}
	return 0;
}

/* A host error goes to the guest as IOERR; the first one also gets a line here. */
static uint8_t blk_failed(struct virtio_blk *b, const char *what, uint64_t off)
{
	if (!b->io_failed)
		perrorf("%s: %s %s at byte %llu (further errors are only counted, see info block)",
			b->v.name, what, b->drive->file, (unsigned long long)off);
	b->io_failed = true;
	b->errors++;
	return S_IOERR;
}

/* Whole sectors inside the disk only, as QEMU checks; and no writes to a read-only one. */
static bool blk_request_ok(struct virtio_blk *b, bool write, uint64_t sector, uint64_t len)
{
	return len % SECTOR == 0 && len <= BLK_MAX_REQUEST && sector <= b->config.capacity &&
	       len / SECTOR <= b->config.capacity - sector && !(write && b->drive->readonly);
}

/* The host I/O of a read or write (without v.lock). 0, or -1 with errno and *off at fault. */
static int blk_rw(struct virtio_blk *b, bool write, struct iovec *iov, uint64_t *gpa, unsigned n,
		  off_t *off)
{
	for (unsigned i = 0; i < n; i++) {
		int r = blk_pio(b->fd, write, iov[i].iov_base, iov[i].iov_len, *off);

		if (!write)
			vm_mark_dirty(b->vm, gpa[i], iov[i].iov_len);
		if (r < 0)
			return -1;
		*off += iov[i].iov_len;
	}
	return 0;
}

/* A read or write, v.lock let go for the host I/O. */
static uint8_t blk_transfer(struct virtio_blk *b, bool write, uint64_t sector, struct iovec *iov,
			    uint64_t *gpa, unsigned n, uint64_t len)
{
	off_t off = sector * SECTOR;
	int r;

	if (!blk_request_ok(b, write, sector, len)) {
		b->errors++;
		return S_IOERR;
	}
	pthread_mutex_unlock(&b->v.lock);
	r = blk_rw(b, write, iov, gpa, n, &off);
	pthread_mutex_lock(&b->v.lock);
	if (r < 0)
		return blk_failed(b, write ? "write" : "read", off);
	if (write) {
		b->wr_ops++;
		b->wr_bytes += len;
		b->unflushed = true;
	} else {
		b->rd_ops++;
		b->rd_bytes += len;
	}
	return S_OK;
}

/* fdatasync if anything was written since the last; with unlock, v.lock let go meanwhile. */
static uint8_t blk_flush(struct virtio_blk *b, bool unlock)
{
	int r;

	/*
	 * Once fdatasync failed, Linux may have dropped the writes and says so only once: a later
	 * one would succeed with them lost. So it stays failed, as QEMU's does.
	 */
	if (b->sync_lost)
		return blk_failed(b, "fdatasync (failed before)", 0);
	if (!b->unflushed)
		return S_OK;
	b->unflushed = false; /* writes from now on are for the next flush */
	if (unlock)
		pthread_mutex_unlock(&b->v.lock);
	r = fdatasync(b->fd);
	if (unlock)
		pthread_mutex_lock(&b->v.lock);
	if (r < 0) {
		b->sync_lost = true;
		return blk_failed(b, "fdatasync", 0);
	}
	return S_OK;
}

/* Copies from (to_chain false) or into a list of pieces. */
static void blk_copy(struct vm *vm, struct iovec *iov, uint64_t *gpa, unsigned n, void *buf,
		     bool to_chain)
{
	uint8_t *p = buf;

	for (unsigned i = 0; i < n; p += iov[i++].iov_len) {
		if (!to_chain) {
			memcpy(p, iov[i].iov_base, iov[i].iov_len);
			continue;
		}
		memcpy(iov[i].iov_base, p, iov[i].iov_len);
		vm_mark_dirty(vm, gpa[i], iov[i].iov_len);
	}
}

/*
 * One request: a header (out), data (out for writes, in for reads) and a status byte, the
 * last byte of the in part. The driver may lay them out over the descriptors as it likes.
 */
static int virtio_blk_request(void *opaque, struct virtq_chain *c)
{
	struct virtio_blk *b = opaque;
	struct virtio_blk_req h;
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint64_t gpa[VIRTQ_MAX_SEGS], din, dout, written = 0;
	unsigned n;
	uint8_t status;

	if (c->out_len < sizeof(h) || c->in_len < 1) {
		b->v.vq[0].error = "request without its header or status byte";
		return -1;
	}
	din = c->in_len - 1;
	dout = c->out_len - sizeof(h);
	n = blk_slice(c, 0, c->nout, 0, sizeof(h), iov, gpa);
	blk_copy(b->vm, iov, gpa, n, &h, false);
	switch (h.type) {
	case T_IN:
		n = blk_slice(c, c->nout, c->nin, 0, din, iov, gpa);
		status = blk_transfer(b, false, h.sector, iov, gpa, n, din);
		written = status == S_OK ? din : 0;
		break;
	case T_OUT:
		n = blk_slice(c, 0, c->nout, sizeof(h), dout, iov, gpa);
		status = blk_transfer(b, true, h.sector, iov, gpa, n, dout);
		/*
		 * A driver that did not take F_FLUSH cannot flush: the disk is writethrough for
		 * it (virtio 1.x 5.2.5, legacy interface: writeback only if F_FLUSH was
		 * negotiated; Linux takes it so, QEMU turns its cache off), so each write must be
		 * on the disk when it is done.
		 */
		if (status == S_OK && !(b->v.driver_features & BIT(F_FLUSH)) &&
		    !b->drive->sync_writes && !b->drive->no_flush)
			status = blk_flush(b, true);
		break;
	case T_FLUSH:
		/* cache=unsafe: as in QEMU, speed over a host crash (a migration still flushes). */
		b->flushes++;
		status = b->drive->no_flush ? S_OK : blk_flush(b, true);
		break;
	case T_GET_ID:
		written = MIN(din, BLK_ID_BYTES);
		n = blk_slice(c, c->nout, c->nin, 0, written, iov, gpa);
		blk_copy(b->vm, iov, gpa, n, b->serial, true);
		status = S_OK;
		break;
	default:
		status = S_UNSUPP;
	}
	n = blk_slice(c, c->nout, c->nin, din, 1, iov, gpa);
	blk_copy(b->vm, iov, gpa, n, &status, true);
	return written + 1;
}

/* The driver kicked the queue (I/O thread): the worker takes it from here. */
static void virtio_blk_notify(void *opaque, unsigned q)
{
	struct virtio_blk *b = opaque;

	b->kicked = true;
	pthread_cond_signal(&b->wake);
}

/*
 * Waits (v.lock held) until the worker is not serving the queue, and keeps it from starting
 * again meanwhile. Not on the worker itself (a broken ring resets the device from there).
 */
static void virtio_blk_quiesce(struct virtio_blk *b)
{
	if (b->has_worker && pthread_equal(pthread_self(), b->worker))
		return;
	b->quiescers++;
	while (b->serving)
		pthread_cond_wait(&b->idle, &b->v.lock);
	b->quiescers--;
	pthread_cond_signal(&b->wake);
}

/*
 * A source whose migration failed could not take the image's lock back: its destination may
 * hold it a moment longer. Requests wait; we try again every 10 ms. 0 once it is ours.
 */
static int blk_relock(struct virtio_blk *b)
{
	struct timespec ts;

	if (!drive_lock(b->fd, b->drive, true)) {
		b->locked = true;
		errorf("%s: %s locked again: disk requests go on", b->v.name, b->drive->file);
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += 10000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&b->wake, &b->v.lock, &ts);
	return -1;
}

static void virtio_blk_serve(struct virtio_blk *b)
{
	b->kicked = false;
	if (!virtio_mmio_running(&b->v))
		return;
	b->serving = true;
	virtio_mmio_serve(&b->v, 0, BLK_BURST, virtio_blk_request, &b->chain);
	b->serving = false;
	pthread_cond_broadcast(&b->idle);
}

static void *virtio_blk_worker(void *opaque)
{
	struct virtio_blk *b = opaque;
	/* Made before the I/O thread filtered itself: it takes the same filter on its own. */
	int r = b->vm->cfg->no_sandbox ? 0 : sandbox_enter(SANDBOX_IO);

	pthread_mutex_lock(&b->v.lock);
	b->worker_state = r < 0 ? -1 : 1;
	pthread_cond_broadcast(&b->idle);
	while (r == 0 && !b->stopping) {
		if (b->paused || b->quiescers || !b->kicked ||
		    vm_state(b->vm) != RUN_STATE_RUNNING)
			pthread_cond_wait(&b->wake, &b->v.lock);
		else if (b->locked || !blk_relock(b))
			virtio_blk_serve(b);
	}
	pthread_mutex_unlock(&b->v.lock);
	return NULL;
}

/* Before the transport resets the queues (or gives up on them): no request may be half done. */
static void virtio_blk_reset(void *opaque)
{
	virtio_blk_quiesce(opaque);
}

/* QueueReady 0: the request at hand ends (unreturned) before the driver reuses its buffers. */
static void virtio_blk_queue_stop(void *opaque, unsigned q)
{
	virtio_blk_quiesce(opaque);
}

static void virtio_blk_config_read(void *opaque, unsigned off, uint8_t *data, unsigned len)
{
	struct virtio_blk *b = opaque;

	memcpy(data, (uint8_t *)&b->config + off, len);
}

static const struct virtio_dev_ops virtio_blk_dev_ops = {
    .device_id = VIRTIO_ID_BLOCK,
    .features = BLK_FEATURES,
    .nqueues = 1,
    .config_size = sizeof(struct virtio_blk_config),
    .config_read = virtio_blk_config_read, /* writable only with CONFIG_WCE, not offered */
    .notify = virtio_blk_notify,
    .reset = virtio_blk_reset,
    .queue_stop = virtio_blk_queue_stop,
};

/* --- the device as the core sees it: migration, monitor, teardown ---------------------- */

/* What both sides of a migration must agree on: the same disk, the same way. */
static int virtio_blk_describe(void *opaque, void *fdt)
{
	struct virtio_blk *b = opaque;
	char size[32];

	snprintf(size, sizeof(size), "%llu bytes", (unsigned long long)b->size);
	return fdt_property_string(fdt, "size", size) ||
		       fdt_property_string(fdt, "read-only", b->drive->readonly ? "on" : "off")
		   ? -1
		   : 0;
}

static int virtio_blk_save(void *opaque, void *fdt)
{
	struct virtio_blk *b = opaque;
	int r;

	pthread_mutex_lock(&b->v.lock);
	/* What the guest wrote is not safely on the disk: the guest must stay here. */
	r = b->flush_failed ? -1 : virtio_mmio_save(&b->v, fdt);
	pthread_mutex_unlock(&b->v.lock);
	return r;
}

static int virtio_blk_load(void *opaque, const void *fdt, int node)
{
	struct virtio_blk *b = opaque;
	int r;

	pthread_mutex_lock(&b->v.lock);
	r = virtio_mmio_load(&b->v, fdt, node);
	if (!r)
		r = blk_set_lock(b, true);
	pthread_mutex_unlock(&b->v.lock);
	return r;
}

/*
 * The request at hand is done first; what the guest wrote goes to the disk now: the
 * destination reads the image as soon as it runs.
 */
static void virtio_blk_pause(void *opaque)
{
	struct virtio_blk *b = opaque;

	pthread_mutex_lock(&b->v.lock);
	b->paused = true;
	virtio_blk_quiesce(b);
	b->flush_failed = blk_flush(b, false) != S_OK;
	blk_set_lock(b, false);
	pthread_mutex_unlock(&b->v.lock);
}

/*
 * The guest goes on here: a source whose migration failed, or a destination. The image is
 * ours (again), and requests the guest queued meanwhile wait for no new kick.
 */
static void virtio_blk_go_on(void *opaque)
{
	struct virtio_blk *b = opaque;

	pthread_mutex_lock(&b->v.lock);
	b->paused = false;
	b->flush_failed = false;
	if (!b->locked && drive_lock(b->fd, b->drive, true) < 0)
		errorf("%s: %s still locked by another process (the other side of the migration?): "
		       "disk requests wait until it is free",
		       b->v.name, b->drive->file);
	else
		b->locked = true;
	b->kicked = true;
	pthread_cond_signal(&b->wake);
	pthread_mutex_unlock(&b->v.lock);
}

/*
 * A stopped guest's memory stays as it was, as in QEMU: the request at hand ends, and the
 * worker waits for cont (or takes up requests that a kick left while it was stopped).
 */
static void virtio_blk_runstate(void *opaque)
{
	struct virtio_blk *b = opaque;

	pthread_mutex_lock(&b->v.lock);
	if (vm_state(b->vm) == RUN_STATE_RUNNING)
		pthread_cond_signal(&b->wake);
	else
		virtio_blk_quiesce(b);
	pthread_mutex_unlock(&b->v.lock);
}

static void virtio_blk_info(void *opaque, const char *what, char *buf, unsigned len)
{
	struct virtio_blk *b = opaque;

	if (strcmp(what, "block"))
		return;
	pthread_mutex_lock(&b->v.lock);
	snprintf(buf, len,
		 "%s: %s (raw%s), %llu bytes\n"
		 "  %s: irq %u, %s\n"
		 "  rd %llu ops %llu bytes, wr %llu ops %llu bytes, %llu flushes, %llu errors\n",
		 b->drive->id, b->drive->file, b->drive->readonly ? ", read-only" : "",
		 (unsigned long long)b->size, b->v.name, b->v.irq, virtio_mmio_state(&b->v),
		 (unsigned long long)b->rd_ops, (unsigned long long)b->rd_bytes,
		 (unsigned long long)b->wr_ops, (unsigned long long)b->wr_bytes,
		 (unsigned long long)b->flushes, (unsigned long long)b->errors);
	pthread_mutex_unlock(&b->v.lock);
}

static void virtio_blk_destroy(void *opaque)
{
	struct virtio_blk *b = opaque;

	if (b->has_worker) {
		pthread_mutex_lock(&b->v.lock);
		b->stopping = true;
		pthread_cond_signal(&b->wake);
		pthread_mutex_unlock(&b->v.lock);
		pthread_join(b->worker, NULL);
	}
	virtio_mmio_destroy(&b->v);
	pthread_cond_destroy(&b->wake);
	pthread_cond_destroy(&b->idle);
	if (b->fd >= 0)
		close(b->fd);
	free(b);
}

static const struct device_ops virtio_blk_ops = {
    .name = "virtio-blk",
    .describe = virtio_blk_describe,
    .save = virtio_blk_save,
    .load = virtio_blk_load,
    .pause = virtio_blk_pause,
    .resume = virtio_blk_go_on,
    .runstate = virtio_blk_runstate,
    .post_migrate = virtio_blk_go_on,
    .info = virtio_blk_info,
    .destroy = virtio_blk_destroy,
};

static int virtio_blk_create(struct vm *vm, const struct drive_cfg *d, const char *serial)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	pthread_condattr_t ca;

	if (!b) {
		perrorf("virtio-blk: calloc");
		return -1;
	}
	b->vm = vm;
	b->drive = d;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* blk_relock's timed wait */
	pthread_cond_init(&b->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&b->idle, NULL);
	b->ops = virtio_blk_dev_ops;
	if (d->readonly)
		b->ops.features |= BIT(F_RO);
	/* Not a C string: GET_ID answers 20 bytes, zero-padded (calloc). */
	memcpy(b->serial, serial, strnlen(serial, sizeof(b->serial)));
	b->locked = !vm->cfg->incoming;
	b->fd = drive_open(d, &b->size, b->locked);
	if (b->fd < 0) {
		pthread_cond_destroy(&b->wake);
		pthread_cond_destroy(&b->idle);
		free(b);
		return -1;
	}
	/* A partial last sector is left out, as the guest can only address whole ones. */
	b->config.capacity = b->size / SECTOR;
	b->config.seg_max = VIRTQ_MAX_SEGS - 2; /* header and status byte take two */
	b->config.blk_size = SECTOR;
	if (virtio_mmio_init(&b->v, vm, &b->ops, b, "virtio-blk") < 0)
		goto fail;
	errno = pthread_create(&b->worker, NULL, virtio_blk_worker, b);
	if (errno) {
		perrorf("%s: pthread_create", b->v.name);
		goto fail;
	}
	b->has_worker = true;
	pthread_mutex_lock(&b->v.lock);
	while (!b->worker_state)
		pthread_cond_wait(&b->idle, &b->v.lock);
	pthread_mutex_unlock(&b->v.lock);
	if (b->worker_state < 0)
		goto fail;
	if (vm_register_device(vm, &virtio_blk_ops, b) < 0)
		goto fail;
	return 0;
fail:
	virtio_blk_destroy(b);
	return -1;
}

static void cmd_info_block(struct mon_session *s, int argc, char **argv)
{
	monitor_info_devices(s, "block", "no block devices");
}

int virtio_blk_create_all(struct vm *vm)
{
	const struct tern_config *c = vm->cfg;

	for (int i = 0; i < c->n_disk; i++) {
		/* config_parse() checked that every disk names a -drive. */
		if (virtio_blk_create(vm, config_drive_of(c, c->disk[i].drive), c->disk[i].serial) <
		    0)
			return -1;
	}
	return monitor_add_command(vm->monitor, "info block", NULL,
				   "show the disks, their images and counters", cmd_info_block);
}
