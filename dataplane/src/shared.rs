//! What every worker reads and nobody changes on the packet path: ports,
//! owned addresses, routes, virtual servers. Built once from the
//! configuration. The neighbour table and member health inside are atomics.

use crate::acl::SourceAcl;
use crate::fixedmap::FixedMap;
use crate::members::MemberStates;
use crate::neighbor::NeighborTable;
use crate::route::RouteTable;
use crate::sched::maglev::{Maglev, MaglevMember};
use crate::service::{client_owner, vs_key, Encap, Member, MssClamp, Persistence, VirtualServer};
use crate::session::Session4;
use crate::wire::{ipv4::proto, Mac};
use sluice_config::{Config, Encapsulation, Forwarding, Method, Pool, Prefix, Protocol};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// One DPDK port as the pipeline sees it; index = position in `[[interface]]`.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub mac: Mac,
    pub addresses: Vec<(Ipv4Addr, u8)>,
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
    pub routes: RouteTable,
    pub neighbors: NeighborTable,
    pub services: Vec<VirtualServer>,
    pub vs_map: FixedMap<u16>,
    pub snat_addrs: Vec<Ipv4Addr>,
    pub timeouts: Timeouts,
    /// Health of every member, by member id (see [`Shared::member_id`]).
    pub members: Arc<MemberStates>,
    /// Member id of the first member of each pool.
    pool_first_id: Vec<u32>,
    /// Client addresses are masked with this before choosing their worker:
    /// the shortest persistence netmask, so all clients that share a
    /// persistence entry share its worker.
    owner_mask: u32,
}

fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// IPv4 prefixes as (network, length); IPv6 ones are skipped (refused at boot).
fn v4_prefixes(list: &[Prefix]) -> Vec<(u32, u8)> {
    list.iter()
        .filter_map(|p| Some((u32::from(v4(p.addr)?), p.len)))
        .collect()
}

/// The Maglev table of a pool balanced by a hash method: primaries only
/// (backups take over by round robin when no primary is usable). Its size
/// was validated with the configuration, so a failure leaves the pool
/// without a table and its hash methods fall back to round robin.
fn maglev_of(pool: &Pool) -> Option<Arc<Maglev>> {
    if !matches!(
        pool.method,
        Method::SourceHash | Method::SourcePortHash | Method::Maglev
    ) {
        return None;
    }
    let members: Vec<MaglevMember> = pool
        .members
        .iter()
        .filter_map(|m| {
            Some(MaglevMember {
                addr: v4(m.address.ip())?,
                port: m.address.port(),
                weight: if m.backup { 0 } else { m.weight },
            })
        })
        .collect();
    Maglev::build(&members, pool.maglev_table_size)
        .ok()
        .map(Arc::new)
}

impl Shared {
    /// Builds the tables. `macs[i]` is the MAC of the port of `cfg.interfaces[i]`.
    /// IPv6 entries are skipped here (the daemon refuses them until supported).
    pub fn new(cfg: &Config, macs: &[Mac], workers: u16) -> Shared {
        let mut local: FixedMap<Local> =
            FixedMap::with_capacity(256 + cfg.virtual_servers.len() * 4);
        let mut routes = RouteTable::default();
        let mut ports = Vec::new();
        for (i, itf) in cfg.interfaces.iter().enumerate() {
            let port = i as u16;
            let mut addresses = Vec::new();
            for a in &itf.addresses {
                let Some(ip) = v4(a.addr) else { continue };
                addresses.push((ip, a.prefix_len));
                routes.add(ip, a.prefix_len, None, port);
                let key = u64::from(u32::from(ip));
                let mut l = local.get(key).unwrap_or_default();
                l.interface = Some(port);
                local.insert(key, l);
            }
            ports.push(Port {
                name: itf.name.clone(),
                mac: macs.get(i).copied().unwrap_or_default(),
                addresses,
                mtu: itf.mtu,
                kernel: itf.kernel_interface.is_some(),
            });
        }
        for r in &cfg.routes {
            if let (Some(dst), Some(gw)) = (v4(r.destination.addr), v4(r.gateway)) {
                routes.add(dst, r.destination.len, Some(gw), r.interface as u16);
            }
        }
        let neighbors = NeighborTable::with_capacity(4096);
        for n in &cfg.neighbors {
            if let Some(ip) = v4(n.address) {
                neighbors.set_static(ip, n.interface as u16, n.mac);
            }
        }
        let mut pool_first_id = Vec::with_capacity(cfg.pools.len());
        let mut weights = Vec::new();
        for p in &cfg.pools {
            pool_first_id.push(weights.len() as u32);
            weights.extend(p.members.iter().map(|m| (m.weight, m.enabled)));
        }
        let maglevs: Vec<Option<Arc<Maglev>>> = cfg.pools.iter().map(maglev_of).collect();
        let mut snat_addrs: Vec<Ipv4Addr> = Vec::new();
        let mut services = Vec::new();
        let mut vs_map = FixedMap::with_capacity(cfg.virtual_servers.len() + 1);
        for (i, vs) in cfg.virtual_servers.iter().enumerate() {
            let Some(vip) = v4(vs.address.ip()) else {
                continue;
            };
            let proto = match vs.protocol {
                Protocol::Tcp => proto::TCP,
                Protocol::Udp => proto::UDP,
            };
            let pool = &cfg.pools[vs.pool];
            let members = pool
                .members
                .iter()
                .enumerate()
                .filter_map(|(j, m)| {
                    Some(Member {
                        ip: v4(m.address.ip())?,
                        port: m.address.port(),
                        weight: m.weight,
                        backup: m.backup,
                        enabled: m.enabled,
                        id: pool_first_id[vs.pool] + j as u32,
                        max_connections: m.max_connections,
                    })
                })
                .collect();
            let mut snat = Vec::new();
            if matches!(vs.forwarding, Forwarding::BothNat | Forwarding::LanToLan) {
                for a in vs.snat_addresses.iter().filter_map(|a| v4(*a)) {
                    let idx = match snat_addrs.iter().position(|s| *s == a) {
                        Some(p) => p,
                        None => {
                            snat_addrs.push(a);
                            snat_addrs.len() - 1
                        }
                    } as u16;
                    snat.push(idx);
                    let key = u64::from(u32::from(a));
                    let mut l = local.get(key).unwrap_or_default();
                    l.snat = Some(idx);
                    local.insert(key, l);
                }
            }
            let key = u64::from(u32::from(vip));
            let mut l = local.get(key).unwrap_or_default();
            l.vip = true;
            local.insert(key, l);
            vs_map.insert(vs_key(vip, vs.address.port(), proto), i as u16);
            services.push(VirtualServer {
                name: vs.name.clone(),
                pool: pool.name.clone(),
                on_member_down: pool.on_member_down,
                method: pool.method,
                maglev: maglevs[vs.pool].clone(),
                acl: SourceAcl::new(
                    &v4_prefixes(&vs.allow_sources),
                    &v4_prefixes(&vs.deny_sources),
                ),
                persistence: vs.persistence.as_ref().map(|p| Persistence {
                    timeout_ms: ms(p.timeout),
                    mask: crate::route::mask(p.netmask.min(32)),
                }),
                reset_on_timeout: vs.reset_on_timeout,
                vip,
                port: vs.address.port(),
                proto,
                forwarding: vs.forwarding,
                members,
                snat,
                idle_timeout_ms: vs.idle_timeout.map(ms),
                lan_subnets: vs
                    .lan_subnets
                    .iter()
                    .filter_map(|p| Some((u32::from(v4(p.addr)?), p.len)))
                    .collect(),
                encap: match (vs.forwarding, vs.encapsulation) {
                    (Forwarding::L3Dsr, Some(Encapsulation::Gre)) => Encap::Gre,
                    (Forwarding::L3Dsr, Some(Encapsulation::Dscp)) => {
                        Encap::Dscp(vs.dscp.unwrap_or(0))
                    }
                    (Forwarding::L3Dsr, _) => Encap::Ipip,
                    _ => Encap::None,
                },
                mss_clamp: match vs.mss_clamp {
                    Some(sluice_config::MssClamp::Off) => MssClamp::Off,
                    Some(sluice_config::MssClamp::Value(v)) => MssClamp::Value(v),
                    Some(sluice_config::MssClamp::Auto) | None => MssClamp::Auto,
                },
            });
        }
        let t = &cfg.timeouts;
        Shared {
            workers: workers.max(1),
            ports,
            local,
            routes,
            neighbors,
            services,
            vs_map,
            snat_addrs,
            timeouts: Timeouts {
                tcp_syn: ms(t.tcp_syn),
                tcp_established: ms(t.tcp_established),
                tcp_fin: ms(t.tcp_fin),
                tcp_close: ms(t.tcp_close),
                udp: ms(t.udp),
                icmp: ms(t.icmp),
            },
            members: Arc::new(MemberStates::new(&weights, workers)),
            pool_first_id,
            owner_mask: cfg
                .virtual_servers
                .iter()
                .filter_map(|v| v.persistence.as_ref())
                .map(|p| crate::route::mask(p.netmask.min(32)))
                .fold(u32::MAX, |a, m| a & m),
        }
    }

    /// The worker that owns the sessions of `client` (see [`client_owner`]),
    /// by its address masked to the shortest persistence netmask.
    #[inline]
    pub fn client_owner(&self, client: Ipv4Addr) -> u16 {
        client_owner(
            Ipv4Addr::from(u32::from(client) & self.owner_mask),
            self.workers,
        )
    }

    /// The member id of member `member` of pool `pool` (config indexes).
    pub fn member_id(&self, pool: usize, member: usize) -> u32 {
        self.pool_first_id.get(pool).copied().unwrap_or(u32::MAX) + member as u32
    }

    #[inline]
    pub fn local(&self, ip: Ipv4Addr) -> Option<Local> {
        self.local.get(u64::from(u32::from(ip)))
    }

    /// Whether session `s` has idled out at `now_ms`: its state's timeout, or
    /// its virtual server's `idle_timeout` for established TCP and UDP.
    #[inline]
    pub fn session_expired(&self, s: &Session4, now_ms: u32) -> bool {
        let idle = self
            .services
            .get(usize::from(s.vs))
            .and_then(|v| v.idle_timeout_ms);
        let limit = crate::conntrack::timeout_ms(s.state, s.proto, &self.timeouts, idle);
        now_ms.wrapping_sub(s.last_seen) >= limit
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
