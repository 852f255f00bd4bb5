//! ICMPv6 errors (destination unreachable, packet too big, time exceeded,
//! parameter problem) that quote a packet of a session: translated towards
//! the session's other end, as `icmp` does for IPv4, so path-MTU discovery
//! and port unreachables keep working through the NAT.

use crate::flow::Flow;
use crate::nat;
use crate::packet::PacketBuf;
use crate::session::{Dir, Tuple};
use crate::stats::{self, DropReason};
use crate::wire::icmpv6::{self, kind};
use crate::wire::ipv6::{self, next_header};
use crate::worker::{Verdict, Worker, OWN_TTL};
use std::net::Ipv6Addr;

/// The smallest link MTU IPv6 allows (RFC 8200 5): a packet-too-big
/// announcing less is forged or broken, and ignored (RFC 8201 4).
pub(crate) const MIN_MTU6: u32 = 1280;

/// An ICMPv6 error the switch writes: type, code and the 4 bytes after the
/// checksum (the MTU of a packet-too-big).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Icmp6Error {
    pub kind: u8,
    pub code: u8,
    pub rest: u32,
}

impl Worker {
    /// Translates an ICMPv6 error about a session's packet towards the
    /// other side: its outer addresses, the quoted header's addresses and
    /// ports (and quoted checksum), its hop limit and its checksum. The
    /// message starts `upper.offset` bytes into the IPv6 packet at `l3`.
    #[cold]
    pub(crate) fn icmpv6_error<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        l3: usize,
        upper: ipv6::Upper,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let data = pkt.data();
        let ip = ipv6::Packet::new_unchecked(&data[l3..]);
        let end = l3 + ipv6::HEADER_LEN + usize::from(ip.payload_len());
        let (outer_src, hop_limit) = (ip.src_addr(), ip.hop_limit());
        let msg_at = l3 + upper.offset;
        let msg = icmpv6::Packet::new_unchecked(&data[msg_at..end]);
        if msg.msg_type() == kind::PACKET_TOO_BIG && msg.mtu() < MIN_MTU6 {
            return Err(DropReason::PtbTooSmall);
        }
        let q_at = msg_at + icmpv6::HEADER_LEN;
        let quoted = QuotedFlow6::parse(&data[q_at..end])?;
        if hop_limit <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        let q = quoted.tuple;
        let q_src_is_vip = (self.shared.local6(q.src.into())).is_some_and(|l| l.vip);
        if !redirected && self.shared.workers > 1 {
            let owner = match q_src_is_vip {
                true => self.shared.client_owner_of(q.dst),
                false => self.reverse_owner(q.src, q.sport),
            };
            if owner != self.id {
                return Ok(Verdict::Redirect(owner));
            }
        }
        // The quoted packet went out from the switch; its reverse is the
        // tuple of a packet of the session.
        let back = q.reversed();
        let (idx, dir) = (self.v6.sessions)
            .lookup(&back, back.hash())
            .ok_or(DropReason::IcmpNoSession)?;
        let s = *self.v6.sessions.get(idx);
        if self.expired(&s) {
            return Err(DropReason::IcmpNoSession);
        }
        let outer_src = u128::from(outer_src);
        let (new_src, new_dst, q_src, q_dst) = match dir {
            // From the client side, about a packet sent to the client: to
            // the member, from the SNAT address if the client itself wrote it.
            Dir::Forward => {
                let src = if outer_src == s.client {
                    s.snat
                } else {
                    outer_src
                };
                (src, s.member, (s.member, s.mport), (s.snat, s.sport))
            }
            // From the member side, about a packet sent to the member: to
            // the client, from the VIP if the member itself wrote it.
            Dir::Reverse => {
                let src = if outer_src == s.member {
                    s.vip
                } else {
                    outer_src
                };
                (src, s.client, (s.client, s.cport), (s.vip, s.vport))
            }
        };
        let (new_src, new_dst) = (Ipv6Addr::from(new_src), Ipv6Addr::from(new_dst));
        let data = pkt.data_mut();
        nat::rewrite_quoted6(
            &mut data[q_at..end],
            quoted.l4,
            q.proto,
            (q_src.0.into(), q_src.1),
            (q_dst.0.into(), q_dst.1),
        );
        let mut ip = ipv6::Packet::new_unchecked(&mut data[l3..end]);
        ip.set_src_addr(new_src);
        ip.set_dst_addr(new_dst);
        ip.set_hop_limit(hop_limit - 1);
        icmpv6::Packet::new_unchecked(&mut data[msg_at..end]).fill_checksum(new_src, new_dst);
        stats::inc(&self.stats.icmp_errors_translated);
        self.egress6(pkt, new_dst)
    }
}

impl Worker {
    /// Turns a client's IPv6 packet (`flow`) in place into the ICMPv6
    /// error `err` from `src`, quoting as much of the packet as keeps the
    /// error within the minimum MTU (RFC 4443 2.4), sent back to the client.
    #[cold]
    pub(crate) fn icmpv6_reply<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow<u128>,
        err: Icmp6Error,
        src: Ipv6Addr,
    ) -> Result<Verdict, DropReason> {
        const HEADERS: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
        let l3 = flow.l3;
        let client = Ipv6Addr::from(flow.tuple.src);
        let sent = ipv6::Packet::new_unchecked(&pkt.data()[l3..]);
        let sent_len = ipv6::HEADER_LEN + usize::from(sent.payload_len());
        let quoted = sent_len.min(MIN_MTU6 as usize - HEADERS);
        if !pkt.prepend(HEADERS) {
            return Err(DropReason::NoHeadroom);
        }
        let excess = pkt.data().len() - (l3 + HEADERS + quoted);
        if !pkt.trim(excess) {
            return Err(DropReason::Truncated);
        }
        let data = pkt.data_mut();
        data.copy_within(HEADERS..HEADERS + l3, 0);
        let mut ip = ipv6::Packet::new_unchecked(&mut data[l3..]);
        ip.set_version(6);
        ip.set_traffic_class(0);
        ip.set_flow_label(0);
        ip.set_payload_len((icmpv6::HEADER_LEN + quoted) as u16);
        ip.set_next_header(next_header::ICMPV6);
        ip.set_hop_limit(OWN_TTL);
        ip.set_src_addr(src);
        ip.set_dst_addr(client);
        let mut msg = icmpv6::Packet::new_unchecked(&mut data[l3 + ipv6::HEADER_LEN..]);
        msg.set_msg_type(err.kind);
        msg.set_code(err.code);
        msg.set_rest_of_header(err.rest);
        msg.fill_checksum(src, client);
        stats::inc(&self.stats.icmp_errors_sent);
        self.egress6(pkt, client)
    }
}

/// The header of the IPv6 packet quoted in an ICMPv6 error: its extension
/// headers walked within the quote, to the first four transport bytes.
struct QuotedFlow6 {
    /// Where the transport header starts in the quote.
    l4: usize,
    tuple: Tuple<u128>,
}

impl QuotedFlow6 {
    fn parse(q: &[u8]) -> Result<QuotedFlow6, DropReason> {
        let ip = ipv6::Packet::new_unchecked(q);
        if q.len() < ipv6::HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        if ip.version() != 6 {
            return Err(DropReason::Malformed);
        }
        let upper = ip.quoted_upper_layer()?;
        if upper.non_first_fragment
            || !matches!(upper.protocol, next_header::TCP | next_header::UDP)
        {
            return Err(DropReason::IcmpUnsupported);
        }
        let l4 = upper.offset;
        if q.len() < l4 + 4 {
            return Err(DropReason::Truncated);
        }
        let port = |at: usize| u16::from_be_bytes([q[l4 + at], q[l4 + at + 1]]);
        Ok(QuotedFlow6 {
            l4,
            tuple: Tuple {
                src: u128::from(ip.src_addr()),
                dst: u128::from(ip.dst_addr()),
                sport: port(0),
                dport: port(2),
                proto: upper.protocol,
            },
        })
    }
}
