//! The client's address through Both-NAT and LAN-to-LAN: `proxy_protocol =
//! "v2"` puts a PROXY protocol v2 header (the client's address and port,
//! the VIP's) in front of the client's first byte to the member, which
//! nginx, HAProxy, Envoy, Postfix and Dovecot read in place of the SNAT
//! address they see.
//!
//! The switch has no TCP stack, so it keeps the header's place in the
//! client's sequence space instead. `first`, the client's first sequence
//! number (its ISN + 1), is recorded when the handshake completes, in the
//! session's `handshakes` slot, which the handshake needed only until then:
//! these sessions cost no byte more.
//!
//! * Client → member: a segment starting at `first` (not a SYN or RST)
//!   carries the header in front of its bytes: the handshake-completing ACK
//!   (so protocols where the server speaks first work: SMTP, FTP, MySQL),
//!   and every retransmission of the client's first bytes. Each copy holds
//!   the same header, so the member's TCP trims what it already has. A later
//!   segment's sequence number grows by the header's length; its
//!   acknowledgement is the member's own number and stays.
//! * Member → client: an acknowledgement or SACK edge past the header
//!   shrinks by its length; one inside it becomes `first` (nothing of the
//!   client's was acknowledged yet).
//! * A segment the header would take past the member's link MTU (or past its
//!   buffer) goes shifted, and the header alone in a segment the switch
//!   writes ([`Generated::ProxyHeader`]).
//! * RSTs the switch writes to one end from the other's numbers
//!   (`reset_session`) are translated the same way.
//!
//! Checksums are updated incrementally: the inserted bytes' sum and the
//! length in the pseudo header, the changed numbers.

use crate::conntrack::flag;
use crate::flow::{Family, Flow};
use crate::nat::{adjust_l4_checksum, apply, delta16, delta32};
use crate::packet::PacketBuf;
use crate::session::{Dir, Session};
use crate::stats::DropReason;
use crate::wire::checksum;
use crate::wire::ipv4::proto;
use crate::wire::proxy;
use crate::wire::tcp::flags;
use crate::worker::{Generated, Worker};
use std::net::IpAddr;

/// The header's length for a session of family `A`.
#[inline]
fn header_len<A: Family>() -> u32 {
    proxy::len(!A::is_v4()) as u32
}

/// How far sequence number `v` lies past `first` (negative: before it).
#[inline]
fn past(v: u32, first: u32) -> i32 {
    v.wrapping_sub(first) as i32
}

/// The member's number for the client's sequence number `seq` of a segment
/// that does not carry the header.
#[inline]
pub(crate) fn member_seq(seq: u32, first: u32, len: u32) -> u32 {
    match past(seq, first) >= 0 {
        true => seq.wrapping_add(len),
        false => seq,
    }
}

/// The client's number for the member's acknowledgement (or SACK edge) `ack`.
#[inline]
pub(crate) fn client_ack(ack: u32, first: u32, len: u32) -> u32 {
    let d = past(ack, first);
    if d >= len as i32 {
        ack.wrapping_sub(len)
    } else if d >= 0 {
        first
    } else {
        ack
    }
}

/// Where a TCP segment lies in its frame: the TCP header, the payload, the
/// end of the IP packet (before any Ethernet padding).
struct Geometry {
    l4: usize,
    payload: usize,
    end: usize,
}

fn geometry<A: Family>(data: &[u8], flow: &Flow<A>) -> Option<Geometry> {
    let l4 = flow.l3 + flow.ihl;
    let thl = usize::from(*data.get(l4 + 12)? >> 4) * 4;
    let len_at = if A::is_v4() { flow.l3 + 2 } else { flow.l3 + 4 };
    let ip_len = usize::from(u16::from_be_bytes([
        *data.get(len_at)?,
        *data.get(len_at + 1)?,
    ]));
    let end = match A::is_v4() {
        true => flow.l3 + ip_len,
        false => flow.l3 + crate::wire::ipv6::HEADER_LEN + ip_len,
    };
    (l4 + thl <= end && end <= data.len()).then_some(Geometry {
        l4,
        payload: l4 + thl,
        end,
    })
}

/// The checksum change of a 32-bit field at `offset` from the start of the
/// checksummed data: at an odd offset its bytes fall across other 16-bit
/// words, whose sum is the byte-swapped one (RFC 1071, 2(B)).
fn field_delta(old: u32, new: u32, offset: usize) -> u32 {
    let d = delta32(old, new);
    match offset % 2 {
        0 => d,
        _ => u32::from(checksum::fold(d).swap_bytes()),
    }
}

/// Replaces the 32-bit number at `at` through `map`; returns the
/// checksum change (0 when it stays).
fn remap(data: &mut [u8], at: usize, l4: usize, map: impl Fn(u32) -> u32) -> u32 {
    let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let new = map(old);
    if new == old {
        return 0;
    }
    data[at..at + 4].copy_from_slice(&new.to_be_bytes());
    field_delta(old, new, at - l4)
}

/// The session's first sequence number, if it is a confirmed TCP session
/// of a server with `proxy_protocol` (`proxy`).
#[inline]
pub(crate) fn first_of<A: Family>(
    w: &Worker,
    idx: u32,
    s: &Session<A>,
    proxy: bool,
) -> Option<u32> {
    let confirmed = s.state & flag::CONFIRMED != 0;
    (proxy && confirmed && s.proto == proto::TCP).then(|| A::t(w).handshakes[idx as usize])
}

impl Worker {
    /// A client segment of a PROXY-protocol session whose first sequence
    /// number is `first`, before its NAT rewrite: the header goes in (or
    /// is queued alone), or the sequence number moves past it.
    pub(crate) fn proxy_to_member<A: Family, P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow<A>,
        s: &Session<A>,
        first: u32,
    ) -> Result<(), DropReason> {
        if flow.tcp_flags & flags::SYN != 0 {
            // A retransmitted SYN: before the client's first byte.
            return Ok(());
        }
        let g = geometry(pkt.data(), flow).ok_or(DropReason::Truncated)?;
        let carries = flow.seq == first && flow.tcp_flags & flags::RST == 0;
        if carries && self.header_fits(&g, flow, s) && insert_header(pkt, flow, s) {
            return Ok(());
        }
        if carries {
            let at = g.l4 + 14;
            let window = u16::from_be_bytes([pkt.data()[at], pkt.data()[at + 1]]);
            let alone = Generated::ProxyHeader {
                session: A::any(s),
                seq: first,
                ack: flow.ack,
                window,
            };
            if !self.generate(alone) {
                return Err(DropReason::GeneratedFull);
            }
        }
        let data = pkt.data_mut();
        let len = header_len::<A>();
        let d = remap(data, g.l4 + 4, g.l4, |seq| member_seq(seq, first, len));
        adjust_l4_checksum(&mut data[g.l4..g.end], proto::TCP, d);
        Ok(())
    }

    /// A member's segment of a PROXY-protocol session, before its NAT
    /// rewrite: its acknowledgement and SACK edges back in the client's
    /// numbers.
    pub(crate) fn proxy_to_client<A: Family, P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow<A>,
        first: u32,
    ) -> Result<(), DropReason> {
        if flow.tcp_flags & flags::ACK == 0 {
            return Ok(());
        }
        let g = geometry(pkt.data(), flow).ok_or(DropReason::Truncated)?;
        let len = header_len::<A>();
        let back = |v: u32| client_ack(v, first, len);
        let data = pkt.data_mut();
        let mut delta = remap(data, g.l4 + 8, g.l4, back);
        let (edges, n) = sack_edges(&data[g.l4..g.payload]);
        for edge in &edges[..n] {
            delta += remap(data, g.l4 + edge, g.l4, back);
        }
        adjust_l4_checksum(&mut data[g.l4..g.end], proto::TCP, delta);
        Ok(())
    }

    /// The numbers of the RST `reset_session` writes to the other end of
    /// session `idx` from a packet of one end (`dir`), in that end's space.
    pub(crate) fn proxy_peer_numbers<A: Family>(
        &self,
        idx: u32,
        dir: Dir,
        (seq, ack): (u32, u32),
    ) -> (u32, u32) {
        let s = A::t(self).sessions.get(idx);
        let proxy = self.shared.service(s.vs).is_some_and(|v| v.proxy);
        let Some(first) = first_of(self, idx, s, proxy) else {
            return (seq, ack);
        };
        let len = header_len::<A>();
        match dir {
            // The client's packet: its numbers, for the member.
            Dir::Forward => (member_seq(seq, first, len), ack),
            // The member's packet: its numbers, for the client.
            Dir::Reverse => (seq, client_ack(ack, first, len)),
        }
    }

    /// Whether the header fits in front of the segment's bytes: within the
    /// MTU of the link to the member.
    fn header_fits<A: Family>(&self, g: &Geometry, flow: &Flow<A>, s: &Session<A>) -> bool {
        let member: IpAddr = s.member.ip().into();
        let port = match member {
            IpAddr::V4(ip) => self.shared.routes.lookup(ip).map(|h| h.port),
            IpAddr::V6(ip) => self.shared.routes6.lookup(ip).map(|h| h.port),
        };
        let mtu = port.map_or(1500, |p| self.port_mtu(p));
        g.end - flow.l3 + header_len::<A>() as usize <= usize::from(mtu)
    }
}

/// Puts the PROXY header of session `s` in front of the segment's payload:
/// the frame grows by its length, the IP length and checksums follow.
/// False, and the frame is as it was but for its Ethernet padding, when
/// the buffer has no room.
pub(crate) fn insert_header<A: Family, P: PacketBuf>(
    pkt: &mut P,
    flow: &Flow<A>,
    s: &Session<A>,
) -> bool {
    let Some(g) = geometry(pkt.data(), flow) else {
        return false;
    };
    let padding = pkt.data().len() - g.end;
    let n = header_len::<A>() as usize;
    if (padding > 0 && !pkt.trim(padding)) || !pkt.append(n) {
        return false;
    }
    let data = pkt.data_mut();
    data.copy_within(g.payload..g.end, g.payload + n);
    let (client, vip) = (s.client.widen().to_be_bytes(), s.vip.widen().to_be_bytes());
    let a = if A::is_v4() { 12 } else { 0 };
    let header = &mut data[g.payload..g.payload + n];
    proxy::write(header, (&client[a..], s.cport), (&vip[a..], s.vport));
    let inserted = checksum::sum(header);
    let l4_len = (g.end - g.l4) as u16;
    let grown = l4_len + n as u16;
    let len_at = if A::is_v4() { flow.l3 + 2 } else { flow.l3 + 4 };
    let old = u16::from_be_bytes([data[len_at], data[len_at + 1]]);
    data[len_at..len_at + 2].copy_from_slice(&(old + n as u16).to_be_bytes());
    if A::is_v4() {
        let at = flow.l3 + 10;
        let csum = u16::from_be_bytes([data[at], data[at + 1]]);
        let csum = apply(csum, delta16(old, old + n as u16));
        data[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    }
    let delta = inserted + delta16(l4_len, grown);
    adjust_l4_checksum(&mut data[g.l4..g.end + n], proto::TCP, delta);
    true
}

/// Offsets (from the TCP header's start) of the SACK edges among the
/// options of `header`, the whole TCP header (RFC 2018: kind 5, length
/// 2 + 8n; at most four blocks fit in 40 bytes of options), and how many.
/// A malformed option list ends the walk.
fn sack_edges(header: &[u8]) -> ([usize; 8], usize) {
    let (mut edges, mut n) = ([0usize; 8], 0);
    let mut at = crate::wire::tcp::MIN_HEADER_LEN;
    while let Some(&kind) = header.get(at) {
        match kind {
            0 => break,
            1 => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let Some(&len) = header.get(at + 1) else {
            break;
        };
        let len = usize::from(len);
        if len < 2 || at + len > header.len() {
            break;
        }
        if kind == 5 {
            let mut e = at + 2;
            while e + 4 <= at + len && n < edges.len() {
                edges[n] = e;
                n += 1;
                e += 4;
            }
        }
        at += len;
    }
    (edges, n)
}
