//! Counters. Each worker is the only writer of its own counters, so an
//! increment is a relaxed load and store (plain `mov`/`add`, no locked
//! instruction); the control thread reads them at any time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Most ports a switch drives; per-port counters are fixed arrays. The
/// configuration refuses more interfaces than this.
pub const MAX_PORTS: usize = sluice_config::MAX_INTERFACES;

/// A counted-reason enum: each variant with its counter name and one line
/// of help, `ALL` and `COUNT` for per-reason counter arrays.
macro_rules! reasons {
    ($(#[$doc:meta])* $enum:ident { $($variant:ident => $name:literal, $help:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $enum { $($variant),* }

        impl $enum {
            pub const ALL: &'static [$enum] = &[$($enum::$variant),*];
            pub const COUNT: usize = $enum::ALL.len();
            /// The counter name, as shown by sluicectl and in metrics.
            pub fn name(self) -> &'static str {
                match self { $($enum::$variant => $name),* }
            }
            /// One line saying what it means.
            pub fn help(self) -> &'static str {
                match self { $($enum::$variant => $help),* }
            }
        }
    };
}

reasons! {
    /// Why a packet was dropped. Every drop has one, and one counter.
    DropReason {
        Truncated => "truncated", "frame shorter than its headers claim";
        Malformed => "malformed", "header fields that cannot be valid (version, lengths, options)";
        IpChecksum => "ip_checksum", "IPv4 header checksum wrong";
        OwnFrame => "own_frame", "frame sent by this switch seen again (looped)";
        OtherMac => "other_mac", "frame addressed to another host's MAC (flooded on the link)";
        VlanTagged => "vlan_tagged", "802.1Q/802.1ad tagged frame on an untagged interface";
        UnsupportedEthertype => "unsupported_ethertype", "neither IPv4 nor ARP";
        ArpNotForUs => "arp_not_for_us", "ARP for an address the switch does not own";
        NdNotForUs => "nd_not_for_us", "IPv6 neighbour solicitation or advertisement about an address the switch does not own";
        NdInvalid => "nd_invalid", "IPv6 neighbour discovery message failing RFC 4861 checks (hop limit not 255, code, option length, multicast target)";
        Icmpv6Checksum => "icmpv6_checksum", "ICMPv6 checksum wrong";
        NotForUs => "not_for_us", "IP packet to an address the switch does not own and no session";
        LocalUnhandled => "local_unhandled", "packet to a switch address other than ICMP echo";
        Fragment => "fragment", "IP fragment the switch does not follow (not TCP or UDP, or to a VIP's ICMP)";
        FragmentUnmatched => "fragment_unmatched", "fragment whose first fragment did not come in time, or whose session is gone";
        FragmentHoldFull => "fragment_hold_full", "fragment arriving before its first, with no room left to wait (per datagram or worker)";
        NoVirtualServer => "no_virtual_server", "VIP port or protocol with no virtual server (port filter)";
        NoSession => "no_session", "packet of no session that cannot start one (TCP other than SYN, reply)";
        SpoofedSource => "spoofed_source", "new session from one of the switch's own addresses, or from the unspecified address";
        NoHeadroom => "no_headroom", "packet buffer has no room for the headers to add";
        TooBig => "too_big", "packet exceeds the egress MTU after encapsulation and cannot be fragmented";
        SessionTableFull => "session_table_full", "new session refused: session table full";
        NoMember => "no_member", "new session refused: no member available";
        SnatExhausted => "snat_exhausted", "new session refused: no free SNAT port";
        SynFlood => "syn_flood", "new session refused: half-open sessions at their limit and none could make room";
        NoRoute => "no_route", "no route to the destination";
        NeighborUnresolved => "neighbor_unresolved", "held frame whose next hop's MAC stayed unknown, or no room to hold it";
        TtlExceeded => "ttl_exceeded", "TTL would reach zero";
        IcmpNoSession => "icmp_no_session", "ICMP error quoting a packet of no known session";
        IcmpUnsupported => "icmp_unsupported", "ICMP message the switch does not forward";
        PtbTooSmall => "ptb_too_small", "ICMPv6 packet-too-big announcing an MTU below 1280, ignored (RFC 8201)";
        RedirectFull => "redirect_full", "ring to the owning worker full";
        TxFull => "tx_full", "NIC transmit queue full";
        NoMbuf => "no_mbuf", "no packet buffer for a generated packet";
        KernelRingFull => "kernel_ring_full", "ring to the exception path (kernel interface) full";
        KernelRateLimited => "kernel_rate_limited", "over the rate limit of its class towards the kernel interface";
        GeneratedFull => "generated_full", "queue of packets the worker generates (RSTs, probes) full";
        SourceDenied => "source_denied", "new session refused by the virtual server's allow_sources / deny_sources";
        MembersFull => "members_full", "new session refused: every usable member at its max_connections, and the refusal could not be answered";
        RefusalRateLimited => "refusal_rate_limited", "new session refused, unanswered: over the rate of RSTs and ICMP unreachables sent for refusals (no reflection)";
        IcmpRateLimited => "icmp_rate_limited", "packet too big for a tunnel, unanswered: over the rate of ICMP errors the switch writes (shared with refusals; no reflection)";
    }
}

reasons! {
    /// Why a peer's synchronised session was not installed.
    SyncRefusal {
        NoVirtualServer => "no_virtual_server", "no virtual server here for the session's VIP, port and protocol";
        OtherMode => "other_mode", "the virtual server here forwards in another mode (the nodes' configurations differ)";
        NoMember => "no_member", "the session's member is not in the virtual server's pool here";
        SnatAddress => "snat_address", "the session's SNAT address is not one of its virtual server's here";
        OtherWorker => "other_worker", "the session belongs to another worker here (the nodes run different numbers of workers)";
        Conflict => "conflict", "a session of this node holds the same tuple";
        TableFull => "table_full", "the session table is full";
    }
}

/// Synchronisation counters of one worker (single writer, like every counter).
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Records queued for the peers.
    pub queued: AtomicU64,
    /// Records lost: the queue was full.
    pub queue_full: AtomicU64,
    /// Peers' sessions installed, updated and removed here.
    pub installed: AtomicU64,
    pub updated: AtomicU64,
    pub removed: AtomicU64,
    /// Peers' sessions installed without their SNAT port: a session of
    /// this node holds it (reverse tuples still differ).
    pub snat_port_busy: AtomicU64,
    /// Peers' records refused, by [`SyncRefusal`].
    pub refused: [AtomicU64; SyncRefusal::COUNT],
}

/// Counters of one port as seen by one worker.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
}

/// Every counter of one worker, cache-line aligned so workers never share a line.
#[derive(Debug)]
#[repr(align(64))]
pub struct WorkerStats {
    pub ports: [PortCounters; MAX_PORTS],
    pub drops: [AtomicU64; DropReason::COUNT],
    pub arp_replies: AtomicU64,
    pub arp_requests: AtomicU64,
    pub arp_learned: AtomicU64,
    pub icmp_echo_replies: AtomicU64,
    pub icmp_errors_translated: AtomicU64,
    pub icmp_errors_sent: AtomicU64,
    pub sessions_created: AtomicU64,
    pub sessions_expired: AtomicU64,
    pub sessions_active: AtomicU64,
    pub redirected: AtomicU64,
    pub forwarded: AtomicU64,
    pub loops: AtomicU64,
    pub idle_loops: AtomicU64,
    /// Frames handed to the exception path (the kernel interfaces).
    pub to_kernel: AtomicU64,
    /// New sessions refused with a RST or ICMP port-unreachable because no
    /// member of the virtual server was usable.
    pub rejected_no_member: AtomicU64,
    /// New sessions refused with a RST because every usable member was at
    /// its `max_connections`.
    pub rejected_full: AtomicU64,
    /// Sessions ended by RSTs the switch sent (`on_member_down = "reset"`,
    /// `reset_on_timeout`).
    pub sessions_reset: AtomicU64,
    /// Frames held while their next hop's MAC was resolved.
    pub held: AtomicU64,
    /// New sessions that found their client's member in the persistence table.
    pub persistence_hits: AtomicU64,
    /// Persistence entries of this worker (a gauge).
    pub persistence_entries: AtomicU64,
    /// Persistence entries pushed out by newer ones before they expired.
    pub persistence_evicted: AtomicU64,
    /// Unconfirmed ("half-open") TCP sessions: no evidence of a real client
    /// yet (see `flood`; a gauge).
    pub embryonic: AtomicU64,
    /// Half-open sessions removed to make room for a new one (a SYN flood).
    pub embryonic_evicted: AtomicU64,
    /// Sessions started by a segment other than a SYN: DSR flows of a hash
    /// method whose session was evicted (or began on another node).
    pub sessions_resumed: AtomicU64,
    /// Dest-NAT members' packets without a session translated back
    /// statelessly (a session another node holds; see `flow`).
    pub stateless_replies: AtomicU64,
    /// Fragments after the first forwarded, following their first.
    pub fragments: AtomicU64,
    /// Neighbour advertisements sent in answer to solicitations for the
    /// switch's IPv6 addresses.
    pub nd_replies: AtomicU64,
    /// Neighbour solicitations sent for IPv6 next hops.
    pub nd_requests: AtomicU64,
    /// MAC addresses learned from neighbour discovery.
    pub nd_learned: AtomicU64,
    /// IPv4 fragments the switch made of encapsulated packets longer than
    /// their egress link's MTU (one per cut: the fragments after the first).
    pub fragments_made: AtomicU64,
    /// `rejected_no_member` per virtual server (index of `Shared::services`).
    pub vs_rejected: Box<[AtomicU64]>,
    /// `members_full` refusals per virtual server.
    pub vs_full: Box<[AtomicU64]>,
    /// `source_denied` drops per virtual server.
    pub vs_denied: Box<[AtomicU64]>,
    /// Sessions open per virtual server (a gauge).
    pub vs_sessions: Box<[AtomicU64]>,
    /// Packets and bytes (frames as received) per virtual server of its
    /// sessions, client to member (`_in`) and member to client (`_out`).
    pub vs_packets_in: Box<[AtomicU64]>,
    pub vs_bytes_in: Box<[AtomicU64]>,
    pub vs_packets_out: Box<[AtomicU64]>,
    pub vs_bytes_out: Box<[AtomicU64]>,
    /// Configuration generation the worker runs (0: the boot one).
    pub generation: AtomicU64,
    /// Session synchronisation with the peers of a pair (`sync`).
    pub sync: SyncCounters,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats::new(0)
    }
}

fn zeros(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl WorkerStats {
    /// Counters for `services` virtual-server slots (`Shared::vs_capacity`).
    pub fn new(services: usize) -> Self {
        WorkerStats {
            ports: Default::default(),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            arp_replies: AtomicU64::new(0),
            arp_requests: AtomicU64::new(0),
            arp_learned: AtomicU64::new(0),
            icmp_echo_replies: AtomicU64::new(0),
            icmp_errors_translated: AtomicU64::new(0),
            icmp_errors_sent: AtomicU64::new(0),
            sessions_created: AtomicU64::new(0),
            sessions_expired: AtomicU64::new(0),
            sessions_active: AtomicU64::new(0),
            redirected: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            loops: AtomicU64::new(0),
            idle_loops: AtomicU64::new(0),
            to_kernel: AtomicU64::new(0),
            rejected_no_member: AtomicU64::new(0),
            sessions_reset: AtomicU64::new(0),
            rejected_full: AtomicU64::new(0),
            held: AtomicU64::new(0),
            persistence_hits: AtomicU64::new(0),
            persistence_entries: AtomicU64::new(0),
            persistence_evicted: AtomicU64::new(0),
            embryonic: AtomicU64::new(0),
            embryonic_evicted: AtomicU64::new(0),
            sessions_resumed: AtomicU64::new(0),
            stateless_replies: AtomicU64::new(0),
            fragments: AtomicU64::new(0),
            nd_replies: AtomicU64::new(0),
            nd_requests: AtomicU64::new(0),
            nd_learned: AtomicU64::new(0),
            fragments_made: AtomicU64::new(0),
            vs_rejected: zeros(services),
            vs_full: zeros(services),
            vs_denied: zeros(services),
            vs_sessions: zeros(services),
            vs_packets_in: zeros(services),
            vs_bytes_in: zeros(services),
            vs_packets_out: zeros(services),
            vs_bytes_out: zeros(services),
            generation: AtomicU64::new(0),
            sync: Default::default(),
        }
    }
}

impl WorkerStats {
    /// Counts a packet of a session of virtual-server slot `vs`, client to
    /// member (`inbound`) or back.
    #[inline]
    pub fn count_vs(&self, vs: u16, inbound: bool, bytes: usize) {
        let (p, b) = if inbound {
            (&self.vs_packets_in, &self.vs_bytes_in)
        } else {
            (&self.vs_packets_out, &self.vs_bytes_out)
        };
        if let (Some(p), Some(b)) = (p.get(usize::from(vs)), b.get(usize::from(vs))) {
            inc(p);
            add(b, bytes as u64);
        }
    }
}

/// Adds `n` to a counter this thread alone writes.
#[inline(always)]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Adds one to a counter this thread alone writes.
#[inline(always)]
pub fn inc(c: &AtomicU64) {
    add(c, 1);
}

/// Subtracts one from a gauge this thread alone writes.
#[inline(always)]
pub fn dec(c: &AtomicU64) {
    c.store(c.load(Relaxed).saturating_sub(1), Relaxed);
}

/// Sets a gauge this thread alone writes.
#[inline(always)]
pub fn set(c: &AtomicU64, v: u64) {
    c.store(v, Relaxed);
}

impl WorkerStats {
    #[inline(always)]
    pub fn dropped(&self, reason: DropReason) {
        inc(&self.drops[reason as usize]);
    }

    pub fn drops_of(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Relaxed)
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Name/value pairs of the scalar counters, for display and metrics.
    pub fn scalars(&self) -> [(&'static str, u64); 32] {
        let g = |c: &AtomicU64| c.load(Relaxed);
        [
            ("forwarded", g(&self.forwarded)),
            ("redirected", g(&self.redirected)),
            ("sessions_created", g(&self.sessions_created)),
            ("sessions_expired", g(&self.sessions_expired)),
            ("sessions_active", g(&self.sessions_active)),
            ("arp_replies", g(&self.arp_replies)),
            ("arp_requests", g(&self.arp_requests)),
            ("arp_learned", g(&self.arp_learned)),
            ("nd_replies", g(&self.nd_replies)),
            ("nd_requests", g(&self.nd_requests)),
            ("nd_learned", g(&self.nd_learned)),
            ("icmp_echo_replies", g(&self.icmp_echo_replies)),
            ("icmp_errors_translated", g(&self.icmp_errors_translated)),
            ("icmp_errors_sent", g(&self.icmp_errors_sent)),
            ("to_kernel", g(&self.to_kernel)),
            ("rejected_no_member", g(&self.rejected_no_member)),
            ("held", g(&self.held)),
            ("rejected_full", g(&self.rejected_full)),
            ("sessions_reset", g(&self.sessions_reset)),
            ("persistence_entries", g(&self.persistence_entries)),
            ("persistence_hits", g(&self.persistence_hits)),
            ("persistence_evicted", g(&self.persistence_evicted)),
            ("embryonic", g(&self.embryonic)),
            ("embryonic_evicted", g(&self.embryonic_evicted)),
            ("sessions_resumed", g(&self.sessions_resumed)),
            ("stateless_replies", g(&self.stateless_replies)),
            ("fragments", g(&self.fragments)),
            ("fragments_made", g(&self.fragments_made)),
            ("drops", self.total_drops()),
            ("loops", g(&self.loops)),
            ("idle_loops", g(&self.idle_loops)),
            (
                "rx_packets",
                self.ports.iter().map(|p| g(&p.rx_packets)).sum(),
            ),
        ]
    }
}

/// What a scalar counter of [`WorkerStats::scalars`] counts (for metrics),
/// and whether it is a gauge (else a counter).
pub fn scalar_help(name: &str) -> (&'static str, bool) {
    match name {
        "forwarded" => ("Packets forwarded (rewritten and sent).", false),
        "redirected" => ("Packets handed to the worker owning their session.", false),
        "sessions_created" => ("Sessions created.", false),
        "sessions_expired" => ("Sessions removed at their idle timeout.", false),
        "sessions_active" => ("Sessions in the table.", true),
        "arp_replies" => ("ARP replies sent for the switch's addresses.", false),
        "arp_requests" => ("ARP requests sent for next hops.", false),
        "arp_learned" => ("MAC addresses learned from ARP.", false),
        "nd_replies" => (
            "Neighbour advertisements sent for the switch's IPv6 addresses.",
            false,
        ),
        "nd_requests" => ("Neighbour solicitations sent for IPv6 next hops.", false),
        "nd_learned" => ("MAC addresses learned from IPv6 neighbour discovery.", false),
        "icmp_echo_replies" => ("ICMP echo replies sent.", false),
        "icmp_errors_translated" => ("ICMP errors about a session forwarded, translated.", false),
        "icmp_errors_sent" => (
            "ICMP errors the switch sent (unreachable, fragmentation needed).",
            false,
        ),
        "to_kernel" => ("Frames handed to the kernel interfaces.", false),
        "rejected_no_member" => (
            "New sessions refused with a RST or ICMP unreachable: no member available.",
            false,
        ),
        "held" => (
            "Frames held while their next hop's MAC was resolved.",
            false,
        ),
        "rejected_full" => (
            "New sessions refused with a RST: every member at max_connections.",
            false,
        ),
        "sessions_reset" => ("Sessions ended by RSTs the switch sent.", false),
        "persistence_entries" => ("Persistence entries.", true),
        "persistence_hits" => (
            "New sessions that found their client's member in the persistence table.",
            false,
        ),
        "persistence_evicted" => ("Persistence entries pushed out before they expired.", false),
        "embryonic" => ("Unconfirmed (half-open) TCP sessions.", true),
        "embryonic_evicted" => (
            "Unconfirmed sessions evicted to make room for new ones.",
            false,
        ),
        "sessions_resumed" => ("Sessions started mid-flow by a hash method (DSR, Dest-NAT).", false),
        "stateless_replies" => ("Dest-NAT member packets without a session translated back to their VIP statelessly.", false),
        "fragments" => (
            "Fragments after the first forwarded, following their first.",
            false,
        ),
        "fragments_made" => (
            "IPv4 fragments cut from encapsulated packets too long for their link (after each first).",
            false,
        ),
        "drops" => ("Packets dropped, every reason.", false),
        "loops" => ("Turns of the worker loop.", false),
        "idle_loops" => ("Turns of the worker loop that received nothing.", false),
        "rx_packets" => ("Packets received.", false),
        _ => ("", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scalar_has_help() {
        let s = WorkerStats::default();
        for (name, _) in s.scalars() {
            assert!(!scalar_help(name).0.is_empty(), "{name}");
        }
    }

    #[test]
    fn names_are_unique_and_counted() {
        let s = WorkerStats::default();
        s.dropped(DropReason::NoSession);
        s.dropped(DropReason::NoSession);
        assert_eq!(s.drops_of(DropReason::NoSession), 2);
        assert_eq!(s.total_drops(), 2);
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
