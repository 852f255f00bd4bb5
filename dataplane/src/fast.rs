//! The established fast path: a frame of the common shape (untagged
//! Ethernet to the port's MAC; IPv4 without options or IPv6 without
//! extension headers; TCP or UDP, not a fragment) that belongs to a steady
//! session of this worker (confirmed; UDP, or established TCP without SYN,
//! FIN or RST; not idled out, no reset pending), in any mode, is parsed at
//! fixed offsets, looked up once, and rewritten, without the general
//! path's walk through the dispatch, the local-address and virtual-server
//! maps and the state machine.
//!
//! It is a strict subset of the general path (`Worker::dispatch`): it
//! answers only where that path would give the same verdict, the same
//! bytes, the same session state and the same counters, and hands every
//! other frame to it untouched (`None`). `tests/differential.rs` holds it
//! to that with random traffic through both.

use crate::conntrack;
use crate::flow::{Family, Flow};
use crate::packet::PacketBuf;
use crate::reset;
use crate::session::{Dir, Session, Tuple};
use crate::stats::DropReason;
use crate::wire::ipv4::{self, proto};
use crate::wire::tcp::{self, flags};
use crate::wire::{ethernet, udp};
use crate::worker::{Verdict, Worker};

/// The fast path's answer: `None` sends the frame down the general path.
type Fast = Option<Result<Verdict, DropReason>>;

const L3: usize = ethernet::HEADER_LEN;

impl Worker {
    /// The frame's verdict if it takes the fast path (see the module).
    #[inline(always)]
    pub(crate) fn fast<P: PacketBuf>(&mut self, port: u16, pkt: &mut P) -> Fast {
        let data = pkt.data();
        if data.len() < L3 + ipv4::MIN_HEADER_LEN {
            return None;
        }
        let frame = ethernet::Frame::new_unchecked(data);
        let ours = self.port_mac(port);
        if frame.dst_addr() != ours || frame.src_addr() == ours {
            return None;
        }
        match [data[12], data[13]] {
            [0x08, 0x00] => {
                let flow = parse4(data, pkt.ip_checksum_verified())?;
                self.fast_session(pkt, &flow)
            }
            [0x86, 0xdd] => {
                let flow = parse6(data)?;
                self.fast_session(pkt, &flow)
            }
            _ => None,
        }
    }

    /// A parsed frame of a steady session (see the module), either way.
    #[inline(always)]
    fn fast_session<A: Family, P: PacketBuf>(&mut self, pkt: &mut P, flow: &Flow<A>) -> Fast {
        let t = flow.tuple;
        let (idx, dir) = A::t(self).sessions.lookup(&t, t.hash())?;
        let s = *A::t(self).sessions.get(idx);
        if !steady(&s, flow.tcp_flags) || reset::pending(&s) || self.expired(&s) {
            return None;
        }
        match dir {
            Dir::Forward => self.fast_forward(pkt, flow, idx, &s),
            Dir::Reverse => self.fast_reverse(pkt, flow, idx, &s),
        }
    }

    /// Client → member, while the switch holds the VIP (the general path
    /// takes the VIP's packets for the switch's only then). The session's
    /// server is on the packet's VIP and port: a server keeps its slot
    /// only while its address, port and protocol stay
    /// (`shared::build::same_identity`), and a session never moves to
    /// another slot.
    #[inline(always)]
    fn fast_forward<A: Family, P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow<A>,
        idx: u32,
        s: &Session<A>,
    ) -> Fast {
        let t = flow.tuple;
        let v = self.shared.service(s.vs)?;
        debug_assert!(A::of(v.vip) == Some(t.dst) && v.proto == t.proto);
        debug_assert!(v.port == t.dport || v.port == 0);
        if !v.vip_local || v.proxy {
            return None;
        }
        let rewrite = v.rewrite();
        // A session is in the table of the worker owning its client (or
        // SNAT port): a frame that reached another worker misses here.
        debug_assert!(self.shared.workers == 1 || self.shared.client_owner_of(t.src) == self.id);
        A::t_mut(self).sessions.get_mut(idx).last_seen = self.stamp();
        self.stats.count_vs(s.vs, true, pkt.data().len());
        Some(A::send_to_member(self, pkt, flow, s, rewrite))
    }

    /// Member → client (Dest-NAT) or → SNAT address (Both-NAT): to an
    /// address that is no VIP and no interface address of the switch.
    #[inline(always)]
    fn fast_reverse<A: Family, P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow<A>,
        idx: u32,
        s: &Session<A>,
    ) -> Fast {
        let t = flow.tuple;
        // A PROXY-protocol session's numbers are translated (`proxy`).
        if self.shared.service(s.vs).is_none_or(|v| v.proxy) {
            return None;
        }
        let to_snat = match A::local(&self.shared, t.dst) {
            None => false,
            Some(l) if !l.vip && l.snat.is_some() => true,
            Some(_) => return None,
        };
        debug_assert!(
            self.shared.workers == 1 || self.reply_owner(to_snat, t.dst, t.dport) == self.id
        );
        A::t_mut(self).sessions.get_mut(idx).last_seen = self.stamp();
        self.stats.count_vs(s.vs, false, pkt.data().len());
        Some(A::send_to_client(self, pkt, flow, s))
    }
}

/// Whether a packet with TCP flags `tcp_flags` leaves session `s` as it is
/// but for its idle time: a confirmed UDP session, or an established TCP
/// one and a segment without SYN, FIN or RST.
#[inline(always)]
fn steady<A: crate::addr::Addr>(s: &Session<A>, tcp_flags: u8) -> bool {
    let confirmed = s.state & conntrack::flag::CONFIRMED != 0;
    let quiet = tcp_flags & (flags::SYN | flags::FIN | flags::RST) == 0;
    let established = s.state & conntrack::tcp::MASK == conntrack::tcp::ESTABLISHED;
    confirmed && (s.proto != proto::TCP || (quiet && established))
}

/// An IPv4 frame without options, not a fragment, with a TTL to spare and
/// a good header checksum (the NIC's verdict, `verified`, where it has one).
#[inline(always)]
fn parse4(data: &[u8], verified: Option<bool>) -> Option<Flow<u32>> {
    let ip = &data[L3..];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if ip[0] != 0x45 || total < ipv4::MIN_HEADER_LEN || total > ip.len() || fragment || ip[8] <= 1 {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
    let (src, dst, protocol) = (word(12), word(16), ip[9]);
    let flow = l4_flow(
        &ip[ipv4::MIN_HEADER_LEN..total],
        protocol,
        ipv4::MIN_HEADER_LEN,
        (src, dst),
    )?;
    // Last, when the frame is known to be worth it.
    let good = verified.unwrap_or_else(|| ipv4::Packet::new_unchecked(ip).verify_checksum());
    good.then_some(flow)
}

/// An IPv6 frame whose next header is TCP or UDP, with a hop limit to
/// spare, between unicast addresses.
#[inline(always)]
fn parse6(data: &[u8]) -> Option<Flow<u128>> {
    const HEADER: usize = crate::wire::ipv6::HEADER_LEN;
    let ip = data.get(L3..L3 + HEADER)?;
    let end = HEADER + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if ip[0] >> 4 != 6 || L3 + end > data.len() || ip[7] <= 1 || ip[8] == 0xff || ip[24] == 0xff {
        return None;
    }
    let addr = |at: usize| u128::from_be_bytes(ip[at..at + 16].try_into().unwrap_or_default());
    let l4 = &data[L3 + HEADER..L3 + end];
    let flow = l4_flow(l4, ip[6], HEADER, (addr(8), addr(24)))?;
    // No checksum is no UDP over IPv6 (RFC 8200 8.1): the general path drops it.
    if flow.tuple.proto == proto::UDP && l4[6..8] == [0, 0] {
        return None;
    }
    Some(flow)
}

/// The flow of a TCP segment or UDP datagram `l4` (its IP packet's payload,
/// `ihl` bytes after the IP header's start) between `src` and `dst`.
#[inline(always)]
fn l4_flow<A: Copy>(l4: &[u8], protocol: u8, ihl: usize, (src, dst): (A, A)) -> Option<Flow<A>> {
    let (sport, dport, tcp_flags, seq, ack, payload_len) = match protocol {
        proto::TCP => {
            let t = tcp::Packet::new_checked(l4).ok()?;
            // A SYN is never steady: it goes its way without a first lookup.
            if t.flags() & flags::SYN != 0 {
                return None;
            }
            let payload = (l4.len() - t.header_len()) as u16;
            let (sp, dp, f) = (t.src_port(), t.dst_port(), t.flags());
            (sp, dp, f, t.seq_number(), t.ack_number(), payload)
        }
        proto::UDP => {
            let u = udp::Packet::new_checked(l4).ok()?;
            (u.src_port(), u.dst_port(), 0, 0, 0, 0)
        }
        _ => return None,
    };
    Some(Flow {
        l3: L3,
        ihl,
        tuple: Tuple {
            src,
            dst,
            sport,
            dport,
            proto: protocol,
        },
        tcp_flags,
        seq,
        ack,
        payload_len,
    })
}
