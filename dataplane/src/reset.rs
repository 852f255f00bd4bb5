//! Ending sessions on the switch's initiative, and refusing new ones:
//!
//! - a new session that finds no usable member is refused at once, a TCP SYN
//!   with a RST and a UDP datagram with ICMP port-unreachable, so clients fail
//!   fast instead of retrying into silence;
//! - the sessions of a member that went down, in pools with
//!   `on_member_down = "reset"`, get a RST at both ends. A RST is only accepted
//!   with the exact sequence number its receiver expects (RFC 5961), which the
//!   switch does not store per session; so the sweep sends the client an ACK
//!   outside its window (a probe), the client answers with an ACK carrying its
//!   current numbers, and that answer (or any other packet of the session) is
//!   turned into the two RSTs.

use crate::addr::Addr;
use crate::conntrack::{flag, tcp as tcp_state};
use crate::flow::{Family, Flow};
use crate::packet::PacketBuf;
use crate::session::{Dir, Session};
use crate::shared::Shared;
use crate::stats::{self, DropReason};
use crate::wire::ethernet;
use crate::wire::ipv4::{self, proto};
use crate::wire::ipv6;
use crate::wire::tcp::{self, flags};
use crate::worker::{AnySession, Generated, Verdict, Worker, OWN_TTL};
use sluice_config::OnMemberDown;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ethernet + IP + TCP without options: every segment the switch writes,
/// over IPv4 and over IPv6.
const SEGMENT_LEN: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + tcp::MIN_HEADER_LEN;
const SEGMENT_LEN6: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + tcp::MIN_HEADER_LEN;

/// Sequence number of the probe: any value the client is unlikely to have in
/// its window; an unacceptable segment is answered with an ACK either way.
const PROBE_SEQ: u32 = 0x5eed_0001;

/// What the sweep does with a session it examines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Judgement {
    Keep,
    Expired,
    /// Its member is down and its pool resets: remove it now (UDP).
    Reset,
    /// Its member is down and its pool resets, or it idled out established
    /// with `reset_on_timeout`: probe the client, and the member too where
    /// its answers pass the switch (TCP).
    Probe {
        member_too: bool,
    },
}

/// Whether the sweep keeps, expires, resets or probes session `s` at `now`.
pub(crate) fn judge<A: Addr>(
    shared: &Shared,
    s: &Session<A>,
    now: u32,
    syn_pressure: bool,
) -> Judgement {
    let vs = shared.service(s.vs);
    let pending = s.state & flag::RESET_PENDING != 0;
    let member_too = vs.is_some_and(|v| !v.one_way());
    if shared.session_expired(s, now, syn_pressure) {
        if resets_when_expired(shared, s) {
            return Judgement::Probe { member_too };
        }
        return Judgement::Expired;
    }
    let Some(vs) = vs else {
        return Judgement::Keep;
    };
    if vs.on_member_down != OnMemberDown::Reset || pending || vs.draining(s.member, s.mport) {
        return Judgement::Keep;
    }
    let down = vs
        .member_of(s.member, s.mport)
        .is_none_or(|m| !shared.members.is_up(m.id));
    match (down, s.proto) {
        (false, _) => Judgement::Keep,
        (true, proto::TCP) => Judgement::Probe { member_too },
        (true, _) => Judgement::Reset,
    }
}

/// Whether session `s`, idled out, is reset rather than forgotten: an
/// established TCP session of a `reset_on_timeout` server, not being reset
/// already. The sweep probes it; a packet finding it expired first is
/// answered with the RSTs at once.
pub(crate) fn resets_when_expired<A: Addr>(shared: &Shared, s: &Session<A>) -> bool {
    s.proto == proto::TCP
        && s.state & tcp_state::MASK == tcp_state::ESTABLISHED
        && s.state & flag::RESET_PENDING == 0
        && shared.service(s.vs).is_some_and(|v| v.reset_on_timeout)
}

/// A TCP segment the switch writes from scratch.
#[derive(Clone, Copy, Debug)]
struct Segment<A> {
    src: (A, u16),
    dst: (A, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
}

/// Sequence number, acknowledgement and flags of a RST answering a segment
/// (RFC 793 "Reset Generation"): with an ACK it takes its sequence number
/// from that ACK, without one it acknowledges the segment.
fn rst_answering<A>(flow: &Flow<A>) -> (u32, u32, u8) {
    if flow.tcp_flags & flags::ACK != 0 {
        return (flow.ack, 0, flags::RST);
    }
    let syn_fin =
        u32::from(flow.tcp_flags & flags::SYN != 0) + u32::from(flow.tcp_flags & flags::FIN != 0);
    let ack = flow
        .seq
        .wrapping_add(u32::from(flow.payload_len))
        .wrapping_add(syn_fin);
    (0, ack, flags::RST | flags::ACK)
}

impl Worker {
    /// Refuses a new session of virtual server `vs` that found no usable
    /// member (`full`: all usable ones at their connection limit): the packet
    /// becomes, in place, a RST (TCP) or an ICMP or ICMPv6 port-unreachable
    /// (UDP) from the VIP back to the client.
    #[cold]
    pub(crate) fn reject_no_member<A: Family, P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow<A>,
        vs: u16,
        full: bool,
    ) -> Result<Verdict, DropReason> {
        let t = flow.tuple;
        let one_host = match t.src.ip().into() {
            IpAddr::V4(c) => !(c.is_multicast() || c.is_broadcast() || c.is_unspecified()),
            IpAddr::V6(c) => !(c.is_multicast() || c.is_unspecified()),
        };
        if !one_host {
            // Never answer a source that cannot be one host (RFC 1122
            // 3.2.2, 4.2.3.10; RFC 4443 2.4 e).
            return Err(if full {
                DropReason::MembersFull
            } else {
                DropReason::NoMember
            });
        }
        if !self.refusals.take() {
            return Err(DropReason::RefusalRateLimited);
        }
        let (total, per_vs) = if full {
            (&self.stats.rejected_full, &self.stats.vs_full)
        } else {
            (&self.stats.rejected_no_member, &self.stats.vs_rejected)
        };
        stats::inc(total);
        if let Some(c) = per_vs.get(usize::from(vs)) {
            stats::inc(c);
        }
        if t.proto == proto::UDP {
            return A::unreachable(self, pkt, flow);
        }
        let (seq, ack, flags) = rst_answering(flow);
        let seg = Segment {
            src: (t.dst, t.dport),
            dst: (t.src, t.sport),
            seq,
            ack,
            flags,
            window: 0,
        };
        if !self.write_segment(pkt, &seg) {
            return Err(DropReason::Truncated);
        }
        A::egress(self, pkt, t.src)
    }

    /// Turns a packet of a session marked for reset into RSTs to both ends,
    /// numbered from that packet, and removes the session. The packet itself
    /// goes no further.
    #[cold]
    pub(crate) fn reset_session<A: Family>(
        &mut self,
        idx: u32,
        flow: &Flow<A>,
        dir: Dir,
    ) -> Result<Verdict, DropReason> {
        if self.generate_room() < 2 {
            return Err(DropReason::GeneratedFull);
        }
        // A RST is never answered with a RST (RFC 793): its sender is done.
        let answer_sender = flow.tcp_flags & flags::RST == 0;
        let session = A::any(A::t(self).sessions.get(idx));
        let (seq, ack, flags) = rst_answering(flow);
        // The sender gets the RST answering its packet; the other end, which
        // never saw that packet, a RST at the packet's own sequence number
        // (in the other end's numbers, where they differ: `proxy`).
        let (peer_seq, peer_ack) = self.proxy_peer_numbers::<A>(idx, dir, (flow.seq, flow.ack));
        let to_sender = Generated::Rst {
            session,
            to_client: dir == Dir::Forward,
            seq,
            ack,
            flags,
        };
        let to_peer = Generated::Rst {
            session,
            to_client: dir == Dir::Reverse,
            seq: peer_seq,
            ack: peer_ack,
            flags: flags::RST | (flow.tcp_flags & flags::ACK),
        };
        if answer_sender {
            self.generate(to_sender);
        }
        self.generate(to_peer);
        self.discard_session::<A>(idx);
        stats::inc(&self.stats.sessions_reset);
        Ok(Verdict::Consumed)
    }

    /// Writes a packet the worker asked for (see [`Worker::pop_generated`])
    /// into an empty buffer and routes it.
    pub fn write_generated<P: PacketBuf>(&mut self, g: Generated, buf: &mut P) -> Verdict {
        let (session, to_client, seq, ack, flags) = match g {
            Generated::Probe { session, to_client } => {
                (session, to_client, PROBE_SEQ, 0, flags::ACK)
            }
            Generated::Rst {
                session,
                to_client,
                seq,
                ack,
                flags,
            } => (session, to_client, seq, ack, flags),
            Generated::ProxyHeader {
                session, seq, ack, ..
            } => (session, false, seq, ack, flags::ACK | flags::PSH),
        };
        // The header stands in for the client's segment: the client's
        // window; what the switch says itself offers none.
        let (header, window) = match g {
            Generated::ProxyHeader { window, .. } => (true, window),
            _ => (false, 0),
        };
        let numbers = (seq, ack, flags, window);
        let result = match session {
            AnySession::V4(s) => self.send_generated(buf, &s, (to_client, header), numbers),
            AnySession::V6(s) => self.send_generated(buf, &s, (to_client, header), numbers),
        };
        match result {
            Ok(v) => v,
            Err(r) => {
                self.stats.dropped(r);
                Verdict::Drop(r)
            }
        }
    }

    /// Writes the segment with `(seq, ack, flags)` of session `s`, to its
    /// client or to its member, and sends it: to the client directly, to the
    /// member through the session's forwarding mode as if the client had
    /// sent it, with the session's PROXY header as its payload (`header`).
    fn send_generated<A: Family, P: PacketBuf>(
        &mut self,
        buf: &mut P,
        s: &Session<A>,
        (to_client, header): (bool, bool),
        (seq, ack, flags, window): (u32, u32, u8, u16),
    ) -> Result<Verdict, DropReason> {
        let (src, dst) = match to_client {
            true => ((s.vip, s.vport), (s.client, s.cport)),
            false => ((s.client, s.cport), (s.vip, s.vport)),
        };
        let seg = Segment {
            src,
            dst,
            seq,
            ack,
            flags,
            window,
        };
        let len = if A::is_v4() {
            SEGMENT_LEN
        } else {
            SEGMENT_LEN6
        };
        let have = buf.data().len();
        if have < len && !buf.append(len - have) {
            return Err(DropReason::NoHeadroom);
        }
        if !self.write_segment(buf, &seg) {
            return Err(DropReason::Truncated);
        }
        if to_client {
            return A::egress(self, buf, s.client);
        }
        let flow = A::parse(buf.data())?;
        if header && !crate::proxy::insert_header(buf, &flow, s) {
            return Err(DropReason::NoHeadroom);
        }
        let rewrite = (self.shared.service(s.vs))
            .ok_or(DropReason::NoVirtualServer)?
            .rewrite();
        A::send_to_member(self, buf, &flow, s, rewrite)
    }

    /// Overwrites the frame in `buf` (at least a segment long; longer
    /// frames are trimmed) with `seg`. MACs are left to egress.
    fn write_segment<A: Addr, P: PacketBuf>(&mut self, buf: &mut P, seg: &Segment<A>) -> bool {
        let len = if A::is_v4() {
            SEGMENT_LEN
        } else {
            SEGMENT_LEN6
        };
        let excess = buf.data().len().saturating_sub(len);
        if buf.data().len() < len || (excess > 0 && !buf.trim(excess)) {
            return false;
        }
        let ident = self.next_ip_ident();
        let data = buf.data_mut();
        let l3 = &mut data[ethernet::HEADER_LEN..];
        let l4 = match (seg.src.0.ip().into(), seg.dst.0.ip().into()) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                write_ipv4(l3, (src, dst), ident);
                ipv4::MIN_HEADER_LEN
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                write_ipv6(l3, (src, dst));
                ipv6::HEADER_LEN
            }
            _ => return false,
        };
        let ethertype = match A::is_v4() {
            true => ethernet::ethertype::IPV4,
            false => ethernet::ethertype::IPV6,
        };
        ethernet::Frame::new_unchecked(&mut *data).set_ethertype(ethertype);
        let l3 = &mut data[ethernet::HEADER_LEN..];
        let (head, l4) = l3.split_at_mut(l4);
        let mut t = tcp::Packet::new_unchecked(l4);
        t.set_src_port(seg.src.1);
        t.set_dst_port(seg.dst.1);
        t.set_seq_number(seg.seq);
        t.set_ack_number(seg.ack);
        t.set_header_len(tcp::MIN_HEADER_LEN);
        t.set_flags(seg.flags);
        t.set_window_len(seg.window);
        t.set_urgent_at(0);
        match A::is_v4() {
            true => {
                let ip = ipv4::Packet::new_unchecked(&*head);
                t.fill_checksum_v4(ip.src_addr(), ip.dst_addr());
            }
            false => {
                let ip = ipv6::Packet::new_unchecked(&*head);
                t.fill_checksum_v6(ip.src_addr(), ip.dst_addr());
            }
        }
        true
    }
}

/// Writes the IPv4 header of a segment the switch writes (DF set).
fn write_ipv4(l3: &mut [u8], (src, dst): (Ipv4Addr, Ipv4Addr), ident: u16) {
    l3[0] = 0x45;
    let mut ip = ipv4::Packet::new_unchecked(&mut *l3);
    ip.set_tos(0);
    ip.set_total_len((ipv4::MIN_HEADER_LEN + tcp::MIN_HEADER_LEN) as u16);
    ip.set_ident(ident);
    ip.set_flags_frag(true, false, 0);
    ip.set_ttl(OWN_TTL);
    ip.set_protocol(proto::TCP);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
}

/// Writes the IPv6 header of a segment the switch writes.
fn write_ipv6(l3: &mut [u8], (src, dst): (Ipv6Addr, Ipv6Addr)) {
    let mut ip = ipv6::Packet::new_unchecked(&mut *l3);
    ip.set_version(6);
    ip.set_traffic_class(0);
    ip.set_flow_label(0);
    ip.set_payload_len(tcp::MIN_HEADER_LEN as u16);
    ip.set_next_header(proto::TCP);
    ip.set_hop_limit(OWN_TTL);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
}

/// Whether a session's state asks for a reset on its next packet.
#[inline]
pub(crate) fn pending<A: Addr>(s: &Session<A>) -> bool {
    s.state & flag::RESET_PENDING != 0 && s.proto == proto::TCP
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Tuple4;

    fn flow(tcp_flags: u8, seq: u32, ack: u32, payload_len: u16) -> Flow {
        Flow {
            l3: 14,
            ihl: 20,
            tuple: Tuple4::default(),
            tcp_flags,
            seq,
            ack,
            payload_len,
        }
    }

    #[test]
    fn rst_numbers_follow_rfc_793() {
        assert_eq!(
            rst_answering(&flow(flags::ACK, 10, 99, 5)),
            (99, 0, flags::RST)
        );
        assert_eq!(
            rst_answering(&flow(flags::SYN, 1000, 0, 0)),
            (0, 1001, flags::RST | flags::ACK)
        );
        assert_eq!(
            rst_answering(&flow(flags::FIN, u32::MAX, 0, 3)),
            (0, 3, flags::RST | flags::ACK)
        );
    }
}
