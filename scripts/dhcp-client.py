#!/usr/bin/env python3
"""A minimal DHCP client (DISCOVER, OFFER, REQUEST, ACK) for checking the lab's dnsmasq from
inside a namespace, with nothing beyond the Python standard library (Debian has no DHCP client
installed by default). It asks for broadcast replies, so the interface needs no address; it
configures nothing and prints what it was given.

usage: ip netns exec NS scripts/dhcp-client.py IFACE [--timeout S] [--json]
prints: "IFACE: 192.168.123.10/24 from 192.168.123.1 lease infinite router 192.168.123.1"
exit: 0 on an ACK, 1 on a NAK or timeout, 2 on a usage or socket error.
"""
import argparse
import ipaddress
import json
import os
import random
import socket
import struct
import sys
import time

MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK = 1, 2, 3, 4, 5, 6
NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK"}
OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_REQ_IP, OPT_LEASE = 1, 3, 6, 50, 51
OPT_TYPE, OPT_SERVER, OPT_PARAMS, OPT_CLIENT_ID, OPT_END = 53, 54, 55, 61, 255


def iface_mac(iface):
    """The interface's Ethernet address; OSError if it has none (lo's is zeros, a tun's none)."""
    with open("/sys/class/net/%s/address" % iface) as f:
        text = f.read().strip()
    try:
        mac = bytes.fromhex(text.replace(":", ""))
    except ValueError:
        mac = b""
    if len(mac) != 6 or not any(mac):
        raise OSError("no Ethernet address (%r)" % text)
    return mac


def in_named_netns():
    """Whether this process runs in a network namespace of `ip netns` (/run/netns/NAME) other
    than the machine's own (which `ip netns attach NAME 1` can name too)."""
    try:
        me = os.stat("/proc/self/ns/net")
    except OSError:
        return False
    try:
        init = os.stat("/proc/1/ns/net")
        if (init.st_dev, init.st_ino) == (me.st_dev, me.st_ino):
            return False
    except OSError:
        pass  # pid 1's is not ours to see (a container): the name alone must do
    try:
        for name in os.listdir("/run/netns"):
            st = os.stat(os.path.join("/run/netns", name))
            if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
                return True
    except OSError:
        pass
    return False


def build(msg_type, xid, mac, extra=()):
    hdr = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                      b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4, mac + b"\0" * 10,
                      b"", b"")
    opts = [(OPT_TYPE, bytes([msg_type])), (OPT_CLIENT_ID, b"\x01" + mac),
            (OPT_PARAMS, bytes([OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_LEASE, OPT_SERVER]))]
    opts += list(extra)
    body = b"".join(bytes([code, len(val)]) + val for code, val in opts)
    return hdr + MAGIC + body + bytes([OPT_END])


def parse(pkt):
    """(xid, chaddr, yiaddr, options) of a BOOTREPLY, or None."""
    if len(pkt) < 240 or pkt[0] != 2 or pkt[236:240] != MAGIC:
        return None
    xid = struct.unpack("!I", pkt[4:8])[0]
    yiaddr = socket.inet_ntoa(pkt[16:20])
    chaddr = pkt[28:34]
    opts, i = {}, 240
    while i < len(pkt):
        code = pkt[i]
        if code == OPT_END:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(pkt):
            break
        n = pkt[i + 1]
        opts[code] = pkt[i + 2:i + 2 + n]
        i += 2 + n
    return xid, chaddr, yiaddr, opts


def wait_reply(sock, xid, mac, want, deadline):
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            pkt = sock.recv(4096)
        except socket.timeout:
            return None
        except OSError as e:  # the interface went away under us, say
            raise SystemExit("dhcp-client: receive: %s" % (e.strerror or e))
        r = parse(pkt)
        if not r or r[0] != xid or r[1] != mac or OPT_TYPE not in r[3]:
            continue
        if r[3][OPT_TYPE][0] in want:
            return r


def send(s, iface, packet):
    """Broadcasts packet to the servers; False, with one line said, if the interface can't."""
    try:
        s.sendto(packet, ("255.255.255.255", 67))
        return True
    except OSError as e:
        print("dhcp-client: %s: %s" % (iface, e), file=sys.stderr)
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("iface")
    ap.add_argument("--timeout", type=float, default=10, help="seconds in all (default 10)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    a = ap.parse_args()

    # Outside a lab, its broadcasts would reach (and ask leases of) the network's real servers.
    if not in_named_netns():
        print("dhcp-client: not in a namespace of ip netns: run it inside a lab "
              "(ip netns exec NS %s IFACE)" % sys.argv[0], file=sys.stderr)
        return 2

    try:
        mac = iface_mac(a.iface)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.iface.encode())
        s.bind(("0.0.0.0", 68))
    except OSError as e:
        print("dhcp-client: %s: %s" % (a.iface, e), file=sys.stderr)
        return 2

    deadline = time.monotonic() + a.timeout
    xid = random.getrandbits(32)
    offer = None
    # Resend DISCOVER every second until an OFFER comes (the port may still be coming up).
    while offer is None and time.monotonic() < deadline:
        if not send(s, a.iface, build(DISCOVER, xid, mac)):
            return 2
        offer = wait_reply(s, xid, mac, (OFFER,), min(deadline, time.monotonic() + 1))
    if offer is None:
        print("dhcp-client: %s: no OFFER in %gs" % (a.iface, a.timeout), file=sys.stderr)
        return 1
    _, _, addr, opts = offer
    server = opts.get(OPT_SERVER, b"")
    extra = [(OPT_REQ_IP, socket.inet_aton(addr))]
    if len(server) == 4:
        extra.append((OPT_SERVER, server))
    ack = None
    while ack is None and time.monotonic() < deadline:
        if not send(s, a.iface, build(REQUEST, xid, mac, extra)):
            return 2
        ack = wait_reply(s, xid, mac, (ACK, NAK), min(deadline, time.monotonic() + 1))
    if ack is None:
        print("dhcp-client: %s: offered %s, but no ACK in %gs" % (a.iface, addr, a.timeout),
              file=sys.stderr)
        return 1
    _, _, addr, opts = ack
    if opts[OPT_TYPE][0] == NAK:
        print("dhcp-client: %s: NAK from the server" % a.iface, file=sys.stderr)
        return 1

    def ip(code):
        v = opts.get(code, b"")
        return socket.inet_ntoa(v[:4]) if len(v) >= 4 else None

    mask = ip(OPT_MASK)
    prefix = ipaddress.IPv4Network("0.0.0.0/%s" % mask).prefixlen if mask else None
    lease = struct.unpack("!I", opts[OPT_LEASE])[0] if len(opts.get(OPT_LEASE, b"")) == 4 else None
    res = {"iface": a.iface, "mac": ":".join("%02x" % b for b in mac), "address": addr,
           "prefix": prefix, "server": ip(OPT_SERVER), "router": ip(OPT_ROUTER),
           "lease": "infinite" if lease == 0xffffffff else lease}
    if a.json:
        print(json.dumps(res))
    else:
        print("%s: %s/%s from %s lease %s router %s" % (
            a.iface, addr, prefix, res["server"], res["lease"], res["router"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
