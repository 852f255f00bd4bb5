//! The IPv4 path: parse, ICMP, fragments, then TCP and UDP on the path of
//! both families (`flow`), with what is IPv4's own: its rewrite, its
//! egress, its answers to refused and reset sessions.

use crate::conntrack;
use crate::exception::KernelClass;
use crate::flow::{Family, Flow, Table};
use crate::nat;
use crate::packet::PacketBuf;
use crate::service::{find_vs, reply_server, vs_key, Rewrite};
use crate::session::{Session4, Tuple4};
use crate::shared::{Local, Shared};
use crate::stats::DropReason;
use crate::wire::ipv4::{self, proto};
use crate::wire::{ethernet, icmpv4, tcp, udp};
use crate::worker::{AnySession, Verdict, Worker};
use sluice_config::Forwarding;
use std::net::{IpAddr, Ipv4Addr};

impl Worker {
    /// Out of line, as one function with its header checks inlined (see
    /// BENCHMARKS.md, issue 16: inlined into the dispatch, the compiler
    /// called out to the checksum instead, 35 more instructions a packet).
    #[inline(never)]
    pub(crate) fn ipv4<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv4::Packet::new_checked(&pkt.data()[l3..])?;
        // The NIC's verdict where it checked (a redirected frame keeps its
        // mbuf flags), else our own.
        let good = match pkt.ip_checksum_verified() {
            Some(good) => good,
            None => ip.verify_checksum(),
        };
        if !good {
            return Err(DropReason::IpChecksum);
        }
        let (dst, protocol) = (ip.dst_addr(), ip.protocol());
        let local = self.shared.local(dst);
        if protocol == proto::ICMP {
            return self.icmp(port, pkt, l3, local, redirected);
        }
        if ip.is_fragment() {
            return self.fragment(port, pkt, l3, local, redirected);
        }
        self.transport(port, pkt, l3, local, protocol, redirected)
    }

    /// A TCP or UDP packet (or the first fragment of a datagram): to a VIP,
    /// to a SNAT address, to the switch's own address, or a member's reply.
    #[inline]
    pub(crate) fn transport<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
        local: Option<Local>,
        protocol: u8,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        match local {
            Some(l) if l.vip => {
                let flow = parse_flow(pkt.data(), l3)?;
                self.forward(pkt, flow, redirected)
            }
            Some(l) if l.snat.is_some() => {
                let flow = parse_flow(pkt.data(), l3)?;
                self.reverse(pkt, flow, redirected)
            }
            Some(_) => self.local_to_kernel(port, pkt, l3, protocol),
            None if protocol == proto::TCP || protocol == proto::UDP => {
                let flow = parse_flow(pkt.data(), l3)?;
                self.reverse(pkt, flow, redirected)
            }
            None => self.link_control(port, pkt, l3),
        }
    }

    /// Sends a client packet of session `s` to its member, rewritten as its
    /// virtual server says (`rewrite`).
    #[inline]
    pub(crate) fn send_to_member<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow,
        s: &Session4,
        rewrite: Rewrite,
    ) -> Result<Verdict, DropReason> {
        let Rewrite {
            forwarding,
            encap,
            mss_clamp,
            ..
        } = rewrite;
        match forwarding {
            Forwarding::DestNat | Forwarding::BothNat | Forwarding::LanToLan => {
                nat::rewrite(
                    &mut pkt.data_mut()[flow.l3..],
                    flow.ihl,
                    (s.snat.into(), s.sport),
                    (s.member.into(), s.mport),
                );
                self.egress(pkt, s.member.into())
            }
            // The frame goes to the member's MAC as it is.
            Forwarding::L2Dsr => self.egress(pkt, s.member.into()),
            Forwarding::L3Dsr => self.l3_dsr(pkt, flow, s.member.into(), encap, mss_clamp),
        }
    }

    /// Traffic to one of the switch's interface addresses that the dataplane
    /// does not answer itself: the kernel's, through the exception path.
    #[cold]
    fn local_to_kernel<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &P,
        l3: usize,
        protocol: u8,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv4::Packet::new_unchecked(&pkt.data()[l3..]);
        let src = IpAddr::V4(ip.src_addr());
        let class = match protocol {
            proto::TCP => {
                let t = tcp::Packet::new_checked(ip.payload())?;
                let (sport, dport) = (t.src_port(), t.dst_port());
                if self.shared.routing_from(src, protocol, sport, dport) {
                    KernelClass::Routing
                } else if conntrack::opens_tcp(t.flags()) {
                    KernelClass::TcpSyn
                } else {
                    KernelClass::Tcp
                }
            }
            proto::UDP => {
                let dport = udp::Packet::new_checked(ip.payload()).map(|u| u.dst_port());
                match dport {
                    Ok(d) if self.shared.sync_from(src, d) => KernelClass::Sync,
                    Ok(d) if self.shared.routing_from(src, protocol, 0, d) => KernelClass::Routing,
                    _ => KernelClass::Udp,
                }
            }
            proto::VRRP => KernelClass::LinkControl,
            _ => KernelClass::Icmp,
        };
        self.hand_to_kernel(port, ip.src_addr(), class)
    }
}

impl Worker {
    /// A packet to an address that is not the switch's: to a link-local
    /// multicast group (224.0.0.0/24: VRRP adverts, routing protocols) it
    /// is the kernel interface's, where keepalived listens; anything else
    /// is not for the switch.
    #[cold]
    fn link_control<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &P,
        l3: usize,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv4::Packet::new_unchecked(&pkt.data()[l3..]);
        match ip.dst_addr().octets()[..3] == [224, 0, 0] {
            true => self.hand_to_kernel(port, ip.src_addr(), KernelClass::LinkControl),
            false => Err(DropReason::NotForUs),
        }
    }
}

/// Parses the IPv4 + TCP/UDP headers of a packet headed for session lookup.
pub(crate) fn parse_flow(data: &[u8], l3: usize) -> Result<Flow, DropReason> {
    let ip = ipv4::Packet::new_unchecked(&data[l3..]);
    let protocol = ip.protocol();
    if protocol != proto::TCP && protocol != proto::UDP {
        return Err(DropReason::NoVirtualServer);
    }
    // Later fragments never come here: `Worker::ipv4` sends them down
    // their own path (see `frag`), and only a first one reaches a parse.
    debug_assert_eq!(ip.frag_offset(), 0);
    if ip.ttl() <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let ihl = ip.header_len();
    let (sport, dport, tcp_flags, seq, ack, payload_len) = if protocol == proto::TCP {
        let t = tcp::Packet::new_checked(ip.payload())?;
        let payload = ip.payload().len().saturating_sub(t.header_len());
        let (sp, dp, f) = (t.src_port(), t.dst_port(), t.flags());
        (sp, dp, f, t.seq_number(), t.ack_number(), payload as u16)
    } else {
        // A first fragment holds the header but not the length it gives.
        let u = match ip.more_frags() {
            false => udp::Packet::new_checked(ip.payload())?,
            true if ip.payload().len() >= udp::HEADER_LEN => {
                udp::Packet::new_unchecked(ip.payload())
            }
            true => return Err(DropReason::Truncated),
        };
        (u.src_port(), u.dst_port(), 0, 0, 0, 0)
    };
    Ok(Flow {
        l3,
        ihl,
        tuple: Tuple4 {
            src: u32::from(ip.src_addr()),
            dst: u32::from(ip.dst_addr()),
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

impl Family for u32 {
    #[inline(always)]
    fn t(w: &Worker) -> &Table<u32> {
        &w.v4
    }

    #[inline(always)]
    fn t_mut(w: &mut Worker) -> &mut Table<u32> {
        &mut w.v4
    }

    #[inline(always)]
    fn split(w: &mut Worker) -> (&Shared, &mut Table<u32>) {
        (&w.shared, &mut w.v4)
    }

    #[inline(always)]
    fn find_vs(shared: &Shared, vip: u32, port: u16, proto: u8) -> Option<u16> {
        find_vs(&shared.vs_map, vip.into(), port, proto)
    }

    fn reply_server(shared: &Shared, member: Self, port: u16, proto: u8) -> Option<u16> {
        reply_server(&shared.replies, |p| vs_key(member.into(), p, proto), port)
    }

    #[inline(always)]
    fn local(shared: &Shared, ip: u32) -> Option<Local> {
        shared.local(ip.into())
    }

    #[inline(always)]
    fn send_to_member<P: PacketBuf>(
        w: &mut Worker,
        pkt: &mut P,
        flow: &Flow,
        s: &Session4,
        rewrite: Rewrite,
    ) -> Result<Verdict, DropReason> {
        w.send_to_member(pkt, flow, s, rewrite)
    }

    #[inline(always)]
    fn send_to_client<P: PacketBuf>(
        w: &mut Worker,
        pkt: &mut P,
        flow: &Flow,
        s: &Session4,
    ) -> Result<Verdict, DropReason> {
        nat::rewrite(
            &mut pkt.data_mut()[flow.l3..],
            flow.ihl,
            (s.vip.into(), s.vport),
            (s.client.into(), s.cport),
        );
        w.egress(pkt, s.client.into())
    }

    fn unreachable<P: PacketBuf>(
        w: &mut Worker,
        pkt: &mut P,
        flow: &Flow,
    ) -> Result<Verdict, DropReason> {
        let vip = Ipv4Addr::from(flow.tuple.dst);
        w.icmp_unreachable(pkt, flow, icmpv4::CODE_PORT_UNREACHABLE, 0, vip)
    }

    #[inline(always)]
    fn egress<P: PacketBuf>(w: &mut Worker, pkt: &mut P, dst: u32) -> Result<Verdict, DropReason> {
        w.egress(pkt, dst.into())
    }

    fn parse(data: &[u8]) -> Result<Flow, DropReason> {
        parse_flow(data, ethernet::HEADER_LEN)
    }

    fn any(s: &Session4) -> AnySession {
        AnySession::V4(*s)
    }
}
