//! A worker: the per-core state and the entry of every received frame.
//!
//! The path of a packet reads top to bottom across a few files, one per stage:
//! here the L2 dispatch, egress (route, neighbour, MACs) and maintenance;
//! `arp.rs` the ARP responder; `ipv4.rs` the virtual-server and session path;
//! `icmp.rs` echo replies and ICMP error translation.

use crate::conntrack;
use crate::egress::{CachedHop, HOP_CACHE};
use crate::exception::{KernelClass, KernelLimiter, TokenBucket};
use crate::flow::{Family, Table};
use crate::frag::FragTable;
use crate::packet::PacketBuf;
use crate::sched::pick::Balancer;
use crate::service::PortRing;
use crate::session::{Session, Session4, Session6, SessionTable};
use crate::shared::Shared;
use crate::stats::{self, DropReason, WorkerStats};
use crate::sync::{SyncOp, SyncOut, REFRESH_PASSES};
use crate::wire::{self, ethernet, Mac};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// What to do with a frame after processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit on this port (the frame was rewritten in place).
    Tx(u16),
    /// Transmit on this port as IPv4 fragments: the frame (an encapsulated
    /// packet whose DF is clear) is longer than the port's MTU. The daemon
    /// cuts it with [`Worker::split_fragment`] while [`Worker::oversize`]
    /// says so, each fragment after the first in a fresh buffer.
    TxFragmented(u16),
    /// Handled, nothing to send (e.g. an ARP reply that taught us a MAC).
    Consumed,
    /// Dropped; the reason's counter was incremented.
    Drop(DropReason),
    /// Belongs to the sessions of another worker: hand it over.
    Redirect(u16),
    /// For the switch's own kernel interface on the port it arrived on (the
    /// exception path).
    Kernel,
    /// Ready for `port` but the MAC of `next_hop` is not known yet (an ARP
    /// request is on its way): the daemon holds the frame a little and sends
    /// it once [`Worker::resolve_held`] finds the MAC.
    /// (An IPv4 next hop: the verdict stays 8 bytes, returned in registers.)
    Hold { port: u16, next_hop: Ipv4Addr },
    /// [`Verdict::Hold`] for an IPv6 next hop, named by a handle:
    /// [`Worker::held_hop6`] gives the address, until `HELD6` more IPv6
    /// frames were held (the daemon asks at once, after the burst).
    Hold6 { port: u16, index: u16 },
    /// A fragment that came before the first fragment of its datagram: the
    /// daemon holds it, untouched, and runs it again through
    /// [`Worker::replay_fragment`] once [`Worker::fragments_recorded`]
    /// moved, until `FRAG_LIFETIME_MS` is over.
    HoldFragment,
}

impl From<wire::Error> for DropReason {
    fn from(e: wire::Error) -> DropReason {
        match e {
            wire::Error::Truncated => DropReason::Truncated,
            wire::Error::Malformed => DropReason::Malformed,
        }
    }
}

const ARP_QUEUE: usize = 16;

/// Neighbour requests (ARP, NDP solicitations) the worker wants sent; the
/// daemon drains them after each burst.
#[derive(Debug)]
pub(crate) struct ArpOut {
    queue: [(u16, IpAddr); ARP_QUEUE],
    len: usize,
    limiter: crate::arp::RequestLimiter,
}

/// A session of either family, as a packet to generate carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnySession {
    V4(Session4),
    V6(Session6),
}

/// Packets the worker wants generated (it owns no buffers): the daemon
/// drains them after each burst into fresh buffers via [`Worker::write_generated`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generated {
    /// An ACK with numbers outside the receiver's window, to the client from
    /// the VIP (`to_client`) or to the member from the client side: the
    /// receiver answers with an ACK carrying its exact sequence numbers,
    /// which lets the switch reset an idle session (`on_member_down =
    /// "reset"`, `reset_on_timeout`).
    Probe {
        session: AnySession,
        to_client: bool,
    },
    /// The PROXY protocol header of a session alone, in a segment from the
    /// client's side to the member at the client's first sequence number
    /// `seq`, acknowledging `ack` and offering the client's `window`: the
    /// segment that was to carry it had no room for it (see `proxy`).
    ProxyHeader {
        session: AnySession,
        seq: u32,
        ack: u32,
        window: u16,
    },
    /// A RST to the client (`to_client`) or to the member of a session.
    Rst {
        session: AnySession,
        to_client: bool,
        seq: u32,
        ack: u32,
        flags: u8,
    },
}

const GENERATED_QUEUE: usize = 64;

/// The TTL (hop limit) of the packets the switch writes itself: replies,
/// errors, RSTs and probes, tunnels' outer headers.
pub(crate) const OWN_TTL: u8 = 64;

/// IPv6 session entries of a worker when no link has an IPv6 address.
const IPV6_TOKEN_SESSIONS: u32 = 64;

/// Datagrams whose fragments a worker follows at once.
const FRAG_RECORDS: usize = 4096;

/// Refusals answered per second and worker (and burst).
pub const REFUSAL_RATE: u32 = 2_000;

/// IPv6 next hops of held frames, named by [`Verdict::Hold6`]: more than a
/// burst (`MAX_BURST`), so none is overwritten before the daemon reads it.
const HELD6: usize = 1024;

/// All state of one worker; owned by its lcore alone.
#[derive(Debug)]
pub struct Worker {
    pub id: u16,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stats: Arc<WorkerStats>,
    /// Sessions of each family.
    pub(crate) v4: Table<u32>,
    pub(crate) v6: Table<u128>,
    /// Free SNAT ports of this worker, one ring per `Shared::snat_addrs`.
    pub(crate) snat: Vec<PortRing>,
    /// Member choice: cursors, smooth-WRR state, persistence entries.
    pub(crate) balancer: Balancer,
    pub(crate) snat_rr: u32,
    /// The process clock (milliseconds since boot, the same epoch on every
    /// lcore). Sessions keep its low 32 bits and compare them with wrapping
    /// arithmetic, exact for timeouts under 24 days.
    pub(crate) now_ms: u64,
    pub(crate) arp: ArpOut,
    /// Packets to generate, first in first out: `generated_head` is the
    /// oldest of `generated_len`.
    generated: [Option<Generated>; GENERATED_QUEUE],
    generated_head: usize,
    generated_len: usize,
    kernel: KernelLimiter,
    /// Refusals answered (RSTs, ICMP port unreachables for new sessions no
    /// member can take), so spoofed sources cannot turn the switch into a
    /// reflector.
    pub(crate) refusals: TokenBucket,
    /// When the token buckets were last refilled.
    refilled_ms: u64,
    last_refresh_ms: u64,
    ip_ident: u16,
    /// Where the fragments of recent datagrams go (see `frag`).
    pub(crate) frags: FragTable,
    /// Set while a held fragment runs again: it is not counted as held twice.
    replaying: bool,
    /// Whether half-open sessions expire early (a SYN flood), as of the
    /// last `maintain`.
    pub(crate) syn_pressure: bool,
    pub(crate) hops: [CachedHop; HOP_CACHE],
    /// Next hops of IPv6 frames held, a ring (see [`Verdict::Hold6`]).
    held6: Box<[Ipv6Addr]>,
    held6_next: u16,
    /// Changes queued for the peers of a pair (`sync`).
    pub(crate) sync: SyncOut,
    /// Whether steady sessions' frames take the fast path (`fast`); off
    /// only to compare it with the general path (tests, benchmarks).
    fast_path: bool,
}

impl Worker {
    /// Allocates everything the worker will ever need (the session table, SNAT rings).
    pub fn new(id: u16, shared: Arc<Shared>, stats: Arc<WorkerStats>, sessions: u32) -> Worker {
        Worker::new_advised(id, shared, stats, sessions, &|_, _| {})
    }

    /// [`Worker::new`], passing `advise` to the session table (see
    /// `SessionTable::with_capacity_advised`).
    pub fn new_advised(
        id: u16,
        shared: Arc<Shared>,
        stats: Arc<WorkerStats>,
        sessions: u32,
        advise: &dyn Fn(usize, usize),
    ) -> Worker {
        let snat = shared
            .snat_addrs
            .iter()
            .map(|_| PortRing::new(id, shared.workers))
            .collect();
        let balancer = Balancer::new(&shared, id, crate::reload::persist_entries(sessions));
        // IPv6 sessions need an IPv6 address on a link (the configuration
        // checks); without one the IPv6 table is a token.
        let ipv6 = shared.ports.iter().any(|p| !p.addresses6.is_empty());
        let sessions6 = if ipv6 { sessions } else { IPV6_TOKEN_SESSIONS };
        Worker {
            id,
            v4: Table::new(sessions, advise),
            v6: Table::new(sessions6, advise),
            snat,
            balancer,
            snat_rr: 0,
            now_ms: 0,
            arp: ArpOut {
                queue: [(0, IpAddr::V4(Ipv4Addr::UNSPECIFIED)); ARP_QUEUE],
                len: 0,
                limiter: crate::arp::RequestLimiter::default(),
            },
            generated: [None; GENERATED_QUEUE],
            generated_head: 0,
            generated_len: 0,
            kernel: KernelLimiter::default(),
            refusals: TokenBucket::new(REFUSAL_RATE),
            refilled_ms: 0,
            last_refresh_ms: 0,
            ip_ident: 0,
            frags: FragTable::with_capacity(FRAG_RECORDS),
            replaying: false,
            syn_pressure: false,
            hops: [CachedHop::default(); HOP_CACHE],
            held6: vec![Ipv6Addr::UNSPECIFIED; HELD6].into_boxed_slice(),
            held6_next: 0,
            sync: SyncOut::new(shared.sync.is_some()),
            fast_path: true,
            shared,
            stats,
        }
    }

    /// Turns the established fast path on or off (it is on). Every frame
    /// then takes the general path, which gives the same result; for
    /// comparing the two (`tests/differential.rs`, the benchmarks).
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_path = on;
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    pub fn sessions(&self) -> &SessionTable<Session4> {
        &self.v4.sessions
    }

    /// The IPv6 sessions.
    pub fn sessions6(&self) -> &SessionTable<Session6> {
        &self.v6.sessions
    }

    /// Sets the clock (process milliseconds); called once per loop turn.
    #[inline]
    pub fn set_time(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// The low 32 bits of the clock, as sessions store it.
    #[inline]
    pub(crate) fn stamp(&self) -> u32 {
        self.now_ms as u32
    }

    /// Starts loading the session-table buckets a frame will look up, so a
    /// burst's cache misses overlap instead of queueing one after another.
    /// A light look at untagged IPv4 TCP/UDP headers; anything else is left
    /// for `process` to judge.
    #[inline]
    pub fn prefetch_session(&self, data: &[u8]) {
        const L3: usize = ethernet::HEADER_LEN;
        if data.len() < L3 + 20 || data[12..14] != [0x08, 0x00] {
            return;
        }
        let ihl = usize::from(data[L3] & 0x0f) * 4;
        let protocol = data[L3 + 9];
        if (protocol != 6 && protocol != 17) || data.len() < L3 + ihl + 4 {
            return;
        }
        let word =
            |at: usize| u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let ports = word(L3 + ihl);
        let t = crate::session::Tuple4 {
            src: word(L3 + 12),
            dst: word(L3 + 16),
            sport: (ports >> 16) as u16,
            dport: ports as u16,
            proto: protocol,
        };
        self.v4.sessions.prefetch(t.hash());
    }

    /// Counts frames received on `port`, once per burst (the caller's job:
    /// [`Worker::process`] does not count them).
    #[inline]
    pub fn count_rx(&self, port: u16, packets: u64, bytes: u64) {
        let c = &self.stats.ports[usize::from(port) % stats::MAX_PORTS];
        stats::add(&c.rx_packets, packets);
        stats::add(&c.rx_bytes, bytes);
    }

    /// Runs a fragment held after [`Verdict::HoldFragment`] through the
    /// pipeline again (its first fragment may have passed meanwhile).
    pub fn replay_fragment<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        redirected: bool,
    ) -> Verdict {
        self.replaying = true;
        let v = self.process(port, pkt, redirected);
        self.replaying = false;
        v
    }

    /// How many datagrams' first fragments passed so far: held fragments are
    /// worth running again when it moves.
    pub fn fragments_recorded(&self) -> u64 {
        self.frags.recorded()
    }

    /// Whether a fragment without a route may wait for its first (counted
    /// as held once, not again when it runs again).
    pub(crate) fn may_hold_fragment(&mut self, key: crate::frag::FragKey) -> bool {
        self.replaying || self.frags.hold(key, self.stamp())
    }

    /// Processes one frame received on `port` (counted by the caller with
    /// [`Worker::count_rx`]); `redirected` frames came from another worker.
    #[inline]
    pub fn process<P: PacketBuf>(&mut self, port: u16, pkt: &mut P, redirected: bool) -> Verdict {
        let verdict = match self.dispatch(port, pkt, redirected) {
            Ok(v) => v,
            Err(r) => Verdict::Drop(r),
        };
        match verdict {
            Verdict::Drop(r) => self.stats.dropped(r),
            Verdict::Kernel | Verdict::Hold { .. } | Verdict::Hold6 { .. } => {}
            Verdict::Redirect(_) => stats::inc(&self.stats.redirected),
            _ => {}
        }
        verdict
    }

    fn dispatch<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        if self.fast_path {
            if let Some(v) = self.fast(port, pkt) {
                return v;
            }
        }
        let data = pkt.data();
        let l2 = ethernet::l3_offset(data)?;
        let frame = ethernet::Frame::new_unchecked(data);
        let our_mac = self.port_mac(port);
        if frame.src_addr() == our_mac {
            return Err(DropReason::OwnFrame);
        }
        let dst = frame.dst_addr();
        if dst != our_mac && !ethernet::is_multicast(&dst) {
            return Err(DropReason::OtherMac);
        }
        if l2.vlan.is_some() {
            return Err(DropReason::VlanTagged);
        }
        match l2.ethertype {
            ethernet::ethertype::IPV4 => self.ipv4(port, pkt, l2.l3_offset, redirected),
            ethernet::ethertype::ARP => self.arp(port, pkt, l2.l3_offset),
            ethernet::ethertype::IPV6 => self.ipv6(port, pkt, l2.l3_offset, redirected),
            _ => Err(DropReason::UnsupportedEthertype),
        }
    }

    #[inline]
    pub(crate) fn port_mac(&self, port: u16) -> Mac {
        self.shared
            .ports
            .get(usize::from(port))
            .map(|p| p.mac)
            .unwrap_or_default()
    }

    /// The usable MAC of next hop `ip` on `port`, asking ARP or NDP for it
    /// when it is unknown, expired or going stale.
    #[inline]
    pub(crate) fn neighbor_mac(&mut self, port: u16, ip: impl Into<IpAddr>) -> Option<Mac> {
        let ip = ip.into();
        match self.shared.neighbors.lookup(ip, port) {
            Some(e) => {
                let (usable, stale) = e.usable(self.now_ms);
                if stale {
                    self.request_neighbor(port, ip);
                }
                usable.then_some(e.mac)
            }
            None => {
                self.request_neighbor(port, ip);
                None
            }
        }
    }

    #[inline]
    fn set_macs<P: PacketBuf>(&mut self, pkt: &mut P, port: u16, mac: Mac) -> Verdict {
        let src = self.port_mac(port);
        let mut frame = ethernet::Frame::new_unchecked(pkt.data_mut());
        frame.set_dst_addr(mac);
        frame.set_src_addr(src);
        stats::inc(&self.stats.forwarded);
        Verdict::Tx(port)
    }

    /// A held frame (see [`Verdict::Hold`]): `Tx` with its MACs set once the
    /// next hop's MAC is known, else `Hold` (or `Hold6`) again.
    pub fn resolve_held<P: PacketBuf>(
        &mut self,
        port: u16,
        next_hop: IpAddr,
        pkt: &mut P,
    ) -> Verdict {
        match (self.neighbor_mac(port, next_hop), next_hop) {
            // A tunnelled packet too long for the link is cut, as when it
            // was sent at once (`dsr`); nothing else is.
            (Some(mac), _) => match self.set_macs(pkt, port, mac) {
                Verdict::Tx(p) if self.oversize(p, pkt) && tunnelled(pkt) => {
                    Verdict::TxFragmented(p)
                }
                v => v,
            },
            (None, IpAddr::V4(next_hop)) => Verdict::Hold { port, next_hop },
            (None, IpAddr::V6(hop)) => self.hold6(port, hop),
        }
    }

    /// The IPv6 next hop of a frame held as [`Verdict::Hold6`] with `index`.
    pub fn held_hop6(&self, index: u16) -> Ipv6Addr {
        self.held6[usize::from(index) % HELD6]
    }

    /// Holds a frame for IPv6 next hop `hop` on `port`.
    #[cold]
    pub(crate) fn hold6(&mut self, port: u16, hop: Ipv6Addr) -> Verdict {
        let index = self.held6_next;
        self.held6[usize::from(index) % HELD6] = hop;
        self.held6_next = (index + 1) % HELD6 as u16;
        Verdict::Hold6 { port, index }
    }

    /// Whether the IPv4 packet in `pkt` is longer than `port`'s MTU (an
    /// encapsulated one, see [`Verdict::TxFragmented`]).
    pub fn oversize<P: PacketBuf>(&self, port: u16, pkt: &P) -> bool {
        let ip = pkt.data().get(ethernet::HEADER_LEN..).unwrap_or_default();
        let total = wire::ipv4::Packet::new_checked(ip).map_or(0, |ip| ip.total_len());
        total > self.port_mtu(port)
    }

    /// The IP MTU of `port`.
    pub(crate) fn port_mtu(&self, port: u16) -> u16 {
        self.shared
            .ports
            .get(usize::from(port))
            .map_or(1500, |p| p.mtu)
    }

    /// Cuts the first fragment off the oversize IPv4 packet in `pkt` (see
    /// [`Verdict::TxFragmented`]); the rest goes to `tail`, an empty
    /// buffer. False, counted, when the packet may not be cut (DF set) or
    /// `tail` has no room.
    pub fn split_fragment<P: PacketBuf>(&mut self, port: u16, pkt: &mut P, tail: &mut P) -> bool {
        let mtu = self.port_mtu(port);
        if !crate::frag::split_off(pkt, tail, ethernet::HEADER_LEN, mtu) {
            self.stats.dropped(DropReason::TooBig);
            return false;
        }
        stats::inc(&self.stats.fragments_made);
        true
    }

    /// Queues an ARP request or neighbour solicitation for `ip` on `port`,
    /// at most one per second per address (see [`crate::arp::RequestLimiter`]).
    pub(crate) fn request_neighbor(&mut self, port: u16, ip: IpAddr) {
        if self.arp.len == ARP_QUEUE {
            return;
        }
        if !self.arp.limiter.admit(port, ip, self.stamp()) {
            return;
        }
        self.arp.queue[self.arp.len] = (port, ip);
        self.arp.len += 1;
    }

    /// An IPv4 identification for a header the switch writes.
    #[inline]
    pub(crate) fn next_ip_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// The next neighbour request to send, if any: (port, target address);
    /// [`Worker::write_neighbor_request`] writes it.
    pub fn pop_neighbor_request(&mut self) -> Option<(u16, IpAddr)> {
        if self.arp.len == 0 {
            return None;
        }
        self.arp.len -= 1;
        Some(self.arp.queue[self.arp.len])
    }

    /// Expires idle sessions and starts resetting those of members that went
    /// down (where the pool asks for it), examining at most `budget` entries;
    /// refills the kernel rate limiter; and (on worker 0, once a second)
    /// keeps the MACs of members and gateways fresh.
    pub fn maintain(&mut self, budget: u32) {
        let pressure = self.syn_pressure();
        self.syn_pressure = pressure;
        let now = self.now_ms;
        let stamp = now as u32;
        let elapsed = now.saturating_sub(self.refilled_ms).min(1000) as u32;
        if elapsed > 0 {
            self.refilled_ms = now;
            self.kernel.refill(elapsed);
            self.refusals.refill(elapsed);
        }
        let (shared, stats) = (&*self.shared, &*self.stats);
        let mut sweep = Sweep {
            shared,
            stats,
            sync: &mut self.sync,
            worker: self.id,
            snat: &mut self.snat,
            balancer: &mut self.balancer,
            queue: (
                &mut self.generated,
                self.generated_head,
                &mut self.generated_len,
            ),
            stamp,
            pressure,
        };
        let (removed4, reset4) = sweep.table(&mut self.v4, budget);
        let (removed6, reset6) = sweep.table(&mut self.v6, budget);
        let (removed, reset) = (removed4 + removed6, reset4 + reset6);
        if removed > 0 {
            stats::add(&self.stats.sessions_expired, u64::from(removed - reset));
            stats::add(&self.stats.sessions_reset, u64::from(reset));
            self.count_active();
        }
        let b = &mut self.balancer;
        b.persist.sweep(budget as usize, stamp);
        stats::set(&stats.persistence_entries, u64::from(b.persist.len()));
        stats::set(&stats.persistence_hits, b.persist_hits);
        stats::set(&stats.persistence_evicted, b.persist.evicted());
        if self.id == 0 && now.saturating_sub(self.last_refresh_ms) >= 1000 {
            self.last_refresh_ms = now;
            self.refresh_neighbors();
        }
    }

    /// Asks for the MACs of members and gateways not known or going stale, so
    /// the first packet of a session rarely waits for ARP or NDP.
    fn refresh_neighbors(&mut self) {
        let shared = self.shared.clone();
        let members = shared
            .servers()
            .flat_map(|(_, vs)| vs.members.iter().map(|m| m.ip));
        let gateways = (shared.routes.routes().iter())
            .filter_map(|r| r.gateway.map(IpAddr::V4))
            .chain(
                shared
                    .routes6
                    .routes()
                    .iter()
                    .filter_map(|r| r.gateway.map(IpAddr::V6)),
            );
        for ip in members.chain(gateways) {
            let hop = match ip {
                IpAddr::V4(ip) => shared
                    .routes
                    .lookup(ip)
                    .map(|h| (h.port, h.next_hop.into())),
                IpAddr::V6(ip) => shared
                    .routes6
                    .lookup(ip)
                    .map(|h| (h.port, h.next_hop.into())),
            };
            let Some((port, next_hop)) = hop else {
                continue;
            };
            let fresh =
                (shared.neighbors.lookup(next_hop, port)).is_some_and(|e| !e.usable(self.now_ms).1);
            if !fresh {
                self.request_neighbor(port, next_hop);
            }
        }
    }

    /// Hands a frame from `src` for the switch's own address to the kernel
    /// interface of `port`, within the rate of its class on that port (a
    /// configured member's frames, on the port towards it, in the members'
    /// class whatever their kind); without a kernel interface the frame is
    /// the dataplane's to drop.
    #[inline]
    pub(crate) fn hand_to_kernel(
        &mut self,
        port: u16,
        src: impl Into<IpAddr>,
        class: KernelClass,
    ) -> Result<Verdict, DropReason> {
        let member_port = match src.into() {
            IpAddr::V4(ip) => self.shared.member_port(ip),
            IpAddr::V6(ip) => self.shared.member_port6(ip),
        };
        let class = match member_port {
            Some(p) if p == port => KernelClass::Member,
            _ => class,
        };
        let kernel = self
            .shared
            .ports
            .get(usize::from(port))
            .is_some_and(|p| p.kernel);
        if !kernel {
            return Err(DropReason::LocalUnhandled);
        }
        if !self.kernel.take(port, class) {
            return Err(DropReason::KernelRateLimited);
        }
        Ok(Verdict::Kernel)
    }

    /// Queues a packet to generate; false when the queue is full.
    pub(crate) fn generate(&mut self, g: Generated) -> bool {
        push_generated(
            &mut self.generated,
            self.generated_head,
            &mut self.generated_len,
            g,
        )
    }

    /// Room left in the queue of packets to generate.
    pub(crate) fn generate_room(&self) -> usize {
        GENERATED_QUEUE - self.generated_len
    }

    /// The next packet to generate, if any.
    pub fn pop_generated(&mut self) -> Option<Generated> {
        if self.generated_len == 0 {
            return None;
        }
        let g = self.generated[self.generated_head].take();
        self.generated_head = (self.generated_head + 1) % GENERATED_QUEUE;
        self.generated_len -= 1;
        g
    }
}

fn push_generated(q: &mut [Option<Generated>], head: usize, len: &mut usize, g: Generated) -> bool {
    if *len == q.len() {
        return false;
    }
    q[(head + *len) % q.len()] = Some(g);
    *len += 1;
    true
}

/// Whether the IPv4 frame in `pkt` is an L3-DSR tunnel packet (IP-in-IP,
/// GRE): the only kind the switch fragments.
fn tunnelled<P: PacketBuf>(pkt: &P) -> bool {
    let ip = pkt.data().get(ethernet::HEADER_LEN..).unwrap_or_default();
    wire::ipv4::Packet::new_checked(ip).is_ok_and(|ip| {
        matches!(
            ip.protocol(),
            wire::ipv4::proto::IPIP | wire::ipv4::proto::GRE
        )
    })
}

/// What the sweep of a session table needs of its worker, borrowed apart.
struct Sweep<'a> {
    shared: &'a Shared,
    stats: &'a WorkerStats,
    sync: &'a mut SyncOut,
    worker: u16,
    snat: &'a mut [PortRing],
    balancer: &'a mut Balancer,
    queue: (
        &'a mut [Option<Generated>; GENERATED_QUEUE],
        usize,
        &'a mut usize,
    ),
    stamp: u32,
    pressure: bool,
}

impl Sweep<'_> {
    /// Expires idle sessions of `table` and starts resetting those of
    /// members that went down, examining at most `budget` entries; returns
    /// (removed, of which reset).
    fn table<A: Family>(&mut self, table: &mut Table<A>, budget: u32) -> (u32, u32) {
        let (shared, stats, worker, stamp) = (self.shared, self.stats, self.worker, self.stamp);
        let (snat, balancer, queue) = (&mut *self.snat, &mut *self.balancer, &mut self.queue);
        let sync = &mut *self.sync;
        let refresh =
            sync.enabled() && table.sessions.sweep_passes().is_multiple_of(REFRESH_PASSES);
        let mode = |s: &Session<A>| shared.service(s.vs).map(|v| v.forwarding);
        let mut reset = 0;
        let removed = table.sessions.sweep(
            budget,
            |s| match crate::reset::judge(shared, s, stamp, self.pressure) {
                crate::reset::Judgement::Keep => {
                    // The VIP's owner keeps its peers' copies alive.
                    if refresh && shared.owns(s.vip.ip().into()) {
                        if let Some(m) = mode(s) {
                            sync.refresh(s, m, stamp, &stats.sync);
                        }
                    }
                    false
                }
                crate::reset::Judgement::Expired => true,
                crate::reset::Judgement::Reset => {
                    reset += 1;
                    if let Some(r) = mode(s).and_then(|m| sync.record(SyncOp::Remove, s, m, stamp))
                    {
                        sync.push(r, &stats.sync);
                    }
                    true
                }
                crate::reset::Judgement::Probe { member_too } => {
                    let probe = |to_client| Generated::Probe {
                        session: A::any(s),
                        to_client,
                    };
                    let (client, member) = (probe(true), probe(false));
                    if queue.0.len() - *queue.2 >= 2 {
                        push_generated(queue.0, queue.1, queue.2, client);
                        if member_too {
                            push_generated(queue.0, queue.1, queue.2, member);
                        }
                        s.state |= conntrack::flag::RESET_PENDING;
                        s.last_seen = stamp;
                    }
                    false
                }
            },
            |_, s| forget(shared, stats, worker, snat, balancer, s, stamp),
        );
        (removed, reset)
    }
}

/// What a session leaves behind when it is removed: its SNAT port goes back
/// to its ring, its member's session count goes down, and its client's
/// persistence entry counts one open session less (and runs its timeout
/// from now when none is left).
pub(crate) fn forget<A: Family>(
    shared: &Shared,
    stats: &WorkerStats,
    worker: u16,
    snat: &mut [PortRing],
    balancer: &mut Balancer,
    s: &Session<A>,
    now: u32,
) {
    release_snat(shared, snat, s);
    if let Some(c) = stats.vs_sessions.get(usize::from(s.vs)) {
        stats::dec(c);
    }
    if conntrack::embryonic(s.state, s.proto) {
        stats::dec(&stats.embryonic);
    }
    let Some(vs) = shared.service(s.vs) else {
        return;
    };
    if let Some(m) = vs.member_of(s.member, s.mport) {
        let closing = conntrack::closing(s.state, s.proto);
        shared.members.closed(worker, m.id, closing);
    }
    if let Some(p) = vs.persistence {
        let key = p.key(s.vs, s.client);
        balancer.persist.close(key, now.wrapping_add(p.timeout_ms));
    }
}

impl Worker {
    /// Returns a session's SNAT port to this worker's ring, if it holds one.
    pub(crate) fn release_snat_port<A: Family>(&mut self, s: &Session<A>) {
        release_snat(&self.shared, &mut self.snat, s);
    }
}

/// Returns a session's SNAT port to its ring, if it holds one.
fn release_snat<A: Family>(shared: &Shared, snat: &mut [PortRing], s: &Session<A>) {
    if s.state & conntrack::flag::SNAT_PORT == 0 {
        return;
    }
    if let Some(i) = shared.snat_index(s.snat) {
        if let Some(ring) = snat.get_mut(usize::from(i)) {
            ring.free(s.sport);
        }
    }
}
