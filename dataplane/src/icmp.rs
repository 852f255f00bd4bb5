//! ICMP: echo replies for owned addresses, and translation of ICMP errors
//! that quote a packet of a session (so path-MTU discovery and port
//! unreachables keep working through the NAT).

use crate::exception::KernelClass;
use crate::flow::Flow;
use crate::nat;
use crate::packet::PacketBuf;
use crate::session::{Dir, Tuple4};
use crate::shared::Local;
use crate::stats::{self, DropReason};
use crate::wire::checksum::adjust16;
use crate::wire::ipv4::{self, proto};
use crate::wire::{ethernet, icmpv4};
use crate::worker::{Verdict, Worker, OWN_TTL};
use std::net::Ipv4Addr;

/// Bytes of the offending packet's payload an ICMP error quotes after its IP
/// header (RFC 792 asks for 8; more helps the sender match it).
pub(crate) const ICMP_QUOTE: usize = 8;

impl Worker {
    pub(crate) fn icmp<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
        local: Option<Local>,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv4::Packet::new_unchecked(&pkt.data()[l3..]);
        let interface = local.is_some_and(|l| l.interface.is_some());
        let src = ip.src_addr();
        if ip.is_fragment() {
            // A big ping to the switch's interface: the kernel reassembles.
            return match interface {
                true => self.hand_to_kernel(port, src, KernelClass::Icmp),
                false => Err(DropReason::Fragment),
            };
        }
        let msg = icmpv4::Packet::new_checked(ip.payload())?;
        match msg.msg_type() {
            icmpv4::kind::ECHO_REQUEST if local.is_some() => self.echo_reply(port, pkt, l3),
            icmpv4::kind::DEST_UNREACHABLE
            | icmpv4::kind::TIME_EXCEEDED
            | icmpv4::kind::PARAM_PROBLEM => match self.icmp_error(pkt, l3, redirected) {
                // About the kernel's own traffic (a health check's port
                // unreachable, or a router's unreachable about its ping:
                // sessions are never ICMP, so such a quote is the kernel's).
                Err(DropReason::IcmpNoSession | DropReason::IcmpUnsupported) if interface => {
                    self.hand_to_kernel(port, src, KernelClass::Icmp)
                }
                other => other,
            },
            _ if interface => self.hand_to_kernel(port, src, KernelClass::Icmp),
            _ if local.is_some() => Err(DropReason::LocalUnhandled),
            _ => Err(DropReason::NotForUs),
        }
    }

    /// Turns a client's packet (`flow`) in place into an ICMP
    /// destination-unreachable with `code` from `src`, quoting the packet's
    /// header and first bytes, sent back to the client.
    #[cold]
    pub(crate) fn icmp_unreachable<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow,
        code: u8,
        rest: u32,
        src: Ipv4Addr,
    ) -> Result<Verdict, DropReason> {
        const HEADERS: usize = ipv4::MIN_HEADER_LEN + icmpv4::HEADER_LEN;
        let l3 = flow.l3;
        let client = Ipv4Addr::from(flow.tuple.src);
        let hop = self
            .shared
            .routes
            .lookup(client)
            .ok_or(DropReason::NoRoute)?;
        let quoted = (pkt.data().len() - l3).min(flow.ihl + ICMP_QUOTE);
        let total = HEADERS + quoted;
        if !pkt.prepend(HEADERS) {
            return Err(DropReason::NoHeadroom);
        }
        let excess = pkt.data().len() - (l3 + total);
        if !pkt.trim(excess) {
            return Err(DropReason::Truncated);
        }
        let ident = self.next_ip_ident();
        let data = pkt.data_mut();
        data.copy_within(HEADERS..HEADERS + l3, 0);
        let mut ip = ipv4::Packet::new_unchecked(&mut data[l3..]);
        ip.set_header_len(ipv4::MIN_HEADER_LEN);
        ip.set_tos(0);
        ip.set_total_len(total as u16);
        ip.set_ident(ident);
        ip.set_flags_frag(false, false, 0);
        ip.set_ttl(OWN_TTL);
        ip.set_protocol(proto::ICMP);
        ip.set_src_addr(src);
        ip.set_dst_addr(client);
        ip.fill_checksum();
        let mut msg = icmpv4::Packet::new_unchecked(ip.payload_mut());
        msg.set_msg_type(icmpv4::kind::DEST_UNREACHABLE);
        msg.set_code(code);
        msg.set_rest_of_header(rest);
        msg.fill_checksum();
        stats::inc(&self.stats.icmp_errors_sent);
        self.egress_via(pkt, hop)
    }

    /// Turns an echo request into its reply in place, sent back where it came from.
    fn echo_reply<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
    ) -> Result<Verdict, DropReason> {
        let mac = self.port_mac(port);
        let data = pkt.data_mut();
        let mut frame = ethernet::Frame::new_unchecked(&mut *data);
        let peer = frame.src_addr();
        frame.set_dst_addr(peer);
        frame.set_src_addr(mac);
        let mut ip = ipv4::Packet::new_unchecked(&mut data[l3..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_ttl(OWN_TTL);
        ip.fill_checksum();
        let mut msg = icmpv4::Packet::new_unchecked(ip.payload_mut());
        let code = msg.code();
        let csum = adjust16(
            msg.checksum(),
            u16::from_be_bytes([icmpv4::kind::ECHO_REQUEST, code]),
            u16::from_be_bytes([icmpv4::kind::ECHO_REPLY, code]),
        );
        msg.set_msg_type(icmpv4::kind::ECHO_REPLY);
        msg.set_checksum(csum);
        stats::inc(&self.stats.icmp_echo_replies);
        Ok(Verdict::Tx(port))
    }

    /// Translates an ICMP error about a session's packet towards the other side.
    #[cold]
    fn icmp_error<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        l3: usize,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let data = pkt.data();
        let ip = ipv4::Packet::new_unchecked(&data[l3..]);
        let ihl = ip.header_len();
        let end = l3 + usize::from(ip.total_len());
        let (outer_src, ttl) = (ip.src_addr(), ip.ttl());
        let q_at = l3 + ihl + icmpv4::HEADER_LEN;
        let quoted = QuotedFlow::parse(&data[q_at..end])?;
        if ttl <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        let q = quoted.tuple;
        let q_src_is_vip = self.shared.local(q.src.into()).is_some_and(|l| l.vip);
        if !redirected && self.shared.workers > 1 {
            let owner = if q_src_is_vip {
                self.shared.client_owner(q.dst.into())
            } else {
                self.reverse_owner(q.src, q.sport)
            };
            if owner != self.id {
                return Ok(Verdict::Redirect(owner));
            }
        }
        // The quoted packet went out from the switch; its reverse is the
        // tuple of a packet of the session.
        let back = q.reversed();
        let (idx, dir) = self
            .v4
            .sessions
            .lookup(&back, back.hash())
            .ok_or(DropReason::IcmpNoSession)?;
        let s = *self.v4.sessions.get(idx);
        if self.expired(&s) {
            return Err(DropReason::IcmpNoSession);
        }
        let (outer_new_src, outer_dst, q_src, q_dst) = match dir {
            // From the client side, about a packet we sent the client: to the member.
            Dir::Forward => {
                let src = if outer_src == Ipv4Addr::from(s.client) {
                    s.snat
                } else {
                    u32::from(outer_src)
                };
                (src, s.member, (s.member, s.mport), (s.snat, s.sport))
            }
            // From the member side, about a packet we sent the member: to the client.
            Dir::Reverse => {
                let src = if outer_src == Ipv4Addr::from(s.member) {
                    s.vip
                } else {
                    u32::from(outer_src)
                };
                (src, s.client, (s.client, s.cport), (s.vip, s.vport))
            }
        };
        let data = pkt.data_mut();
        nat::rewrite_quoted(
            &mut data[q_at..end],
            quoted.ihl,
            (q_src.0.into(), q_src.1),
            (q_dst.0.into(), q_dst.1),
        );
        let mut ip = ipv4::Packet::new_unchecked(&mut data[l3..end]);
        ip.set_src_addr(outer_new_src.into());
        ip.set_dst_addr(outer_dst.into());
        ip.set_ttl(ttl - 1);
        ip.fill_checksum();
        icmpv4::Packet::new_unchecked(ip.payload_mut()).fill_checksum();
        stats::inc(&self.stats.icmp_errors_translated);
        self.egress(pkt, outer_dst.into())
    }
}

/// The header of the packet quoted in an ICMP error: at least the IP header
/// and the first four transport bytes (the ports).
struct QuotedFlow {
    ihl: usize,
    tuple: Tuple4,
}

impl QuotedFlow {
    fn parse(q: &[u8]) -> Result<QuotedFlow, DropReason> {
        if q.len() < ipv4::MIN_HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        let ip = ipv4::Packet::new_unchecked(q);
        let ihl = ip.header_len();
        if ip.version() != 4 || ihl < ipv4::MIN_HEADER_LEN {
            return Err(DropReason::Malformed);
        }
        if q.len() < ihl + 4 {
            return Err(DropReason::Truncated);
        }
        let protocol = ip.protocol();
        if protocol != proto::TCP && protocol != proto::UDP {
            return Err(DropReason::IcmpUnsupported);
        }
        let port = |at: usize| u16::from_be_bytes([q[ihl + at], q[ihl + at + 1]]);
        Ok(QuotedFlow {
            ihl,
            tuple: Tuple4 {
                src: u32::from(ip.src_addr()),
                dst: u32::from(ip.dst_addr()),
                sport: port(0),
                dport: port(2),
                proto: protocol,
            },
        })
    }
}
