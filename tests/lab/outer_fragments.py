#!/usr/bin/env python3
"""L3-DSR packets too long for the members' link once encapsulated.

send: sends COUNT UDP datagrams of exactly 1,500 bytes of IPv4 (DF clear)
from the client to the VIP, through a raw socket so the client's kernel
neither fragments nor sets DF; each carries its index in its payload.

check: reads the members' link capture (classic pcap), groups the outer
packets (IP-in-IP or GRE from the switch) by identifier, checks each
fragment's header checksum and that none exceeds the link MTU, reassembles
them by offset, and checks that every datagram sent is inside, whole and
unchanged. Exits non-zero on the first violation."""
import argparse
import ipaddress
import socket
import struct
import sys

TOTAL = 1500


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def datagram(client, vip, port, i):
    """The i-th datagram sent: IPv4 (DF clear, ident 0x4000 + i) + UDP."""
    payload = struct.pack("!I", i) + bytes((i + k) % 251 for k in range(TOTAL - 28 - 4))
    src, dst = socket.inet_aton(client), socket.inet_aton(vip)
    udp_len = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", 40000 + i, port, udp_len, 0) + payload
    c = csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, TOTAL, 0x4000 + i, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + udp


def send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for i in range(a.count):
        s.sendto(datagram(a.client, a.vip, a.port, i), (a.vip, 0))
    print(f"sent {a.count} datagrams of {TOTAL} bytes, DF clear")


def packets(path):
    with open(path, "rb") as f:
        hdr = f.read(24)
        magic = struct.unpack("<I", hdr[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            _, _, incl, _ = struct.unpack(endian + "IIII", rec)
            yield f.read(incl)


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check(a):
    want_proto = 4 if a.encap == "ipip" else 47
    pieces = {}
    for frame in packets(a.pcap):
        if struct.unpack("!H", frame[12:14])[0] != 0x0800:
            continue
        ip = frame[14:]
        ihl, total = (ip[0] & 0x0F) * 4, struct.unpack("!H", ip[2:4])[0]
        if ip[9] != want_proto or socket.inet_ntoa(ip[12:16]) != a.switch:
            continue
        if csum(bytes(ip[:ihl])) != 0:
            fail("outer header checksum")
        if total > a.mtu:
            fail(f"outer packet of {total} bytes on a link of MTU {a.mtu}")
        ident, flags = struct.unpack("!HH", ip[4:8])
        if flags & 0x4000:
            fail("an outer fragment with DF set")
        pieces.setdefault(ident, []).append(((flags & 0x1FFF) * 8, bool(flags & 0x2000), ip[ihl:total]))
    found, cut = set(), 0
    for ident, parts in pieces.items():
        parts.sort(key=lambda p: p[0])
        if len(parts) > 1:
            cut += 1
        data, more = b"", True
        for off, mf, body in parts:
            if off != len(data):
                fail(f"ident {ident:#x}: fragment at {off}, {len(data)} bytes so far")
            data, more = data + body, mf
        if more:
            fail(f"ident {ident:#x}: the last fragment is missing")
        if a.encap == "gre":
            if data[:4] != b"\x00\x00\x08\x00":
                fail(f"GRE header {data[:4].hex()}")
            data = data[4:]
        if len(data) != TOTAL:
            continue
        i = struct.unpack("!I", data[28:32])[0]
        if i < a.count and data == datagram(a.client, a.vip, a.port, i):
            found.add(i)
    print(f"{len(pieces)} outer datagrams, {cut} of them in fragments; {len(found)} of {a.count} sent inside, unchanged")
    if len(found) != a.count:
        fail(f"datagrams {sorted(set(range(a.count)) - found)} not found whole")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["send", "check"])
    ap.add_argument("--pcap")
    ap.add_argument("--encap", choices=["ipip", "gre"], default="ipip")
    ap.add_argument("--switch")
    ap.add_argument("--client", required=True)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--mtu", type=int, default=1500)
    a = ap.parse_args()
    if a.mode == "send":
        send(a)
    else:
        ipaddress.ip_address(a.switch)
        check(a)


if __name__ == "__main__":
    main()
