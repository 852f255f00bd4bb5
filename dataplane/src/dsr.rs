//! L3 direct server return: the client's packet is carried to a member that
//! may sit behind routers, by IP-in-IP (RFC 2003), GRE (RFC 2784) or DSCP
//! marking; the member answers the client directly. An IPv6 service uses
//! IPv6-in-IPv6 (RFC 2473), GRE over IPv6 (RFC 7676) or the traffic class.
//! (L2-DSR needs no rewrite at all: the forward path only sets the member's
//! MAC.)

use crate::flow::Flow;
use crate::icmp6::{Icmp6Error, MIN_MTU6};
use crate::nat::{adjust_l4_checksum, delta128};
use crate::packet::PacketBuf;
use crate::route::NextHop;
use crate::service::{Encap, MssClamp, Rewrite};
use crate::stats::DropReason;
use crate::wire::ipv4::{self, proto};
use crate::wire::ipv6::{self, next_header};
use crate::wire::{checksum, icmpv4, icmpv6, tcp};
use crate::worker::{Verdict, Worker, OWN_TTL};
use std::net::{Ipv4Addr, Ipv6Addr};

/// IPv4 and TCP headers without options: what an MSS leaves out of the MTU.
const TCP_IP_HEADERS: usize = 40;
/// The same over IPv6.
const TCP_IP6_HEADERS: usize = 60;

impl Worker {
    pub(crate) fn l3_dsr<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow,
        member: Ipv4Addr,
        encap: Encap,
        mss_clamp: MssClamp,
    ) -> Result<Verdict, DropReason> {
        let hop = self
            .shared
            .routes
            .lookup(member)
            .ok_or(DropReason::NoRoute)?;
        match encap {
            Encap::Dscp(dscp) => {
                mark_dscp(&mut pkt.data_mut()[flow.l3..], flow.ihl, member, dscp);
                self.egress_via(pkt, hop)
            }
            Encap::Ipip | Encap::Gre => self.encapsulate(pkt, flow, member, hop, encap, mss_clamp),
            Encap::None => Err(DropReason::NoVirtualServer),
        }
    }

    /// Puts an outer IPv4 header (and for GRE a GRE header) in front of the
    /// client's packet: source the switch's address on the egress link,
    /// destination the member, TOS and DF copied from the inner header.
    fn encapsulate<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow,
        member: Ipv4Addr,
        hop: NextHop,
        encap: Encap,
        mss_clamp: MssClamp,
    ) -> Result<Verdict, DropReason> {
        let l3 = flow.l3;
        let overhead = encap.overhead(false);
        let mtu = usize::from(self.port_mtu(hop.port));
        let inner = ipv4::Packet::new_unchecked(&pkt.data()[l3..]);
        let (inner_len, df, tos) = (
            usize::from(inner.total_len()),
            inner.dont_frag(),
            inner.tos(),
        );
        // Too long for the link once encapsulated: the client is told the
        // usable MTU if it forbade fragments, else the outer packet is cut.
        let oversize = inner_len + overhead > mtu;
        if oversize && df {
            return self.frag_needed(pkt, flow, (mtu - overhead) as u16);
        }
        clamp_syn(
            pkt,
            flow,
            inner_len,
            mss_clamp,
            mtu - overhead - TCP_IP_HEADERS,
        );
        let padding = pkt.data().len() - (l3 + inner_len);
        if !pkt.trim(padding) || !pkt.prepend(overhead) {
            return Err(DropReason::NoHeadroom);
        }
        let src = self.shared.port_address(hop.port, member);
        let ident = self.next_ip_ident();
        let data = pkt.data_mut();
        data.copy_within(overhead..overhead + l3, 0);
        let mut outer = ipv4::Packet::new_unchecked(&mut data[l3..]);
        outer.set_header_len(ipv4::MIN_HEADER_LEN);
        outer.set_tos(tos);
        outer.set_total_len((inner_len + overhead) as u16);
        outer.set_ident(ident);
        outer.set_flags_frag(df, false, 0);
        outer.set_ttl(OWN_TTL);
        outer.set_protocol(if encap == Encap::Gre {
            proto::GRE
        } else {
            proto::IPIP
        });
        outer.set_src_addr(src);
        outer.set_dst_addr(member);
        outer.fill_checksum();
        if encap == Encap::Gre {
            // No checksum, key or sequence number; version 0; payload IPv4.
            data[l3 + 20..l3 + 24].copy_from_slice(&[0, 0, 0x08, 0x00]);
        }
        match self.egress_via(pkt, hop)? {
            Verdict::Tx(p) if oversize => Ok(Verdict::TxFragmented(p)),
            v => Ok(v),
        }
    }

    /// Turns the client's too-big packet into an ICMP fragmentation-needed
    /// error carrying the usable MTU, from the switch's address on the link
    /// towards the client, sent back to the client: at the rate of refusals
    /// (a spoofed source must not make the switch a reflector).
    #[cold]
    fn frag_needed<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow,
        mtu: u16,
    ) -> Result<Verdict, DropReason> {
        if !self.refusals.take() {
            return Err(DropReason::IcmpRateLimited);
        }
        let client = Ipv4Addr::from(flow.tuple.src);
        let hop = self
            .shared
            .routes
            .lookup(client)
            .ok_or(DropReason::NoRoute)?;
        let src = self.shared.port_address(hop.port, client);
        self.icmp_unreachable(pkt, flow, icmpv4::CODE_FRAG_NEEDED, u32::from(mtu), src)
    }
}

impl Worker {
    /// L3-DSR of an IPv6 service's packet to `member`: tunnelled, or its
    /// destination and traffic class rewritten (DSCP). `later_fragment`:
    /// the packet is a fragment after the first (no transport header).
    pub(crate) fn l3_dsr6<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow<u128>,
        member: Ipv6Addr,
        rewrite: Rewrite,
        later_fragment: bool,
    ) -> Result<Verdict, DropReason> {
        let hop = (self.shared.routes6)
            .lookup(member)
            .ok_or(DropReason::NoRoute)?;
        match rewrite.encap {
            Encap::Dscp(dscp) => {
                let l4 = (!later_fragment).then_some((flow.ihl, flow.tuple.proto));
                mark_dscp6(&mut pkt.data_mut()[flow.l3..], l4, member, dscp);
                self.egress6_via(pkt, hop)
            }
            Encap::Ipip | Encap::Gre => {
                self.encapsulate6(pkt, flow, (member, hop), rewrite.encap, rewrite.mss_clamp)
            }
            Encap::None => Err(DropReason::NoVirtualServer),
        }
    }

    /// Puts an outer IPv6 header (and for GRE a GRE header) in front of the
    /// client's packet: source the switch's address on the egress link,
    /// destination the member, traffic class and flow label copied from the
    /// inner header (ECMP on the way hashes the client's flow).
    fn encapsulate6<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow<u128>,
        (member, hop): (Ipv6Addr, NextHop<Ipv6Addr>),
        encap: Encap,
        mss_clamp: MssClamp,
    ) -> Result<Verdict, DropReason> {
        let l3 = flow.l3;
        let overhead = encap.overhead(true);
        let mtu = usize::from(self.port_mtu(hop.port));
        let inner = ipv6::Packet::new_unchecked(&pkt.data()[l3..]);
        let inner_len = ipv6::HEADER_LEN + usize::from(inner.payload_len());
        let (tc, label) = (inner.traffic_class(), inner.flow_label());
        if inner_len + overhead > mtu {
            // IPv6 is not cut on its way: the client learns the usable MTU
            // (RFC 2473 7.1). A link too small to carry 1,280 bytes inside
            // the tunnel would need the tunnel packet cut: not done.
            let usable = mtu.saturating_sub(overhead);
            if usable < MIN_MTU6 as usize {
                return Err(DropReason::TooBig);
            }
            return self.packet_too_big(pkt, flow, usable as u32);
        }
        clamp_syn(
            pkt,
            flow,
            inner_len,
            mss_clamp,
            mtu - overhead - TCP_IP6_HEADERS,
        );
        let padding = pkt.data().len() - (l3 + inner_len);
        if !pkt.trim(padding) || !pkt.prepend(overhead) {
            return Err(DropReason::NoHeadroom);
        }
        let src = self.shared.port_address6(hop.port, member);
        let data = pkt.data_mut();
        data.copy_within(overhead..overhead + l3, 0);
        let mut outer = ipv6::Packet::new_unchecked(&mut data[l3..]);
        outer.set_version(6);
        outer.set_traffic_class(tc);
        outer.set_flow_label(label);
        outer.set_payload_len((inner_len + overhead - ipv6::HEADER_LEN) as u16);
        outer.set_next_header(match encap {
            Encap::Gre => next_header::GRE,
            _ => next_header::IPV6,
        });
        outer.set_hop_limit(OWN_TTL);
        outer.set_src_addr(src);
        outer.set_dst_addr(member);
        if encap == Encap::Gre {
            // No checksum, key or sequence number; version 0; payload IPv6.
            let gre = l3 + ipv6::HEADER_LEN;
            data[gre..gre + 4].copy_from_slice(&[0, 0, 0x86, 0xdd]);
        }
        self.egress6_via(pkt, hop)
    }

    /// Turns the client's too-big IPv6 packet into a packet-too-big
    /// carrying the usable MTU, from the switch's address on the link
    /// towards the client, sent back to the client, at the rate of
    /// refusals (RFC 4443 2.4 f).
    #[cold]
    fn packet_too_big<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow<u128>,
        mtu: u32,
    ) -> Result<Verdict, DropReason> {
        if !self.refusals.take() {
            return Err(DropReason::IcmpRateLimited);
        }
        let client = Ipv6Addr::from(flow.tuple.src);
        let hop = (self.shared.routes6)
            .lookup(client)
            .ok_or(DropReason::NoRoute)?;
        let src = self.shared.port_address6(hop.port, client);
        let err = Icmp6Error {
            kind: icmpv6::kind::PACKET_TOO_BIG,
            code: 0,
            rest: mtu,
        };
        self.icmpv6_reply(pkt, flow, err, src)
    }
}

/// Clamps the MSS of a client's SYN (`flow`, its IP packet `inner_len`
/// bytes long) going into a tunnel: to `auto` (what the tunnel carries)
/// or to the configured value.
fn clamp_syn<A, P: PacketBuf>(
    pkt: &mut P,
    flow: &Flow<A>,
    inner_len: usize,
    clamp: MssClamp,
    auto: usize,
) {
    if flow.tuple.proto != proto::TCP || flow.tcp_flags & tcp::flags::SYN == 0 {
        return;
    }
    let mss = match clamp {
        MssClamp::Off => return,
        MssClamp::Auto => auto as u16,
        MssClamp::Value(v) => v,
    };
    let seg = &mut pkt.data_mut()[flow.l3 + flow.ihl..flow.l3 + inner_len];
    tcp::Packet::new_unchecked(seg).clamp_mss(mss);
}

/// DSCP-mode rewrite of an IPv6 packet: the destination becomes the member
/// and the traffic class's DSCP names the virtual server; hop limit
/// decremented; the transport checksum (`l4`: its header's offset and
/// protocol, when the packet carries it) updated for the new destination.
pub fn mark_dscp6(ip: &mut [u8], l4: Option<(usize, u8)>, member: Ipv6Addr, dscp: u8) {
    let mut p = ipv6::Packet::new_unchecked(&mut *ip);
    let (old_dst, tc, hops) = (p.dst_addr(), p.traffic_class(), p.hop_limit());
    p.set_traffic_class((dscp << 2) | (tc & 0b11));
    p.set_hop_limit(hops.saturating_sub(1));
    p.set_dst_addr(member);
    if let Some((at, protocol)) = l4 {
        let delta = delta128(u128::from(old_dst), u128::from(member));
        adjust_l4_checksum(&mut ip[at..], protocol, delta);
    }
}

/// DSCP-mode rewrite: the destination becomes the member and the DSCP field
/// names the virtual server; TTL decremented; IP and transport checksums
/// updated incrementally (the transport one only in a packet that carries
/// its header: not in a fragment after the first). `ip` starts at the IPv4
/// header of length `ihl`.
pub fn mark_dscp(ip: &mut [u8], ihl: usize, member: Ipv4Addr, dscp: u8) {
    let mut p = ipv4::Packet::new_unchecked(&mut *ip);
    let (old_dst, ttl, protocol) = (p.dst_addr(), p.ttl(), p.protocol());
    let old_word0 = u16::from_be_bytes([0x40 | (ihl / 4) as u8, p.tos()]);
    let new_tos = (dscp << 2) | p.ecn();
    let new_ttl = ttl.saturating_sub(1);
    let mut csum = p.checksum();
    csum = checksum::adjust32(csum, u32::from(old_dst), u32::from(member));
    csum = checksum::adjust16(
        csum,
        old_word0,
        u16::from_be_bytes([old_word0.to_be_bytes()[0], new_tos]),
    );
    csum = checksum::adjust16(
        csum,
        u16::from_be_bytes([ttl, protocol]),
        u16::from_be_bytes([new_ttl, protocol]),
    );
    p.set_dst_addr(member);
    p.set_tos(new_tos);
    p.set_ttl(new_ttl);
    p.set_checksum(csum);
    if p.frag_offset() == 0 {
        let delta = crate::nat::delta32(u32::from(old_dst), u32::from(member));
        crate::nat::adjust_l4_checksum(&mut ip[ihl..], protocol, delta);
    }
}
