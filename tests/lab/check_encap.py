#!/usr/bin/env python3
"""Checks the L3-DSR packets captured on the members' link (a classic pcap
file): every packet is IPv4 carrying IP-in-IP or GRE from the switch to a
member, with the client's untouched SYN inside, its MSS clamped.
Prints one line per packet and exits non-zero on the first violation."""
import argparse
import ipaddress
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("--encap", choices=["ipip", "gre"], required=True)
    ap.add_argument("--switch", required=True)
    ap.add_argument("--members", required=True, help="prefix the members are in")
    ap.add_argument("--client", required=True)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--mss", type=int, required=True)
    ap.add_argument("--min", type=int, default=1)
    a = ap.parse_args()
    members = ipaddress.ip_network(a.members)
    n = 0
    for frame in packets(a.pcap):
        if struct.unpack("!H", frame[12:14])[0] != 0x0800:
            continue
        outer = frame[14:]
        ihl = (outer[0] & 0x0F) * 4
        proto, ttl = outer[9], outer[8]
        src, dst = ipaddress.ip_address(outer[12:16]), ipaddress.ip_address(outer[16:20])
        if csum(bytes(outer[:ihl])) != 0:
            fail("outer IPv4 checksum")
        want = 4 if a.encap == "ipip" else 47
        if proto != want:
            fail(f"outer protocol {proto}, want {want}")
        if str(src) != a.switch or dst not in members or ttl != 64:
            fail(f"outer {src} -> {dst} ttl {ttl}")
        inner = outer[ihl:]
        if a.encap == "gre":
            if inner[:4] != b"\x00\x00\x08\x00":
                fail(f"GRE header {inner[:4].hex()}")
            inner = inner[4:]
        total = struct.unpack("!H", outer[2:4])[0]
        if total != ihl + (4 if a.encap == "gre" else 0) + struct.unpack("!H", inner[2:4])[0]:
            fail("outer total length does not cover the inner packet")
        if (outer[6] & 0x40) != (inner[6] & 0x40) or outer[1] != inner[1]:
            fail("DF or TOS not copied from the inner header")
        iihl = (inner[0] & 0x0F) * 4
        isrc, idst = ipaddress.ip_address(inner[12:16]), ipaddress.ip_address(inner[16:20])
        if str(isrc) != a.client or str(idst) != a.vip or inner[9] != 6:
            fail(f"inner {isrc} -> {idst} proto {inner[9]}")
        ilen = struct.unpack("!H", inner[2:4])[0]
        seg = bytes(inner[iihl:ilen])
        sport, dport = struct.unpack("!HH", seg[:4])
        flags = seg[13]
        pseudo = inner[12:20] + struct.pack("!BBH", 0, 6, len(seg))
        if csum(bytes(pseudo) + seg) != 0:
            fail("inner TCP checksum")
        mss = None
        if flags & 0x02:
            opts, i = seg[20:(seg[12] >> 4) * 4], 0
            while i < len(opts) and opts[i] != 0:
                if opts[i] == 1:
                    i += 1
                    continue
                if opts[i] == 2:
                    mss = struct.unpack("!H", opts[i + 2:i + 4])[0]
                i += max(opts[i + 1], 2)
            if mss is None or mss > a.mss:
                fail(f"SYN MSS {mss}, want <= {a.mss}")
        print(f"ok {a.encap} {src}->{dst} inner {isrc}:{sport}->{idst}:{dport} flags {flags:#04x} mss {mss}")
        n += 1
    if n < a.min:
        fail(f"{n} encapsulated packets captured, want at least {a.min}")
    print(f"{n} encapsulated packets checked")


if __name__ == "__main__":
    main()
