//! Address and port rewriting with incremental checksum updates (RFC 1624).
//! Functions take the bytes from the IP header on, already length-checked.
//! IPv6 has no header checksum: its rewrite updates the transport checksum
//! alone, whose pseudo header holds the 128-bit addresses (RFC 8200 8.1).

use crate::wire::ipv4::{self, proto};
use crate::wire::ipv6;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Offset of the checksum in the transport header, when it has one we update.
#[inline]
fn l4_checksum_offset(protocol: u8) -> Option<usize> {
    match protocol {
        proto::TCP => Some(16),
        proto::UDP => Some(6),
        _ => None,
    }
}

#[inline]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// An endpoint: address and transport port.
pub type Endpoint = (Ipv4Addr, u16);

/// The change a rewrite makes to a ones'-complement sum, kept unfolded so
/// several changes add up and one fold applies them all (RFC 1624 eqn 3:
/// HC' = ~(~HC + sum of (~m + m')) over the changed 16-bit words m).
#[inline(always)]
pub fn delta32(old: u32, new: u32) -> u32 {
    let (o, n) = (!old, new);
    (o >> 16) + (o & 0xffff) + (n >> 16) + (n & 0xffff)
}

#[inline(always)]
pub fn delta16(old: u16, new: u16) -> u32 {
    u32::from(!old) + u32::from(new)
}

/// Applies an accumulated `delta` to checksum `csum`.
#[inline(always)]
pub fn apply(csum: u16, delta: u32) -> u16 {
    let mut s = u32::from(!csum) + delta;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// Updates the TCP or UDP checksum of `l4` by `delta`, when the checksum is
/// within `l4` and in use (a UDP checksum of 0 means none and stays 0; a
/// computed 0 is sent as 0xffff). Other protocols are left alone.
#[inline]
pub fn adjust_l4_checksum(l4: &mut [u8], protocol: u8, delta: u32) {
    let Some(at) = l4_checksum_offset(protocol).filter(|at| l4.len() >= at + 2) else {
        return;
    };
    let c = get16(l4, at);
    if protocol == proto::UDP && c == 0 {
        return;
    }
    let mut c = apply(c, delta);
    if protocol == proto::UDP && c == 0 {
        c = 0xffff;
    }
    put16(l4, at, c);
}

/// Rewrites source and destination endpoints of a TCP or UDP packet and
/// decrements the TTL. `ip` starts at the IPv4 header, whose length is `ihl`;
/// the transport header must be complete (the caller checked it).
pub fn rewrite(ip: &mut [u8], ihl: usize, src: Endpoint, dst: Endpoint) {
    rewrite_headers(ip, ihl, src, dst, true);
}

/// Rewrites the header of a packet quoted inside an ICMP error: addresses,
/// ports, the quoted IP checksum and, when quoted far enough, the quoted
/// transport checksum. TTL is left as quoted. `q` starts at the quoted IPv4
/// header; it needs at least `ihl + 4` bytes (checked by the caller).
pub fn rewrite_quoted(q: &mut [u8], ihl: usize, src: Endpoint, dst: Endpoint) {
    rewrite_headers(q, ihl, src, dst, false);
}

/// Rewrites the addresses of a fragment after the first (it carries no
/// transport header: the first fragment's checksum update covers the whole
/// datagram) and decrements the TTL.
pub fn rewrite_fragment(ip: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let mut p = ipv4::Packet::new_unchecked(&mut *ip);
    let (old_src, old_dst, ttl, protocol) = (p.src_addr(), p.dst_addr(), p.ttl(), p.protocol());
    let new_ttl = ttl.saturating_sub(1);
    let delta = delta32(u32::from(old_src), u32::from(src))
        + delta32(u32::from(old_dst), u32::from(dst))
        + delta16(
            u16::from_be_bytes([ttl, protocol]),
            u16::from_be_bytes([new_ttl, protocol]),
        );
    p.set_ttl(new_ttl);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    let csum = apply(p.checksum(), delta);
    p.set_checksum(csum);
}

/// Rewrites the addresses of an IPv6 fragment after the first (no
/// transport header, and IPv6 has no header checksum: the first fragment's
/// checksum update covers the whole datagram) and decrements the hop limit.
pub fn rewrite_fragment6(ip: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let mut p = ipv6::Packet::new_unchecked(&mut *ip);
    let hops = p.hop_limit();
    p.set_hop_limit(hops.saturating_sub(1));
    p.set_src_addr(src);
    p.set_dst_addr(dst);
}

/// An IPv6 endpoint.
pub type Endpoint6 = (Ipv6Addr, u16);

/// The change from 128-bit word `old` to `new` in a ones'-complement sum.
/// Its 32-bit words are added in a `u64` and folded (2^16 = 1 modulo
/// 0xffff, so this is the sum of its 16-bit words), to at most 0x1ffff.
#[inline(always)]
pub fn delta128(old: u128, new: u128) -> u32 {
    let words = |x: u128| {
        let w = |at: u32| (x >> at) as u64 & 0xffff_ffff;
        w(0) + w(32) + w(64) + w(96)
    };
    let s = words(!old) + words(new);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff) + (s >> 16);
    s as u32
}

/// Rewrites source and destination endpoints of an IPv6 TCP or UDP packet
/// (`protocol`, its transport header `l4` bytes from the start of `ip`)
/// and decrements the hop limit.
pub fn rewrite6(ip: &mut [u8], l4: usize, protocol: u8, src: Endpoint6, dst: Endpoint6) {
    rewrite6_headers(ip, l4, protocol, src, dst, true);
}

/// Rewrites the header of an IPv6 packet quoted inside an ICMPv6 error:
/// addresses, ports and, when quoted far enough, the transport checksum.
/// The hop limit is left as quoted. `q` starts at the quoted IPv6 header;
/// it needs at least `l4 + 4` bytes (checked by the caller).
pub fn rewrite_quoted6(q: &mut [u8], l4: usize, protocol: u8, src: Endpoint6, dst: Endpoint6) {
    rewrite6_headers(q, l4, protocol, src, dst, false);
}

fn rewrite6_headers(
    ip: &mut [u8],
    l4: usize,
    protocol: u8,
    src: Endpoint6,
    dst: Endpoint6,
    hop: bool,
) {
    let mut p = ipv6::Packet::new_unchecked(&mut *ip);
    let (old_src, old_dst, hops) = (p.src_addr(), p.dst_addr(), p.hop_limit());
    let addrs = delta128(u128::from(old_src), u128::from(src.0))
        + delta128(u128::from(old_dst), u128::from(dst.0));
    if hop {
        p.set_hop_limit(hops.saturating_sub(1));
    }
    p.set_src_addr(src.0);
    p.set_dst_addr(dst.0);
    let l4 = &mut ip[l4..];
    let (old_sport, old_dport) = (get16(l4, 0), get16(l4, 2));
    put16(l4, 0, src.1);
    put16(l4, 2, dst.1);
    let ports = delta16(old_sport, src.1) + delta16(old_dport, dst.1);
    adjust_l4_checksum(l4, protocol, addrs + ports);
}

fn rewrite_headers(ip: &mut [u8], ihl: usize, src: Endpoint, dst: Endpoint, hop: bool) {
    let mut p = ipv4::Packet::new_unchecked(&mut *ip);
    let (old_src, old_dst, ttl, protocol) = (p.src_addr(), p.dst_addr(), p.ttl(), p.protocol());
    let addrs = delta32(u32::from(old_src), u32::from(src.0))
        + delta32(u32::from(old_dst), u32::from(dst.0));
    let mut ip_delta = addrs;
    if hop {
        let new_ttl = ttl.saturating_sub(1);
        ip_delta += delta16(
            u16::from_be_bytes([ttl, protocol]),
            u16::from_be_bytes([new_ttl, protocol]),
        );
        p.set_ttl(new_ttl);
    }
    let csum = apply(p.checksum(), ip_delta);
    p.set_src_addr(src.0);
    p.set_dst_addr(dst.0);
    p.set_checksum(csum);

    let l4 = &mut ip[ihl..];
    let (old_sport, old_dport) = (get16(l4, 0), get16(l4, 2));
    put16(l4, 0, src.1);
    put16(l4, 2, dst.1);
    let ports = delta16(old_sport, src.1) + delta16(old_dport, dst.1);
    adjust_l4_checksum(l4, protocol, addrs + ports);
}
