//! What every worker reads and nobody changes on the packet path: ports,
//! owned addresses, routes, virtual servers. Built once from the
//! configuration. The neighbour table and member health inside are atomics.

mod build;

use crate::addr::Addr;
use crate::fixedmap::FixedMap;
use crate::members::MemberStates;
use crate::neighbor::NeighborTable;
use crate::route::RouteTable;
use crate::service::{client_owner_fold, VirtualServer};
use crate::session::Session;
use crate::wire::Mac;
use build::{build, Base, Previous};
use sluice_config::{Config, VipOwnership};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// One DPDK port as the pipeline sees it; index = position in `[[interface]]`.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub mac: Mac,
    pub addresses: Vec<(Ipv4Addr, u8)>,
    pub addresses6: Vec<(Ipv6Addr, u8)>,
    /// The port's IPv6 link-local address (from its MAC, as the kernel
    /// interface makes its own): the source of its neighbour discovery.
    pub link_local: Ipv6Addr,
    pub mtu: u16,
    /// Whether an exception-path kernel interface takes this port's traffic
    /// for the switch's own addresses.
    pub kernel: bool,
}

/// What an owned address is. An address may be several things at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Local {
    /// An interface address, on this port.
    pub interface: Option<u16>,
    /// A VIP of at least one virtual server.
    pub vip: bool,
    /// A source-NAT address (index into `Shared::snat_addrs`).
    pub snat: Option<u16>,
}

/// Idle timeouts in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn: u32,
    pub tcp_established: u32,
    pub tcp_fin: u32,
    pub tcp_close: u32,
    pub udp: u32,
    pub icmp: u32,
}

fn ms(d: std::time::Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX / 2)) as u32
}

#[derive(Debug)]
pub struct Shared {
    pub workers: u16,
    pub ports: Vec<Port>,
    pub local: FixedMap<Local>,
    /// The same for IPv6 addresses.
    pub local6: FixedMap<Local, u128>,
    /// The port towards each configured member address (every pool's, so
    /// replies to health checks are recognised): the exception path gives
    /// their frames a budget of their own (see `exception`).
    pub member_ports: FixedMap<u16>,
    pub member_ports6: FixedMap<u16, u128>,
    pub routes: RouteTable,
    pub routes6: RouteTable<Ipv6Addr>,
    /// Learned and static MACs; the same table in every generation.
    pub neighbors: Arc<NeighborTable>,
    /// Virtual servers by slot: a server keeps its slot (sessions name it)
    /// across reloads for as long as it or its sessions exist. `None`: free.
    pub services: Vec<Option<VirtualServer>>,
    pub vs_map: FixedMap<u16>,
    /// The same for IPv6 virtual servers.
    pub vs_map6: FixedMap<u16, (u128, u32)>,
    /// The Dest-NAT virtual server a member's address, port and protocol
    /// answers for ([`crate::service::reply_server`]), keyed as `vs_map`.
    pub replies: FixedMap<u16>,
    pub replies6: FixedMap<u16, (u128, u32)>,
    /// Every SNAT address ever configured, in order: a reload only appends,
    /// so sessions and each worker's port rings keep their indexes.
    pub snat_addrs: Vec<IpAddr>,
    pub timeouts: Timeouts,
    /// The shortest idle time after which any session may expire (every
    /// timeout, every server's `idle_timeout`, the early expiry under a
    /// SYN flood): a session idle for less is alive, one compare.
    pub min_timeout_ms: u32,
    /// Health of every member, by member id (see [`Shared::member_id`]); the
    /// same table in every generation.
    pub members: Arc<MemberStates>,
    /// Configuration generation: 0 at boot, one more per reload.
    pub generation: u64,
    /// Member id of each member of each pool (config indexes).
    member_ids: Vec<Vec<u32>>,
    /// Member id of every (pool, address) configured, or removed but still
    /// holding sessions.
    ids: HashMap<(String, SocketAddr), u32>,
    /// Slots the per-worker counters have room for.
    vs_capacity: usize,
    /// Client addresses are masked with this before choosing their worker:
    /// the shortest persistence netmask, so all clients that share a
    /// persistence entry share its worker. Fixed at boot.
    owner_mask: u32,
    /// The same for IPv6 clients.
    owner_mask6: u128,
    /// The floating addresses the switch owns now, by port, when the
    /// kernel interfaces decide (`[ha] vip_ownership = "kernel"`): VIPs and
    /// SNAT addresses are the switch's only while listed here, and other
    /// addresses listed are answered as interface addresses (a floating
    /// gateway). `None`: the configuration decides, every VIP and SNAT
    /// address is owned.
    pub owned: Option<Arc<Owned>>,
    /// The routing daemon's neighbours (`[announce] peers`): their BGP and
    /// BFD reach the kernel interface under a rate class of their own.
    pub routing_peers: Vec<IpAddr>,
    /// Session synchronisation (`[ha] sync_peers`): who may send it and on
    /// which port, so its datagrams reach the kernel interface under a rate
    /// class of their own. `None`: not configured.
    pub sync: Option<SyncPeers>,
}

/// A member address, port and protocol serving several Dest-NAT virtual
/// servers (or a port-0 one): its replies without a session are not
/// translated, the virtual server they belong to is unknown.
pub const SEVERAL: u16 = u16::MAX;

/// TCP port of BGP; UDP ports of BFD control packets (single hop, RFC
/// 5881; multihop, RFC 5883).
const BGP_PORT: u16 = 179;
const BFD_PORTS: [u16; 2] = [3784, 4784];

/// The peers of a pair as the packet path sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPeers {
    pub peers: Vec<IpAddr>,
    pub port: u16,
}

impl Shared {
    /// Index of `ip` in [`Shared::snat_addrs`], owned now or not (a peer's
    /// session keeps its SNAT port on a node that owns its address later).
    pub fn snat_index<A: Addr>(&self, ip: A) -> Option<u16> {
        let i = self.snat_addrs.iter().position(|a| A::of(*a) == Some(ip))?;
        u16::try_from(i).ok()
    }

    /// Whether a packet from `src` to one of the switch's interface
    /// addresses is the routing daemon's: BGP (TCP port 179, either end) or
    /// BFD (UDP to 3784 or 4784) from a configured `[announce]` peer.
    #[inline]
    pub fn routing_from(&self, src: IpAddr, protocol: u8, sport: u16, dport: u16) -> bool {
        let routing = match protocol {
            crate::wire::ipv4::proto::TCP => sport == BGP_PORT || dport == BGP_PORT,
            crate::wire::ipv4::proto::UDP => BFD_PORTS.contains(&dport),
            _ => false,
        };
        routing && self.routing_peers.contains(&src)
    }

    /// Whether a UDP datagram from `src` to port `dport` of one of the
    /// switch's interface addresses is a configured peer's session sync.
    #[inline]
    pub fn sync_from(&self, src: IpAddr, dport: u16) -> bool {
        self.sync
            .as_ref()
            .is_some_and(|s| s.port == dport && s.peers.contains(&src))
    }
}

/// Addresses the kernel interfaces hold, by port (sorted, no duplicates).
pub type Owned = std::collections::BTreeSet<(u16, IpAddr)>;

/// Why a reload cannot be applied; the running configuration stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadError {
    /// More virtual servers (with those still draining) than the slots
    /// sized at boot.
    TooManyVirtualServers { capacity: usize },
    /// More members (with those still draining) than the ids sized at boot.
    TooManyMembers { capacity: usize },
    /// A persistence netmask shorter than the running workers' split of
    /// clients: its clients could land on different workers.
    PersistenceNetmask {
        virtual_server: String,
        netmask: u8,
        running: u8,
    },
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::TooManyVirtualServers { capacity } => write!(
                f,
                "more than {capacity} virtual servers, counting removed ones still draining: wait for them to drain or restart"
            ),
            ReloadError::TooManyMembers { capacity } => write!(
                f,
                "more than {capacity} pool members, counting removed ones still draining: wait for them to drain or restart"
            ),
            ReloadError::PersistenceNetmask {
                virtual_server,
                netmask,
                running,
            } => write!(
                f,
                "virtual server {virtual_server}: persistence netmask /{netmask} is shorter than the /{running} the workers split clients by since boot; restart to apply it"
            ),
        }
    }
}

impl std::error::Error for ReloadError {}

/// Slots and ids a reload may not exceed, fixed at boot so the counters and
/// member states workers write are never reallocated.
fn capacity(n: usize) -> usize {
    (2 * n).max(1024)
}

/// The shortest persistence netmask of `cfg`'s servers of family `A`, as a
/// mask (all ones without persistence).
fn persistence_mask<A: Addr>(cfg: &Config) -> A {
    cfg.virtual_servers
        .iter()
        .filter(|v| A::of(v.address.ip()).is_some())
        .filter_map(|v| v.persistence.as_ref())
        .map(|p| A::mask(p.netmask.min(A::BITS)))
        .fold(A::mask(A::BITS), |a, m| a & m)
}

/// The length of netmask `mask` of family `A`.
fn mask_len<A: Addr>(mask: A) -> u8 {
    (mask.widen() << (128 - u32::from(A::BITS))).leading_ones() as u8
}

/// The first server of `cfg` of family `A` whose persistence netmask is
/// shorter than the running split `owner`.
fn split_refused<A: Addr>(cfg: &Config, owner: A) -> Option<ReloadError> {
    cfg.virtual_servers.iter().find_map(|v| {
        let p = v
            .persistence
            .as_ref()
            .filter(|_| A::of(v.address.ip()).is_some())?;
        (A::mask(p.netmask.min(A::BITS)) & owner != owner).then(|| {
            ReloadError::PersistenceNetmask {
                virtual_server: v.name.clone(),
                netmask: p.netmask,
                running: mask_len(owner),
            }
        })
    })
}

impl Shared {
    /// Builds the tables. `macs[i]` is the MAC of the port of `cfg.interfaces[i]`.
    /// IPv6 entries are skipped here (the daemon refuses them until supported).
    pub fn new(cfg: &Config, macs: &[Mac], workers: u16) -> Shared {
        let n: usize = cfg.pools.iter().map(|p| p.members.len()).sum();
        let mut weights = Vec::with_capacity(n);
        for p in &cfg.pools {
            weights.extend(p.members.iter().map(|m| (m.weight, m.enabled)));
        }
        let base = Base {
            workers: workers.max(1),
            macs: macs.to_vec(),
            neighbors: Arc::new(NeighborTable::with_capacity(4096)),
            members: Arc::new(MemberStates::with_capacity(&weights, workers, capacity(n))),
            vs_capacity: capacity(cfg.virtual_servers.len()),
            owner_mask: persistence_mask(cfg),
            owner_mask6: persistence_mask(cfg),
            generation: 0,
            // Under kernel ownership nothing floating is the switch's until
            // the kernel interfaces say so.
            owned: (cfg.ha.vip_ownership == VipOwnership::Kernel).then(Default::default),
        };
        for n in &cfg.neighbors {
            base.neighbors
                .set_static(n.address, n.interface as u16, n.mac);
        }
        // Boot: ids in configuration order, as `MemberStates` was filled.
        build(cfg, base, None).expect("a boot configuration fits the capacity sized for it")
    }

    /// The snapshot for a new configuration, keeping what a reload keeps:
    /// slots of virtual servers and ids of members by name and address, SNAT
    /// address indexes, the neighbour and member tables, and, while they have
    /// sessions (`vs_sessions(slot)`, `MemberStates::sessions`), removed
    /// virtual servers and members. What cannot change live (ports, routes,
    /// workers) must have been refused before; it is rebuilt the same.
    pub fn reload(
        &self,
        cfg: &Config,
        vs_sessions: &dyn Fn(u16) -> u64,
    ) -> Result<Shared, ReloadError> {
        self.next(cfg, self.owned.clone(), vs_sessions)
    }

    /// The same snapshot with the floating addresses in `owned` (a change
    /// of the kernel interfaces' addresses, under `vip_ownership =
    /// "kernel"`): built as a reload of the running configuration `cfg`, a
    /// generation further, so it is handed to the workers the same way.
    pub fn reown(
        &self,
        cfg: &Config,
        owned: Owned,
        vs_sessions: &dyn Fn(u16) -> u64,
    ) -> Result<Shared, ReloadError> {
        self.next(cfg, Some(Arc::new(owned)), vs_sessions)
    }

    /// The next generation: `cfg` owning `owned` (see [`Shared::reload`]).
    fn next(
        &self,
        cfg: &Config,
        owned: Option<Arc<Owned>>,
        vs_sessions: &dyn Fn(u16) -> u64,
    ) -> Result<Shared, ReloadError> {
        // One worker owns every client whatever the split.
        if self.workers > 1 {
            let refused = split_refused(cfg, self.owner_mask)
                .or_else(|| split_refused(cfg, self.owner_mask6));
            if let Some(e) = refused {
                return Err(e);
            }
        }
        let base = Base {
            workers: self.workers,
            macs: self.ports.iter().map(|p| p.mac).collect(),
            neighbors: self.neighbors.clone(),
            members: self.members.clone(),
            vs_capacity: self.vs_capacity,
            owner_mask: self.owner_mask,
            owner_mask6: self.owner_mask6,
            generation: self.generation + 1,
            owned,
        };
        build(
            cfg,
            base,
            Some(Previous {
                shared: self,
                vs_sessions,
            }),
        )
    }

    /// Whether the switch owns VIP or SNAT address `ip` now.
    pub fn owns(&self, ip: IpAddr) -> bool {
        self.owned
            .as_ref()
            .is_none_or(|o| o.iter().any(|(_, a)| *a == ip))
    }

    /// The virtual server in `slot`, if any.
    #[inline]
    pub fn service(&self, slot: u16) -> Option<&VirtualServer> {
        self.services.get(usize::from(slot))?.as_ref()
    }

    /// Every virtual server with its slot, live and retired.
    pub fn servers(&self) -> impl Iterator<Item = (u16, &VirtualServer)> {
        self.services
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((i as u16, v.as_ref()?)))
    }

    /// The slot of the configured (not retired) virtual server `name`.
    pub fn slot_of(&self, name: &str) -> Option<u16> {
        self.servers()
            .find(|(_, v)| !v.retired && v.name == name)
            .map(|(i, _)| i)
    }

    /// Slots the per-worker counters must have room for.
    pub fn vs_capacity(&self) -> usize {
        self.vs_capacity
    }

    /// The id of member `addr` of pool `pool` (by name), if configured or
    /// still draining.
    pub fn member_key_id(&self, pool: &str, addr: impl Into<SocketAddr>) -> Option<u32> {
        self.ids.get(&(pool.to_string(), addr.into())).copied()
    }

    /// The worker that owns the sessions of `client` (see [`client_owner`]),
    /// by its address masked to the shortest persistence netmask.
    #[inline]
    pub fn client_owner(&self, client: Ipv4Addr) -> u16 {
        self.client_owner_of(u32::from(client))
    }

    /// [`Shared::client_owner`] of a client of either family.
    #[inline]
    pub fn client_owner_of<A: Addr>(&self, client: A) -> u16 {
        let mask = match A::is_v4() {
            true => A::narrow(u128::from(self.owner_mask)),
            false => A::narrow(self.owner_mask6),
        };
        client_owner_fold((client & mask).fold(), self.workers)
    }

    /// The member id of member `member` of pool `pool` (config indexes).
    pub fn member_id(&self, pool: usize, member: usize) -> u32 {
        self.member_ids
            .get(pool)
            .and_then(|p| p.get(member))
            .copied()
            .unwrap_or(u32::MAX)
    }

    /// The port the switch reaches member address `ip` through, if `ip` is
    /// a configured member's.
    #[inline]
    pub fn member_port(&self, ip: Ipv4Addr) -> Option<u16> {
        self.member_ports.get(u64::from(u32::from(ip)))
    }

    #[inline]
    pub fn local(&self, ip: Ipv4Addr) -> Option<Local> {
        self.local.get(u64::from(u32::from(ip)))
    }

    /// The port of the connected prefix `ip` lies in, of either family.
    pub fn connected_port(&self, ip: IpAddr) -> Option<u16> {
        match ip {
            IpAddr::V4(ip) => self.routes.connected(ip).map(|r| r.port),
            IpAddr::V6(ip) => self.routes6.connected(ip).map(|r| r.port),
        }
    }

    #[inline]
    pub fn local6(&self, ip: Ipv6Addr) -> Option<Local> {
        self.local6.get(u128::from(ip))
    }

    /// The port through which the switch reaches IPv6 member address `ip`,
    /// if `ip` is a configured member's.
    #[inline]
    pub fn member_port6(&self, ip: Ipv6Addr) -> Option<u16> {
        self.member_ports6.get(u128::from(ip))
    }

    /// Whether session `s` has idled out at `now_ms`: its state's timeout, or
    /// its virtual server's `idle_timeout` for established TCP and UDP.
    #[inline]
    /// Under `syn_pressure` (a SYN flood) half-open sessions expire early.
    pub fn session_expired<A: crate::addr::Addr>(
        &self,
        s: &Session<A>,
        now_ms: u32,
        syn_pressure: bool,
    ) -> bool {
        let idle_for = now_ms.wrapping_sub(s.last_seen);
        if idle_for < self.min_timeout_ms {
            return false;
        }
        let idle = self.service(s.vs).and_then(|v| v.idle_timeout_ms);
        let mut limit = crate::conntrack::timeout_ms(s.state, s.proto, &self.timeouts, idle);
        if syn_pressure && crate::conntrack::embryonic(s.state, s.proto) {
            limit = limit.min(crate::flood::PRESSURE_SYN_TIMEOUT_MS);
        }
        idle_for >= limit
    }

    /// Whether the switch answers ARP for `ip` on `port`: its own interface
    /// addresses on their port, VIPs and SNAT addresses on every port.
    #[inline]
    pub fn answers_arp(&self, ip: Ipv4Addr, port: u16) -> bool {
        match self.local(ip) {
            Some(l) => l.vip || l.snat.is_some() || l.interface == Some(port),
            None => false,
        }
    }

    /// The port's IPv6 address towards `towards` (the source of its
    /// neighbour solicitations and health checks): its link-local address
    /// for a link-local destination, else an address whose prefix holds
    /// it, else its first address (a destination behind a gateway), else
    /// its link-local address.
    pub fn port_address6(&self, port: u16, towards: Ipv6Addr) -> Ipv6Addr {
        let Some(p) = self.ports.get(usize::from(port)) else {
            return Ipv6Addr::UNSPECIFIED;
        };
        use crate::route::RouteAddr;
        if towards.masked(10) == Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0) {
            return p.link_local;
        }
        (p.addresses6.iter())
            .find(|(a, len)| a.masked(*len) == towards.masked(*len))
            .or(p.addresses6.first())
            .map_or(p.link_local, |(a, _)| *a)
    }

    /// The first address of a port, used as the source of its ARP requests.
    pub fn port_address(&self, port: u16, towards: Ipv4Addr) -> Ipv4Addr {
        let Some(p) = self.ports.get(usize::from(port)) else {
            return Ipv4Addr::UNSPECIFIED;
        };
        let addrs = &p.addresses;
        addrs
            .iter()
            .find(|(a, len)| {
                let m = crate::route::mask(*len);
                u32::from(*a) & m == u32::from(towards) & m
            })
            .or(addrs.first())
            .map(|(a, _)| *a)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
}
