//! L3 direct server return: the client's packet is carried to a member that
//! may sit behind routers, by IP-in-IP (RFC 2003), GRE (RFC 2784) or DSCP
//! marking; the member answers the client directly. (L2-DSR needs no
//! rewrite at all: the forward path only sets the member's MAC.)

use crate::flow::Flow;
use crate::packet::PacketBuf;
use crate::route::NextHop;
use crate::service::{Encap, MssClamp};
use crate::stats::DropReason;
use crate::wire::ipv4::{self, proto};
use crate::wire::{checksum, icmpv4, tcp};
use crate::worker::{Verdict, Worker};
use std::net::Ipv4Addr;

/// IPv4 and TCP headers without options: what an MSS leaves out of the MTU.
const TCP_IP_HEADERS: usize = 40;

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
        let overhead = encap.overhead();
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
        if flow.tuple.proto == proto::TCP && flow.tcp_flags & tcp::flags::SYN != 0 {
            let mss = match mss_clamp {
                MssClamp::Off => None,
                MssClamp::Auto => Some((mtu - overhead - TCP_IP_HEADERS) as u16),
                MssClamp::Value(v) => Some(v),
            };
            if let Some(mss) = mss {
                let seg = &mut pkt.data_mut()[l3 + flow.ihl..l3 + inner_len];
                tcp::Packet::new_unchecked(seg).clamp_mss(mss);
            }
        }
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
        outer.set_ttl(64);
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
    /// towards the client, sent back to the client.
    #[cold]
    fn frag_needed<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow,
        mtu: u16,
    ) -> Result<Verdict, DropReason> {
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
