//! IPv6 frames for golden tests, built from scratch: headers, ICMPv6 and
//! neighbour discovery messages, every checksum computed here (over the
//! IPv6 pseudo header, RFC 8200 8.1) and never by the pipeline.
#![allow(dead_code)]

use super::frame::{eth, internet_checksum, Mac, ETH_IPV6};
use std::net::Ipv6Addr;

pub const NH_TCP: u8 = 6;
pub const NH_UDP: u8 = 17;
pub const NH_ICMPV6: u8 = 58;
pub const NH_DEST_OPTS: u8 = 60;

pub const NS: u8 = 135;
pub const NA: u8 = 136;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("an IPv6 address")
}

/// The transport checksum of `body` (protocol `nh`) between `src` and `dst`.
pub fn checksum6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, body: &[u8]) -> u16 {
    let mut all = Vec::with_capacity(40 + body.len());
    all.extend_from_slice(&src.octets());
    all.extend_from_slice(&dst.octets());
    all.extend_from_slice(&(body.len() as u32).to_be_bytes());
    all.extend_from_slice(&[0, 0, 0, nh]);
    all.extend_from_slice(body);
    internet_checksum(&all)
}

/// An IPv6 packet: header (traffic class and flow label 0) and `payload`,
/// whose first next header is `nh`.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[nh, hop_limit]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// An ICMPv6 message of `ty`, `code`, the 4 bytes after the checksum and
/// `data`, its checksum filled in.
pub fn icmpv6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ty: u8,
    code: u8,
    rest: [u8; 4],
    data: &[u8],
) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let c = checksum6(src, dst, NH_ICMPV6, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// A neighbour solicitation (`NS`) or advertisement (`NA`) about `target`,
/// with flags (first byte after the checksum) and an optional link-layer
/// address option (source for NS, target for NA).
pub fn nd(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ty: u8,
    flags: u8,
    target: Ipv6Addr,
    mac: Option<Mac>,
) -> Vec<u8> {
    let mut data = target.octets().to_vec();
    if let Some(mac) = mac {
        data.extend_from_slice(&[if ty == NS { 1 } else { 2 }, 1]);
        data.extend_from_slice(&mac);
    }
    icmpv6(src, dst, ty, 0, [flags, 0, 0, 0], &data)
}

/// The frame of an ICMPv6 message from `src` to `dst` (hop limit `hl`).
pub fn icmp_frame(to: Mac, from: Mac, src: Ipv6Addr, dst: Ipv6Addr, hl: u8, msg: &[u8]) -> Vec<u8> {
    eth(to, from, ETH_IPV6, &ipv6(src, dst, NH_ICMPV6, hl, msg))
}

/// The solicited-node group of `ip` and its MAC, written out by hand.
pub fn solicited(ip: Ipv6Addr) -> (Ipv6Addr, Mac) {
    let o = ip.octets();
    let mut g = [0u8; 16];
    g[..2].copy_from_slice(&[0xff, 0x02]);
    g[11..13].copy_from_slice(&[0x01, 0xff]);
    g[13..].copy_from_slice(&o[13..]);
    (Ipv6Addr::from(g), [0x33, 0x33, 0xff, o[13], o[14], o[15]])
}

pub const ALL_NODES_MAC: Mac = [0x33, 0x33, 0, 0, 0, 1];

/// A TCP segment (20-byte header, window 0xffff) between two IPv6
/// endpoints, its checksum filled in.
#[allow(clippy::too_many_arguments)]
pub fn tcp6(
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&src.1.to_be_bytes());
    t.extend_from_slice(&dst.1.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    let c = checksum6(src.0, dst.0, NH_TCP, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A UDP datagram between two IPv6 endpoints, its checksum filled in (0
/// computed is sent as 0xffff).
pub fn udp6(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&src.1.to_be_bytes());
    u.extend_from_slice(&dst.1.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = match checksum6(src.0, dst.0, NH_UDP, &u) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// The frame of a transport segment `l4` (protocol `nh`) from `src` to
/// `dst` with hop limit `hl`.
pub fn frame6(
    to: Mac,
    from: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    nh: u8,
    hl: u8,
    l4: &[u8],
) -> Vec<u8> {
    eth(to, from, ETH_IPV6, &ipv6(src, dst, nh, hl, l4))
}

pub const NH_FRAGMENT: u8 = 44;

/// The IPv6 fragments its sender makes of the packet whose upper layer
/// (protocol `nh`) is `l4`: pieces of `chunk` bytes (a multiple of 8) after
/// a fragment header with `ident` (RFC 8200 4.5).
pub fn split6(
    (src, dst): (Ipv6Addr, Ipv6Addr),
    hl: u8,
    nh: u8,
    l4: &[u8],
    ident: u32,
    chunk: usize,
) -> Vec<Vec<u8>> {
    assert_eq!(chunk % 8, 0);
    l4.chunks(chunk)
        .enumerate()
        .map(|(i, piece)| {
            let offset = i * chunk;
            let more = offset + piece.len() < l4.len();
            let mut f = vec![nh, 0];
            f.extend_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
            f.extend_from_slice(&ident.to_be_bytes());
            f.extend_from_slice(piece);
            ipv6(src, dst, NH_FRAGMENT, hl, &f)
        })
        .collect()
}
