#!/usr/bin/env python3
"""Traffic files (pcap) for scripts/bench.sh, standard library only.

Every flow is one TCP connection from a client in the RFC 2544 benchmarking
range 198.18.0.0/15 to VIP:PORT. Flow i has source address
198.18.0.1 + i // 60000 and source port 1024 + i % 60000, so flows are
distinct 5-tuples for up to 60000 * 65534 flows.

  --mode est   the SYN of every flow first (flow 0, 1, ..., N-1), then
               --data rounds of one data packet (ACK|PSH) per flow, flows
               interleaved. With --data 0 the file holds one packet per flow
               (the SYN); replayed in a loop (net_pcap infinite_rx) the later
               passes hit the sessions the first pass created.
  --mode syn   one SYN per flow, nothing else (new-session measurement).

Frames are addressed to the Ethernet broadcast address: the pipeline accepts
frames for its port's MAC or any multicast/broadcast address, and the MAC of
a net_pcap port is not known before it starts. --size is the frame size on
the wire including the 4-byte FCS, which is not stored: a 64-byte frame is 60
bytes in the file (the 54 bytes of headers and 6 bytes of Ethernet padding;
the IP total length is 40). IPv4 and TCP checksums are valid.
"""

import argparse
import ipaddress
import struct
import sys

ETH_HDR = bytes.fromhex("ffffffffffff" "0200000000fe" "0800")
SYN, ACK, PSH = 0x02, 0x10, 0x08
FLOWS_PER_ADDR = 60000
FIRST_SPORT = 1024
CLIENT_BASE = int(ipaddress.IPv4Address("198.18.0.1"))


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def words(b):
    if len(b) % 2:
        b += b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


class Gen:
    def __init__(self, vip, vport, size, out):
        self.vip = int(ipaddress.IPv4Address(vip))
        self.vport = vport
        self.caplen = size - 4
        if self.caplen < 60:
            sys.exit("genpcap: --size must be at least 64")
        # Payload of data packets: whatever fills the frame; SYNs carry none
        # (padded to 60 bytes) but keep the frame size of the file.
        self.payload = self.caplen - 54
        self.out = out
        self.rec = struct.Struct("<IIII")
        self.count = 0

    def frame(self, flow, flags, seq, payload_len):
        src = CLIENT_BASE + flow // FLOWS_PER_ADDR
        sport = FIRST_SPORT + flow % FLOWS_PER_ADDR
        total = 40 + payload_len
        ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src, self.vip))
        struct.pack_into("!H", ip, 10, 0xFFFF - fold(words(bytes(ip))))
        tcp = bytearray(struct.pack("!HHIIBBHHH", sport, self.vport, seq, 0 if flags == SYN else 1,
                                    5 << 4, flags, 65535, 0, 0))
        body = bytes(payload_len)
        pseudo = struct.pack("!IIBBH", src, self.vip, 0, 6, 20 + payload_len)
        struct.pack_into("!H", tcp, 16, 0xFFFF - fold(words(pseudo) + words(bytes(tcp)) + words(body)) or 0xFFFF)
        f = ETH_HDR + bytes(ip) + bytes(tcp) + body
        return f + bytes(self.caplen - len(f))

    def write(self, f):
        self.out.write(self.rec.pack(self.count // 1000000, self.count % 1000000, len(f), len(f)))
        self.out.write(f)
        self.count += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, required=True)
    ap.add_argument("--mode", choices=["est", "syn"], default="est")
    ap.add_argument("--data", type=int, default=0, help="data packets per flow after the SYNs (est)")
    ap.add_argument("--size", type=int, default=64, help="frame size with FCS (64..1518)")
    ap.add_argument("--vip", default="198.51.100.10")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.flows < 1 or a.flows > FLOWS_PER_ADDR * 65534:
        sys.exit("genpcap: --flows out of range")
    with open(a.out, "wb", buffering=1 << 20) as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        g = Gen(a.vip, a.port, a.size, out)
        # The frames of a flow differ from flow 0's only in the source
        # address, source port and checksums: build one template per kind and
        # patch it (1M frames in a few seconds).
        kinds = [(SYN, 1000, 0)]
        if a.mode == "est" and a.data > 0:
            kinds.append((ACK | PSH, 1001, g.payload))
        templates = []
        for flags, seq, plen in kinds:
            t = bytearray(g.frame(0, flags, seq, plen))
            # One's complement sums without the fields emit() patches
            # (x + ~w subtracts w).
            ip_sum = fold(words(bytes(t[14:34])) + (0xFFFF - struct.unpack_from("!H", t, 24)[0])
                          + 2 * 0xFFFF - words(bytes(t[26:30])))
            tcp_sum = fold(words(bytes(t[34:34 + 20 + plen])) + (0xFFFF - struct.unpack_from("!H", t, 50)[0])
                           + (0xFFFF - struct.unpack_from("!H", t, 34)[0])
                           + words(struct.pack("!IBBH", g.vip, 0, 6, 20 + plen)))
            templates.append((t, ip_sum, tcp_sum))

        def emit(k, flow):
            t, ip_sum, tcp_sum = templates[k]
            src = CLIENT_BASE + flow // FLOWS_PER_ADDR
            sport = FIRST_SPORT + flow % FLOWS_PER_ADDR
            sw = (src >> 16) + (src & 0xFFFF)
            struct.pack_into("!IIH", t, 26, src, g.vip, sport)
            struct.pack_into("!H", t, 24, 0xFFFF - fold(ip_sum + sw))
            struct.pack_into("!H", t, 50, (0xFFFF - fold(tcp_sum + sw + sport)) or 0xFFFF)
            g.write(t)

        for flow in range(a.flows):
            emit(0, flow)
        if len(templates) > 1:
            for _ in range(a.data):
                for flow in range(a.flows):
                    emit(1, flow)
    print(f"{a.out}: {g.count} frames of {a.size} bytes, {a.flows} flows ({a.mode})", file=sys.stderr)


if __name__ == "__main__":
    main()
