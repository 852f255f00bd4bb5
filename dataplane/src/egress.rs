//! Egress: a rewritten frame's route, next hop and MACs, of either family,
//! through a small per-worker cache of where frames went recently.

use crate::packet::PacketBuf;
use crate::route::NextHop;
use crate::stats::{self, DropReason, WorkerStats};
use crate::wire::{ethernet, Mac};
use crate::worker::{Verdict, Worker};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Places the worker sent frames to recently.
pub(crate) const HOP_CACHE: usize = 64;
/// How long a cached place is trusted before the neighbour table (and the
/// routes) are asked again.
const HOP_CACHE_MS: u64 = 100;

/// Where this worker sent frames recently: packets to the same place skip
/// the shared neighbour table (a hash and a seqlock read) and, for a routed
/// destination, the route lookup, for `HOP_CACHE_MS`, after which both are
/// asked again (and ARP or NDP refreshes a stale entry as usual). A changed
/// MAC is picked up within that time; changed routes or ports at once (a
/// new snapshot empties the cache, see `reload`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CachedHop {
    key: HopKey,
    port: u16,
    /// The frame's destination and source MACs.
    mac: Mac,
    src: Mac,
    until_ms: u64,
}

/// What a cached place is: a destination as routed, or a next hop on a
/// port, of either family. The default matches nothing cached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct HopKey {
    /// The address, an IPv4 one in the low 32 bits.
    addr: u128,
    /// [`ROUTED`] or [`NEXT_HOP`] with the port, and [`V6`] for IPv6.
    what: u32,
}

const ROUTED: u32 = 1 << 17;
const NEXT_HOP: u32 = 1 << 18;
const V6: u32 = 1 << 19;

impl HopKey {
    #[inline(always)]
    fn routed(dst: IpAddr) -> HopKey {
        match dst {
            IpAddr::V4(ip) => HopKey {
                addr: u128::from(u32::from(ip)),
                what: ROUTED,
            },
            IpAddr::V6(ip) => HopKey {
                addr: u128::from(ip),
                what: ROUTED | V6,
            },
        }
    }

    #[inline(always)]
    fn next_hop(ip: IpAddr, port: u16) -> HopKey {
        let HopKey { addr, what } = HopKey::routed(ip);
        HopKey {
            addr,
            what: (what & V6) | NEXT_HOP | u32::from(port),
        }
    }

    #[inline(always)]
    fn slot(self) -> usize {
        let folded = (self.addr as u64) ^ (self.addr >> 64) as u64 ^ u64::from(self.what);
        (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize % HOP_CACHE
    }
}

impl Worker {
    /// Routes a rewritten IPv4 frame towards `dst` and sets its MACs.
    #[inline(always)]
    pub(crate) fn egress<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        dst: Ipv4Addr,
    ) -> Result<Verdict, DropReason> {
        let key = HopKey::routed(dst.into());
        match self.cached_hop(key) {
            Some(hop) => Ok(send_via(&self.stats, pkt, hop)),
            None => self.egress_routed(pkt, dst, key),
        }
    }

    /// [`Worker::egress`] to a destination not cached: routed, cached.
    #[inline(never)]
    fn egress_routed<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        dst: Ipv4Addr,
        key: HopKey,
    ) -> Result<Verdict, DropReason> {
        let hop = self.shared.routes.lookup(dst).ok_or(DropReason::NoRoute)?;
        match self.hop_mac(hop.port, hop.next_hop.into()) {
            Some(cached) => {
                self.remember_hop(key, cached);
                Ok(send_via(&self.stats, pkt, &cached))
            }
            None => Ok(self.hold(hop)),
        }
    }

    /// Sends a frame to an already routed next hop: resolves its MAC and
    /// sets the frame's MACs; while the MAC is unknown the frame is held.
    #[inline]
    pub(crate) fn egress_via<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        hop: NextHop,
    ) -> Result<Verdict, DropReason> {
        match self.hop_mac(hop.port, hop.next_hop.into()) {
            Some(cached) => Ok(send_via(&self.stats, pkt, &cached)),
            None => Ok(self.hold(hop)),
        }
    }

    /// Routes a rewritten IPv6 frame towards `dst` and sets its MACs.
    #[inline(always)]
    pub(crate) fn egress6<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        dst: Ipv6Addr,
    ) -> Result<Verdict, DropReason> {
        let key = HopKey::routed(dst.into());
        match self.cached_hop(key) {
            Some(hop) => Ok(send_via(&self.stats, pkt, hop)),
            None => self.egress6_routed(pkt, dst, key),
        }
    }

    /// [`Worker::egress6`] to a destination not cached: routed, cached.
    #[inline(never)]
    fn egress6_routed<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        dst: Ipv6Addr,
        key: HopKey,
    ) -> Result<Verdict, DropReason> {
        let hop = self.shared.routes6.lookup(dst).ok_or(DropReason::NoRoute)?;
        match self.hop_mac(hop.port, hop.next_hop.into()) {
            Some(cached) => {
                self.remember_hop(key, cached);
                Ok(send_via(&self.stats, pkt, &cached))
            }
            None => Ok(self.hold6_counted(hop)),
        }
    }

    /// Sends an IPv6 frame to an already routed next hop (see
    /// [`Worker::egress_via`]).
    pub(crate) fn egress6_via<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        hop: NextHop<Ipv6Addr>,
    ) -> Result<Verdict, DropReason> {
        match self.hop_mac(hop.port, hop.next_hop.into()) {
            Some(cached) => Ok(send_via(&self.stats, pkt, &cached)),
            None => Ok(self.hold6_counted(hop)),
        }
    }

    /// Where frames to next hop `ip` on `port` go, from the cache or the
    /// neighbour table (then cached); `None` while its MAC is unknown.
    #[inline]
    fn hop_mac(&mut self, port: u16, ip: IpAddr) -> Option<CachedHop> {
        let key = HopKey::next_hop(ip, port);
        if let Some(cached) = self.cached_hop(key) {
            return Some(*cached);
        }
        let mac = self.neighbor_mac(port, ip)?;
        let cached = CachedHop {
            key,
            port,
            mac,
            src: self.port_mac(port),
            until_ms: self.now_ms + HOP_CACHE_MS,
        };
        self.remember_hop(key, cached);
        Some(cached)
    }

    #[inline(always)]
    fn cached_hop(&self, key: HopKey) -> Option<&CachedHop> {
        let c = &self.hops[key.slot()];
        (c.key == key && self.now_ms < c.until_ms).then_some(c)
    }

    #[inline(always)]
    fn remember_hop(&mut self, key: HopKey, hop: CachedHop) {
        self.hops[key.slot()] = CachedHop { key, ..hop };
    }

    /// Forgets every cached place (the routes or ports changed).
    pub(crate) fn forget_hops(&mut self) {
        self.hops = [CachedHop::default(); HOP_CACHE];
    }

    /// A frame whose IPv4 next hop's MAC is not known yet (see [`Verdict::Hold`]).
    #[cold]
    fn hold(&mut self, hop: NextHop) -> Verdict {
        stats::inc(&self.stats.held);
        Verdict::Hold {
            port: hop.port,
            next_hop: hop.next_hop,
        }
    }

    /// A frame whose IPv6 next hop's MAC is not known yet (see [`Verdict::Hold6`]).
    #[cold]
    fn hold6_counted(&mut self, hop: NextHop<Ipv6Addr>) -> Verdict {
        stats::inc(&self.stats.held);
        self.hold6(hop.port, hop.next_hop)
    }
}

/// Sets a frame's MACs for `hop` and sends it there.
#[inline(always)]
fn send_via<P: PacketBuf>(stats: &WorkerStats, pkt: &mut P, hop: &CachedHop) -> Verdict {
    let mut frame = ethernet::Frame::new_unchecked(pkt.data_mut());
    frame.set_dst_addr(hop.mac);
    frame.set_src_addr(hop.src);
    stats::inc(&stats.forwarded);
    Verdict::Tx(hop.port)
}
