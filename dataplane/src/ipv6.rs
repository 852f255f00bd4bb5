//! The IPv6 packet path: parse the header and walk its extension headers
//! (a bounded walk: what cannot be parsed within it is dropped, never
//! guessed at), then neighbour discovery and ICMPv6 for the switch's
//! addresses (`ndp`), TCP and UDP to its interface addresses for the kernel
//! interface, and TCP and UDP of virtual servers on the path of both
//! families (`flow`), with what is IPv6's own: its rewrite and egress.

use crate::conntrack;
use crate::exception::KernelClass;
use crate::flow::{Family, Flow, Table};
use crate::icmp6::Icmp6Error;
use crate::nat;
use crate::packet::PacketBuf;
use crate::service::{find_vs6, reply_server, vs_key6, Rewrite};
use crate::session::{Session6, Tuple};
use crate::shared::{Local, Shared};
use crate::stats::DropReason;
use crate::wire::ipv6::{self, next_header, Upper};
use crate::wire::{ethernet, icmpv6, tcp, udp};
use crate::worker::{AnySession, Verdict, Worker};
use sluice_config::Forwarding;

impl Worker {
    /// Out of line, as `ipv4` is: the dispatch stays small. Marked cold:
    /// measured without it, IPv4 costs 6 instructions a packet more (1,088.7
    /// against 1,082.7) and IPv6 saves 4 (1,413.6 against 1,417.6).
    #[cold]
    #[inline(never)]
    pub(crate) fn ipv6<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv6::Packet::new_checked(&pkt.data()[l3..])?;
        let upper = ip.upper_layer()?;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if src.is_multicast() {
            return Err(DropReason::Malformed);
        }
        let local = self.shared.local6(dst);
        if upper.protocol == next_header::ICMPV6 && !upper.non_first_fragment {
            return self.icmpv6(port, pkt, l3, upper, (local, redirected));
        }
        if upper.fragment {
            return self.fragment6(port, pkt, (l3, upper), local, redirected);
        }
        self.transport6(port, pkt, (l3, upper), local, redirected)
    }

    /// A packet that is not ICMPv6 (or the first fragment of a TCP or UDP
    /// datagram): to a VIP, to a SNAT address, to the switch's own address,
    /// or a member's reply.
    pub(crate) fn transport6<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        (l3, upper): (usize, Upper),
        local: Option<Local>,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let session = matches!(upper.protocol, next_header::TCP | next_header::UDP);
        match local {
            Some(l) if l.vip && session => {
                let flow = parse_flow6(pkt.data(), l3, upper)?;
                self.forward(pkt, flow, redirected)
            }
            Some(l) if l.snat.is_some() && session => {
                let flow = parse_flow6(pkt.data(), l3, upper)?;
                self.reverse(pkt, flow, redirected)
            }
            Some(l) if l.interface.is_some() => self.local6_to_kernel(port, pkt, l3, upper),
            Some(_) => Err(DropReason::LocalUnhandled),
            None => {
                let ip = ipv6::Packet::new_unchecked(&pkt.data()[l3..]);
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                // Link-local multicast (VRRP adverts to ff02::12, routing
                // protocols) is the kernel interface's.
                if dst.segments()[0] & 0xff0f == 0xff02 {
                    return self.hand_to_kernel(port, src, KernelClass::LinkControl);
                }
                if dst.is_multicast() || !session {
                    return Err(DropReason::NotForUs);
                }
                let flow = parse_flow6(pkt.data(), l3, upper)?;
                self.reverse(pkt, flow, redirected)
            }
        }
    }

    /// Traffic to one of the switch's IPv6 interface addresses: the
    /// kernel's, through the exception path (by class, as for IPv4).
    pub(crate) fn local6_to_kernel<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &P,
        l3: usize,
        upper: ipv6::Upper,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv6::Packet::new_unchecked(&pkt.data()[l3..]);
        let src = ip.src_addr();
        let class = match upper.protocol {
            next_header::TCP if !upper.non_first_fragment => {
                let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
                let t = tcp::Packet::new_checked(&ip.into_inner()[upper.offset..end])?;
                let routing = (self.shared).routing_from(
                    src.into(),
                    next_header::TCP,
                    t.src_port(),
                    t.dst_port(),
                );
                match (routing, conntrack::opens_tcp(t.flags())) {
                    (true, _) => KernelClass::Routing,
                    (false, true) => KernelClass::TcpSyn,
                    (false, false) => KernelClass::Tcp,
                }
            }
            next_header::TCP => KernelClass::Tcp,
            next_header::UDP if !upper.non_first_fragment => {
                let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
                let u = udp::Packet::new_checked(&ip.into_inner()[upper.offset..end]);
                match u.map(|u| u.dst_port()) {
                    Ok(d) if self.shared.sync_from(src.into(), d) => KernelClass::Sync,
                    Ok(d) if (self.shared).routing_from(src.into(), next_header::UDP, 0, d) => {
                        KernelClass::Routing
                    }
                    _ => KernelClass::Udp,
                }
            }
            next_header::UDP => KernelClass::Udp,
            next_header::VRRP => KernelClass::LinkControl,
            _ => KernelClass::Icmp,
        };
        self.hand_to_kernel(port, src, class)
    }
}

/// Parses the IPv6 + TCP/UDP headers of a packet headed for session lookup
/// (`upper`: where its extension headers end; not a fragment).
pub(crate) fn parse_flow6(data: &[u8], l3: usize, upper: Upper) -> Result<Flow<u128>, DropReason> {
    let ip = ipv6::Packet::new_unchecked(&data[l3..]);
    if ip.hop_limit() <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
    let l4 = &data[l3 + upper.offset..l3 + end];
    let (sport, dport, tcp_flags, seq, ack, payload_len) = match upper.protocol {
        next_header::TCP => {
            let t = tcp::Packet::new_checked(l4)?;
            let payload = l4.len().saturating_sub(t.header_len());
            let (sp, dp, f) = (t.src_port(), t.dst_port(), t.flags());
            (sp, dp, f, t.seq_number(), t.ack_number(), payload as u16)
        }
        _ => {
            // A first fragment holds the header but not the length it gives.
            let u = match upper.fragment {
                false => udp::Packet::new_checked(l4)?,
                true if l4.len() >= udp::HEADER_LEN => udp::Packet::new_unchecked(l4),
                true => return Err(DropReason::Truncated),
            };
            // No checksum is no UDP over IPv6 (RFC 8200 8.1).
            if u.checksum() == 0 {
                return Err(DropReason::Malformed);
            }
            (u.src_port(), u.dst_port(), 0, 0, 0, 0)
        }
    };
    Ok(Flow {
        l3,
        ihl: upper.offset,
        tuple: Tuple {
            src: u128::from(ip.src_addr()),
            dst: u128::from(ip.dst_addr()),
            sport,
            dport,
            proto: upper.protocol,
        },
        tcp_flags,
        seq,
        ack,
        payload_len,
    })
}

impl Family for u128 {
    #[inline(always)]
    fn t(w: &Worker) -> &Table<u128> {
        &w.v6
    }

    #[inline(always)]
    fn t_mut(w: &mut Worker) -> &mut Table<u128> {
        &mut w.v6
    }

    #[inline(always)]
    fn split(w: &mut Worker) -> (&Shared, &mut Table<u128>) {
        (&w.shared, &mut w.v6)
    }

    #[inline]
    fn find_vs(shared: &Shared, vip: u128, port: u16, proto: u8) -> Option<u16> {
        find_vs6(&shared.vs_map6, vip, port, proto)
    }

    fn reply_server(shared: &Shared, member: Self, port: u16, proto: u8) -> Option<u16> {
        reply_server(&shared.replies6, |p| vs_key6(member, p, proto), port)
    }

    #[inline]
    fn local(shared: &Shared, ip: u128) -> Option<Local> {
        shared.local6(ip.into())
    }

    fn send_to_member<P: PacketBuf>(
        w: &mut Worker,
        pkt: &mut P,
        flow: &Flow<u128>,
        s: &Session6,
        rewrite: Rewrite,
    ) -> Result<Verdict, DropReason> {
        match rewrite.forwarding {
            Forwarding::DestNat | Forwarding::BothNat | Forwarding::LanToLan => {
                nat::rewrite6(
                    &mut pkt.data_mut()[flow.l3..],
                    flow.ihl,
                    flow.tuple.proto,
                    (s.snat.into(), s.sport),
                    (s.member.into(), s.mport),
                );
                w.egress6(pkt, s.member.into())
            }
            // The frame goes to the member's MAC as it is.
            Forwarding::L2Dsr => w.egress6(pkt, s.member.into()),
            Forwarding::L3Dsr => w.l3_dsr6(pkt, flow, s.member.into(), rewrite, false),
        }
    }

    fn send_to_client<P: PacketBuf>(
        w: &mut Worker,
        pkt: &mut P,
        flow: &Flow<u128>,
        s: &Session6,
    ) -> Result<Verdict, DropReason> {
        nat::rewrite6(
            &mut pkt.data_mut()[flow.l3..],
            flow.ihl,
            flow.tuple.proto,
            (s.vip.into(), s.vport),
            (s.client.into(), s.cport),
        );
        w.egress6(pkt, s.client.into())
    }

    fn unreachable<P: PacketBuf>(
        w: &mut Worker,
        pkt: &mut P,
        flow: &Flow<u128>,
    ) -> Result<Verdict, DropReason> {
        let err = Icmp6Error {
            kind: icmpv6::kind::DEST_UNREACHABLE,
            code: icmpv6::CODE_PORT_UNREACHABLE,
            rest: 0,
        };
        w.icmpv6_reply(pkt, flow, err, flow.tuple.dst.into())
    }

    #[inline]
    fn egress<P: PacketBuf>(w: &mut Worker, pkt: &mut P, dst: u128) -> Result<Verdict, DropReason> {
        w.egress6(pkt, dst.into())
    }

    fn parse(data: &[u8]) -> Result<Flow<u128>, DropReason> {
        let l3 = ethernet::HEADER_LEN;
        let ip = ipv6::Packet::new_checked(&data[l3..])?;
        parse_flow6(data, l3, ip.upper_layer()?)
    }

    fn any(s: &Session6) -> AnySession {
        AnySession::V6(*s)
    }
}
