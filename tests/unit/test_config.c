/* The command-line parser: QEMU's spellings, and one clear failure for every bad option. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "vmm/config.h"
#include "vmm/migration/transport.h"
#include "vmm/util.h"

#define ARGS(...) ((char *[]){ "tern", __VA_ARGS__, NULL })
#define NARGS(...) (int)(sizeof((char *[]){ "tern", __VA_ARGS__ }) / sizeof(char *))
#define PARSE(c, ...) config_parse(c, NARGS(__VA_ARGS__), ARGS(__VA_ARGS__))

static void test_basic(void)
{
	struct tern_config c;

	CHECK_EQ(PARSE(&c, "-kernel", "k.elf", "-append", "a b", "-m", "256M", "-nographic"), 0);
	CHECK_STR(c.kernel, "k.elf");
	CHECK_STR(c.append, "a b");
	CHECK_EQ(c.mem_size, 256ULL << 20);
	CHECK(c.nographic);
	CHECK(!c.start_paused);
	CHECK_EQ(c.serial, SERIAL_STDIO);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-S"), 0);
	CHECK(c.start_paused);
	CHECK_EQ(PARSE(&c, "--kernel", "k", "-m", "1G"), 0);
	CHECK_EQ(c.mem_size, 1ULL << 30);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-m", "512"), 0);
	CHECK_EQ(c.mem_size, 512ULL << 20);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-m", "size=64M"), 0);
	CHECK_EQ(c.mem_size, 64ULL << 20);
	CHECK_EQ(PARSE(&c, "-kernel", "k"), 0);
	CHECK_EQ(c.mem_size, 128ULL << 20);
	/* The console's escape key: Ctrl-A unless -echr, in decimal or hex, as QEMU takes it. */
	CHECK_EQ(c.echr, 0x01);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-echr", "20"), 0);
	CHECK_EQ(c.echr, 0x14);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-echr", "0x1d"), 0);
	CHECK_EQ(c.echr, 0x1d);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-echr", "256"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-echr", "-1"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-echr", "t"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-echr", "20x"), -1);
}

static void test_serial_monitor(void)
{
	struct tern_config c;
	char path[108];

	CHECK_EQ(PARSE(&c, "-kernel", "k", "-serial", "file:/tmp/x"), 0);
	CHECK_EQ(c.serial, SERIAL_FILE);
	CHECK_STR(c.serial_path, "/tmp/x");
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-serial", "none"), 0);
	CHECK_EQ(c.serial, SERIAL_NONE);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-serial", "tcp:1"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-monitor", "unix:/tmp/m,server,nowait"), 0);
	CHECK_EQ(config_unix_path(c.monitor, path, sizeof(path)), 0);
	CHECK_STR(path, "/tmp/m");
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-monitor", "telnet:1"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-qmp", "unix:/q,server"), 0);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-qmp", "stdio"), -1);
	/* The gdb stub: QEMU's -s is -gdb tcp::1234. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-s"), 0);
	CHECK_STR(c.gdb, "tcp::1234");
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-gdb", "tcp::1234,server,nowait"), 0);
	CHECK_STR(c.gdb, "tcp::1234,server,nowait");
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-gdb", "1234"), -1);
	/* Checked here, before /dev/kvm: the address and QEMU's chardev options. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-gdb", "tcp::99x"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-gdb", "unix:"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-gdb", "file:/x"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-gdb", "tcp::1234,server,wait"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-monitor", "unix:/m,foo"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-qmp", "unix:/q,server=on,wait=off"), 0);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-qmp", "unix:/q,reconnect=1"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-incoming", "bogus:"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-incoming", "tcp:0:4444"), 0);
	CHECK_EQ(PARSE(&c, "-incoming", "defer"), 0);
	/* One of each; and two sockets at one path would replace each other. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-serial", "stdio", "-serial", "file:/x"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-s", "-gdb", "tcp::1"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-qmp", "unix:/q", "-qmp", "unix:/r"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-monitor", "unix:/s,server,nowait", "-qmp",
		       "unix:/s,server,nowait"),
		 -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-gdb", "unix:/s", "-incoming", "unix:/s"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-gdb", "unix:/s", "-incoming", "unix:/t"), 0);
}

/* Migration URIs (and -gdb's): a port past 65535, which getaddrinfo takes modulo 65536 without a
 * word, is refused; an IPv6 address goes in brackets, as QEMU writes it. */
static void test_migration_uris(void)
{
	struct tern_config c;
	struct mig_uri u;
	char err[200];

	CHECK_EQ(PARSE(&c, "-kernel", "k", "-incoming", "tcp:0:65535"), 0);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-incoming", "tcp:0:99999"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-incoming", "tcp:0:000004444"), 0);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-gdb", "tcp::65536"), -1);
	CHECK_EQ(mig_uri_parse("tcp:host:70000", &u, err, sizeof(err)), -1);
	CHECK_STR(err, "'tcp:host:70000': expected tcp:HOST:PORT (PORT at most 65535)");
	CHECK_EQ(mig_uri_parse("tcp:[::1]:4444", &u, err, sizeof(err)), 0);
	CHECK_STR(u.host, "::1");
	CHECK_STR(u.port, "4444");
	CHECK_EQ(mig_uri_parse("tcp:[]:4444", &u, err, sizeof(err)), 0);
	CHECK_STR(u.host, "");
	CHECK_EQ(mig_uri_parse("tcp:10.0.0.1:4444", &u, err, sizeof(err)), 0);
	CHECK_STR(u.host, "10.0.0.1");
}

static void test_name(void)
{
	struct tern_config c;

	CHECK_EQ(PARSE(&c, "-kernel", "k", "-name", "vm1"), 0);
	CHECK_STR(c.name, "vm1");
	CHECK_STR(c.process, "");
	/* As libvirt passes it. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-name", "guest=vm2,debug-threads=on"), 0);
	CHECK_STR(c.name, "vm2");
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-name", "vm3,process=tern-vm3"), 0);
	CHECK_STR(c.name, "vm3");
	CHECK_STR(c.process, "tern-vm3");
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-name", "vm,debug-threads=maybe"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-name", "vm,colour=red"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-name", "vm,process=a-name-over-15-chars"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k"), 0);
	CHECK(!c.name);
}

static void test_net(void)
{
	static const char *const bad_macs[] = { "01:00:00:00:00:01", "52:54", "ff:ff:ff:ff:ff:ff",
						"00:00:00:00:00:00" };
	struct tern_config c;

	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0,ifname=tap7,script=no,downscript=no",
		       "-device", "virtio-net,netdev=n0,mac=52:54:30:30:30:30"),
		 0);
	CHECK_EQ(c.n_netdev, 1);
	CHECK_EQ(c.netdev[0].type, NETDEV_TAP);
	CHECK_STR(c.netdev[0].ifname, "tap7");
	CHECK_EQ(c.n_nic, 1);
	CHECK_EQ(c.nic[0].mac[0], 0x52);
	CHECK_EQ(c.nic[0].mac[5], 0x30);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "bridge,id=n0,br=osvbr0"), 0);
	CHECK_EQ(c.netdev[0].type, NETDEV_BRIDGE);
	CHECK_STR(c.netdev[0].br, "osvbr0");
	/* A -netdev alone still gets a NIC, with the fixed default MAC. */
	CHECK_EQ(c.n_nic, 1);
	CHECK_EQ(c.nic[0].mac[0], 0x52);
	CHECK_EQ(c.nic[0].mac[5], 0x56);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "user,id=n0"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0,script=/etc/qemu-ifup"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0,bogus=1"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,ifname=x"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0", "-device", "e1000,netdev=n0"), -1);
	/*
	 * No multicast or malformed MAC, and none broadcast or all zero (Linux would make up one
	 * of its own).
	 */
	for (size_t i = 0; i < ARRAY_SIZE(bad_macs); i++) {
		char dev[64];

		snprintf(dev, sizeof(dev), "virtio-net,netdev=n0,mac=%s", bad_macs[i]);
		CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0", "-device", dev), -1);
	}
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-device", "virtio-net,netdev=nope"), -1);
	/* One id, one backend: the second would never be used. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=a", "-netdev", "tap,id=a"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id="), -1);
	/* Nothing silently dropped: scripts, vhost, values too long for tern. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0,downscript=/etc/qemu-ifdown"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0,vhost=on"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0,vhost=off"), 0);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev",
		       "tap,id=n0,script=/etc/a-path-longer-than-sixty-four-characters/qemu-ifup"),
		 -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev",
		       "tap,id=n0,br=a-bridge-name-longer-than-sixty-four-characters-xxxxxxxxxxxxxx"),
		 -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "bridge,id=n0,br=b0,helper=/usr/lib/h"), 0);
	/* Two NICs on one backend: QEMU says it is in use. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0", "-device",
		       "virtio-net,netdev=n0", "-device", "virtio-net,netdev=n0"),
		 -1);
	/* Nor two NICs one MAC; a default passes over one given to another NIC. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0", "-netdev", "tap,id=n1",
		       "-device", "virtio-net,netdev=n0,mac=52:54:30:30:30:30", "-device",
		       "virtio-net,netdev=n1,mac=52:54:30:30:30:30"),
		 -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0", "-netdev", "tap,id=n1",
		       "-device", "virtio-net,netdev=n0,mac=52:54:00:12:34:57", "-device",
		       "virtio-net,netdev=n1"),
		 0);
	CHECK_EQ(c.nic[1].mac[5], 0x58);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0", "-netdev", "tap,id=n1",
		       "-device", "virtio-net,netdev=n0", "-device",
		       "virtio-net,netdev=n1,mac=52:54:00:12:34:56"),
		 0);
	CHECK_EQ(c.nic[0].mac[5], 0x57);
	CHECK_EQ(c.nic[1].mac[5], 0x56);
	/* Two NICs, no MACs: QEMU's defaults, the k-th NIC's its first plus k. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0", "-netdev", "tap,id=n1"), 0);
	CHECK_EQ(c.nic[0].mac[5], 0x56);
	CHECK_EQ(c.nic[1].mac[5], 0x57);
	/* One tap, one backend (a name with %d is a pattern, a new tap each). */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0,ifname=t0", "-netdev",
		       "tap,id=n1,ifname=t0"),
		 -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=n0,ifname=t%d", "-netdev",
		       "tap,id=n1,ifname=t%d"),
		 0);
	/* Two hex digits a byte, no signs, spaces or short bytes. */
	{
		uint8_t mac[6];

		CHECK_EQ(config_parse_mac("52:54:00:AB:cd:0f", mac), 0);
		CHECK_EQ(mac[3], 0xab);
		CHECK_EQ(mac[5], 0x0f);
		CHECK_EQ(config_parse_mac("52:54:00:12:34:-1", mac), -1);
		CHECK_EQ(config_parse_mac("52:54:00:12:34: 1", mac), -1);
		CHECK_EQ(config_parse_mac("52:54:0:12:34:56", mac), -1);
		CHECK_EQ(config_parse_mac("52:54:00:12:34:567", mac), -1);
		CHECK_EQ(config_parse_mac("52-54-00-12-34-56", mac), -1);
		CHECK_EQ(config_parse_mac("00:00:00:00:00:00", mac), -1);
		CHECK_EQ(config_parse_mac("00:00:00:00:00:01", mac), 0);
	}
}

/* -nic: QEMU's shorthand for a -netdev and its NIC. */
static void test_nic(void)
{
	struct tern_config c;

	CHECK_EQ(PARSE(&c, "-kernel", "k", "-nic", "tap,ifname=tq9,mac=52:54:00:aa:bb:cc"), 0);
	CHECK_EQ(c.n_netdev, 1);
	CHECK_EQ(c.netdev[0].type, NETDEV_TAP);
	CHECK_STR(c.netdev[0].ifname, "tq9");
	CHECK_EQ(c.n_nic, 1);
	CHECK_STR(c.nic[0].netdev, c.netdev[0].id);
	CHECK_EQ(c.nic[0].mac[5], 0xcc);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-nic", "bridge,br=osvbr0,model=virtio-net-pci", "-nic",
		       "bridge,br=b1,id=second"),
		 0);
	CHECK_EQ(c.n_nic, 2);
	CHECK_STR(c.netdev[0].br, "osvbr0");
	CHECK_STR(c.netdev[1].id, "second");
	CHECK_STR(c.nic[1].netdev, "second");
	/* Default MACs, one each, as with -netdev and -device. */
	CHECK_EQ(c.nic[0].mac[5], 0x56);
	CHECK_EQ(c.nic[1].mac[5], 0x57);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-nic", "none"), 0);
	CHECK_EQ(c.n_nic, 0);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-nic", "tap,model=e1000"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-nic", "user"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-nic", "bridge"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-nic", "tap,mac=01:00:00:00:00:01"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-nic", "tap,bogus=1"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-nic", "tap,id=a", "-netdev", "tap,id=a"), -1);
}

static void test_drives(void)
{
	struct tern_config c;

	/* if=virtio (and no if=): a disk of its own, in command-line order. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a.img", "-drive",
		       "file=/b/c.img,if=virtio,id=hd1,readonly=on,format=raw,cache=none,aio=native"),
		 0);
	CHECK_EQ(c.n_drive, 2);
	CHECK_EQ(c.n_disk, 2);
	CHECK_STR(c.drive[0].id, "drive0");
	CHECK_STR(c.drive[0].file, "a.img");
	CHECK(!c.drive[0].readonly && !c.drive[0].raw && !c.drive[0].sync_writes);
	CHECK_STR(c.drive[1].file, "/b/c.img");
	CHECK(c.drive[1].readonly && c.drive[1].raw && !c.drive[1].sync_writes);
	CHECK_STR(c.disk[1].drive, "hd1");
	CHECK(config_drive_of(&c, "hd1") == &c.drive[1]);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a,cache=writethrough"), 0);
	CHECK(c.drive[0].sync_writes);
	/* if=none waits for a -device, which may come first, as OSv's run.py passes them. */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-device", "virtio-blk-pci,id=blk0,drive=hd0,scsi=off",
		       "-drive", "file=u.img,if=none,id=hd0"),
		 0);
	CHECK_EQ(c.n_disk, 1);
	CHECK_STR(c.disk[0].drive, "hd0");
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=u.img,if=none,id=hd0"), 0);
	CHECK_EQ(c.n_disk, 0);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=u.img,if=none,id=d", "-device",
		       "virtio-blk,drive=d,serial=01234567890123456789"),
		 0);
	CHECK_STR(c.disk[0].serial, "01234567890123456789");

	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "if=none"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a,format=qcow2"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a,if=scsi"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a,readonly"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a,readonly=yes"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a,media=cdrom"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a,snapshot=on"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a,readonly=off,readonly=on"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-netdev", "tap,id=a,id=b"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a,id=x", "-drive", "file=b,id=x"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-device", "virtio-blk,drive=nope"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-device", "virtio-blk"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=a", "-device", "virtio-blk,drive=drive0"),
		 -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-device", "virtio-blk,drive=d,serial=012345678901234567890",
		       "-drive", "file=a,if=none,id=d"),
		 -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-device", "virtio-blk-ccw,drive=d"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-drive", "file=1", "-drive", "file=2", "-drive",
		       "file=3", "-drive", "file=4", "-drive", "file=5"),
		 -1);
}

static void test_bad(void)
{
	struct tern_config c;

	CHECK_EQ(PARSE(&c, "-kernel", "k", "-frob"), -1);
	CHECK_EQ(PARSE(&c, "-kernel"), -1);
	/* A known option at the end says its value is missing, and reads no file named "". */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-config"), -1);
	CHECK_EQ(PARSE(&c, "-m", "1G"), -1);	/* no kernel */
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-m", "lots"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-m", "-5"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-smp", "0"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-smp", "65"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-smp", "99999999999999999999999"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-smp", "x"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-smp", "-2"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-smp", "2,sockets=2"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-smp", "cpus="), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "stray"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-smp", "1"), 0);
	CHECK_EQ(c.smp, 1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-smp", "4"), 0);
	CHECK_EQ(c.smp, 4);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-smp", "cpus=64"), 0);
	CHECK_EQ(c.smp, 64);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-enable-kvm", "-cpu", "host", "-M", "microvm"), 0);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-cpu", "qemu64"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-cpu", ""), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-cpu", "host,-nosuch"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-cpu", "host,avx2=yes"), -1);
	CHECK_EQ(PARSE(&c, "-kernel", "k", "-cpu", "max,-avx2,+sse4.2,aes=off,avx=on,-aes,aes"), 0);
	CHECK_EQ(c.cpu_off.w[2], 1u << 5);			/* avx2 */
	CHECK_EQ(c.cpu_on.w[0], 1u << 20 | 1u << 28 | 1u << 25); /* sse4.2, avx, aes: last wins */
	CHECK_EQ(c.cpu_off.w[0], 0);
	CHECK_EQ(PARSE(&c, "-incoming", "tcp:0:4444"), 0);	/* a destination needs no kernel */
}

static void test_sizes(void)
{
	uint64_t v;

	CHECK_EQ(parse_size("4K", 1, &v), 0);
	CHECK_EQ(v, 4096);
	CHECK_EQ(parse_size("2GiB", 1, &v), 0);
	CHECK_EQ(v, 2ULL << 30);
	CHECK_EQ(parse_size("16MB", 1, &v), 0);
	CHECK_EQ(v, 16ULL << 20);
	CHECK_EQ(parse_size("10", 1ULL << 20, &v), 0);
	CHECK_EQ(v, 10ULL << 20);
	CHECK_EQ(parse_size("1X", 1, &v), -1);
	CHECK_EQ(parse_size("", 1, &v), -1);
	CHECK_EQ(parse_size("99999999999999T", 1, &v), -1);
	/* Decimal, as QEMU reads it: a leading 0 is no octal. 0x is hex. */
	CHECK_EQ(parse_size("010", 1ULL << 20, &v), 0);
	CHECK_EQ(v, 10ULL << 20);
	CHECK_EQ(parse_size("0x10", 1, &v), 0);
	CHECK_EQ(v, 16);
	/* strtoull would skip the space and negate. */
	CHECK_EQ(parse_size(" -1", 1, &v), -1);
	CHECK_EQ(parse_size(" 1", 1, &v), -1);
	CHECK_EQ(parse_size("+1", 1, &v), -1);
}

/* Writes text to a fresh file; its path is in path (a mkstemp template). */
static char *json_file(char *path, const char *text)
{
	FILE *f = fdopen(mkstemp(path), "w");

	fputs(text, f);
	fclose(f);
	return path;
}

#define JSON(text) json_file((char[]){ "/tmp/tern-unit-json-XXXXXX" }, text)

static void test_config_file(void)
{
	struct tern_config c;
	char *f = JSON("{ \"kernel\": \"k.elf\", \"m\": 256, \"append\": \"a b\",\n"
			     "  \"nographic\": true, \"pvh\": false, \"name\": null,\n"
			     "  \"netdev\": [\"tap,id=n0,ifname=t0\", \"bridge,id=n1,br=br0\"],\n"
			     "  \"device\": [\"virtio-net,netdev=n0\", \"virtio-net,netdev=n1\"] }");

	CHECK_EQ(PARSE(&c, "-config", f), 0);
	CHECK_STR(c.kernel, "k.elf");
	CHECK_STR(c.append, "a b");
	CHECK_EQ(c.mem_size, 256ULL << 20);
	CHECK(c.nographic && !c.pvh && !c.name);
	CHECK_EQ(c.n_netdev, 2);
	CHECK_EQ(c.n_nic, 2);
	config_free(&c);
	/* The command line after -config comes later, and wins. */
	CHECK_EQ(PARSE(&c, "-config", f, "-m", "512M", "-append", "x"), 0);
	CHECK_EQ(c.mem_size, 512ULL << 20);
	CHECK_STR(c.append, "x");
	config_free(&c);
	unlink(f);
}

static void test_config_file_bad(void)
{
	const char *bad[] = {
		"{ \"kernel\": \"k\", ",			 /* malformed */
		"[ \"kernel\", \"k\" ]",			 /* not an object */
		"{ \"kernel\": { \"path\": \"k\" } }",	 /* a value of the wrong type */
		"{ \"kernel\": \"k\", \"frob\": 1 }",	 /* no such option */
		"{ \"kernel\": \"k\", \"nographic\": \"yes\" }", /* a flag with a value */
		"{ \"kernel\": \"k\", \"m\": true }",	 /* an option without one */
		"{ \"kernel\": \"k\", \"m\": \"lots\" }",	 /* the option's own check */
	};
	struct tern_config c;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *f = JSON(bad[i]);

		CHECK_EQ(PARSE(&c, "-config", f), -1);
		config_free(&c);
		unlink(f);
	}
	CHECK_EQ(PARSE(&c, "-config", "/nonexistent/tern.json"), -1);
	config_free(&c);
	/* One file only, also from inside itself. */
	{
		char path[] = "/tmp/tern-unit-json-XXXXXX", text[128];
		char *f = json_file(path, "{}");

		snprintf(text, sizeof(text), "{ \"kernel\": \"k\", \"config\": \"%s\" }", f);
		f = JSON(text);
		CHECK_EQ(PARSE(&c, "-config", f), -1);
		config_free(&c);
		unlink(f);
		unlink(path);
	}
}

int main(void)
{
	test_basic();
	test_serial_monitor();
	test_net();
	test_nic();
	test_name();
	test_migration_uris();
	test_drives();
	test_bad();
	test_sizes();
	test_config_file();
	test_config_file_bad();
	return unit_summary();
}
