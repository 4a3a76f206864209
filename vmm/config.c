/*
 * The command line in QEMU's spelling, so that launchers and habits carry over. Every bad or
 * unknown option fails at once with one line naming it.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/migration/transport.h"
#include "vmm/util.h"

#define DEFAULT_MEM (128ULL << 20)
/* QEMU's default MAC, and OSv's run.py default: never a random one. */
static const uint8_t default_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

void config_usage(void)
{
	printf("usage: tern -kernel FILE [options]\n"
	       "  -kernel FILE          ELF (OSv loader.elf, vmlinux, PVH) or bzImage kernel\n"
	       "  -initrd FILE          initial ramdisk\n"
	       "  -append CMDLINE       kernel command line\n"
	       "  -m SIZE               guest memory (default 128M; K/M/G/T suffixes, plain = MiB)\n"
	       "  -smp N|cpus=N         vCPUs (default 1, at most " TERN_STR(CONFIG_MAX_VCPUS) ")\n"
	       "  -cpu host[,-F|+F...]  the host's CPU as KVM offers it, less features -F\n"
	       "  -pvh                  enter through the ELF's PVH note\n"
	       "  -serial stdio|none|file:PATH   where the serial console goes (default stdio)\n"
	       "  -monitor unix:PATH,server,nowait   the monitor on a socket too\n"
	       "  -qmp unix:PATH,server,nowait       QMP (JSON) monitor on a socket\n"
	       "  -netdev tap,id=ID[,ifname=TAP][,br=BRIDGE][,script=no,downscript=no]\n"
	       "  -netdev bridge,id=ID,br=BRIDGE\n"
	       "  -device virtio-net,netdev=ID[,mac=52:54:00:12:34:56]\n"
	       "  -nic tap|bridge,...[,mac=MAC][,model=virtio]   the two above in one\n"
	       "  -drive file=IMAGE[,if=virtio|none][,id=ID][,format=raw][,readonly=on]\n"
	       "  -device virtio-blk,drive=ID[,serial=S]   a raw disk image as virtio-blk\n"
	       "  -incoming URI         wait for a migration (tcp:HOST:PORT, unix:PATH, file:PATH;\n"
	       "                        defer: the URI comes later, by migrate_incoming)\n"
	       "  -S                    do not run the guest until cont (with -incoming: once there)\n"
	       "  -gdb tcp:[HOST]:PORT  wait for gdb (target remote) there; -s: -gdb tcp::1234\n"
	       "  -sandbox on|off       per-thread system call filters (default on)\n"
	       "  -echr N               the console's escape key (1 = C-a, the default; 20 = C-t)\n"
	       "  -config FILE.json     options from a JSON object: {\"m\": \"256M\", ...}\n"
	       "  -name NAME[,process=P]  the guest's name (guest=NAME too), the process's\n"
	       "  -pidfile FILE         tern's pid, locked while it runs\n"
	       "  -nographic -daemonize\n"
	       "console keys: C-a c monitor, C-a x exit, C-a h help\n");
}

/* "key=value" lists as QEMU's -netdev and -device take them: key's value and its length. */
static const char *opt_find(const char *list, const char *key, size_t *vlen)
{
	size_t klen = strlen(key);
	const char *p = list;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n > klen && !strncmp(p, key, klen) && p[klen] == '=') {
			*vlen = n - klen - 1;
			return p + klen + 1;
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

/* key's value copied into buf: 1, or 0 if absent; -1 (said, naming opt) if it does not fit. */
static int opt_get(const char *opt, const char *list, const char *key, char *buf, size_t len)
{
	size_t n;
	const char *v = opt_find(list, key, &n);

	if (!v)
		return 0;
	if (n >= len) {
		errorf("%s: %s=%.*s: longer than %zu characters", opt, key, (int)n, v, len - 1);
		return -1;
	}
	memcpy(buf, v, n);
	buf[n] = '\0';
	return 1;
}

/* Is key there, with value? */
static bool opt_is(const char *list, const char *key, const char *value)
{
	size_t n;
	const char *v = opt_find(list, key, &n);

	return v && n == strlen(value) && !strncmp(v, value, n);
}

/* Every key in list must be one of keys (NULL-terminated); the first word is the type. */
static int opt_check_keys(const char *opt, const char *list, const char *const *keys)
{
	const char *p = strchr(list, ',');

	while (p && *++p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', n);
		size_t klen = eq ? (size_t)(eq - p) : n, vlen;
		bool ok = false;
		int i;

		for (i = 0; keys[i] && !ok; i++)
			ok = strlen(keys[i]) == klen && !strncmp(keys[i], p, klen);
		if (!ok) {
			errorf("%s: unknown parameter '%.*s'", opt, (int)klen, p);
			return -1;
		}
		/* Which one would count? QEMU takes the last, tern would take the first. */
		if (end && opt_find(end + 1, keys[i - 1], &vlen)) {
			errorf("%s: '%s' given twice", opt, keys[i - 1]);
			return -1;
		}
		/* QEMU reads a bare "readonly" as readonly=on; say so rather than guess. */
		if (!eq) {
			errorf("%s: '%.*s': expected %.*s=VALUE", opt, (int)klen, p, (int)klen, p);
			return -1;
		}
		p = end;
	}
	return 0;
}

/* Is v[0, n) one of values (NULL-terminated)? */
static bool one_of(const char *v, size_t n, const char *const *values)
{
	for (int i = 0; values[i]; i++)
		if (strlen(values[i]) == n && !strncmp(v, values[i], n))
			return true;
	return false;
}

/* key, if there, must have one of values (NULL-terminated); expected says which in words. */
static int opt_check_value(const char *opt, const char *list, const char *key,
			   const char *const *values, const char *expected)
{
	size_t n;
	const char *v = opt_find(list, key, &n);

	if (!v || one_of(v, n, values))
		return 0;
	errorf("%s: %s=%.*s: expected %s", opt, key, (int)n, v, expected);
	return -1;
}

/* Why s is not a NIC's MAC address, or NULL: it is one, now in mac. */
static const char *mac_refusal(const char *s, uint8_t mac[6])
{
	static const uint8_t zero[6];

	/* Exactly two hex digits a byte, as QEMU: sscanf's %x would take signs and spaces. */
	for (int i = 0; i < 6; i++, s += 3) {
		if (!isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]) ||
		    s[2] != (i < 5 ? ':' : '\0'))
			return "expected six two-digit hex bytes like 52:54:00:12:34:56";
		mac[i] = strtoul((char[3]){ s[0], s[1], 0 }, NULL, 16);
	}
	if (!memcmp(mac, "\xff\xff\xff\xff\xff\xff", 6))
		return "the broadcast address cannot be a NIC's";
	if (mac[0] & 1)
		return "a multicast address (odd first byte) cannot be a NIC's";
	/* Linux's driver takes a random one instead, and bridges drop frames from it. */
	if (!memcmp(mac, zero, 6))
		return "the all-zero address cannot be a NIC's";
	return NULL;
}

int config_parse_mac(const char *s, uint8_t mac[6])
{
	return mac_refusal(s, mac) ? -1 : 0;
}

/* script= and downscript=: tern runs no scripts, it makes and attaches the tap itself. */
static int netdev_no_script(const char *opt, const char *arg, const char *key)
{
	char buf[64];
	int r = opt_get(opt, arg, key, buf, sizeof(buf));

	if (r > 0 && strcmp(buf, "no")) {
		errorf("%s: %s=%s: tern runs no scripts (use %s=no, or br=)", opt, key, buf, key);
		return -1;
	}
	return r < 0 ? -1 : 0;
}

/* A backend from arg, for opt (-netdev, or -nic whose own words, shown, made arg). */
static int netdev_parse(struct tern_config *c, const char *opt, const char *arg,
			const char *shown)
{
	static const char *const tap_keys[] = { "id", "ifname", "br", "script", "downscript",
						"vhost", NULL };
	/* helper=: OSv's run.py names QEMU's bridge helper; tern attaches the tap itself. */
	static const char *const br_keys[] = { "id", "br", "helper", NULL };
	static const char *const off[] = { "off", NULL };
	struct netdev_cfg *n = &c->netdev[c->n_netdev];
	int r;

	if (c->n_netdev == CONFIG_MAX_NICS) {
		errorf("%s: at most %d network backends", opt, CONFIG_MAX_NICS);
		return -1;
	}
	memset(n, 0, sizeof(*n));
	if (!strncmp(arg, "tap,", 4) || !strcmp(arg, "tap")) {
		n->type = NETDEV_TAP;
		if (opt_check_keys(opt, arg, tap_keys) < 0 || netdev_no_script(opt, arg, "script") < 0 ||
		    netdev_no_script(opt, arg, "downscript") < 0 ||
		    opt_check_value(opt, arg, "vhost", off, "off: tern has no vhost-net") < 0)
			return -1;
	} else if (!strncmp(arg, "bridge,", 7)) {
		n->type = NETDEV_BRIDGE;
		if (opt_check_keys(opt, arg, br_keys) < 0)
			return -1;
	} else {
		errorf("%s: '%s': only tap and bridge backends are supported", opt, shown);
		return -1;
	}
	r = opt_get(opt, arg, "id", n->id, sizeof(n->id));
	if (r <= 0 || !n->id[0]) {
		if (r >= 0)
			errorf("%s: '%s': missing id=", opt, shown);
		return -1;
	}
	for (int i = 0; i < c->n_netdev; i++)
		if (!strcmp(c->netdev[i].id, n->id)) {
			errorf("%s: Duplicate ID '%s'", opt, n->id);
			return -1;
		}
	if (opt_get(opt, arg, "ifname", n->ifname, sizeof(n->ifname)) < 0 ||
	    opt_get(opt, arg, "br", n->br, sizeof(n->br)) < 0)
		return -1;
	if (n->type == NETDEV_BRIDGE && !n->br[0]) {
		errorf("%s bridge: missing br=", opt);
		return -1;
	}
	/* One tap, one NIC: the second would find it busy, and blame another process. */
	for (int i = 0; i < c->n_netdev; i++)
		if (n->ifname[0] && !strchr(n->ifname, '%') &&
		    !strcmp(c->netdev[i].ifname, n->ifname)) {
			errorf("%s: ifname=%s: -netdev '%s' has that tap already", opt, n->ifname,
			       c->netdev[i].id);
			return -1;
		}
	c->n_netdev++;
	return 0;
}

static int config_netdev(struct tern_config *c, const char *arg)
{
	return netdev_parse(c, "-netdev", arg, arg);
}

/* The first word of a -device: KIND, KIND-device or KIND-pci (all virtio-mmio here). */
static bool device_is(const char *arg, const char *kind)
{
	size_t tlen = strcspn(arg, ","), klen = strlen(kind);

	return tlen >= klen && !strncmp(arg, kind, klen) &&
	       (tlen == klen || (tlen == klen + 7 && !strncmp(arg + klen, "-device", 7)) ||
		(tlen == klen + 4 && !strncmp(arg + klen, "-pci", 4)));
}

static int config_drive(struct tern_config *c, const char *arg)
{
	static const char *const keys[] = { "file", "if", "id", "format", "readonly", "cache",
					    "aio", "media", NULL };
	static const char *const ifs[] = { "virtio", "none", NULL };
	static const char *const onoff[] = { "on", "off", NULL };
	static const char *const caches[] = { "writeback", "none", "writethrough", "directsync",
					      "unsafe", NULL };
	static const char *const aios[] = { "threads", "native", "io_uring", NULL };
	static const char *const raw[] = { "raw", NULL }, *const disk[] = { "disk", NULL };
	struct drive_cfg *d = &c->drive[c->n_drive];
	size_t n;
	int r;
	/* QEMU's -drive has no type word: its first item is a key too. */
	char list[1200];

	if (c->n_drive == CONFIG_MAX_DISKS) {
		errorf("-drive: at most %d drives", CONFIG_MAX_DISKS);
		return -1;
	}
	if (snprintf(list, sizeof(list), "drive,%s", arg) >= (int)sizeof(list)) {
		errorf("-drive: too long");
		return -1;
	}
	memset(d, 0, sizeof(*d));
	if (opt_check_keys("-drive", list, keys) < 0 ||
	    opt_check_value("-drive", list, "if", ifs, "virtio or none") < 0 ||
	    opt_check_value("-drive", list, "readonly", onoff, "on or off") < 0 ||
	    opt_check_value("-drive", list, "cache", caches,
			    "writeback, none, writethrough, directsync or unsafe") < 0 ||
	    opt_check_value("-drive", list, "aio", aios, "threads, native or io_uring") < 0 ||
	    opt_check_value("-drive", list, "format", raw,
			    "raw: tern reads raw images only (qemu-img convert -O raw makes one)") < 0 ||
	    opt_check_value("-drive", list, "media", disk, "disk: tern has disks only") < 0)
		return -1;
	r = opt_get("-drive", list, "file", d->file, sizeof(d->file));
	if (r <= 0 || !d->file[0]) {
		if (r >= 0)
			errorf("-drive: '%s': missing file=", arg);
		return -1;
	}
	d->raw = opt_find(list, "format", &n);
	d->readonly = opt_is(list, "readonly", "on");
	d->sync_writes = opt_is(list, "cache", "writethrough") || opt_is(list, "cache", "directsync");
	d->no_flush = opt_is(list, "cache", "unsafe");
	r = opt_get("-drive", list, "id", d->id, sizeof(d->id));
	if (r < 0)
		return -1;
	if (!r)
		snprintf(d->id, sizeof(d->id), "drive%d", c->n_drive);
	else if (!d->id[0]) {
		errorf("-drive: id= is empty");
		return -1;
	}
	if (config_drive_of(c, d->id)) {
		errorf("-drive: Duplicate ID '%s'", d->id);
		return -1;
	}
	c->n_drive++;
	/* QEMU's default bus would be IDE; tern's only one is virtio. */
	if (opt_is(list, "if", "none"))
		return 0;
	if (c->n_disk == CONFIG_MAX_DISKS) {
		errorf("-drive: at most %d disks", CONFIG_MAX_DISKS);
		return -1;
	}
	memset(&c->disk[c->n_disk], 0, sizeof(c->disk[0]));
	strcpy(c->disk[c->n_disk++].drive, d->id);
	return 0;
}

static int config_device_blk(struct tern_config *c, const char *arg)
{
	static const char *const keys[] = { "drive", "serial", "id", "scsi", "bootindex", NULL };
	static const char *const off[] = { "off", NULL };
	struct disk_cfg *disk = &c->disk[c->n_disk];
	int r;

	if (c->n_disk == CONFIG_MAX_DISKS) {
		errorf("-device: at most %d disks", CONFIG_MAX_DISKS);
		return -1;
	}
	if (opt_check_keys("-device", arg, keys) < 0 ||
	    opt_check_value("-device virtio-blk", arg, "scsi", off, "off") < 0)
		return -1;
	memset(disk, 0, sizeof(*disk));
	r = opt_get("-device virtio-blk", arg, "drive", disk->drive, sizeof(disk->drive));
	if (r <= 0) {
		if (!r)
			errorf("-device virtio-blk: missing drive=");
		return -1;
	}
	if (opt_get("-device virtio-blk", arg, "serial", disk->serial, sizeof(disk->serial)) < 0)
		return -1;
	c->n_disk++;
	return 0;
}

static int config_device(struct tern_config *c, const char *arg)
{
	static const char *const keys[] = { "netdev", "mac", "id", NULL };
	struct nic_cfg *nic = &c->nic[c->n_nic];
	char buf[64];
	const char *why;
	size_t tlen = strcspn(arg, ",");
	int r;

	if (device_is(arg, "virtio-blk"))
		return config_device_blk(c, arg);
	if (!device_is(arg, "virtio-net")) {
		errorf("-device: '%.*s': only virtio-net and virtio-blk are supported", (int)tlen,
		       arg);
		return -1;
	}
	if (c->n_nic == CONFIG_MAX_NICS) {
		errorf("-device: at most %d NICs", CONFIG_MAX_NICS);
		return -1;
	}
	if (opt_check_keys("-device", arg, keys) < 0)
		return -1;
	r = opt_get("-device virtio-net", arg, "netdev", nic->netdev, sizeof(nic->netdev));
	if (r <= 0) {
		if (!r)
			errorf("-device %.*s: missing netdev=", (int)tlen, arg);
		return -1;
	}
	for (int i = 0; i < c->n_nic; i++)
		if (!strcmp(c->nic[i].netdev, nic->netdev)) {
			errorf("-device virtio-net: netdev '%s' is already in use", nic->netdev);
			return -1;
		}
	/* All zero until config_check() gives it the default, as QEMU's unset one. */
	memset(nic->mac, 0, 6);
	r = opt_get("-device virtio-net", arg, "mac", buf, sizeof(buf));
	if (r < 0)
		return -1;
	if (r && (why = mac_refusal(buf, nic->mac))) {
		errorf("-device virtio-net: mac=%s: %s", buf, why);
		return -1;
	}
	c->n_nic++;
	return 0;
}

/*
 * -nic TYPE[,...][,mac=MAC][,model=M]: QEMU's shorthand for a -netdev (the options other than
 * mac= and model=) and its NIC, with an id of its own. "-nic none" is no NIC, as tern has by
 * default.
 */
static int config_nic(struct tern_config *c, const char *arg)
{
	static const char *const models[] = { "virtio", "virtio-net", "virtio-net-pci",
					      "virtio-net-device", NULL };
	char netdev[512], device[128], mac[32] = "", id[sizeof(c->netdev[0].id)];
	size_t len = 0;
	int has_id;

	if (!strcmp(arg, "none"))
		return 0;
	if (opt_check_value("-nic", arg, "model", models, "virtio-net, tern's one NIC") < 0 ||
	    opt_get("-nic", arg, "mac", mac, sizeof(mac)) < 0)
		return -1;
	has_id = opt_get("-nic", arg, "id", id, sizeof(id));
	if (has_id < 0)
		return -1;
	if (!has_id)
		snprintf(id, sizeof(id), "_nic%d", c->n_netdev);
	/* What goes into netdev is arg at most, and an id: room for both, or nothing. */
	if (strlen(arg) + sizeof(",id=") + sizeof(id) > sizeof(netdev)) {
		errorf("-nic: '%.32s...': too long", arg);
		return -1;
	}
	for (const char *p = arg; *p;) {
		size_t n = strcspn(p, ",");

		if (strncmp(p, "mac=", 4) && strncmp(p, "model=", 6))
			len += sprintf(netdev + len, "%s%.*s", len ? "," : "", (int)n, p);
		p += n + !!p[n];
	}
	if (!has_id)
		sprintf(netdev + len, ",id=%s", id);
	snprintf(device, sizeof(device), "virtio-net,netdev=%s%s%s", id, mac[0] ? ",mac=" : "",
		 mac);
	return netdev_parse(c, "-nic", netdev, arg) < 0 ? -1 : config_device(c, device);
}

static int config_serial(struct tern_config *c, const char *arg)
{
	if (!strcmp(arg, "stdio") || !strcmp(arg, "mon:stdio"))
		c->serial = SERIAL_STDIO;
	else if (!strcmp(arg, "none") || !strcmp(arg, "null"))
		c->serial = SERIAL_NONE;
	else if (!strncmp(arg, "file:", 5) && arg[5]) {
		c->serial = SERIAL_FILE;
		c->serial_path = arg + 5;
	} else {
		errorf("-serial: '%s': expected stdio, none or file:PATH", arg);
		return -1;
	}
	return 0;
}

int config_unix_path(const char *spec, char *buf, unsigned len)
{
	size_t n;

	if (strncmp(spec, "unix:", 5))
		return -1;
	spec += 5;
	n = strcspn(spec, ",");
	if (!n || n >= len)
		return -1;
	memcpy(buf, spec, n);
	buf[n] = '\0';
	return 0;
}

static int config_mem(struct tern_config *c, const char *arg)
{
	/* QEMU also takes "-m size=128M". */
	if (!strncmp(arg, "size=", 5))
		arg += 5;
	if (parse_size(arg, 1ULL << 20, &c->mem_size) < 0) {
		errorf("-m: '%s': not a size (e.g. 128M, 1G)", arg);
		return -1;
	}
	return 0;
}

static int config_smp(struct tern_config *c, const char *arg)
{
	const char *num = strncmp(arg, "cpus=", 5) ? arg : arg + 5;
	char *end;
	unsigned long n;

	/* An overflow gives ULONG_MAX, which the range check refuses. */
	n = strtoul(num, &end, 10);
	if (*num < '0' || *num > '9' || *end) {
		errorf("-smp: '%s': expected a number of vCPUs (N or cpus=N)", arg);
		return -1;
	}
	if (n < 1 || n > CONFIG_MAX_VCPUS) {
		errorf("-smp %s: tern runs 1 to %d vCPUs", num, CONFIG_MAX_VCPUS);
		return -1;
	}
	c->smp = n;
	return 0;
}

/* One -cpu item: +F, F or F=on (the guest must have it); -F or F=off (hidden from it). */
static int config_cpu_feature(struct tern_config *c, char *item)
{
	char *name = item + (*item == '+' || *item == '-'), *eq = strchr(item, '=');
	bool on = *item != '-';
	struct boot_cpu mask;

	if (eq && name == item) {
		*eq++ = '\0';
		if (strcmp(eq, "on") && strcmp(eq, "off")) {
			errorf("-cpu: %s=%s: expected on or off", name, eq);
			return -1;
		}
		on = !strcmp(eq, "on");
	}
	if (boot_cpu_feature(name, &mask) < 0) {
		errorf("-cpu: '%s': not a CPU feature tern knows (QEMU's names: avx2, sse4.2...)",
		       name);
		return -1;
	}
	for (int i = 0; i < BOOT_CPU_WORDS; i++) {
		c->cpu_on.w[i] &= ~mask.w[i];
		c->cpu_off.w[i] &= ~mask.w[i];
		(on ? &c->cpu_on : &c->cpu_off)->w[i] |= mask.w[i];
	}
	return 0;
}

/* -cpu host|max[,FEATURES]: the guest sees the host's CPU as KVM offers it, less what is off. */
static int config_cpu(struct tern_config *c, const char *arg)
{
	char buf[1024], *save, *item;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf)) {
		errorf("-cpu: too long");
		return -1;
	}
	item = strtok_r(buf, ",", &save);
	if (!item || (strcmp(item, "host") && strcmp(item, "max"))) {
		errorf("-cpu %s: tern offers the host's CPU only: -cpu host, with -FEATURE to hide "
		       "some (e.g. host,-avx512f)", item ? item : "''");
		return -1;
	}
	memset(&c->cpu_on, 0, sizeof(c->cpu_on));
	memset(&c->cpu_off, 0, sizeof(c->cpu_off));
	while ((item = strtok_r(NULL, ",", &save)))
		if (config_cpu_feature(c, item) < 0)
			return -1;
	return 0;
}

/* Options that take no value and change nothing, each with the reason. */
static const struct {
	const char *name, *why;
	bool has_arg;
} ignored[] = {
	{ "-enable-kvm", "tern always uses KVM", false },
	{ "-no-reboot", "tern always exits when the guest resets", false },
	{ "-nodefaults", "tern has no default devices to drop", false },
	{ "-M", "tern has one machine type", true },
	{ "-machine", "tern has one machine type", true },
	{ "-display", "tern has no display", true },
	{ "-vga", "tern has no display", true },
	{ "-accel", "tern always uses KVM", true },
};

static int config_ignored(const char *opt, int *i, int argc)
{
	for (size_t k = 0; k < ARRAY_SIZE(ignored); k++) {
		if (strcmp(opt, ignored[k].name))
			continue;
		if (ignored[k].has_arg && ++*i >= argc) {
			errorf("%s: missing argument", opt);
			return -1;
		}
		errorf("%s: ignored, %s", opt, ignored[k].why);
		return 1;
	}
	return 0;
}

/*
 * QEMU's chardev options after a socket's address. tern always listens and never waits for a
 * client before the guest starts (-S does that), so only the options that say so are taken.
 */
static int config_socket_opts(const char *opt, const char *spec)
{
	static const char *const ok[] = { "server", "server=on", "nowait", "wait=off", NULL };
	const char *p = strchr(spec, ',');

	while (p) {
		const char *o = p + 1;
		size_t n;

		p = strchr(o, ',');
		n = p ? (size_t)(p - o) : strlen(o);
		if (!one_of(o, n, ok)) {
			errorf("%s: '%.*s': tern always listens and never waits (server,nowait)", opt,
			       (int)n, o);
			return -1;
		}
	}
	return 0;
}

/* A unix socket's spec: unix:PATH[,server][,nowait]. */
static int config_unix(const char *opt, const char *arg, const char **field)
{
	char path[108];

	if (config_unix_path(arg, path, sizeof(path)) < 0) {
		errorf("%s: '%s': expected unix:PATH,server,nowait (a path under 108 characters)",
		       opt, arg);
		return -1;
	}
	if (config_socket_opts(opt, arg) < 0)
		return -1;
	*field = arg;
	return 0;
}

static int config_monitor(struct tern_config *c, const char *arg)
{
	/* The console's monitor is always there (Ctrl-A c): stdio asks for nothing more. */
	if (!strcmp(arg, "none") || !strcmp(arg, "stdio"))
		return 0;
	return config_unix("-monitor", arg, &c->monitor);
}

static int config_qmp(struct tern_config *c, const char *arg)
{
	return config_unix("-qmp", arg, &c->qmp);
}

static int config_gdb(struct tern_config *c, const char *arg)
{
	struct mig_uri u;
	char addr[300], err[300];

	if (snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(arg, ","), arg) >= (int)sizeof(addr) ||
	    mig_uri_parse(addr, &u, err, sizeof(err)) < 0 || u.kind == MIG_FILE) {
		errorf("-gdb: '%s': expected tcp:[HOST]:PORT or unix:PATH", arg);
		return -1;
	}
	if (config_socket_opts("-gdb", arg) < 0)
		return -1;
	c->gdb = arg;
	return 0;
}

static int config_incoming(struct tern_config *c, const char *arg)
{
	struct mig_uri u;
	char err[300];

	/* defer: the URI comes later, from migrate_incoming. */
	if (strcmp(arg, "defer") && mig_uri_parse(arg, &u, err, sizeof(err)) < 0) {
		errorf("-incoming: %s", err);
		return -1;
	}
	c->incoming = arg;
	return 0;
}

/* QEMU's -name NAME[,process=P][,debug-threads=on|off], NAME also spelled guest=NAME. */
static int config_name(struct tern_config *c, const char *arg)
{
	static const char *const keys[] = { "guest", "process", "debug-threads", NULL };
	static const char *const onoff[] = { "on", "off", NULL };
	bool keyed = !strncmp(arg, "guest=", 6);
	char list[512];
	size_t n = strcspn(arg, ",");

	/* opt_check_keys() skips a first word: the name, or a stand-in before guest=. */
	if (snprintf(list, sizeof(list), "%s%s", keyed ? "name," : "", arg) >= (int)sizeof(list)) {
		errorf("-name: too long");
		return -1;
	}
	if (opt_check_keys("-name", list, keys) < 0 ||
	    opt_check_value("-name", list, "debug-threads", onoff, "on or off") < 0 ||
	    opt_get("-name", list, "guest", c->name_buf, sizeof(c->name_buf)) < 0 ||
	    opt_get("-name", list, "process", c->process, sizeof(c->process)) < 0)
		return -1;
	if (!keyed) {
		if (n >= sizeof(c->name_buf)) {
			errorf("-name: longer than %zu characters", sizeof(c->name_buf) - 1);
			return -1;
		}
		memcpy(c->name_buf, arg, n);
		c->name_buf[n] = '\0';
	}
	c->name = c->name_buf;
	return 0;
}

/* As QEMU: a character code, decimal or 0x hex; 1 to 26 are Ctrl-A to Ctrl-Z. */
static int config_echr(struct tern_config *c, const char *arg)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 0);
	if (end == arg || *end || errno || v < 0 || v > 255) {
		errorf("-echr: '%s': expected a character code from 0 to 255 (20 or 0x14: Ctrl-T)",
		       arg);
		return -1;
	}
	c->echr = v;
	return 0;
}

static int config_sandbox(struct tern_config *c, const char *arg)
{
	if (strcmp(arg, "on") && strcmp(arg, "off")) {
		errorf("-sandbox: '%s': expected on or off", arg);
		return -1;
	}
	c->no_sandbox = !strcmp(arg, "off");
	return 0;
}

#define CONFIG_FIELD(f) offsetof(struct tern_config, f)

/* The options that take a value: a parser, or the field that keeps the value as it is. */
static const struct config_opt {
	const char *name;
	int (*parse)(struct tern_config *c, const char *arg);
	size_t field;
	bool once;
} options[] = {
	{ "-kernel", NULL, CONFIG_FIELD(kernel), false },
	{ "-initrd", NULL, CONFIG_FIELD(initrd), false },
	{ "-append", NULL, CONFIG_FIELD(append), false },
	{ "-pidfile", NULL, CONFIG_FIELD(pidfile), false },
	{ "-m", config_mem, 0, false },
	{ "-smp", config_smp, 0, false },
	{ "-cpu", config_cpu, 0, false },
	{ "-serial", config_serial, 0, true },
	{ "-monitor", config_monitor, 0, true },
	{ "-qmp", config_qmp, 0, true },
	{ "-gdb", config_gdb, 0, true },
	{ "-incoming", config_incoming, 0, true },
	{ "-name", config_name, 0, false },
	{ "-sandbox", config_sandbox, 0, false },
	{ "-echr", config_echr, 0, false },
	{ "-config", config_json, 0, false },
	{ "-netdev", config_netdev, 0, false },
	{ "-device", config_device, 0, false },
	{ "-nic", config_nic, 0, false },
	{ "-drive", config_drive, 0, false },
};

static const struct config_opt *config_find(const char *opt)
{
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		if (!strcmp(opt, options[i].name))
			return &options[i];
	errorf("unknown option '%s' (try -help)", opt);
	return NULL;
}

/* One of the options above: its value parsed, or kept. */
static int config_option(struct tern_config *c, const struct config_opt *o, const char *arg)
{
	if (o->parse)
		return o->parse(c, arg);
	*(const char **)((char *)c + o->field) = arg;
	return 0;
}

const struct netdev_cfg *config_netdev_of(const struct tern_config *c, const char *id)
{
	for (int j = 0; j < c->n_netdev; j++)
		if (!strcmp(c->netdev[j].id, id))
			return &c->netdev[j];
	return NULL;
}

const struct drive_cfg *config_drive_of(const struct tern_config *c, const char *id)
{
	for (int j = 0; j < c->n_drive; j++)
		if (!strcmp(c->drive[j].id, id))
			return &c->drive[j];
	return NULL;
}

/* Every disk names a -drive, and no -drive backs two disks. */
static int config_check_disks(const struct tern_config *c)
{
	for (int i = 0; i < c->n_disk; i++) {
		if (!config_drive_of(c, c->disk[i].drive)) {
			errorf("-device virtio-blk: drive '%s' not found", c->disk[i].drive);
			return -1;
		}
		for (int j = 0; j < i; j++)
			if (!strcmp(c->disk[j].drive, c->disk[i].drive)) {
				errorf("-device virtio-blk: drive '%s' is already in use",
				       c->disk[i].drive);
				return -1;
			}
	}
	return 0;
}

/* The unix socket path of an option's spec into buf, or "" when it has none. */
static void config_socket_path(const char *opt, const char *spec, char *buf, unsigned len)
{
	struct mig_uri u;
	char err[300];

	buf[0] = '\0';
	if (!spec)
		return;
	if (!strcmp(opt, "-monitor") || !strcmp(opt, "-qmp"))
		config_unix_path(spec, buf, len);
	else if (mig_uri_parse(spec, &u, err, sizeof(err)) == 0 && u.kind == MIG_UNIX)
		snprintf(buf, len, "%.*s", (int)strcspn(u.path, ","), u.path);
}

/* Two of tern's sockets at one path: the second would replace the first. */
static int config_check_sockets(const struct tern_config *c)
{
	const char *opt[] = { "-monitor", "-qmp", "-gdb", "-incoming" };
	const char *spec[] = { c->monitor, c->qmp, c->gdb, c->incoming };
	char path[4][108];

	for (int i = 0; i < 4; i++) {
		config_socket_path(opt[i], spec[i], path[i], sizeof(path[i]));
		for (int j = 0; j < i; j++)
			if (path[i][0] && !strcmp(path[i], path[j])) {
				errorf("%s: %s is already %s's socket", opt[i], path[i], opt[j]);
				return -1;
			}
	}
	return 0;
}

/* Is mac some NIC's? */
static bool mac_in_use(const struct tern_config *c, const uint8_t mac[6])
{
	for (int i = 0; i < c->n_nic; i++)
		if (!memcmp(c->nic[i].mac, mac, 6))
			return true;
	return false;
}

/*
 * Two NICs with one MAC: the bridge could not tell them apart, and the second's tap would take
 * the first's. Given twice, it is refused; a default (the k-th NIC's is QEMU's first plus k)
 * passes over one given to another NIC, as QEMU's does.
 */
static int config_check_nics(struct tern_config *c)
{
	static const uint8_t unset[6];

	for (int i = 0; i < c->n_nic; i++)
		for (int j = 0; j < i; j++)
			if (memcmp(c->nic[i].mac, unset, 6) &&
			    !memcmp(c->nic[i].mac, c->nic[j].mac, 6)) {
				const uint8_t *m = c->nic[i].mac;

				errorf("-device virtio-net: mac=%02x:%02x:%02x:%02x:%02x:%02x: "
				       "the NIC on netdev '%s' has it already",
				       m[0], m[1], m[2], m[3], m[4], m[5], c->nic[j].netdev);
				return -1;
			}
	for (int i = 0; i < c->n_nic; i++) {
		uint8_t mac[6];

		if (memcmp(c->nic[i].mac, unset, 6))
			continue;
		memcpy(mac, default_mac, 6);
		mac[5] += i;
		while (mac_in_use(c, mac))
			mac[5]++;
		memcpy(c->nic[i].mac, mac, 6);
	}
	return 0;
}

static int config_check(struct tern_config *c)
{
	if (c->serial == SERIAL_DEFAULT)
		c->serial = SERIAL_STDIO;
	if (config_check_sockets(c) < 0)
		return -1;
	if (!c->kernel && !c->incoming) {
		errorf("no kernel: use -kernel FILE (try -help)");
		return -1;
	}
	for (int i = 0; i < c->n_nic; i++) {
		if (!config_netdev_of(c, c->nic[i].netdev)) {
			errorf("-device virtio-net: netdev '%s' not found", c->nic[i].netdev);
			return -1;
		}
	}
	if (config_check_disks(c) < 0)
		return -1;
	/* A -netdev with no -device still gets a NIC, as QEMU's -nic would. */
	for (int j = 0; j < c->n_netdev; j++) {
		bool used = false;

		for (int i = 0; i < c->n_nic; i++)
			used |= !strcmp(c->nic[i].netdev, c->netdev[j].id);
		if (!used && c->n_nic < CONFIG_MAX_NICS) {
			struct nic_cfg *nic = &c->nic[c->n_nic++];

			strcpy(nic->netdev, c->netdev[j].id);
			memset(nic->mac, 0, 6);
		}
	}
	return config_check_nics(c);
}

/* The options that take no value: true if opt is one (and is now set). */
static bool config_flag(struct tern_config *c, const char *opt)
{
	bool *flag = !strcmp(opt, "-nographic") ? &c->nographic
		     : !strcmp(opt, "-daemonize") ? &c->daemonize
		     : !strcmp(opt, "-pvh")	  ? &c->pvh
		     : !strcmp(opt, "-S")	  ? &c->start_paused
						  : NULL;

	if (flag)
		*flag = true;
	return flag;
}

/* An option with its value (NULL: none came). */
static int config_value(struct tern_config *c, const char *opt, const char *arg)
{
	const struct config_opt *o = config_find(opt);
	unsigned bit;

	if (!o)
		return -1;
	if (!arg) {
		errorf("%s: missing argument", opt);
		return -1;
	}
	bit = 1u << (o - options);
	/* A second serial port, monitor or stub would be a second device in QEMU: tern has one. */
	if (o->once && (c->given & bit)) {
		errorf("%s: given twice (tern takes one%s)", opt,
		       !strcmp(opt, "-gdb") ? "; -s is -gdb tcp::1234" : "");
		return -1;
	}
	c->given |= bit;
	return config_option(c, o, arg);
}

int config_set(struct tern_config *c, const char *opt, const char *arg)
{
	/* QEMU's shorthand for -gdb tcp::1234. */
	if (!strcmp(opt, "-s") && !arg)
		return config_value(c, "-gdb", "tcp::1234");
	if (config_flag(c, opt)) {
		if (!arg)
			return 0;
		errorf("%s: takes no value", opt);
		return -1;
	}
	return config_value(c, opt, arg);
}

/* Returns 0 to run, 1 when it printed help or version, -1 on a bad command line. */
int config_parse(struct tern_config *c, int argc, char **argv)
{
	memset(c, 0, sizeof(*c));
	c->mem_size = DEFAULT_MEM;
	c->smp = 1;
	c->echr = 0x01;

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		int r;

		/* QEMU takes --opt as -opt. */
		if (opt[0] == '-' && opt[1] == '-')
			opt++;
		if (!strcmp(opt, "-help") || !strcmp(opt, "-h")) {
			config_usage();
			return 1;
		}
		if (!strcmp(opt, "-version")) {
			printf("tern version " TERN_VERSION "\n");
			return 1;
		}
		if (!strcmp(opt, "-s") || config_flag(c, opt)) {
			if (config_set(c, opt, NULL) < 0)
				return -1;
			continue;
		}
		r = config_ignored(opt, &i, argc);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (opt[0] != '-') {
			errorf("unexpected argument '%s' (options start with -; try -help)", opt);
			return -1;
		}
		if (config_value(c, opt, i + 1 < argc ? argv[++i] : NULL) < 0)
			return -1;
	}
	return config_check(c);
}
