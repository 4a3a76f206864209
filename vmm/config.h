/* The command line, parsed (QEMU's spelling; see config.c). */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdint.h>
#include <stdbool.h>

#include "guest-boot/boot.h"

#define CONFIG_MAX_NICS 4
#define CONFIG_MAX_DISKS 4
/* One MADT entry and one thread each; far more than a unikernel on a small host wants. */
#define CONFIG_MAX_VCPUS 64

/* SERIAL_DEFAULT until config_parse() has seen every option: then stdio if none said. */
enum serial_mode { SERIAL_DEFAULT, SERIAL_STDIO, SERIAL_NONE, SERIAL_FILE };
enum netdev_type { NETDEV_TAP, NETDEV_BRIDGE };

struct netdev_cfg {
	char id[32];
	enum netdev_type type;
	char ifname[16];	/* tap name; empty = let the kernel pick */
	char br[16];		/* bridge to attach to; empty = none */
};

struct nic_cfg {
	char netdev[32];
	uint8_t mac[6];
};

/* -drive: a raw image (or block device) on the host. */
struct drive_cfg {
	char id[32];
	char file[1024];
	bool readonly;
	bool raw;		/* format=raw said: take the file as it is, even if it looks like qcow2 */
	bool sync_writes;	/* cache=writethrough or directsync: each write on the disk when done */
	bool no_flush;		/* cache=unsafe: the guest's flushes are not passed on */
};

/* A virtio-blk disk: -drive if=virtio, or -device virtio-blk,drive=ID. */
struct disk_cfg {
	char drive[32];
	char serial[21];	/* what VIRTIO_BLK_T_GET_ID answers (20 bytes at most) */
};

struct tern_config {
	const char *kernel, *initrd, *append;
	uint64_t mem_size;
	unsigned smp;
	/* -cpu host,-FEATURE / +FEATURE: bits hidden from the guest, and bits it must have. */
	struct boot_cpu cpu_off, cpu_on;
	enum serial_mode serial;
	const char *serial_path;
	const char *monitor;	/* "unix:PATH,server,nowait" or NULL */
	const char *qmp;
	const char *gdb;	/* -gdb tcp:[HOST]:PORT or unix:PATH, -s */
	const char *incoming;
	const char *name, *pidfile;
	char name_buf[256];	/* -name's NAME, as name points to it */
	char process[16];	/* -name ...,process=P: the process's name (comm) */
	unsigned given;		/* which of config.c's options[] came, for those given once */
	bool nographic, daemonize, pvh;
	bool start_paused;	/* -S: the guest waits for cont (or, incoming, arrives paused) */
	bool no_sandbox;	/* -sandbox off: no system call filters */
	unsigned char echr;	/* -echr: the console's escape key (Ctrl-A unless set) */
	void *json;		/* -config FILE's tree: the strings above may point into it */
	struct netdev_cfg netdev[CONFIG_MAX_NICS];
	int n_netdev;
	struct nic_cfg nic[CONFIG_MAX_NICS];
	int n_nic;
	struct drive_cfg drive[CONFIG_MAX_DISKS];
	int n_drive;
	struct disk_cfg disk[CONFIG_MAX_DISKS];
	int n_disk;
};

/* 0 to run, 1 after printing help/version, -1 after one line that names the bad option. */
int config_parse(struct tern_config *c, int argc, char **argv);
/* One option as on the command line ("-m", "128M"); arg NULL for a flag. 0 or -1 (a line). */
int config_set(struct tern_config *c, const char *opt, const char *arg);
/* -config FILE: the options of a JSON object (config_json.c). 0 or -1 (a line). */
int config_json(struct tern_config *c, const char *path);
/* What config_parse keeps beyond argv. */
void config_free(struct tern_config *c);
void config_usage(void);
/* The -netdev with that id=, or NULL. */
const struct netdev_cfg *config_netdev_of(const struct tern_config *c, const char *id);
/* The -drive with that id=, or NULL. */
const struct drive_cfg *config_drive_of(const struct tern_config *c, const char *id);
/* "52:54:00:12:34:56" -> mac; -1 if malformed, multicast or all zero. */
int config_parse_mac(const char *s, uint8_t mac[6]);
/* "unix:PATH[,server][,nowait]" -> PATH in buf; -1 if not that form. */
int config_unix_path(const char *spec, char *buf, unsigned len);

#endif
