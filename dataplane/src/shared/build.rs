//! Building a configuration snapshot, at boot or for a reload.
//!
//! Identity is what a reload must keep: a virtual server keeps its slot (by
//! name, address, port, protocol, forwarding mode and pool: a server that
//! changed any of these is a new one, and the old one drains) and a member
//! its id (by pool name and address), so sessions made before the reload
//! still name the right ones. What the new file removed
//! is kept, retired, while it has sessions: a virtual server refuses new
//! sessions but serves its own until they end; a member is never chosen
//! again but its sessions still find it. SNAT addresses are only appended,
//! so their indexes (in sessions and in each worker's port rings) hold.
//!
//! What a reload removes is kept retired at least until the next reload,
//! even without sessions: until every worker has taken the new snapshot, a
//! worker still on the old one may open a session on it. A reload waits for
//! every worker, so at the next one only the session counts decide.

use super::{Local, Owned, Port, ReloadError, Shared, Timeouts, SEVERAL};
use crate::acl::SourceAcl;
use crate::addr::Addr;
use crate::fixedmap::FixedMap;
use crate::members::MemberStates;
use crate::neighbor::NeighborTable;
use crate::route::RouteTable;
use crate::sched::maglev::{Maglev, MaglevMember};
use crate::service::{vs_key, vs_key6, Encap, Member, MssClamp, Persistence, VirtualServer};
use crate::wire::{ipv4::proto, Mac};
use sluice_config::{Config, Encapsulation, Forwarding, Pool, Prefix, Protocol};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// What every generation shares or fixes at boot.
pub(super) struct Base {
    pub workers: u16,
    pub macs: Vec<Mac>,
    pub neighbors: Arc<NeighborTable>,
    pub members: Arc<MemberStates>,
    pub vs_capacity: usize,
    pub owner_mask: u32,
    pub owner_mask6: u128,
    pub generation: u64,
    pub owned: Option<Arc<Owned>>,
}

/// The running snapshot a reload starts from, and the session counts per
/// virtual-server slot that decide what of it must be kept.
pub(super) struct Previous<'a> {
    pub shared: &'a Shared,
    pub vs_sessions: &'a dyn Fn(u16) -> u64,
}

type Ids = HashMap<(String, SocketAddr), u32>;
/// Removed virtual servers kept for their sessions, with their slots.
type Retired = Vec<(u16, VirtualServer)>;

pub(super) fn build(
    cfg: &Config,
    base: Base,
    prev: Option<Previous>,
) -> Result<Shared, ReloadError> {
    let (ports, routes, routes6) = network(cfg, &base.macs);
    let (ids, member_ids) = member_ids(cfg, &base.members, prev.as_ref())?;
    let (slots, retired) = vs_slots(cfg, base.vs_capacity, &base.members, prev.as_ref())?;
    let mut snat_addrs = prev
        .as_ref()
        .map(|p| p.shared.snat_addrs.clone())
        .unwrap_or_default();
    let top = slots.iter().chain(retired.iter().map(|(s, _)| s)).max();
    let mut services: Vec<Option<VirtualServer>> = vec![None; top.map_or(0, |s| *s as usize + 1)];
    for (slot, vs) in retired {
        services[usize::from(slot)] = Some(vs);
    }
    let maglevs: Vec<Option<Arc<Maglev>>> = cfg.pools.iter().map(maglev_of).collect();
    for (i, vs) in cfg.virtual_servers.iter().enumerate() {
        let slot = usize::from(slots[i]);
        let mut server = virtual_server(
            cfg,
            vs,
            &member_ids[vs.pool],
            maglevs[vs.pool].clone(),
            &mut snat_addrs,
        );
        if let Some(before) = prev.as_ref().and_then(|p| p.shared.service(slots[i])) {
            server.retired_members = still_draining(before, &server, &base.members);
        }
        services[slot] = Some(server);
    }
    let (local, local6) = locals(&ports, &services, &snat_addrs, base.owned.as_deref());
    for v in services.iter_mut().flatten() {
        let l = match v.vip {
            IpAddr::V4(ip) => local.get(u64::from(u32::from(ip))),
            IpAddr::V6(ip) => local6.get(u128::from(ip)),
        };
        v.vip_local = l.is_some_and(|l| l.vip);
    }
    let (member_ports, member_ports6) = member_ports(cfg, &routes, &routes6);
    let (replies, replies6) = reply_map(&services, cfg.announce.is_some());
    let mut vs_map = FixedMap::with_capacity(services.len() + 1);
    let mut vs_map6 = FixedMap::with_capacity(services.len() + 1);
    // Retired servers first: a live one on the same address and port wins.
    for retired in [true, false] {
        for (slot, v) in services.iter().enumerate() {
            let Some(v) = v.as_ref().filter(|v| v.retired == retired) else {
                continue;
            };
            match v.vip {
                IpAddr::V4(vip) => vs_map.insert(vs_key(vip, v.port, v.proto), slot as u16),
                IpAddr::V6(vip) => {
                    vs_map6.insert(vs_key6(u128::from(vip), v.port, v.proto), slot as u16)
                }
            };
        }
    }
    let t = &cfg.timeouts;
    let timeouts = Timeouts {
        tcp_syn: super::ms(t.tcp_syn),
        tcp_established: super::ms(t.tcp_established),
        tcp_fin: super::ms(t.tcp_fin),
        tcp_close: super::ms(t.tcp_close),
        udp: super::ms(t.udp),
        icmp: super::ms(t.icmp),
    };
    let min_timeout_ms = min_timeout(&timeouts, &services);
    Ok(Shared {
        workers: base.workers,
        ports,
        local,
        local6,
        member_ports,
        member_ports6,
        routes,
        routes6,
        neighbors: base.neighbors,
        services,
        vs_map,
        vs_map6,
        replies,
        replies6,
        snat_addrs,
        timeouts,
        min_timeout_ms,
        members: base.members,
        generation: base.generation,
        member_ids,
        ids,
        vs_capacity: base.vs_capacity,
        owner_mask: base.owner_mask,
        owner_mask6: base.owner_mask6,
        owned: base.owned,
        routing_peers: cfg
            .announce
            .as_ref()
            .map_or(Vec::new(), |a| a.peers.clone()),
        sync: cfg.ha.sync.as_ref().map(|s| super::SyncPeers {
            peers: s.peers.clone(),
            port: s.port,
        }),
    })
}

/// The prefixes of family `A` in `list`, as (network, length) (a server's
/// are all of its own family: the configuration checks).
fn prefixes<A: Addr>(list: &[Prefix]) -> Vec<(A, u8)> {
    list.iter()
        .filter_map(|p| Some((A::of(p.addr)?, p.len)))
        .collect()
}

/// A server's source ACL, in its family.
fn source_acl(vs: &sluice_config::VirtualServer) -> SourceAcl {
    match vs.address {
        SocketAddr::V4(_) => SourceAcl::new(
            &prefixes::<u32>(&vs.allow_sources),
            &prefixes::<u32>(&vs.deny_sources),
        ),
        SocketAddr::V6(_) => SourceAcl::new(
            &prefixes::<u128>(&vs.allow_sources),
            &prefixes::<u128>(&vs.deny_sources),
        ),
    }
}

/// A server's `lan_subnets`, networks widened (see [`Addr::widen`]).
fn lan_subnets(vs: &sluice_config::VirtualServer) -> Vec<(u128, u8)> {
    fn widened<A: Addr>(list: &[Prefix]) -> Vec<(u128, u8)> {
        let nets = prefixes::<A>(list).into_iter();
        nets.map(|(a, len)| (a.masked(len).widen(), len)).collect()
    }
    match vs.address {
        SocketAddr::V4(_) => widened::<u32>(&vs.lan_subnets),
        SocketAddr::V6(_) => widened::<u128>(&vs.lan_subnets),
    }
}

/// Ports and routes of each family: the interfaces' connected prefixes
/// (and each port's link-local prefix) and the static routes.
fn network(cfg: &Config, macs: &[Mac]) -> (Vec<Port>, RouteTable, RouteTable<Ipv6Addr>) {
    let (mut routes, mut routes6) = (RouteTable::default(), RouteTable::default());
    let mut ports = Vec::new();
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        let port = i as u16;
        let mac = macs.get(i).copied().unwrap_or_default();
        let (mut addresses, mut addresses6) = (Vec::new(), Vec::new());
        for a in &itf.addresses {
            match a.addr {
                IpAddr::V4(ip) => {
                    addresses.push((ip, a.prefix_len));
                    routes.add(ip, a.prefix_len, None, port);
                }
                IpAddr::V6(ip) => {
                    addresses6.push((ip, a.prefix_len));
                    routes6.add(ip, a.prefix_len, None, port);
                }
            }
        }
        let link_local = crate::wire::ipv6::link_local(mac);
        ports.push(Port {
            name: itf.name.clone(),
            mac,
            addresses,
            addresses6,
            link_local,
            mtu: itf.mtu,
            kernel: itf.kernel_interface.is_some(),
        });
    }
    for r in &cfg.routes {
        match (r.destination.addr, r.gateway) {
            (IpAddr::V4(dst), IpAddr::V4(gw)) => {
                routes.add(dst, r.destination.len, Some(gw), r.interface as u16)
            }
            (IpAddr::V6(dst), IpAddr::V6(gw)) => {
                routes6.add(dst, r.destination.len, Some(gw), r.interface as u16)
            }
            _ => {}
        }
    }
    (ports, routes, routes6)
}

/// The switch's own addresses: interface addresses, the VIPs of every
/// server (retired ones too, while their sessions last) and every SNAT
/// address. Under kernel ownership (`owned`), VIPs and SNAT addresses only
/// while a kernel interface holds them, and the other addresses it holds
/// as interface addresses of their port.
fn locals(
    ports: &[Port],
    services: &[Option<VirtualServer>],
    snat_addrs: &[IpAddr],
    owned: Option<&Owned>,
) -> (FixedMap<Local>, FixedMap<Local, u128>) {
    let n = 256 + services.len() * 4 + snat_addrs.len() * 2 + owned.map_or(0, |o| o.len());
    let (mut local, mut local6) = (FixedMap::with_capacity(n), FixedMap::with_capacity(n));
    let mut mark = |ip: IpAddr, f: &dyn Fn(&mut Local)| match ip {
        IpAddr::V4(ip) => {
            let key = u64::from(u32::from(ip));
            let mut l = local.get(key).unwrap_or_default();
            f(&mut l);
            local.insert(key, l);
        }
        IpAddr::V6(ip) => {
            let key = u128::from(ip);
            let mut l = local6.get(key).unwrap_or_default();
            f(&mut l);
            local6.insert(key, l);
        }
    };
    for (i, p) in ports.iter().enumerate() {
        let v4 = p.addresses.iter().map(|(ip, _)| IpAddr::V4(*ip));
        let v6 = p.addresses6.iter().map(|(ip, _)| IpAddr::V6(*ip));
        for ip in v4.chain(v6).chain([IpAddr::V6(p.link_local)]) {
            mark(ip, &|l| l.interface = Some(i as u16));
        }
    }
    let held = |ip: &IpAddr| owned.is_none_or(|o| o.iter().any(|(_, a)| a == ip));
    for (i, a) in snat_addrs.iter().enumerate().filter(|(_, a)| held(a)) {
        mark(*a, &|l| l.snat = Some(i as u16));
    }
    for v in services.iter().flatten().filter(|v| held(&v.vip)) {
        mark(v.vip, &|l| l.vip = true);
    }
    let configured =
        |ip: &IpAddr| snat_addrs.contains(ip) || services.iter().flatten().any(|v| v.vip == *ip);
    for (port, ip) in owned
        .into_iter()
        .flatten()
        .filter(|(_, ip)| !configured(ip))
    {
        mark(*ip, &|l| {
            l.interface.get_or_insert(*port);
        });
    }
    (local, local6)
}

/// The shortest idle time that can expire a session: see
/// [`Shared::min_timeout_ms`].
fn min_timeout(t: &Timeouts, services: &[Option<VirtualServer>]) -> u32 {
    let fixed = [
        t.tcp_syn,
        t.tcp_established,
        t.tcp_fin,
        t.tcp_close,
        t.udp,
        t.icmp,
    ];
    let idle = services.iter().flatten().filter_map(|v| v.idle_timeout_ms);
    (fixed.into_iter().chain(idle)).fold(crate::flood::PRESSURE_SYN_TIMEOUT_MS, u32::min)
}

/// The Dest-NAT virtual server each member address, port and protocol
/// answers for, by family (see [`crate::service::reply_server`]): its slot,
/// or [`SEVERAL`] when the member serves more than one, or serves a port-0
/// server (then its key has port 0 and any port of the member matches).
/// Empty unless `scale_out` (`[announce]`): a single node has every
/// session its members answer.
fn reply_map(
    services: &[Option<VirtualServer>],
    scale_out: bool,
) -> (FixedMap<u16>, FixedMap<u16, (u128, u32)>) {
    let live = || {
        let all = services.iter().enumerate().filter(|_| scale_out);
        all.filter_map(|(i, v)| Some((i, v.as_ref()?)))
    };
    let dest_nat = || live().filter(|(_, v)| !v.retired && v.forwarding == Forwarding::DestNat);
    let n = dest_nat().map(|(_, v)| v.members.len()).sum::<usize>() + 1;
    let (mut map, mut map6) = (FixedMap::with_capacity(n), FixedMap::with_capacity(n));
    for (slot, v) in dest_nat() {
        for m in &v.members {
            let port = if v.port == 0 { 0 } else { m.port };
            let one = if v.port == 0 { SEVERAL } else { slot as u16 };
            match m.ip {
                IpAddr::V4(ip) => {
                    let key = vs_key(ip, port, v.proto);
                    let value = map.get(key).map_or(one, |_| SEVERAL);
                    map.insert(key, value);
                }
                IpAddr::V6(ip) => {
                    let key = vs_key6(u128::from(ip), port, v.proto);
                    let value = map6.get(key).map_or(one, |_| SEVERAL);
                    map6.insert(key, value);
                }
            }
        }
    }
    (map, map6)
}

/// Every pool member's address, with the port of its route, by family.
fn member_ports(
    cfg: &Config,
    routes: &RouteTable,
    routes6: &RouteTable<Ipv6Addr>,
) -> (FixedMap<u16>, FixedMap<u16, u128>) {
    let addrs: Vec<IpAddr> = (cfg.pools.iter())
        .flat_map(|p| p.members.iter().map(|m| m.address.ip()))
        .collect();
    let (mut map, mut map6) = (
        FixedMap::with_capacity(addrs.len()),
        FixedMap::with_capacity(addrs.len()),
    );
    for a in addrs {
        match a {
            IpAddr::V4(a) => {
                if let Some(hop) = routes.lookup(a) {
                    map.insert(u64::from(u32::from(a)), hop.port);
                }
            }
            IpAddr::V6(a) => {
                if let Some(hop) = routes6.lookup(a) {
                    map6.insert(u128::from(a), hop.port);
                }
            }
        }
    }
    (map, map6)
}

/// Member ids per pool and member (config indexes), and the id of every
/// (pool, address) kept. At boot ids follow the configuration order, as
/// `MemberStates` was filled; a reload keeps the ids of members still
/// configured and of removed ones with sessions, and gives new members the
/// lowest free ids.
fn member_ids(
    cfg: &Config,
    states: &MemberStates,
    prev: Option<&Previous>,
) -> Result<(Ids, Vec<Vec<u32>>), ReloadError> {
    let key = |pool: &Pool, m: &sluice_config::Member| Some((pool.name.clone(), m.address));
    let mut ids = Ids::new();
    let Some(prev) = prev else {
        let mut next = 0u32;
        let per_pool = cfg
            .pools
            .iter()
            .map(|p| {
                let pool_ids: Vec<u32> = (next..next + p.members.len() as u32).collect();
                for (m, id) in p.members.iter().zip(&pool_ids) {
                    if let Some(k) = key(p, m) {
                        ids.insert(k, *id);
                    }
                }
                next += p.members.len() as u32;
                pool_ids
            })
            .collect();
        return Ok((ids, per_pool));
    };
    let configured: HashSet<(String, SocketAddr)> = cfg
        .pools
        .iter()
        .flat_map(|p| p.members.iter().filter_map(move |m| key(p, m)))
        .collect();
    let live_before: HashSet<u32> = prev.shared.member_ids.iter().flatten().copied().collect();
    for (k, id) in &prev.shared.ids {
        if configured.contains(k) || live_before.contains(id) || states.sessions(*id) > 0 {
            ids.insert(k.clone(), *id);
        }
    }
    let mut used = vec![false; states.len()];
    for id in ids.values() {
        if let Some(u) = used.get_mut(*id as usize) {
            *u = true;
        }
    }
    let mut free = (0..states.len() as u32).filter(|i| !used[*i as usize]);
    let mut per_pool = Vec::with_capacity(cfg.pools.len());
    for p in &cfg.pools {
        let mut pool_ids = Vec::with_capacity(p.members.len());
        for m in &p.members {
            let Some(k) = key(p, m) else {
                pool_ids.push(u32::MAX);
                continue;
            };
            let id = match ids.get(&k) {
                Some(id) => *id,
                None => {
                    let id = free.next().ok_or(ReloadError::TooManyMembers {
                        capacity: states.len(),
                    })?;
                    ids.insert(k, id);
                    id
                }
            };
            pool_ids.push(id);
        }
        per_pool.push(pool_ids);
    }
    Ok((ids, per_pool))
}

/// The slot of each configured virtual server, and the removed servers
/// kept (retired) in theirs while they have sessions. A server keeps the
/// slot of the running server it is ([`same_identity`]), live or retired; a
/// new or changed one takes the lowest free slot.
fn vs_slots(
    cfg: &Config,
    capacity: usize,
    states: &MemberStates,
    prev: Option<&Previous>,
) -> Result<(Vec<u16>, Retired), ReloadError> {
    let n = cfg.virtual_servers.len();
    let Some(prev) = prev else {
        return Ok(((0..n as u16).collect(), Vec::new()));
    };
    let mut taken = vec![false; capacity];
    let mut slots: Vec<Option<u16>> = vec![None; n];
    for (i, v) in cfg.virtual_servers.iter().enumerate() {
        let mut same = (prev.shared.servers()).filter(|(_, s)| same_identity(cfg, v, s));
        if let Some((slot, _)) = same.next() {
            slots[i] = Some(slot);
            taken[usize::from(slot)] = true;
        }
    }
    let mut retired = Vec::new();
    for (slot, v) in prev.shared.servers() {
        // Removed by this reload: kept once whatever its count (see above).
        if taken[usize::from(slot)] || (v.retired && (prev.vs_sessions)(slot) == 0) {
            continue;
        }
        let mut kept = v.clone();
        kept.retired = true;
        kept.maglev = None;
        let drained = |m: &&Member| states.sessions(m.id) > 0;
        kept.retired_members = (v.members.iter())
            .chain(v.retired_members.iter().filter(drained))
            .cloned()
            .collect();
        kept.members = Vec::new();
        taken[usize::from(slot)] = true;
        retired.push((slot, kept));
    }
    let mut free = (0..capacity).filter(|s| !taken[*s]).map(|s| s as u16);
    let slots = slots
        .into_iter()
        .map(|s| match s {
            Some(s) => Ok(s),
            None => free
                .next()
                .ok_or(ReloadError::TooManyVirtualServers { capacity }),
        })
        .collect::<Result<Vec<u16>, ReloadError>>()?;
    Ok((slots, retired))
}

/// Whether configured server `v` is the running server `s`: the same name,
/// and the same address, port, protocol, forwarding mode, pool and
/// persistence netmask (or none). Sessions name their server by slot, their
/// member by the server's member list and their persistence entry by the
/// server's netmask, so a server that changed any of these is a new server
/// in a new slot, and the old one drains its sessions, on its old members,
/// member ids and persistence entries.
fn same_identity(cfg: &Config, v: &sluice_config::VirtualServer, s: &VirtualServer) -> bool {
    let proto = match v.protocol {
        Protocol::Tcp => proto::TCP,
        Protocol::Udp => proto::UDP,
    };
    let netmask = v.persistence.as_ref().map(|p| p.netmask);
    s.name == v.name
        && v.address.ip() == s.vip
        && v.address.port() == s.port
        && proto == s.proto
        && v.forwarding == s.forwarding
        && cfg.pools[v.pool].name == s.pool
        && netmask == s.persistence.map(|p| p.netmask)
        // A session's sequence numbers are shifted or not from its start.
        && v.proxy_protocol.is_some() == s.proxy
}

/// The members `before` had that `now` no longer has, and those it was
/// still draining that hold sessions.
fn still_draining(
    before: &VirtualServer,
    now: &VirtualServer,
    states: &MemberStates,
) -> Vec<Member> {
    let kept = |m: &&Member| now.members.iter().any(|n| n.ip == m.ip && n.port == m.port);
    let drained = |m: &&Member| states.sessions(m.id) > 0;
    // Removed by this reload: kept once whatever its count (module docs).
    (before.members.iter())
        .chain(before.retired_members.iter().filter(drained))
        .filter(|m| !kept(m))
        .cloned()
        .collect()
}

/// The Maglev table of a pool balanced by a hash method: primaries only
/// (backups take over by round robin when no primary is usable). Its size
/// was validated with the configuration, so a failure leaves the pool
/// without a table and its hash methods fall back to round robin.
fn maglev_of(pool: &Pool) -> Option<Arc<Maglev>> {
    if !crate::sched::pick::is_hash(pool.method) {
        return None;
    }
    let members: Vec<MaglevMember> = pool
        .members
        .iter()
        .map(|m| MaglevMember {
            addr: m.address.ip(),
            port: m.address.port(),
            weight: if m.backup { 0 } else { m.weight },
        })
        .collect();
    Maglev::build(&members, pool.maglev_table_size)
        .ok()
        .map(Arc::new)
}

/// The SNAT address indexes of a server, appending new addresses.
fn snat_indexes(vs: &sluice_config::VirtualServer, snat_addrs: &mut Vec<IpAddr>) -> Vec<u16> {
    if !matches!(vs.forwarding, Forwarding::BothNat | Forwarding::LanToLan) {
        return Vec::new();
    }
    vs.snat_addresses
        .iter()
        .map(|&a| {
            (match snat_addrs.iter().position(|s| *s == a) {
                Some(p) => p,
                None => {
                    snat_addrs.push(a);
                    snat_addrs.len() - 1
                }
            }) as u16
        })
        .collect()
}

/// One configured virtual server as the packet path sees it.
fn virtual_server(
    cfg: &Config,
    vs: &sluice_config::VirtualServer,
    ids: &[u32],
    maglev: Option<Arc<Maglev>>,
    snat_addrs: &mut Vec<IpAddr>,
) -> VirtualServer {
    let pool = &cfg.pools[vs.pool];
    let members = pool
        .members
        .iter()
        .zip(ids)
        .map(|(m, id)| Member {
            ip: m.address.ip(),
            port: m.address.port(),
            weight: m.weight,
            backup: m.backup,
            enabled: m.enabled,
            id: *id,
            max_connections: m.max_connections,
        })
        .collect();
    VirtualServer {
        name: vs.name.clone(),
        retired: false,
        pool: pool.name.clone(),
        on_member_down: pool.on_member_down,
        method: pool.method,
        maglev,
        acl: source_acl(vs),
        persistence: vs.persistence.as_ref().map(|p| Persistence {
            timeout_ms: super::ms(p.timeout),
            netmask: p.netmask,
        }),
        reset_on_timeout: vs.reset_on_timeout,
        vip: vs.address.ip(),
        // Set once the addresses the switch answers for are known (`build`).
        vip_local: false,
        port: vs.address.port(),
        proto: match vs.protocol {
            Protocol::Tcp => proto::TCP,
            Protocol::Udp => proto::UDP,
        },
        forwarding: vs.forwarding,
        members,
        retired_members: Vec::new(),
        snat: snat_indexes(vs, snat_addrs),
        idle_timeout_ms: vs.idle_timeout.map(super::ms),
        lan_subnets: lan_subnets(vs),
        encap: match (vs.forwarding, vs.encapsulation) {
            (Forwarding::L3Dsr, Some(Encapsulation::Gre)) => Encap::Gre,
            (Forwarding::L3Dsr, Some(Encapsulation::Dscp)) => Encap::Dscp(vs.dscp.unwrap_or(0)),
            (Forwarding::L3Dsr, _) => Encap::Ipip,
            _ => Encap::None,
        },
        mss_clamp: match vs.mss_clamp {
            Some(sluice_config::MssClamp::Off) => MssClamp::Off,
            Some(sluice_config::MssClamp::Value(v)) => MssClamp::Value(v),
            Some(sluice_config::MssClamp::Auto) | None => MssClamp::Auto,
        },
        proxy: vs.proxy_protocol.is_some(),
    }
}
