//! IPv6 neighbour discovery (RFC 4861) and ICMPv6 echo for the switch's
//! own addresses: answers neighbour solicitations for them, learns the MACs
//! of the hosts that talk to them, solicits its next hops, announces its
//! addresses. ICMPv6 errors about sessions are translated (`icmp6`); every
//! other ICMPv6 message to the switch (router discovery, multicast listener
//! messages, errors about its own traffic) is the kernel interface's.

use crate::exception::KernelClass;
use crate::packet::PacketBuf;
use crate::shared::Local;
use crate::stats::{self, DropReason};
use crate::wire::checksum::adjust16;
use crate::wire::icmpv6::{self, kind};
use crate::wire::ipv6::{self, multicast_mac, next_header, solicited_node};
use crate::wire::{ethernet, Mac};
use crate::worker::{Verdict, Worker, OWN_TTL};
use std::net::{IpAddr, Ipv6Addr};

/// Neighbour solicitation or advertisement with one link-layer address
/// option: ICMPv6 header (8), target (16), option (8).
const ND_LEN: usize = icmpv6::HEADER_LEN + 16 + 8;
/// A whole frame of one.
const ND_FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + ND_LEN;
/// Option types: source and target link-layer address.
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// Neighbour advertisement flags (first byte after the checksum).
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;
/// The hop limit every neighbour discovery message carries: one that
/// crossed a router has a lower one and is not believed.
const ND_HOP_LIMIT: u8 = 255;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// A neighbour discovery message, checked: its target, and the link-layer
/// address option it carries (source for a solicitation, target for an
/// advertisement), if any.
struct Nd {
    target: Ipv6Addr,
    link_addr: Option<Mac>,
    flags: u8,
}

/// Checks a solicitation or advertisement as RFC 4861 7.1 asks (hop limit
/// 255, code 0, length, no option of length 0, a unicast target) and reads
/// it. `msg` is the whole ICMPv6 message.
fn parse_nd(msg: &[u8], hop_limit: u8, want_option: u8) -> Result<Nd, DropReason> {
    if hop_limit != ND_HOP_LIMIT || msg.len() < icmpv6::HEADER_LEN + 16 || msg[1] != 0 {
        return Err(DropReason::NdInvalid);
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&msg[8..24]);
    let target = Ipv6Addr::from(t);
    if target.is_multicast() {
        return Err(DropReason::NdInvalid);
    }
    let mut link_addr = None;
    let mut opts = &msg[24..];
    while !opts.is_empty() {
        let len = usize::from(*opts.get(1).ok_or(DropReason::NdInvalid)?) * 8;
        if len == 0 || len > opts.len() {
            return Err(DropReason::NdInvalid);
        }
        if opts[0] == want_option && len >= 8 {
            link_addr = Some([opts[2], opts[3], opts[4], opts[5], opts[6], opts[7]]);
        }
        opts = &opts[len..];
    }
    Ok(Nd {
        target,
        link_addr,
        flags: msg[4],
    })
}

impl Worker {
    /// An ICMPv6 message to the switch or to a multicast group (`upper` is
    /// where it starts in the IPv6 packet at `l3`).
    pub(crate) fn icmpv6<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
        upper: ipv6::Upper,
        (local, redirected): (Option<Local>, bool),
    ) -> Result<Verdict, DropReason> {
        let ip = ipv6::Packet::new_unchecked(&pkt.data()[l3..]);
        let (src, dst, hop_limit) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
        let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
        let msg = icmpv6::Packet::new_checked(&ip.into_inner()[upper.offset..end])?;
        if upper.fragment {
            // A big ping to the switch: the kernel reassembles it.
            return self.icmpv6_to_kernel(port, (src, dst), local);
        }
        if !msg.verify_checksum(src, dst) {
            return Err(DropReason::Icmpv6Checksum);
        }
        let body = l3 + upper.offset..l3 + end;
        match msg.msg_type() {
            kind::NEIGHBOR_SOLICIT => self.solicitation(port, pkt, (src, dst), body, hop_limit),
            kind::NEIGHBOR_ADVERT => self.advertisement(port, pkt, dst, body, hop_limit, local),
            kind::ECHO_REQUEST if local.is_some() && upper.offset == ipv6::HEADER_LEN => {
                self.echo_reply6(port, pkt, l3)
            }
            kind::DEST_UNREACHABLE
            | kind::PACKET_TOO_BIG
            | kind::TIME_EXCEEDED
            | kind::PARAM_PROBLEM => match self.icmpv6_error(pkt, l3, upper, redirected) {
                // About the kernel's own traffic (a health check's port
                // unreachable): sessions are never ICMPv6, so such a quote
                // is the kernel's when it is to the kernel's address.
                Err(e @ (DropReason::IcmpNoSession | DropReason::IcmpUnsupported)) => self
                    .icmpv6_to_kernel(port, (src, dst), local)
                    .map_err(|_| e),
                other => other,
            },
            _ => self.icmpv6_to_kernel(port, (src, dst), local),
        }
    }

    /// An ICMPv6 message the dataplane does not answer: the kernel
    /// interface's when it is to one of the port's addresses or to a
    /// multicast group (router advertisements, listener queries, a ping to
    /// all nodes).
    pub(crate) fn icmpv6_to_kernel(
        &mut self,
        port: u16,
        (src, dst): (Ipv6Addr, Ipv6Addr),
        local: Option<Local>,
    ) -> Result<Verdict, DropReason> {
        if dst.is_multicast() || local.is_some_and(|l| l.interface == Some(port)) {
            return self.hand_to_kernel(port, src, KernelClass::Icmp);
        }
        match local {
            Some(_) => Err(DropReason::LocalUnhandled),
            None => Err(DropReason::NotForUs),
        }
    }

    /// Whether the switch answers neighbour solicitations for `ip` on
    /// `port`: its interface addresses (and link-local address) on their
    /// port, VIPs and SNAT addresses on every port.
    fn answers_nd(&self, ip: Ipv6Addr, port: u16) -> bool {
        match self.shared.local6(ip) {
            Some(l) => l.vip || l.snat.is_some() || l.interface == Some(port),
            None => false,
        }
    }

    /// Whether `ip` is a neighbour on `port`'s link (a link-local address,
    /// or in one of its connected prefixes).
    fn on_link6(&self, ip: Ipv6Addr, port: u16) -> bool {
        is_link_local(ip)
            || (self.shared.routes6)
                .connected(ip)
                .is_some_and(|r| r.port == port)
    }

    /// A neighbour solicitation: answered, in place, when its target is the
    /// switch's; its sender's MAC learned.
    fn solicitation<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        (src, dst): (Ipv6Addr, Ipv6Addr),
        body: std::ops::Range<usize>,
        hop_limit: u8,
    ) -> Result<Verdict, DropReason> {
        let data = pkt.data();
        let nd = parse_nd(&data[body], hop_limit, OPT_SOURCE_LL)?;
        let dad = src.is_unspecified();
        // Duplicate address detection: to the solicited-node group, no
        // source link-layer address (RFC 4861 7.1.1).
        if dad && (dst != solicited_node(nd.target) || nd.link_addr.is_some()) {
            return Err(DropReason::NdInvalid);
        }
        if !self.answers_nd(nd.target, port) {
            return Err(DropReason::NdNotForUs);
        }
        let peer = ethernet::Frame::new_unchecked(data).src_addr();
        let mac = nd.link_addr.unwrap_or(peer);
        if !dad && self.on_link6(src, port) && !ethernet::is_multicast(&mac) {
            let now = self.now_ms;
            if self.shared.neighbors.learn(src, port, mac, now) {
                stats::inc(&self.stats.nd_learned);
            }
        }
        // A node checking that the address is free is told it is not,
        // to every node; anyone else, to itself.
        let (to, to_mac, flags) = match dad {
            true => (ALL_NODES, multicast_mac(ALL_NODES), FLAG_OVERRIDE),
            false => (src, mac, FLAG_SOLICITED | FLAG_OVERRIDE),
        };
        if !self.write_nd(
            pkt,
            port,
            kind::NEIGHBOR_ADVERT,
            (nd.target, to, to_mac),
            flags,
        ) {
            return Err(DropReason::NoHeadroom);
        }
        stats::inc(&self.stats.nd_replies);
        Ok(Verdict::Tx(port))
    }

    /// A neighbour advertisement: learned when it answers the switch (to
    /// one of its addresses), else only refreshes what the switch uses; the
    /// kernel interface gets a copy of those to its addresses, having asked
    /// too.
    fn advertisement<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        dst: Ipv6Addr,
        body: std::ops::Range<usize>,
        hop_limit: u8,
        local: Option<Local>,
    ) -> Result<Verdict, DropReason> {
        let data = pkt.data();
        let nd = parse_nd(&data[body], hop_limit, OPT_TARGET_LL)?;
        if dst.is_multicast() && nd.flags & FLAG_SOLICITED != 0 {
            return Err(DropReason::NdInvalid);
        }
        let peer = ethernet::Frame::new_unchecked(data).src_addr();
        let mac = nd.link_addr.unwrap_or(peer);
        let to_us = local.is_some_and(|l| l.interface == Some(port));
        if self.on_link6(nd.target, port) && !ethernet::is_multicast(&mac) {
            let now = self.now_ms;
            let neighbors = &self.shared.neighbors;
            let learned = match to_us {
                true => neighbors.learn(nd.target, port, mac, now),
                false => neighbors.refresh_existing(nd.target, port, mac, now),
            };
            if learned {
                stats::inc(&self.stats.nd_learned);
            }
        }
        match to_us || dst.is_multicast() {
            true => match self.hand_to_kernel(port, nd.target, KernelClass::Arp) {
                Ok(v) => Ok(v),
                Err(_) => Ok(Verdict::Consumed),
            },
            false if local.is_some() => Ok(Verdict::Consumed),
            false => Err(DropReason::NdNotForUs),
        }
    }

    /// Turns an echo request to one of the switch's addresses into its
    /// reply in place, sent back where it came from.
    fn echo_reply6<P: PacketBuf>(
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
        let mut ip = ipv6::Packet::new_unchecked(&mut data[l3..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        // Swapping the addresses leaves the pseudo-header sum as it was.
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_hop_limit(OWN_TTL);
        let mut msg = icmpv6::Packet::new_unchecked(ip.payload_mut());
        let code = msg.code();
        let csum = adjust16(
            msg.checksum(),
            u16::from_be_bytes([kind::ECHO_REQUEST, code]),
            u16::from_be_bytes([kind::ECHO_REPLY, code]),
        );
        msg.set_msg_type(kind::ECHO_REPLY);
        msg.set_checksum(csum);
        stats::inc(&self.stats.icmp_echo_replies);
        Ok(Verdict::Tx(port))
    }

    /// Overwrites the frame in `pkt` with a neighbour solicitation or
    /// advertisement (`msg_type`) about `target`, to `to` at `to_mac`, with
    /// the port's MAC as its link-layer address option. The source is the
    /// target itself for an advertisement, else the port's address towards
    /// the target. False when the buffer cannot be sized for it.
    fn write_nd<P: PacketBuf>(
        &self,
        pkt: &mut P,
        port: u16,
        msg_type: u8,
        (target, to, to_mac): (Ipv6Addr, Ipv6Addr, Mac),
        flags: u8,
    ) -> bool {
        let have = pkt.data().len();
        let sized = match have.cmp(&ND_FRAME_LEN) {
            std::cmp::Ordering::Less => pkt.append(ND_FRAME_LEN - have),
            std::cmp::Ordering::Greater => pkt.trim(have - ND_FRAME_LEN),
            std::cmp::Ordering::Equal => true,
        };
        if !sized {
            return false;
        }
        let mac = self.port_mac(port);
        let (src, option) = match msg_type {
            kind::NEIGHBOR_ADVERT => (target, OPT_TARGET_LL),
            _ => (self.shared.port_address6(port, target), OPT_SOURCE_LL),
        };
        let data = pkt.data_mut();
        let mut frame = ethernet::Frame::new_unchecked(&mut *data);
        frame.set_dst_addr(to_mac);
        frame.set_src_addr(mac);
        frame.set_ethertype(ethernet::ethertype::IPV6);
        let mut ip = ipv6::Packet::new_unchecked(&mut data[ethernet::HEADER_LEN..]);
        ip.set_version(6);
        ip.set_traffic_class(0);
        ip.set_flow_label(0);
        ip.set_payload_len(ND_LEN as u16);
        ip.set_next_header(next_header::ICMPV6);
        ip.set_hop_limit(ND_HOP_LIMIT);
        ip.set_src_addr(src);
        ip.set_dst_addr(to);
        let body = ip.payload_mut();
        body[..4].copy_from_slice(&[msg_type, 0, 0, 0]);
        body[4..8].copy_from_slice(&[flags, 0, 0, 0]);
        body[8..24].copy_from_slice(&target.octets());
        body[24..26].copy_from_slice(&[option, 1]);
        body[26..32].copy_from_slice(&mac);
        icmpv6::Packet::new_unchecked(body).fill_checksum(src, to);
        true
    }

    /// Writes a neighbour solicitation for next hop `target` on `port` into
    /// an empty buffer. False if the buffer cannot hold it.
    pub fn write_solicitation<P: PacketBuf>(
        &self,
        port: u16,
        target: Ipv6Addr,
        buf: &mut P,
    ) -> bool {
        let group = solicited_node(target);
        let dst = (target, group, multicast_mac(group));
        if !self.write_nd(buf, port, kind::NEIGHBOR_SOLICIT, dst, 0) {
            return false;
        }
        stats::inc(&self.stats.nd_requests);
        true
    }

    /// Writes an unsolicited neighbour advertisement of `ip` on `port`, to
    /// every node (sent at start-up and when a reload adds an address, so
    /// neighbours learn, or relearn, the switch's MAC for it).
    pub fn write_unsolicited_na<P: PacketBuf>(&self, port: u16, ip: Ipv6Addr, buf: &mut P) -> bool {
        let dst = (ip, ALL_NODES, multicast_mac(ALL_NODES));
        self.write_nd(buf, port, kind::NEIGHBOR_ADVERT, dst, FLAG_OVERRIDE)
    }
}

impl Worker {
    /// Writes the request for neighbour `ip` on `port` (see
    /// [`Worker::pop_neighbor_request`]): an ARP request or a neighbour
    /// solicitation. False if the buffer cannot hold it.
    pub fn write_neighbor_request<P: PacketBuf>(&self, port: u16, ip: IpAddr, buf: &mut P) -> bool {
        match ip {
            IpAddr::V4(ip) => self.write_arp_request(port, ip, buf),
            IpAddr::V6(ip) => self.write_solicitation(port, ip, buf),
        }
    }

    /// Writes the announcement of one of the switch's addresses on `port`:
    /// a gratuitous ARP or an unsolicited neighbour advertisement.
    pub fn write_announcement<P: PacketBuf>(&self, port: u16, ip: IpAddr, buf: &mut P) -> bool {
        match ip {
            IpAddr::V4(ip) => self.write_gratuitous_arp(port, ip, buf),
            IpAddr::V6(ip) => self.write_unsolicited_na(port, ip, buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv6::link_local;

    #[test]
    fn addresses_derived_from_macs_and_targets() {
        let mac = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
        assert_eq!(
            link_local(mac),
            "fe80::5eff:fe10:2030".parse::<Ipv6Addr>().unwrap()
        );
        let ip: Ipv6Addr = "2001:db8:1::1:2:3".parse().unwrap();
        assert_eq!(
            solicited_node(ip),
            "ff02::1:ff02:3".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(solicited_node(ip)),
            [0x33, 0x33, 0xff, 0x02, 0x00, 0x03]
        );
        assert!(is_link_local("fe80::1".parse().unwrap()));
        assert!(!is_link_local("fec0::1".parse().unwrap()));
    }

    #[test]
    fn options_are_walked_and_bad_ones_refused() {
        let mut msg = vec![135, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        // An unknown option first, then the source link-layer address.
        msg.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]);
        msg.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 9]);
        let nd = parse_nd(&msg, 255, OPT_SOURCE_LL).ok().unwrap();
        assert_eq!(nd.link_addr, Some([2, 0, 0, 0, 0, 9]));
        assert!(parse_nd(&msg, 254, OPT_SOURCE_LL).is_err(), "hop limit");
        let mut zero = msg.clone();
        zero[25] = 0;
        assert!(
            parse_nd(&zero, 255, OPT_SOURCE_LL).is_err(),
            "option of length 0"
        );
        let mut long = msg.clone();
        long[33] = 2;
        assert!(
            parse_nd(&long, 255, OPT_SOURCE_LL).is_err(),
            "option past the end"
        );
        let mut code = msg.clone();
        code[1] = 1;
        assert!(parse_nd(&code, 255, OPT_SOURCE_LL).is_err(), "code");
        let mut multi = msg;
        multi[8] = 0xff;
        assert!(
            parse_nd(&multi, 255, OPT_SOURCE_LL).is_err(),
            "multicast target"
        );
    }
}
