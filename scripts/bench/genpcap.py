#!/usr/bin/env python3
"""Traffic files (pcap) for scripts/bench.sh, standard library only.

Every flow is one TCP connection from a client in a benchmarking range to
VIP:PORT. Flow i has source port 1024 + i % 60000 and source address
  --family 4   198.18.0.1 + i // 60000 (198.18.0.0/15, RFC 2544)
  --family 6   2001:2::1 + i // 60000 (2001:2::/48, RFC 5180)
so flows are distinct 5-tuples for up to 60000 * 65534 flows.

  --mode est   the SYN of every flow first (flow 0, 1, ..., N-1), then
               --data rounds of one data packet (ACK|PSH) per flow, flows
               interleaved. With --data 0 the file holds one packet per flow
               (the SYN); replayed in a loop (net_pcap infinite_rx) the later
               passes hit the sessions the first pass created.
  --mode syn   one SYN per flow, nothing else (new-session measurement).

Frames are addressed to the Ethernet broadcast address: the pipeline accepts
frames for its port's MAC or any multicast/broadcast address, and the MAC of
a net_pcap port is not known before it starts. --size is the frame size on
the wire including the 4-byte FCS, which is not stored; by default the
smallest TCP frame of the family:
  IPv4  64 bytes: 60 in the file, the 54 bytes of headers (Ethernet 14,
        IPv4 20, TCP 20) and 6 bytes of Ethernet padding.
  IPv6  78 bytes: 74 in the file, the 74 bytes of headers (Ethernet 14,
        IPv6 40, TCP 20) and no padding; "74 B" in frame sizes without FCS.
SYNs carry no payload (IPv4 total length 40, IPv6 payload length 20) and are
padded to the frame size of the file; data packets carry whatever fills the
frame (6 bytes at 64 for IPv4, none at 78 for IPv6). The IPv4 header
checksum and the TCP checksum (over the IPv4 or IPv6 pseudo header) are
valid; IPv6 frames have Ethernet type 0x86dd and no extension headers.
"""

import argparse
import ipaddress
import struct
import sys

SYN, ACK, PSH = 0x02, 0x10, 0x08
FLOWS_PER_ADDR = 60000
FIRST_SPORT = 1024
TCP = 6


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def words(b):
    if len(b) % 2:
        b += b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


class Family:
    """What differs between the families: addresses, the IP header, offsets."""

    def __init__(self, version):
        self.version = version
        self.alen = 4 if version == 4 else 16        # address bytes
        self.l4 = 14 + (20 if version == 4 else 40)  # offset of the TCP header
        self.src_at = 26 if version == 4 else 22     # offset of the source address
        self.client_base = int(ipaddress.ip_address("198.18.0.1" if version == 4 else "2001:2::1"))
        self.default_vip = "198.51.100.10" if version == 4 else "2001:db8:1::10"
        self.eth = bytes.fromhex("ffffffffffff" "0200000000fe" + ("0800" if version == 4 else "86dd"))
        # The smallest frame in the file: headers, at least 60 (Ethernet minimum without FCS).
        self.min_caplen = max(60, self.l4 + 20)

    def addr(self, a):
        return a.to_bytes(self.alen, "big")

    def ip_header(self, src, dst, l4_len):
        """The IP header of a TCP segment of l4_len bytes, its checksum valid."""
        if self.version == 4:
            ip = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 20 + l4_len, 0, 0x4000, 64, TCP, 0)
                           + self.addr(src) + self.addr(dst))
            struct.pack_into("!H", ip, 10, 0xFFFF - fold(words(bytes(ip))))
            return bytes(ip)
        # Version 6, traffic class 0, flow label 0; next header TCP, hop limit 64.
        return struct.pack("!IHBB", 6 << 28, l4_len, TCP, 64) + self.addr(src) + self.addr(dst)

    def pseudo_sum(self, src, dst, l4_len):
        """The one's complement sum of the TCP pseudo header (RFC 793 / RFC 8200 8.1):
        the addresses, the protocol and the TCP length, in either layout."""
        return words(self.addr(src)) + words(self.addr(dst)) + TCP + l4_len


class Gen:
    def __init__(self, fam, vip, vport, size, out):
        self.fam = fam
        self.vip = vip
        self.vport = vport
        self.caplen = size - 4
        if self.caplen < fam.min_caplen:
            sys.exit(f"genpcap: --size must be at least {fam.min_caplen + 4} for IPv{fam.version}")
        # Payload of data packets: whatever fills the frame; SYNs carry none
        # (padded) but keep the frame size of the file.
        self.payload = self.caplen - fam.l4 - 20
        self.out = out
        self.rec = struct.Struct("<IIII")
        self.count = 0

    def frame(self, src, sport, flags, seq, payload_len):
        """One frame of a flow, every checksum valid."""
        fam = self.fam
        l4_len = 20 + payload_len
        tcp = bytearray(struct.pack("!HHIIBBHHH", sport, self.vport, seq, 0 if flags == SYN else 1,
                                    5 << 4, flags, 65535, 0, 0))
        body = bytes(payload_len)
        s = fam.pseudo_sum(src, self.vip, l4_len) + words(bytes(tcp)) + words(body)
        struct.pack_into("!H", tcp, 16, (0xFFFF - fold(s)) or 0xFFFF)
        f = fam.eth + fam.ip_header(src, self.vip, l4_len) + bytes(tcp) + body
        return f + bytes(self.caplen - len(f))

    def write(self, f):
        self.out.write(self.rec.pack(self.count // 1000000, self.count % 1000000, len(f), len(f)))
        self.out.write(f)
        self.count += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, required=True)
    ap.add_argument("--mode", choices=["est", "syn"], default="est")
    ap.add_argument("--family", type=int, choices=[4, 6], default=4, help="IP version of the traffic")
    ap.add_argument("--data", type=int, default=0, help="data packets per flow after the SYNs (est)")
    ap.add_argument("--size", type=int, help="frame size with FCS (default and minimum: 64 for IPv4, 78 for IPv6)")
    ap.add_argument("--vip", help="default 198.51.100.10 (IPv4), 2001:db8:1::10 (IPv6)")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    fam = Family(a.family)
    size = a.size if a.size is not None else fam.min_caplen + 4
    vip = ipaddress.ip_address(a.vip or fam.default_vip)
    if vip.version != fam.version:
        sys.exit(f"genpcap: --vip {vip} is not an IPv{fam.version} address")
    if a.flows < 1 or a.flows > FLOWS_PER_ADDR * 65534:
        sys.exit("genpcap: --flows out of range")
    with open(a.out, "wb", buffering=1 << 20) as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        g = Gen(fam, int(vip), a.port, size, out)
        # The frames of a flow differ from one another only in the source
        # address, source port and checksums: build one template per kind
        # with those zero, sum what stays, and patch it per flow (1M frames
        # in a few seconds).
        kinds = [(SYN, 1000, 0)]
        if a.mode == "est" and a.data > 0:
            kinds.append((ACK | PSH, 1001, g.payload))
        templates = []
        for flags, seq, plen in kinds:
            t = bytearray(g.frame(0, 0, flags, seq, plen))
            struct.pack_into("!H", t, fam.l4 + 16, 0)
            tcp_sum = fam.pseudo_sum(0, g.vip, 20 + plen) + words(bytes(t[fam.l4:fam.l4 + 20 + plen]))
            ip_sum = 0
            if fam.version == 4:
                struct.pack_into("!H", t, 24, 0)
                ip_sum = words(bytes(t[14:34]))
            templates.append((t, ip_sum, tcp_sum))
        src_at, src_end, l4 = fam.src_at, fam.src_at + fam.alen, fam.l4
        # Only the low 32 bits of a client address vary (at most 65534
        # addresses from a base ending in ::1): sum the rest once.
        hi_sum = words(fam.addr(fam.client_base >> 32 << 32))

        def emit(k, flow):
            t, ip_sum, tcp_sum = templates[k]
            src = fam.client_base + flow // FLOWS_PER_ADDR
            sport = FIRST_SPORT + flow % FLOWS_PER_ADDR
            lo = src & 0xFFFFFFFF
            sw = hi_sum + (lo >> 16) + (lo & 0xFFFF)
            t[src_at:src_end] = src.to_bytes(fam.alen, "big")
            struct.pack_into("!H", t, l4, sport)
            if ip_sum:
                struct.pack_into("!H", t, 24, 0xFFFF - fold(ip_sum + sw))
            struct.pack_into("!H", t, l4 + 16, (0xFFFF - fold(tcp_sum + sw + sport)) or 0xFFFF)
            g.write(t)

        for flow in range(a.flows):
            emit(0, flow)
        if len(templates) > 1:
            for _ in range(a.data):
                for flow in range(a.flows):
                    emit(1, flow)
    print(f"{a.out}: {g.count} frames of {size} bytes, {a.flows} flows ({a.mode}, IPv{fam.version})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
