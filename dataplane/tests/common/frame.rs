//! A small frame builder for tests. Every checksum is computed from scratch
//! here (RFC 1071 over the finished bytes), independently of the pipeline's
//! own checksum code and of its incremental (RFC 1624) updates, so expected
//! frames are built without trusting the code under test.

use std::net::Ipv4Addr;

pub type Mac = [u8; 6];

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_ARP: u16 = 0x0806;
pub const ETH_VLAN: u16 = 0x8100;
pub const ETH_IPV6: u16 = 0x86dd;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// TCP flag bits.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// Minimum Ethernet frame length without FCS; shorter frames are zero-padded.
pub const MIN_FRAME: usize = 60;

/// The Internet checksum of `data`, computed the slow, obvious way: sum of
/// 16-bit big-endian words with end-around carry, complemented.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut i = 0;
    while i < data.len() {
        let hi = u32::from(data[i]);
        let lo = u32::from(data.get(i + 1).copied().unwrap_or(0));
        sum += (hi << 8) | lo;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        i += 2;
    }
    !(sum as u16)
}

/// True if the Internet checksum over `data` (with its checksum field in place) verifies.
pub fn checksum_ok(data: &[u8]) -> bool {
    internet_checksum(data) == 0
}

fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.push(0);
    p.push(proto);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

/// Transport checksum (TCP/UDP) over pseudo header + segment, computed from scratch.
pub fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, segment: &[u8]) -> u16 {
    let mut all = pseudo_header(src, dst, proto, segment.len());
    all.extend_from_slice(segment);
    internet_checksum(&all)
}

/// An Ethernet II frame, zero-padded to 60 bytes.
pub fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME.max(14 + payload.len()));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f
}

/// An ARP packet (28 bytes) for Ethernet/IPv4.
pub fn arp(op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = Vec::with_capacity(28);
    a.extend_from_slice(&1u16.to_be_bytes());
    a.extend_from_slice(&ETH_IPV4.to_be_bytes());
    a.push(6);
    a.push(4);
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    a
}

/// The transport part of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        payload: Vec<u8>,
    },
    /// `checksum: false` sends 0 (no checksum).
    Udp {
        sport: u16,
        dport: u16,
        checksum: bool,
        payload: Vec<u8>,
    },
    /// ICMP; `rest` is bytes 4..8 (ident/sequence, unused, next-hop MTU).
    Icmp {
        ty: u8,
        code: u8,
        rest: [u8; 4],
        data: Vec<u8>,
    },
    /// Any other protocol: raw bytes, no checksum.
    Raw { proto: u8, data: Vec<u8> },
}

/// An IPv4 packet described by its fields; `bytes()` serialises it with
/// correct header and transport checksums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkt {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub id: u16,
    pub tos: u8,
    /// Flags and fragment offset word (0x4000 = DF).
    pub frag: u16,
    pub options: Vec<u8>,
    pub body: Body,
}

impl Pkt {
    fn new(src: Ipv4Addr, dst: Ipv4Addr, body: Body) -> Pkt {
        Pkt {
            src,
            dst,
            ttl: 64,
            id: 0x1234,
            tos: 0,
            frag: 0x4000,
            options: Vec::new(),
            body,
        }
    }

    pub fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8) -> Pkt {
        Pkt::new(
            src.0,
            dst.0,
            Body::Tcp {
                sport: src.1,
                dport: dst.1,
                seq: 1000,
                ack: if flags & ACK != 0 { 2000 } else { 0 },
                flags,
                window: 64240,
                payload: Vec::new(),
            },
        )
    }

    pub fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Pkt {
        Pkt::new(
            src.0,
            dst.0,
            Body::Udp {
                sport: src.1,
                dport: dst.1,
                checksum: true,
                payload: payload.to_vec(),
            },
        )
    }

    pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Pkt {
        Pkt::new(
            src,
            dst,
            Body::Icmp {
                ty,
                code,
                rest,
                data: data.to_vec(),
            },
        )
    }

    pub fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16, data: &[u8]) -> Pkt {
        let [a, b] = ident.to_be_bytes();
        let [c, d] = seq.to_be_bytes();
        Pkt::icmp(src, dst, 8, 0, [a, b, c, d], data)
    }

    /// An ICMP error from `src` to `dst` quoting the first `quote` bytes of `about`.
    pub fn icmp_error(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ty: u8,
        code: u8,
        rest: [u8; 4],
        about: &Pkt,
        quote: usize,
    ) -> Pkt {
        let q = about.bytes();
        Pkt::icmp(src, dst, ty, code, rest, &q[..quote.min(q.len())])
    }

    pub fn raw(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, data: &[u8]) -> Pkt {
        Pkt::new(
            src,
            dst,
            Body::Raw {
                proto,
                data: data.to_vec(),
            },
        )
    }

    // Builder-style modifiers.

    pub fn ttl(mut self, ttl: u8) -> Pkt {
        self.ttl = ttl;
        self
    }

    pub fn id(mut self, id: u16) -> Pkt {
        self.id = id;
        self
    }

    pub fn frag(mut self, frag: u16) -> Pkt {
        self.frag = frag;
        self
    }

    pub fn options(mut self, opts: &[u8]) -> Pkt {
        assert!(
            opts.len() & 3 == 0 && opts.len() <= 40,
            "options are whole words"
        );
        self.options = opts.to_vec();
        self
    }

    pub fn payload(mut self, p: &[u8]) -> Pkt {
        match &mut self.body {
            Body::Tcp { payload, .. } | Body::Udp { payload, .. } => *payload = p.to_vec(),
            Body::Icmp { data, .. } | Body::Raw { data, .. } => *data = p.to_vec(),
        }
        self
    }

    pub fn seq_ack(mut self, s: u32, a: u32) -> Pkt {
        if let Body::Tcp { seq, ack, .. } = &mut self.body {
            *seq = s;
            *ack = a;
        }
        self
    }

    pub fn no_udp_checksum(mut self) -> Pkt {
        if let Body::Udp { checksum, .. } = &mut self.body {
            *checksum = false;
        }
        self
    }

    /// The same packet with new endpoints (addresses and, for TCP/UDP, ports).
    pub fn endpoints(mut self, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Pkt {
        self.src = src.0;
        self.dst = dst.0;
        match &mut self.body {
            Body::Tcp { sport, dport, .. } | Body::Udp { sport, dport, .. } => {
                *sport = src.1;
                *dport = dst.1;
            }
            _ => {}
        }
        self
    }

    /// The packet a NAT forwards: new endpoints and the TTL decremented.
    pub fn natted(self, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Pkt {
        let ttl = self.ttl - 1;
        self.endpoints(src, dst).ttl(ttl)
    }

    pub fn proto(&self) -> u8 {
        match &self.body {
            Body::Tcp { .. } => PROTO_TCP,
            Body::Udp { .. } => PROTO_UDP,
            Body::Icmp { .. } => PROTO_ICMP,
            Body::Raw { proto, .. } => *proto,
        }
    }

    /// The transport bytes with their checksum filled in.
    pub fn l4_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                payload,
            } => {
                let mut t = Vec::with_capacity(20 + payload.len());
                t.extend_from_slice(&sport.to_be_bytes());
                t.extend_from_slice(&dport.to_be_bytes());
                t.extend_from_slice(&seq.to_be_bytes());
                t.extend_from_slice(&ack.to_be_bytes());
                t.push(5 << 4);
                t.push(*flags);
                t.extend_from_slice(&window.to_be_bytes());
                t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
                t.extend_from_slice(payload);
                let c = l4_checksum(self.src, self.dst, PROTO_TCP, &t);
                t[16..18].copy_from_slice(&c.to_be_bytes());
                t
            }
            Body::Udp {
                sport,
                dport,
                checksum,
                payload,
            } => {
                let len = 8 + payload.len();
                let mut u = Vec::with_capacity(len);
                u.extend_from_slice(&sport.to_be_bytes());
                u.extend_from_slice(&dport.to_be_bytes());
                u.extend_from_slice(&(len as u16).to_be_bytes());
                u.extend_from_slice(&[0, 0]);
                u.extend_from_slice(payload);
                if *checksum {
                    let mut c = l4_checksum(self.src, self.dst, PROTO_UDP, &u);
                    if c == 0 {
                        c = 0xffff;
                    }
                    u[6..8].copy_from_slice(&c.to_be_bytes());
                }
                u
            }
            Body::Icmp {
                ty,
                code,
                rest,
                data,
            } => {
                let mut m = vec![*ty, *code, 0, 0];
                m.extend_from_slice(rest);
                m.extend_from_slice(data);
                let c = internet_checksum(&m);
                m[2..4].copy_from_slice(&c.to_be_bytes());
                m
            }
            Body::Raw { data, .. } => data.clone(),
        }
    }

    /// The IPv4 packet bytes, header checksum computed from scratch.
    pub fn bytes(&self) -> Vec<u8> {
        let l4 = self.l4_bytes();
        let hl = 20 + self.options.len();
        let total = hl + l4.len();
        let mut ip = Vec::with_capacity(total);
        ip.push(0x40 | (hl / 4) as u8);
        ip.push(self.tos);
        ip.extend_from_slice(&(total as u16).to_be_bytes());
        ip.extend_from_slice(&self.id.to_be_bytes());
        ip.extend_from_slice(&self.frag.to_be_bytes());
        ip.push(self.ttl);
        ip.push(self.proto());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(&self.src.octets());
        ip.extend_from_slice(&self.dst.octets());
        ip.extend_from_slice(&self.options);
        let c = internet_checksum(&ip[..hl]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(&l4);
        ip
    }

    /// The packet in an Ethernet frame from `src` to `dst`.
    pub fn frame(&self, dst: Mac, src: Mac) -> Vec<u8> {
        eth(dst, src, ETH_IPV4, &self.bytes())
    }
}

/// The packet a tunnel carries: an outer IPv4 header from `src` to `member`
/// (TTL 64, TOS and DF of the inner packet, the given ident), for GRE with a
/// 4-byte GRE header (no checksum/key/sequence, version 0, protocol 0x0800).
#[allow(dead_code)]
pub fn encap(inner: &Pkt, src: Ipv4Addr, member: Ipv4Addr, gre: bool, ident: u16) -> Pkt {
    let mut data = Vec::new();
    if gre {
        data.extend_from_slice(&[0x00, 0x00, 0x08, 0x00]);
    }
    data.extend_from_slice(&inner.bytes());
    let proto = if gre { 47 } else { 4 };
    let mut outer = Pkt::raw(src, member, proto, &data)
        .ttl(64)
        .id(ident)
        .frag(inner.frag & 0x4000);
    outer.tos = inner.tos;
    outer
}

/// Recomputes the IPv4 header checksum of a frame (after a test corrupted a
/// header field on purpose and wants only that corruption to matter).
pub fn refill_ip_checksum(frame: &mut [u8], l3: usize) {
    let hl = usize::from(frame[l3] & 0x0f) * 4;
    frame[l3 + 10] = 0;
    frame[l3 + 11] = 0;
    let c = internet_checksum(&frame[l3..l3 + hl]);
    frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// Renders a frame as hex lines for assertion messages.
pub fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let h: Vec<String> = c.iter().map(|x| format!("{x:02x}")).collect();
            format!("{:04x}: {}", i * 16, h.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Points at the first differing byte of two frames.
pub fn diff(got: &[u8], want: &[u8]) -> String {
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    format!(
        "lengths got {} want {}; first difference at byte {first}\n--- got\n{}\n--- want\n{}",
        got.len(),
        want.len(),
        hex(got),
        hex(want)
    )
}

#[test]
fn builder_checksums_verify() {
    let a = Ipv4Addr::new(192, 0, 2, 1);
    let b = Ipv4Addr::new(198, 51, 100, 7);
    for p in [
        Pkt::tcp((a, 1), (b, 2), SYN).payload(b"abc"),
        Pkt::udp((a, 1), (b, 2), b"hello"),
        Pkt::echo_request(a, b, 7, 9, b"xyz"),
    ] {
        let bytes = p.bytes();
        assert!(checksum_ok(&bytes[..20]));
        match p.proto() {
            PROTO_ICMP => assert!(checksum_ok(&bytes[20..])),
            proto => {
                let mut all = pseudo_header(a, b, proto, bytes.len() - 20);
                all.extend_from_slice(&bytes[20..]);
                assert!(checksum_ok(&all));
            }
        }
    }
    // RFC 1071 example words: 0001 f203 f4f5 f6f7 -> sum ddf2, checksum 220d.
    assert_eq!(
        internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
        0x220d
    );
}

/// The IPv4 ident of the packet in an untagged frame.
pub fn ident_of(frame: &[u8]) -> u16 {
    if frame.len() < 34 {
        return 0;
    }
    u16::from_be_bytes([frame[18], frame[19]])
}

/// Splits an IPv4 packet (`Pkt::bytes`, no options) into two fragments, the
/// first carrying `at` bytes of its payload (a multiple of 8), as a sender
/// fragmenting it would: the same identifier, MF on the first, the offset
/// on the second, each header checksum computed from scratch.
#[allow(dead_code)]
pub fn split(ip: &[u8], at: usize) -> [Vec<u8>; 2] {
    assert_eq!(at % 8, 0, "fragment boundaries are multiples of 8");
    let (header, payload) = ip.split_at(20);
    let piece = |data: &[u8], flags_offset: u16| {
        let mut p = header.to_vec();
        p[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        p[6..8].copy_from_slice(&flags_offset.to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(data);
        p
    };
    [
        piece(&payload[..at], 0x2000),
        piece(&payload[at..], (at / 8) as u16),
    ]
}
