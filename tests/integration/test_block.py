"""virtio-blk: a raw image as the guest's disk, read and written through the test guest's
`blk` command, checked byte for byte from the host; and the same disk across a migration."""
import fcntl
import os
import signal
import struct
import time

import pytest

from conftest import GUEST, Monitor, free_port, run_tern
from migproxy import holding, holding_answers

SECTOR = 512


def fnv(data):
    """The guest's checksum of what it read (FNV-1a, 32 bits)."""
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return "%08x" % h


def pattern(seed, nsectors):
    """What `blk write S N SEED` writes: byte o is SEED + 7*o + o/512."""
    return bytes((seed + 7 * o + o // SECTOR) & 0xFF for o in range(nsectors * SECTOR))


def image(path, size=4 << 20):
    """A raw image with random sectors 0-7 (so a read shows real content) and zeros after."""
    head = os.urandom(8 * SECTOR)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return str(path), head


def read_at(path, sector, n):
    with open(path, "rb") as f:
        f.seek(sector * SECTOR)
        return f.read(n * SECTOR)


def args(mon, *extra):
    return ["-kernel", GUEST, "-nographic", "-serial", "stdio", "-m", "128M",
            "-monitor", "unix:%s,server,nowait" % mon] + list(extra)


def blk(t, line, pattern_, timeout=10):
    """Runs `blk LINE` in the guest; the groups of pattern_ in its answer, as strings (the one
    group alone)."""
    mark = len(t.out)
    t.send("blk " + line + "\r" if line else "blk\r")
    groups = tuple(g.decode() for g in t.expect(pattern_, timeout=timeout, start=mark).groups())
    return groups[0] if len(groups) == 1 else groups


@pytest.mark.kvm
def test_disk_reads_writes_flushes(tern, tmp_path):
    img, head = image(tmp_path / "disk.img")
    mon = str(tmp_path / "mon")
    t = tern(*args(mon, "-drive", "file=%s,if=none,id=hd0,format=raw,cache=none" % img,
                   "-device", "virtio-blk-pci,drive=hd0,serial=tern-disk-1"))
    t.expect(r"Booted up")
    assert int(blk(t, "", r"blk: (\d+) sectors")) == (4 << 20) // SECTOR
    assert blk(t, "read 0 8", r"blk: read 0\+8 sum=([0-9a-f]{8}) status (\d+)") == \
        (fnv(head), "0")
    # 300 sectors: three requests of up to 128, the data over many pages.
    assert blk(t, "write 100 300 5", r"blk: wrote 100\+300 status (\d+)") == "0"
    assert blk(t, "flush", r"blk: flush status (\d+)") == "0"
    assert read_at(img, 100, 300) == pattern(5, 300)
    assert read_at(img, 0, 8) == head, "the write went elsewhere too"
    assert blk(t, "read 100 300", r"sum=([0-9a-f]{8}) status 0") == \
        fnv(pattern(5, 300))
    assert blk(t, "id", r"blk: id '([^']*)' status (\d+)") == ("tern-disk-1", "0")
    # Past the end: the device says IOERR (1), the guest goes on.
    assert blk(t, "read 8190 4", r"status (\d+)") == "1"
    info = Monitor(mon).cmd("info block")
    assert "hd0: %s (raw), 4194304 bytes" % img in info, info
    assert "wr 3 ops 153600 bytes" in info and "1 errors" in info, info


@pytest.mark.kvm
def test_read_only_disk_refuses_writes(tern, tmp_path):
    img, head = image(tmp_path / "ro.img")
    t = tern(*args(str(tmp_path / "mon"), "-drive", "file=%s,readonly=on" % img))
    t.expect(r"Booted up")
    blk(t, "", r"blk: 8192 sectors, features 0x[0-9a-f]+(, read-only)")
    assert blk(t, "write 0 1 9", r"blk: wrote 0\+1 status (\d+)") == "1"
    assert blk(t, "read 0 8", r"sum=([0-9a-f]{8}) status 0") == fnv(head)
    assert read_at(img, 0, 8) == head
    # Refused as the guest's mistake, before the host sees it: no host I/O error line, which
    # tern prints only once and so must keep for a real one.
    assert not [l for l in t.text().splitlines() if l.startswith("tern:")], t.text()


@pytest.mark.kvm
def test_disk_goes_along_in_a_migration(tern, tmp_path):
    """The image is shared, not copied: what the guest wrote before the move it reads after
    it, its queue carries on at the destination, and what it writes there lands in the file."""
    img, head = image(tmp_path / "disk.img")
    drive = ["-drive", "file=%s" % img]
    uri = "unix:%s" % (tmp_path / "mig.sock")
    a = tern(*args(str(tmp_path / "a"), *drive))
    a.expect(r"Booted up")
    assert blk(a, "write 64 16 3", r"status (\d+)") == "0"
    b = tern(*args(str(tmp_path / "b"), *drive, "-incoming", uri))
    am = Monitor(str(tmp_path / "a"))
    Monitor(str(tmp_path / "b")).close()
    assert "completed" in am.cmd('migrate "%s"' % uri)
    assert blk(b, "read 64 16", r"sum=([0-9a-f]{8}) status 0") == fnv(pattern(3, 16))
    assert blk(b, "write 80 8 4", r"status (\d+)") == "0"
    assert read_at(img, 64, 24) == pattern(3, 16) + pattern(4, 8)
    assert read_at(img, 0, 8) == head


@pytest.mark.kvm
def test_disk_reads_during_a_migration_reach_the_destination(tern, tmp_path):
    """The device writes what it reads into guest memory itself, which KVM's dirty log never
    sees: a read between round 0 and the stop must still reach the destination. The proxy
    holds the stream at the source's last catch-up (SYNC), the guest still running; the buffer
    the read filled had been sent in round 0, with other content."""
    img, head = image(tmp_path / "disk.img")
    drive = ["-drive", "file=%s" % img]
    port = free_port()
    a = tern(*args(str(tmp_path / "a"), *drive))
    a.expect(r"Booted up")
    zeros = fnv(bytes(8 * SECTOR))
    assert blk(a, "read 8 8", r"sum=([0-9a-f]{8}) status 0") == zeros
    b = tern(*args(str(tmp_path / "b"), *drive, "-incoming", "tcp:127.0.0.1:%d" % port))
    Monitor(str(tmp_path / "b")).close()
    am = Monitor(str(tmp_path / "a"))
    proxy = holding(port, "SYNC")
    try:
        am.cmd('migrate -d "tcp:127.0.0.1:%d"' % proxy.port)
        proxy.wait_seen("SYNC")
        assert blk(a, "read 0 8", r"sum=([0-9a-f]{8}) status 0") == fnv(head)
    finally:
        proxy.release.set()
    deadline = time.monotonic() + 20
    while am.info("migrate").get("Migration status") != "completed":
        assert time.monotonic() < deadline, am.info("migrate")
        time.sleep(0.02)
    assert blk(b, "sum 8", r"blk: buffer 8 sum=([0-9a-f]{8})") == fnv(head)


@pytest.mark.kvm
def test_destination_with_another_disk_refuses(tern, tmp_path):
    img, _ = image(tmp_path / "disk.img")
    small, _ = image(tmp_path / "small.img", size=2 << 20)
    a = tern(*args(str(tmp_path / "a"), "-drive", "file=%s" % img))
    a.expect(r"Booted up")
    am = Monitor(str(tmp_path / "a"))
    for i, other in enumerate((["-drive", "file=%s" % small], [],
                               ["-drive", "file=%s,readonly=on" % img])):
        uri = "tcp:127.0.0.1:%d" % free_port()
        b = tern(*args(str(tmp_path / ("b%d" % i)), *other, "-incoming", uri))
        Monitor(str(tmp_path / ("b%d" % i))).close()
        out = am.cmd('migrate "%s"' % uri)
        want = ("virtio-blk: size 4194304 bytes != 2097152 bytes",
                "device virtio-blk missing here", "virtio-blk: read-only off != on")[i]
        assert "destination refused: " + want in out, out
        assert b.wait() != 0
    assert blk(a, "read 0 1", r"status (\d+)") == "0"


def locked_by_other(path):
    """Whether another open file holds a lock on path (F_GETLK: asked, not taken)."""
    with open(path, "r+b") as f:
        flock = struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        return struct.unpack("hhxxxxqqixxxx", fcntl.fcntl(f, fcntl.F_GETLK, flock))[0] != \
            fcntl.F_UNLCK


@pytest.mark.kvm
def test_failed_migration_gives_the_image_lock_back(tern, tmp_path):
    """The destination has taken the image's lock with the state when the migration fails (a
    cancel while its READY is held back): the source takes the lock back once the destination
    has let it go; its guest's disk requests wait meanwhile, and go on after."""
    img, head = image(tmp_path / "disk.img")
    drive = ["-drive", "file=%s" % img]
    port = free_port()
    a = tern(*args(str(tmp_path / "a"), *drive))
    a.expect(r"Booted up")
    b = tern(*args(str(tmp_path / "b"), *drive, "-incoming", "tcp:127.0.0.1:%d" % port))
    Monitor(str(tmp_path / "b")).close()
    am = Monitor(str(tmp_path / "a"))
    # The source let the lock go before it sent the device state; READY is held.
    proxy = holding_answers(port, "END")
    try:
        am.cmd('migrate -d "tcp:127.0.0.1:%d"' % proxy.port)
        deadline = time.monotonic() + 30
        while "END" not in proxy.seen or not locked_by_other(img):
            assert time.monotonic() < deadline, (proxy.seen, b.text()[-1000:])
            time.sleep(0.01)
        os.kill(b.proc.pid, signal.SIGSTOP)  # it holds the lock, and keeps it for now
        am.cmd("migrate_cancel")
    finally:
        proxy.back_gate.set()
    a.expect(r"disk\.img still locked by another process")
    os.kill(b.proc.pid, signal.SIGCONT)
    assert b.wait(timeout=30) != 0
    a.expect(r"disk\.img locked again: disk requests go on")
    assert am.info("migrate")["Migration status"] in ("cancelled", "failed")
    assert blk(a, "read 0 8", r"sum=([0-9a-f]{8}) status 0") == fnv(head)
    assert locked_by_other(img)  # by the source's tern, again


def bad(argv, *needles):
    code, out = run_tern(["-kernel", GUEST] + argv)
    lines = [l for l in out.splitlines() if l.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("tern: "), out
    for n in needles:
        assert n in lines[0], out


def test_bad_drives_are_one_line(tmp_path):
    img, _ = image(tmp_path / "disk.img")
    qcow = tmp_path / "q.img"
    qcow.write_bytes(b"QFI\xfb" + bytes(508))
    bad(["-drive", "file=%s" % (tmp_path / "nope.img")], "nope.img", "No such file")
    bad(["-drive", "file=%s" % qcow], "q.img", "qcow2", "format=raw")
    bad(["-drive", "file=%s,format=qcow2" % img], "format=qcow2", "raw images only",
        "qemu-img convert -O raw")
    bad(["-drive", "file=%s,if=ide" % img], "if=ide", "virtio or none")
    bad(["-drive", "file=%s,readonly" % img], "readonly=VALUE")
    bad(["-drive", "if=none,id=x"], "missing file=")
    bad(["-drive", "file=/dev/null"], "not a regular file or block device")
    bad(["-device", "virtio-blk,drive=x"], "drive 'x' not found")
    bad(["-drive", "file=%s,if=none,id=a" % img, "-device", "virtio-blk,drive=a",
         "-device", "virtio-blk,drive=a"], "drive 'a' is already in use")
    bad(["-device", "virtio-blk,drive=a,serial=" + "s" * 21], "serial=", "20")
    bad(["-device", "virtio-scsi"], "virtio-net and virtio-blk")


def test_image_in_use_is_refused(tmp_path):
    """Another process holds the image locked for writing (a POSIX lock here, which tern's OFD
    lock respects): tern refuses it, read-only too, before it opens /dev/kvm."""
    img, _ = image(tmp_path / "disk.img")
    with open(img, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        bad(["-drive", "file=%s" % img], "disk.img", "in use by another process (locked)")
        bad(["-drive", "file=%s,readonly=on" % img], "locked for writing")
        fcntl.lockf(f, fcntl.LOCK_UN)


@pytest.mark.kvm
def test_one_image_one_writer(tern, tmp_path):
    """A running guest holds its image: a second tern on it is refused, and a snapshot of the
    guest cannot be restored on it while the guest still runs here; once it has quit, it can.
    Read-only guests share an image."""
    img, head = image(tmp_path / "disk.img")
    a = tern(*args(str(tmp_path / "a"), "-drive", "file=%s" % img))
    a.expect(r"Booted up")
    bad(["-drive", "file=%s" % img], "in use by another process")
    am = Monitor(str(tmp_path / "a"))
    snap = tmp_path / "snap"
    assert "completed" in am.cmd('migrate "file:%s"' % snap)
    b = tern(*args(str(tmp_path / "b"), "-drive", "file=%s" % img, "-incoming",
                   "file:%s" % snap))
    assert b.wait() != 0
    assert "in use by another process" in b.text(), b.text()
    am.cmd("quit")
    a.wait()
    c = tern(*args(str(tmp_path / "c"), "-drive", "file=%s" % img, "-incoming",
                   "file:%s" % snap))
    cm = Monitor(str(tmp_path / "c"))
    deadline = time.monotonic() + 20
    while cm.info("status")["VM status"] != "running":  # typing before would be lost
        assert time.monotonic() < deadline, cm.info("status")
        time.sleep(0.02)
    assert blk(c, "read 0 8", r"sum=([0-9a-f]{8}) status 0") == fnv(head)
    cm.cmd("quit")
    c.wait()
    ro = ["-drive", "file=%s,readonly=on" % img]
    r1 = tern(*args(str(tmp_path / "r1"), *ro))
    r2 = tern(*args(str(tmp_path / "r2"), *ro))
    for r in (r1, r2):
        r.expect(r"Booted up")
        assert blk(r, "read 0 8", r"sum=([0-9a-f]{8}) status 0") == fnv(head)
