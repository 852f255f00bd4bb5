//! Cross-layer tests: full parses of the samples and no-panic sweeps.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::samples::*;
use super::*;

/// What a full parse of a frame found.
#[derive(Debug, PartialEq, Eq)]
enum L4 {
    Arp(u16),
    Tcp {
        sport: u16,
        dport: u16,
        csum_ok: bool,
    },
    Udp {
        sport: u16,
        dport: u16,
        csum_ok: bool,
    },
    Icmp4 {
        kind: u8,
        csum_ok: bool,
    },
    Icmp6 {
        kind: u8,
        csum_ok: bool,
    },
    Other(u8),
}

fn parse(frame: &[u8]) -> Result<(ethernet::L2Info, L4)> {
    let l2 = ethernet::l3_offset(frame)?;
    let l3 = &frame[l2.l3_offset..];
    let l4 = match l2.ethertype {
        ethernet::ethertype::ARP => L4::Arp(arp::Packet::new_checked(l3)?.operation()),
        ethernet::ethertype::IPV4 => {
            let ip = ipv4::Packet::new_checked(l3)?;
            if !ip.verify_checksum() {
                return Err(Error::Malformed);
            }
            parse_l4(
                ip.protocol(),
                ip.payload(),
                Addrs::V4(ip.src_addr(), ip.dst_addr()),
            )?
        }
        ethernet::ethertype::IPV6 => {
            let ip = ipv6::Packet::new_checked(l3)?;
            let up = ip.upper_layer()?;
            let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            parse_l4(
                up.protocol,
                &l3[up.offset..end],
                Addrs::V6(ip.src_addr(), ip.dst_addr()),
            )?
        }
        _ => return Err(Error::Malformed),
    };
    Ok((l2, l4))
}

#[derive(Clone, Copy)]
enum Addrs {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

fn parse_l4(proto: u8, p: &[u8], a: Addrs) -> Result<L4> {
    Ok(match proto {
        ipv4::proto::TCP => {
            let t = tcp::Packet::new_checked(p)?;
            let csum_ok = match a {
                Addrs::V4(s, d) => t.verify_checksum_v4(s, d),
                Addrs::V6(s, d) => t.verify_checksum_v6(s, d),
            };
            L4::Tcp {
                sport: t.src_port(),
                dport: t.dst_port(),
                csum_ok,
            }
        }
        ipv4::proto::UDP => {
            let u = udp::Packet::new_checked(p)?;
            let csum_ok = match a {
                Addrs::V4(s, d) => u.verify_checksum_v4(s, d),
                Addrs::V6(s, d) => u.verify_checksum_v6(s, d),
            };
            L4::Udp {
                sport: u.src_port(),
                dport: u.dst_port(),
                csum_ok,
            }
        }
        ipv4::proto::ICMP => {
            let i = icmpv4::Packet::new_checked(p)?;
            L4::Icmp4 {
                kind: i.msg_type(),
                csum_ok: i.verify_checksum(),
            }
        }
        ipv4::proto::IPV6_ICMP => {
            let i = icmpv6::Packet::new_checked(p)?;
            let csum_ok = match a {
                Addrs::V6(s, d) => i.verify_checksum(s, d),
                Addrs::V4(..) => false,
            };
            L4::Icmp6 {
                kind: i.msg_type(),
                csum_ok,
            }
        }
        other => L4::Other(other),
    })
}

/// Frame, inner ethertype, L3 offset, outer VLAN, expected L4 result.
type Case = (&'static [u8], u16, usize, Option<u16>, L4);

#[test]
fn full_parse_of_every_sample() {
    use ethernet::ethertype as et;
    let cases: [Case; 9] = [
        (&ARP_REQUEST, et::ARP, 14, None, L4::Arp(arp::op::REQUEST)),
        (
            &TCP_SYN_V4,
            et::IPV4,
            14,
            None,
            L4::Tcp {
                sport: 54321,
                dport: 80,
                csum_ok: true,
            },
        ),
        (
            &UDP_DNS_V4,
            et::IPV4,
            14,
            None,
            L4::Udp {
                sport: 53000,
                dport: 53,
                csum_ok: true,
            },
        ),
        (
            &ICMP_ECHO_V4,
            et::IPV4,
            14,
            None,
            L4::Icmp4 {
                kind: icmpv4::kind::ECHO_REQUEST,
                csum_ok: true,
            },
        ),
        (
            &ICMP_UNREACH_V4,
            et::IPV4,
            14,
            None,
            L4::Icmp4 {
                kind: icmpv4::kind::DEST_UNREACHABLE,
                csum_ok: true,
            },
        ),
        (
            &TCP_V6_EXT,
            et::IPV6,
            14,
            None,
            L4::Tcp {
                sport: 40000,
                dport: 443,
                csum_ok: true,
            },
        ),
        (
            &ICMP_ECHO_V6,
            et::IPV6,
            14,
            None,
            L4::Icmp6 {
                kind: icmpv6::kind::ECHO_REQUEST,
                csum_ok: true,
            },
        ),
        (
            &VLAN_UDP,
            et::IPV4,
            18,
            Some(100),
            L4::Udp {
                sport: 53000,
                dport: 53,
                csum_ok: true,
            },
        ),
        (
            &QINQ_UDP,
            et::IPV4,
            22,
            Some(200),
            L4::Udp {
                sport: 53000,
                dport: 53,
                csum_ok: true,
            },
        ),
    ];
    for (frame, ethertype, off, vlan, l4) in cases {
        let (l2, got) = parse(frame).unwrap();
        assert_eq!(l2.ethertype, ethertype);
        assert_eq!(l2.l3_offset, off);
        assert_eq!(l2.vlan, vlan);
        assert_eq!(got, l4);
    }
}

#[test]
fn every_strict_prefix_of_an_ip_sample_fails() {
    // ARP frames have no length field; everything else must notice any cut.
    for s in ALL.iter().skip(1) {
        for n in 0..s.len() {
            assert_eq!(parse(&s[..n]).err(), Some(Error::Truncated), "len {n}");
        }
        // Ethernet padding is fine.
        let mut padded = [0u8; 160];
        padded[..s.len()].copy_from_slice(s);
        assert!(parse(&padded[..s.len() + 30]).is_ok());
    }
    for n in 0..14 + arp::PACKET_LEN {
        assert_eq!(parse(&ARP_REQUEST[..n]).err(), Some(Error::Truncated));
    }
}

/// Calls every getter of every view on `buf` (when `new_checked` accepts
/// it), then every setter on a copy. Must never panic.
fn exercise(buf: &[u8]) {
    let mut acc = 0u64;
    let _ = ethernet::l3_offset(buf);
    if let Ok(f) = ethernet::Frame::new_checked(buf) {
        acc += f.dst_addr()[0] as u64 + f.src_addr()[5] as u64 + f.ethertype() as u64;
        acc += f.payload().len() as u64;
        acc += ethernet::is_multicast(&f.dst_addr()) as u64;
    }
    if let Ok(p) = arp::Packet::new_checked(buf) {
        acc += p.operation() as u64 + p.sender_hw()[0] as u64 + p.target_hw()[0] as u64;
        acc += u32::from(p.sender_ip()) as u64 + u32::from(p.target_ip()) as u64;
    }
    if let Ok(p) = ipv4::Packet::new_checked(buf) {
        acc += p.version() as u64 + p.header_len() as u64 + p.dscp() as u64 + p.ecn() as u64;
        acc += p.tos() as u64 + p.total_len() as u64 + p.ident() as u64;
        acc += p.dont_frag() as u64 + p.more_frags() as u64 + p.frag_offset() as u64;
        acc += p.is_fragment() as u64 + p.ttl() as u64 + p.protocol() as u64;
        acc += p.checksum() as u64 + u32::from(p.src_addr()) as u64;
        acc += u32::from(p.dst_addr()) as u64 + p.payload().len() as u64;
        acc += p.options().len() as u64 + p.verify_checksum() as u64;
    }
    let v6 = ipv6::Packet::new_unchecked(buf);
    let _ = v6.upper_layer();
    if let Ok(p) = ipv6::Packet::new_checked(buf) {
        acc += p.version() as u64 + p.traffic_class() as u64 + p.flow_label() as u64;
        acc += p.payload_len() as u64 + p.next_header() as u64 + p.hop_limit() as u64;
        acc += p.src_addr().octets()[0] as u64 + p.dst_addr().octets()[15] as u64;
        acc += p.payload().len() as u64;
        if let Ok(u) = p.upper_layer() {
            assert!(u.offset <= ipv6::HEADER_LEN + p.payload_len() as usize);
            acc += u.protocol as u64;
        }
    }
    let a4 = Ipv4Addr::new(10, 0, 0, 1);
    let a6 = Ipv6Addr::LOCALHOST;
    if let Ok(p) = tcp::Packet::new_checked(buf) {
        acc += p.src_port() as u64 + p.dst_port() as u64 + p.seq_number() as u64;
        acc += p.ack_number() as u64 + p.header_len() as u64 + p.flags() as u64;
        acc += p.window_len() as u64 + p.checksum() as u64 + p.urgent_at() as u64;
        acc += p.options().len() as u64 + p.payload().len() as u64;
        acc += p.mss().unwrap_or(0) as u64;
        acc += p.verify_checksum_v4(a4, a4) as u64 + p.verify_checksum_v6(a6, a6) as u64;
    }
    if let Ok(p) = udp::Packet::new_checked(buf) {
        acc += p.src_port() as u64 + p.dst_port() as u64 + p.len() as u64;
        acc += p.checksum() as u64 + p.payload().len() as u64;
        acc += p.verify_checksum_v4(a4, a4) as u64 + p.verify_checksum_v6(a6, a6) as u64;
    }
    if let Ok(p) = icmpv4::Packet::new_checked(buf) {
        acc += p.msg_type() as u64 + p.code() as u64 + p.checksum() as u64;
        acc += p.echo_ident() as u64 + p.echo_seq_no() as u64 + p.next_hop_mtu() as u64;
        acc += p.data().len() as u64 + p.is_error() as u64 + p.verify_checksum() as u64;
    }
    if let Ok(p) = icmpv6::Packet::new_checked(buf) {
        acc += p.msg_type() as u64 + p.code() as u64 + p.checksum() as u64;
        acc += p.echo_ident() as u64 + p.echo_seq_no() as u64 + p.mtu() as u64;
        acc += p.data().len() as u64 + p.is_error() as u64;
        acc += p.verify_checksum(a6, a6) as u64;
    }
    core::hint::black_box(acc);

    // Setters on fixed fields and checksum fills, on a copy.
    let mut copy = [0u8; 256];
    let m = &mut copy[..buf.len()];
    m.copy_from_slice(buf);
    // Unchecked MSS clamp never panics.
    let _ = tcp::Packet::new_unchecked(&mut *m).clamp_mss(536);
    if let Ok(mut p) = ipv4::Packet::new_checked(&mut *m) {
        p.set_ttl(1);
        p.set_dscp(3);
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.payload_mut();
    }
    if let Ok(mut p) = ipv6::Packet::new_checked(&mut *m) {
        p.set_hop_limit(1);
        p.set_flow_label(7);
        p.payload_mut();
    }
    if let Ok(mut p) = tcp::Packet::new_checked(&mut *m) {
        let _ = p.clamp_mss(1);
        p.fill_checksum_v4(a4, a4);
        assert!(p.verify_checksum_v4(a4, a4));
        p.payload_mut();
    }
    if let Ok(mut p) = udp::Packet::new_checked(&mut *m) {
        p.fill_checksum_v4(a4, a4);
        assert!(p.verify_checksum_v4(a4, a4));
        p.payload_mut();
    }
    if let Ok(mut p) = icmpv4::Packet::new_checked(&mut *m) {
        p.fill_checksum();
        assert!(p.verify_checksum());
    }
    if let Ok(mut p) = icmpv6::Packet::new_checked(&mut *m) {
        p.fill_checksum(a6, a6);
        assert!(p.verify_checksum(a6, a6));
    }
}

#[test]
fn no_panic_on_any_subslice() {
    // Every prefix of every sample, and every prefix of every suffix (so
    // that each view sees its own header cut at every length).
    for s in ALL {
        for start in 0..=s.len() {
            for end in start..=s.len() {
                exercise(&s[start..end]);
            }
        }
    }
}

#[test]
fn no_panic_on_corrupted_bytes() {
    let mut rng = 0x0123_4567_89ab_cdefu64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut buf = [0u8; 160];
    for round in 0..20_000 {
        let s = ALL[round % ALL.len()];
        let b = &mut buf[..s.len()];
        b.copy_from_slice(s);
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % s.len();
            b[at] = match next() % 4 {
                0 => 0,
                1 => 0xff,
                _ => next() as u8,
            };
        }
        let cut = s.len() - (next() as usize % 8).min(s.len());
        let _ = parse(&b[..cut]);
        // Each layer on its own, at the sample's usual offsets.
        for off in [0usize, 14, 18, 22, 34, 42, 54, 62] {
            if off <= cut {
                exercise(&b[off..cut]);
            }
        }
    }
}
