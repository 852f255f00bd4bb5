//! Virtual servers as the packet path sees them, member choice, and the
//! per-worker SNAT port allocator.

use crate::acl::SourceAcl;
use crate::addr::Addr;
use crate::fixedmap::{mix64, FixedMap, MapKey};
use crate::members::MemberStates;
use crate::sched::maglev::Maglev;
use sluice_config::{Forwarding, Method, OnMemberDown};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// A pool member as the packet path sees it.
#[derive(Debug, Clone)]
pub struct Member {
    /// Of its server's family.
    pub ip: IpAddr,
    pub port: u16,
    /// Configured weight and enabled flag; the ones in force are in
    /// `MemberStates` (they change at run time).
    pub weight: u32,
    pub backup: bool,
    pub enabled: bool,
    /// Index into `MemberStates` (health, effective weight, load).
    pub id: u32,
    /// Most sessions at once, over all workers.
    pub max_connections: Option<u32>,
}

impl Member {
    /// Its address and port, as users write them ("[2001:db8::5]:80").
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.ip, self.port)
    }

    /// Whether the member may take new sessions, as worker `worker` sees
    /// it: enabled, up, not draining (effective weight above 0) and below
    /// its connection limit.
    #[inline]
    pub fn eligible(&self, states: &MemberStates, worker: u16) -> bool {
        self.available(states) && !self.full(states, worker)
    }

    /// Enabled, up and not draining, whatever its load.
    #[inline]
    pub fn available(&self, states: &MemberStates) -> bool {
        states.available(self.id)
    }

    /// At its `max_connections`, as worker `worker` counts (the other
    /// workers' sessions as of the last fold: `MemberStates::fold`).
    #[inline]
    pub fn full(&self, states: &MemberStates, worker: u16) -> bool {
        self.max_connections
            .is_some_and(|max| states.sessions_for(worker, self.id) >= u64::from(max))
    }
}

/// Source-IP persistence of a virtual server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// How long a client keeps its member after its last session ends.
    pub timeout_ms: u32,
    /// Client addresses are masked to this many bits before lookup.
    pub netmask: u8,
}

impl Persistence {
    /// The persistence key of `client` of server `vs`.
    #[inline]
    pub fn key<A: Addr>(&self, vs: u16, client: A) -> u64 {
        crate::persist::key(vs, client.masked(self.netmask).fold())
    }
}

/// One virtual server with its own copy of its pool's members.
#[derive(Debug, Clone)]
pub struct VirtualServer {
    pub name: String,
    /// Removed by a reload while it still had sessions: they continue until
    /// they end, new ones are refused.
    pub retired: bool,
    /// The pool's name (for display).
    pub pool: String,
    /// What happens to the sessions of a member that goes down.
    pub on_member_down: OnMemberDown,
    /// How a member is chosen for a new session.
    pub method: Method,
    /// The pool's Maglev table over its primaries (hash methods only).
    pub maglev: Option<Arc<Maglev>>,
    /// Which clients may open sessions.
    pub acl: SourceAcl,
    pub persistence: Option<Persistence>,
    /// Reset both ends of an established TCP session when it idles out.
    pub reset_on_timeout: bool,
    /// Its family is the server's: its members', SNAT addresses' and
    /// clients'.
    pub vip: IpAddr,
    /// Whether the switch answers for `vip` now (`Shared::local` marks it:
    /// always without `[ha]`, on the holder of its addresses with it). The
    /// established fast path (`fast`) reads it instead of that map.
    pub vip_local: bool,
    pub port: u16,
    pub proto: u8,
    pub forwarding: Forwarding,
    pub members: Vec<Member>,
    /// Members a reload removed from this server while they had sessions:
    /// never chosen, kept so those sessions still find their member.
    pub retired_members: Vec<Member>,
    /// Indexes into `Shared::snat_addrs`.
    pub snat: Vec<u16>,
    /// Established-TCP / UDP idle timeout override.
    pub idle_timeout_ms: Option<u32>,
    /// lan_to_lan: clients inside these prefixes (network widened to 128
    /// bits, see [`Addr::widen`], and length) are source-NATed.
    pub lan_subnets: Vec<(u128, u8)>,
    /// l3_dsr: how packets are carried to the member.
    pub encap: Encap,
    /// l3_dsr with ipip/gre: MSS clamping of client SYNs.
    pub mss_clamp: MssClamp,
    /// Both-NAT and LAN-to-LAN over TCP: a PROXY protocol v2 header goes
    /// in front of the client's first bytes to the member (`proxy`).
    pub proxy: bool,
}

/// How an l3_dsr virtual server carries packets to its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// Not l3_dsr.
    None,
    /// RFC 2003 IP-in-IP (RFC 2473 IPv6-in-IPv6 for an IPv6 service).
    Ipip,
    /// RFC 2784 GRE, protocol 0x0800 (RFC 7676: GRE over IPv6, 0x86DD).
    Gre,
    /// The destination becomes the member and DSCP carries this value.
    Dscp(u8),
}

impl Encap {
    /// Bytes an encapsulation adds in front of the client's IP packet: an
    /// outer IPv4 header (20 bytes) or, for an IPv6 service (`v6`), an
    /// outer IPv6 header (40), and GRE's 4.
    pub fn overhead(self, v6: bool) -> usize {
        let ip = if v6 { 40 } else { 20 };
        match self {
            Encap::Ipip => ip,
            Encap::Gre => ip + 4,
            Encap::None | Encap::Dscp(_) => 0,
        }
    }
}

/// MSS clamping of SYNs sent into a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MssClamp {
    Off,
    /// Egress MTU minus tunnel overhead minus 40 (IPv4 + TCP headers).
    Auto,
    Value(u16),
}

/// How a server's packets to its members are rewritten: copied from the
/// snapshot once per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    pub forwarding: Forwarding,
    pub encap: Encap,
    pub mss_clamp: MssClamp,
    /// The PROXY protocol header and the sequence shift (`proxy`).
    pub proxy: bool,
}

impl Rewrite {
    /// Whether only the client-to-member direction passes the switch.
    #[inline]
    pub fn one_way(self) -> bool {
        matches!(self.forwarding, Forwarding::L2Dsr | Forwarding::L3Dsr)
    }
}

impl VirtualServer {
    /// How its packets to members are rewritten.
    #[inline]
    pub fn rewrite(&self) -> Rewrite {
        Rewrite {
            forwarding: self.forwarding,
            encap: self.encap,
            mss_clamp: self.mss_clamp,
            proxy: self.proxy,
        }
    }

    /// Whether sessions of this server may own a SNAT port.
    #[inline]
    pub fn source_nat(&self) -> bool {
        matches!(self.forwarding, Forwarding::BothNat | Forwarding::LanToLan)
    }

    /// Whether a new session from `client` gets a SNAT address: always in
    /// both_nat; in lan_to_lan only for clients on the members' own LAN
    /// (their replies would otherwise go straight back over L2).
    #[inline]
    pub fn source_nat_for<A: Addr>(&self, client: A) -> bool {
        match self.forwarding {
            Forwarding::BothNat => true,
            Forwarding::LanToLan => self
                .lan_subnets
                .iter()
                .any(|(net, len)| client.masked(*len).widen() == *net),
            _ => false,
        }
    }

    /// Whether only the client-to-member direction passes the switch.
    #[inline]
    pub fn one_way(&self) -> bool {
        self.rewrite().one_way()
    }

    /// Round robin over the eligible members of one tier (primaries or
    /// backups). `cursor` is the worker's own position for this server.
    pub fn pick_round_robin(
        &self,
        states: &MemberStates,
        worker: u16,
        backups: bool,
        cursor: &mut u32,
    ) -> Option<u16> {
        let n = self.members.len() as u32;
        for step in 0..n {
            let i = (cursor.wrapping_add(step) % n) as usize;
            let m = &self.members[i];
            if m.backup == backups && m.eligible(states, worker) {
                *cursor = (i as u32 + 1) % n;
                return Some(i as u16);
            }
        }
        None
    }

    /// The member a session with member address `ip` and member port `port`
    /// is on (a port-0 server's members take the client's port).
    /// A member removed by a reload is found among the retired ones.
    pub fn member_of<A: Addr>(&self, ip: A, port: u16) -> Option<&Member> {
        let is = |m: &&Member| A::of(m.ip) == Some(ip) && (self.port == 0 || m.port == port);
        self.members
            .iter()
            .find(is)
            .or_else(|| self.retired_members.iter().find(is))
    }

    /// Whether a session on member `ip:port` drains rather than follows its
    /// member's health: its server or its member was removed by a reload.
    pub fn draining<A: Addr>(&self, ip: A, port: u16) -> bool {
        let is = |m: &Member| A::of(m.ip) == Some(ip) && (self.port == 0 || m.port == port);
        self.retired || (!self.members.iter().any(is) && self.retired_members.iter().any(is))
    }
}

/// Key of the virtual-server map.
#[inline]
pub fn vs_key(vip: Ipv4Addr, port: u16, proto: u8) -> u64 {
    u64::from(u32::from(vip)) | (u64::from(port) << 32) | (u64::from(proto) << 48)
}

/// Finds the virtual server for a destination; a port-0 server catches every port.
#[inline]
pub fn find_vs(map: &FixedMap<u16>, vip: Ipv4Addr, port: u16, proto: u8) -> Option<u16> {
    map.get(vs_key(vip, port, proto))
        .or_else(|| map.get(vs_key(vip, 0, proto)))
}

/// Key of the IPv6 virtual-server map.
#[inline]
pub fn vs_key6(vip: u128, port: u16, proto: u8) -> (u128, u32) {
    (vip, u32::from(port) << 8 | u32::from(proto))
}

/// [`find_vs`] for an IPv6 destination.
#[inline]
pub fn find_vs6(map: &FixedMap<u16, (u128, u32)>, vip: u128, port: u16, proto: u8) -> Option<u16> {
    map.get(vs_key6(vip, port, proto))
        .or_else(|| map.get(vs_key6(vip, 0, proto)))
}

/// The Dest-NAT virtual server a member's packet from `port` answers for
/// (`key(p)`: the member's key with port `p`, see `Shared::replies`): its
/// slot, [`crate::shared::SEVERAL`] when the member serves several or a
/// port-0 server, `None` when it serves no Dest-NAT server.
#[inline]
pub fn reply_server<K: MapKey>(
    map: &FixedMap<u16, K>,
    key: impl Fn(u16) -> K,
    port: u16,
) -> Option<u16> {
    match map.get(key(0)) {
        Some(_) => Some(crate::shared::SEVERAL),
        None => map.get(key(port)),
    }
}

/// First port handed out for source NAT; below are the well-known and registered low ports.
pub const SNAT_FIRST_PORT: u16 = 1024;

/// Which worker owns SNAT `port`: ports are dealt round-robin to workers, so
/// a reply to a SNAT address finds its worker from its destination port.
#[inline]
pub fn snat_port_owner(port: u16, workers: u16) -> u16 {
    port % workers
}

/// Which worker owns the sessions of a client: chosen by its address alone,
/// so every connection of one client, whatever its port, lands on one
/// worker, which can then keep the client's persistence entry on its own.
/// (Dest-NAT return traffic is steered to it by the same address, its
/// destination.)
#[inline]
pub fn client_owner(ip: Ipv4Addr, workers: u16) -> u16 {
    client_owner_fold(u64::from(u32::from(ip)), workers)
}

/// [`client_owner`] of an address already folded ([`Addr::fold`]).
#[inline]
pub fn client_owner_fold(fold: u64, workers: u16) -> u16 {
    let h = mix64(fold) as u32;
    ((u64::from(h) * u64::from(workers)) >> 32) as u16
}

/// Free SNAT ports of one address, owned by one worker: a FIFO ring so a
/// port is reused as late as possible (the member may hold it in TIME_WAIT).
/// `pos` keeps where each port sits in the ring, so a port a peer's session
/// holds can be taken out of it in constant time ([`PortRing::reserve`]).
#[derive(Debug, Clone, Default)]
pub struct PortRing {
    ports: Vec<u16>,
    /// Ring slot of each port (indexed from `SNAT_FIRST_PORT`), valid while
    /// the port is free.
    pos: Vec<u16>,
    head: usize,
    len: usize,
}

impl PortRing {
    /// The ports of `SNAT_FIRST_PORT..=65535` that `worker` of `workers` owns.
    pub fn new(worker: u16, workers: u16) -> PortRing {
        let ports: Vec<u16> = (SNAT_FIRST_PORT..=u16::MAX)
            .filter(|p| snat_port_owner(*p, workers) == worker)
            .collect();
        let mut pos = vec![0; usize::from(u16::MAX - SNAT_FIRST_PORT) + 1];
        for (i, p) in ports.iter().enumerate() {
            pos[usize::from(*p - SNAT_FIRST_PORT)] = i as u16;
        }
        let len = ports.len();
        PortRing {
            ports,
            pos,
            head: 0,
            len,
        }
    }

    pub fn available(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn alloc(&mut self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        let p = self.ports[self.head];
        self.head = (self.head + 1) % self.ports.len();
        self.len -= 1;
        Some(p)
    }

    /// Returns a port. Ports are only ever returned once per allocation.
    #[inline]
    pub fn free(&mut self, port: u16) {
        debug_assert!(self.len < self.ports.len());
        let tail = (self.head + self.len) % self.ports.len();
        self.ports[tail] = port;
        if let Some(slot) = port
            .checked_sub(SNAT_FIRST_PORT)
            .and_then(|i| self.pos.get_mut(usize::from(i)))
        {
            *slot = tail as u16;
        }
        self.len += 1;
    }

    /// Takes `port` out of the free ports (a session synchronised from a
    /// peer holds it); false when it is not free here (another session
    /// holds it, or another worker owns it).
    pub fn reserve(&mut self, port: u16) -> bool {
        let Some(i) = port.checked_sub(SNAT_FIRST_PORT) else {
            return false;
        };
        let Some(slot) = self.pos.get(usize::from(i)).map(|s| usize::from(*s)) else {
            return false;
        };
        let n = self.ports.len();
        let free = n > 0 && (slot + n - self.head) % n < self.len && self.ports[slot] == port;
        if !free {
            return false;
        }
        // The port at the head takes its slot, and the head moves past.
        let first = self.ports[self.head];
        self.ports[slot] = first;
        self.pos[usize::from(first - SNAT_FIRST_PORT)] = slot as u16;
        self.head = (self.head + 1) % n;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(last: u8, backup: bool) -> Member {
        Member {
            ip: Ipv4Addr::new(10, 0, 0, last).into(),
            port: 80,
            weight: 1,
            backup,
            enabled: true,
            id: u32::from(last) - 1,
            max_connections: None,
        }
    }

    fn vs(members: Vec<Member>) -> VirtualServer {
        VirtualServer {
            name: "t".into(),
            retired: false,
            retired_members: Vec::new(),
            pool: "p".into(),
            on_member_down: OnMemberDown::Keep,
            method: Method::RoundRobin,
            maglev: None,
            acl: SourceAcl::new::<u32>(&[], &[]),
            persistence: None,
            reset_on_timeout: false,
            vip: Ipv4Addr::new(192, 0, 2, 1).into(),
            vip_local: true,
            port: 80,
            proto: 6,
            forwarding: Forwarding::DestNat,
            members,
            snat: vec![],
            idle_timeout_ms: None,
            lan_subnets: vec![],
            encap: Encap::None,
            mss_clamp: MssClamp::Off,
            proxy: false,
        }
    }

    #[test]
    fn round_robin_per_tier_skips_down_drained_disabled_and_full() {
        let mut v = vs(vec![member(1, false), member(2, false), member(3, true)]);
        let st = MemberStates::new(&[(1, true), (1, true), (1, true)], 1);
        let mut c = 0;
        let picks: Vec<_> = (0..4)
            .map(|_| v.pick_round_robin(&st, 0, false, &mut c).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        assert_eq!(
            v.pick_round_robin(&st, 0, true, &mut c),
            Some(2),
            "backup tier"
        );
        st.set(0, false);
        assert_eq!(v.pick_round_robin(&st, 0, false, &mut c), Some(1));
        assert_eq!(v.pick_round_robin(&st, 0, false, &mut c), Some(1));
        st.set(1, false);
        assert_eq!(v.pick_round_robin(&st, 0, false, &mut c), None);
        st.set(0, true);
        v.members[0].max_connections = Some(1);
        st.opened(0, 0);
        assert!(v.members[0].full(&st, 0) && v.members[0].available(&st));
        assert_eq!(v.pick_round_robin(&st, 0, false, &mut c), None, "full");
        st.closed(0, 0, false);
        assert_eq!(v.pick_round_robin(&st, 0, false, &mut c), Some(0));
        st.set_weight(0, 0);
        assert_eq!(
            v.pick_round_robin(&st, 0, false, &mut c),
            None,
            "slow start at 0"
        );
        let st = MemberStates::new(&[(0, true), (1, true)], 1);
        let drained = vs(vec![member(1, false), member(2, false)]);
        assert_eq!(drained.pick_round_robin(&st, 0, false, &mut c), Some(1));
        assert_eq!(drained.pick_round_robin(&st, 0, false, &mut c), Some(1));
        st.set_enabled(1, false);
        assert_eq!(drained.pick_round_robin(&st, 0, false, &mut c), None);
        assert_eq!(drained.member_of(0x0a00_0002u32, 80).map(|m| m.id), Some(1));
        assert!(drained.member_of(0x0a00_0002u32, 81).is_none());
    }

    #[test]
    fn vs_lookup_falls_back_to_port_zero() {
        let mut m = FixedMap::with_capacity(4);
        let vip = Ipv4Addr::new(192, 0, 2, 1);
        m.insert(vs_key(vip, 80, 6), 0);
        m.insert(vs_key(vip, 0, 17), 1);
        assert_eq!(find_vs(&m, vip, 80, 6), Some(0));
        assert_eq!(find_vs(&m, vip, 81, 6), None);
        assert_eq!(find_vs(&m, vip, 53, 17), Some(1));
    }

    #[test]
    fn snat_port_reserved_is_never_allocated_until_freed() {
        let mut r = PortRing::new(0, 1);
        let total = r.available();
        assert!(r.reserve(40_000));
        assert!(!r.reserve(40_000), "already taken");
        assert!(!r.reserve(80), "below the SNAT range");
        assert_eq!(r.available(), total - 1);
        let mut seen = std::collections::HashSet::new();
        while let Some(p) = r.alloc() {
            assert_ne!(p, 40_000, "a reserved port was handed out");
            assert!(seen.insert(p), "port {p} handed out twice");
        }
        assert_eq!(seen.len(), total - 1);
        r.free(40_000);
        r.free(2000);
        assert!(r.reserve(2000), "a freed port can be reserved again");
        assert_eq!(r.alloc(), Some(40_000));
        assert_eq!(r.alloc(), None);
        let mut other = PortRing::new(1, 2);
        assert!(!other.reserve(2000), "worker 1 of 2 owns odd ports only");
        assert!(other.reserve(2001));
    }

    #[test]
    fn snat_ports_partition_and_fifo() {
        let mut total = 0;
        for w in 0..3 {
            let mut r = PortRing::new(w, 3);
            total += r.available();
            let a = r.alloc().unwrap();
            assert_eq!(snat_port_owner(a, 3), w);
            let b = r.alloc().unwrap();
            r.free(a);
            let n = r.available();
            for _ in 0..n - 1 {
                r.alloc().unwrap();
            }
            assert_eq!(r.alloc(), Some(a), "freed port comes back last");
            assert_eq!(r.alloc(), None);
            r.free(b);
            assert_eq!(r.alloc(), Some(b));
        }
        assert_eq!(total, usize::from(u16::MAX - SNAT_FIRST_PORT) + 1);
    }

    #[test]
    fn client_owner_spreads_clients_not_ports() {
        let mut seen = [0u32; 4];
        for c in 0..4000u32 {
            seen[client_owner(Ipv4Addr::from(0x0a00_0000 + c), 4) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(client_owner(Ipv4Addr::new(10, 0, 0, 1), 1), 0);
    }
}
