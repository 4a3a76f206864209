/*
 * The migration stream: a header, then records. Every record carries a CRC32C over its header
 * and payload, so a truncated or corrupted stream is refused with a clear reason instead of
 * loading garbage into a guest.
 */
#ifndef TERN_MIG_STREAM_H
#define TERN_MIG_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define MIG_MAGIC "TERNMIG\0"
/*
 * 2: a snapshot (file:) ends with GO too, so that it carries the guest's run state.
 * 3: the destination answers GO with TAKEN. A version-2 stream (a snapshot, a source that
 * waits for no TAKEN) is still read; a version-2 destination refuses a version-3 source, which
 * would wait for a TAKEN that never comes.
 */
#define MIG_VERSION 3
#define MIG_VERSION_OLDEST 2
#define MIG_VERSION_TAKEN 3	/* the first whose source waits for TAKEN or ERROR after GO */
#define MIG_PAGE_SIZE 4096

enum mig_rec {
	REC_HELLO = 1,	/* src: machine description (FDT of describe hooks) */
	REC_ACCEPT,	/* dst */
	REC_REFUSE,	/* dst: reason */
	REC_PAGES,	/* arg = first gpa; payload = whole pages */
	REC_ZERO,	/* arg = first gpa; payload = u64 page count */
	REC_ROUND,	/* arg = round number that just ended */
	REC_DEVICES,	/* FDT of save hooks */
	REC_END,	/* src: everything sent; load it and say ready */
	REC_READY,	/* dst: loaded; waiting for go */
	REC_GO,		/* src: the guest is yours; arg = enum mig_go, as the user had it.
			 * A snapshot has it after END, with no READY between them. */
	REC_ERROR,	/* dst: reason; after GO: the guest stays at the source */
	REC_FRAME,	/* src, after go: a frame that reached a NIC; arg = which one, counting
			 * only devices with handover_fd from 0; payload = frame */
	REC_SYNC,	/* src, before the stop: say when you have taken all before this */
	REC_SYNCED,	/* dst: taken */
	REC_TAKEN,	/* dst: go taken, the guest is ours; sent before it runs here */
	REC_COUNT
};

/* GO's argument: the guest arrives as it was at the source (QEMU carries its run state). */
enum mig_go { GO_RUNNING, GO_PAUSED, GO_PRELAUNCH };

struct rec_hdr {
	uint32_t type;
	uint32_t len;
	uint64_t arg;
};

#define MIG_REC_MAX (8U << 20)
#define MIG_FRAME_MAX (1U << 17)	/* REC_FRAME: a tap's header + a 64 KiB GSO packet */

struct mig_stream {
	int fd;
	uint8_t *buf;		/* records not yet written */
	size_t len, cap;
	size_t populated;	/* how much of buf is known mapped: see stream_put */
	uint8_t *in;		/* bytes read ahead */
	size_t in_pos, in_len;
	uint64_t sent, received;
	uint64_t nrec;		/* records read, for error messages */
	uint32_t version;	/* the stream format the header said */
	char err[200];
};

int stream_init(struct mig_stream *s, int fd);
void stream_free(struct mig_stream *s);
/* Buffered until stream_flush (or a full buffer). -1 with s->err set. */
int stream_put(struct mig_stream *s, uint32_t type, uint64_t arg, const void *p, size_t len);
int stream_flush(struct mig_stream *s);
int stream_put_header(struct mig_stream *s);
int stream_get_header(struct mig_stream *s);
/*
 * Reads the next record's header; the caller then reads its payload with stream_get_payload
 * (into any buffer of h->len bytes, e.g. guest RAM, or NULL for a record that must carry
 * none) which checks the CRC.
 */
int stream_get(struct mig_stream *s, struct rec_hdr *h);
int stream_get_payload(struct mig_stream *s, const struct rec_hdr *h, void *buf);
/* Waits at most ms for the fd to be readable; 0 ready, -1 timeout or error (s->err). */
int stream_wait(struct mig_stream *s, int ms);

uint32_t crc32c(uint32_t crc, const void *p, size_t len);

#endif
