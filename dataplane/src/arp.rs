//! The ARP responder and resolver: answers for owned addresses, learns the
//! MACs of hosts that talk to the switch, and builds its own requests.

use crate::exception::KernelClass;
use crate::packet::PacketBuf;
use crate::stats::{self, DropReason};
use crate::wire::{arp, ethernet};
use crate::worker::{Verdict, Worker};
use std::net::{IpAddr, Ipv4Addr};

/// Ethernet + ARP, without padding.
pub const ARP_FRAME_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;

impl Worker {
    pub(crate) fn arp<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
    ) -> Result<Verdict, DropReason> {
        let a = arp::Packet::new_checked(&pkt.data()[l3..])?;
        let (op, sender_ip, sender_hw, target_ip) =
            (a.operation(), a.sender_ip(), a.sender_hw(), a.target_ip());
        let ours = self.shared.answers_arp(target_ip, port);
        let on_link = self
            .shared
            .routes
            .connected(sender_ip)
            .is_some_and(|r| r.port == port);
        if on_link && !ethernet::is_multicast(&sender_hw) {
            let learned = if ours && sender_ip != target_ip {
                self.shared
                    .neighbors
                    .learn(sender_ip, port, sender_hw, self.now_ms)
            } else {
                // Gratuitous or overheard: only refresh what we already use.
                self.shared
                    .neighbors
                    .refresh_existing(sender_ip, port, sender_hw, self.now_ms)
            };
            if learned {
                stats::inc(&self.stats.arp_learned);
            }
        }
        match op {
            arp::op::REQUEST
                if ours && sender_ip != target_ip && !ethernet::is_multicast(&sender_hw) =>
            {
                let mac = self.port_mac(port);
                let data = pkt.data_mut();
                let mut frame = ethernet::Frame::new_unchecked(&mut *data);
                frame.set_dst_addr(sender_hw);
                frame.set_src_addr(mac);
                let mut reply = arp::Packet::new_unchecked(&mut data[l3..]);
                reply.set_operation(arp::op::REPLY);
                reply.set_sender_hw(mac);
                reply.set_sender_ip(target_ip);
                reply.set_target_hw(sender_hw);
                reply.set_target_ip(sender_ip);
                stats::inc(&self.stats.arp_replies);
                Ok(Verdict::Tx(port))
            }
            // The kernel interface asked too (its own neighbour table for
            // health checks and sockets): it gets the reply after the dataplane
            // learned from it.
            arp::op::REPLY
                if ours
                    && self
                        .shared
                        .local(target_ip)
                        .is_some_and(|l| l.interface == Some(port)) =>
            {
                match self.hand_to_kernel(port, sender_ip, KernelClass::Arp) {
                    Ok(v) => Ok(v),
                    Err(_) => Ok(Verdict::Consumed),
                }
            }
            arp::op::REPLY if ours => Ok(Verdict::Consumed),
            _ => Err(DropReason::ArpNotForUs),
        }
    }

    /// Writes a broadcast ARP request for `target` into an empty buffer.
    /// Returns false if the buffer cannot hold it.
    pub fn write_arp_request<P: PacketBuf>(
        &self,
        port: u16,
        target: Ipv4Addr,
        buf: &mut P,
    ) -> bool {
        let have = buf.data().len();
        if have < ARP_FRAME_LEN && !buf.append(ARP_FRAME_LEN - have) {
            return false;
        }
        let mac = self.port_mac(port);
        let sender_ip = self.shared.port_address(port, target);
        let data = buf.data_mut();
        let mut frame = ethernet::Frame::new_unchecked(&mut *data);
        frame.set_dst_addr(ethernet::BROADCAST);
        frame.set_src_addr(mac);
        frame.set_ethertype(ethernet::ethertype::ARP);
        let mut req = arp::Packet::new_unchecked(&mut data[ethernet::HEADER_LEN..]);
        req.fill_header();
        req.set_operation(arp::op::REQUEST);
        req.set_sender_hw(mac);
        req.set_sender_ip(sender_ip);
        req.set_target_hw([0; 6]);
        req.set_target_ip(target);
        stats::inc(&self.stats.arp_requests);
        true
    }

    /// Writes a gratuitous ARP announcing `ip` on `port` (sent at start-up so
    /// neighbours learn the switch's MAC for its VIPs and addresses).
    pub fn write_gratuitous_arp<P: PacketBuf>(&self, port: u16, ip: Ipv4Addr, buf: &mut P) -> bool {
        if !self.write_arp_request(port, ip, buf) {
            return false;
        }
        let data = buf.data_mut();
        let mut req = arp::Packet::new_unchecked(&mut data[ethernet::HEADER_LEN..]);
        req.set_sender_ip(ip);
        true
    }
}

/// At most one ARP request per next hop per this many milliseconds.
pub(crate) const ARP_INTERVAL_MS: u32 = 1000;
const LIMITER_SETS: usize = 64;
const LIMITER_WAYS: usize = 4;

/// When each next hop was last asked for, exactly: a request is admitted
/// only if its hop was not asked within `ARP_INTERVAL_MS`, and a hop's
/// record is never replaced before that interval is over, so no collision
/// can let a hop be asked twice within it. When every slot of a hop's set
/// is that young, the request waits (held frames ask again each loop turn).
#[derive(Debug)]
pub(crate) struct RequestLimiter {
    /// (port << 32 | address, clock stamp of the request); key 0 is free.
    slots: Box<[(u64, u32)]>,
}

impl Default for RequestLimiter {
    fn default() -> RequestLimiter {
        RequestLimiter {
            slots: vec![(0, 0); LIMITER_SETS * LIMITER_WAYS].into_boxed_slice(),
        }
    }
}

impl RequestLimiter {
    /// Whether a request for `ip` on `port` may go now (and records it).
    /// An IPv6 address is recorded by a fingerprint: two that share one
    /// share their interval (one may wait), never more requests.
    pub(crate) fn admit(&mut self, port: u16, ip: IpAddr, now: u32) -> bool {
        let addr = match ip {
            IpAddr::V4(ip) => u64::from(u32::from(ip)),
            IpAddr::V6(ip) => crate::fixedmap::MapKey::mix(u128::from(ip)) | 1 << 63,
        };
        let key = (addr ^ u64::from(port) << 32) | 1 << 48;
        let set = (crate::fixedmap::mix64(key) as usize % LIMITER_SETS) * LIMITER_WAYS;
        let slots = &mut self.slots[set..set + LIMITER_WAYS];
        let young = |(_, at): &(u64, u32)| now.wrapping_sub(*at) < ARP_INTERVAL_MS;
        let slot = match slots.iter().position(|(k, _)| *k == key) {
            Some(i) if young(&slots[i]) => return false,
            Some(i) => i,
            None => match slots.iter().position(|s| s.0 == 0 || !young(s)) {
                Some(i) => i,
                None => return false,
            },
        };
        slots[slot] = (key, now);
        true
    }
}
