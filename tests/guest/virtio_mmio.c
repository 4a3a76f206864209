/*
 * virtio-mmio transport for the ring-3 drivers: device discovery from the cmdline (as OSv),
 * register access, feature words, split virtqueues in identity-mapped pages.
 */
#include "virtio_mmio.h"
#include "bootinfo.h"
#include "lib.h"
#include "sys.h"

struct virtio_mmio_dev virtio_mmio_devs[VIRTIO_MMIO_MAX];
int virtio_mmio_ndevs;

#define PREFIX "virtio_mmio.device="

/* "<size>[K|M|G]@<base>:<irq>[:<id>]", as Linux and OSv read it. */
static int parse_entry(const char *s, const char *end, struct virtio_mmio_dev *d)
{
	char *p;

	d->size = strtoul(s, &p, 0);
	if (p < end && (*p == 'K' || *p == 'k'))
		d->size <<= 10, p++;
	else if (p < end && (*p == 'M' || *p == 'm'))
		d->size <<= 20, p++;
	else if (p < end && (*p == 'G' || *p == 'g'))
		d->size <<= 30, p++;
	if (p >= end || *p != '@' || !d->size)
		return -1;
	d->base = strtoul(p + 1, &p, 0);
	if (p >= end || *p != ':' || !d->base)
		return -1;
	d->irq = (unsigned)strtoul(p + 1, &p, 0);
	return p <= end ? 0 : -1;
}

void virtio_mmio_scan_cmdline(void)
{
	char *r = cmdline, *w = cmdline;
	size_t n = strlen(PREFIX);

	while (*r) {
		char *word = r, *end;

		while (*r && *r != ' ')
			r++;
		end = r;
		while (*r == ' ')
			r++;
		if ((size_t)(end - word) > n && !strncmp(word, PREFIX, n)) {
			struct virtio_mmio_dev d;

			if (parse_entry(word + n, end, &d) < 0) {
				printf("virtio-mmio: bad cmdline entry '%.*s'\n", (int)(end - word),
				       word);
			} else if (virtio_mmio_ndevs < VIRTIO_MMIO_MAX) {
				virtio_mmio_devs[virtio_mmio_ndevs++] = d;
			}
			continue;	/* stripped, as OSv does */
		}
		if (w != cmdline)
			*w++ = ' ';
		memmove(w, word, (size_t)(end - word));
		w += end - word;
	}
	*w = '\0';
}

uint32_t vmmio_read(uint64_t base, unsigned reg)
{
	return mmio_read32(base + reg);
}

void vmmio_write(uint64_t base, unsigned reg, uint32_t v)
{
	mmio_write32(base + reg, v);
}

uint64_t vmmio_device_features(uint64_t base)
{
	uint64_t f;

	vmmio_write(base, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f = vmmio_read(base, VIRTIO_MMIO_DEVICE_FEATURES);
	vmmio_write(base, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	f |= (uint64_t)vmmio_read(base, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	return f;
}

void vmmio_driver_features(uint64_t base, uint64_t f)
{
	vmmio_write(base, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vmmio_write(base, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	vmmio_write(base, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vmmio_write(base, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
}

static void write64(uint64_t base, unsigned reg, uint64_t v)
{
	vmmio_write(base, reg, (uint32_t)v);
	vmmio_write(base, reg + 4, (uint32_t)(v >> 32));
}

int virtq_setup(uint64_t base, struct virtq *q, unsigned index, unsigned max)
{
	unsigned num;
	size_t desc_sz, avail_sz, used_sz;
	char *mem;

	vmmio_write(base, VIRTIO_MMIO_QUEUE_SEL, index);
	if (vmmio_read(base, VIRTIO_MMIO_QUEUE_READY)) {
		printf("virtio-mmio@%#lx: queue %u is already live\n", base, index);
		return -1;
	}
	num = vmmio_read(base, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (!num) {
		printf("virtio-mmio@%#lx: queue %u does not exist\n", base, index);
		return -1;
	}
	if (num > max)
		num = max;
	if (num & (num - 1)) {	/* split rings want a power of two */
		unsigned p = 1;

		while (p * 2 <= num)
			p *= 2;
		num = p;
	}
	desc_sz = 16 * num;
	avail_sz = 6 + 2 * num;
	used_sz = 6 + 8 * num;
	mem = alloc_pages((ALIGN_UP(desc_sz, 4096) + ALIGN_UP(avail_sz, 4096) +
			   ALIGN_UP(used_sz, 4096)) / 4096);
	if (!mem) {
		printf("virtio-mmio@%#lx: no memory for queue %u\n", base, index);
		return -1;
	}
	memset(mem, 0, ALIGN_UP(desc_sz, 4096) + ALIGN_UP(avail_sz, 4096) + ALIGN_UP(used_sz, 4096));
	q->index = index;
	q->num = num;
	q->desc = (volatile struct vring_desc *)mem;
	q->avail = (volatile uint16_t *)(mem + ALIGN_UP(desc_sz, 4096));
	q->used = (volatile uint16_t *)(mem + ALIGN_UP(desc_sz, 4096) + ALIGN_UP(avail_sz, 4096));
	q->avail_idx = q->last_used = q->kicked_idx = 0;

	vmmio_write(base, VIRTIO_MMIO_QUEUE_NUM, num);
	write64(base, VIRTIO_MMIO_QUEUE_DESC, (uint64_t)(uintptr_t)q->desc);
	write64(base, VIRTIO_MMIO_QUEUE_DRIVER, (uint64_t)(uintptr_t)q->avail);
	write64(base, VIRTIO_MMIO_QUEUE_DEVICE, (uint64_t)(uintptr_t)q->used);
	vmmio_write(base, VIRTIO_MMIO_QUEUE_READY, 1);
	return 0;
}
