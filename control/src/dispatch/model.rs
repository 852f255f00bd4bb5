//! The typed answers, read from the running switch: the one place that
//! reads counters, member states and health for a report. Text, JSON,
//! Prometheus and the status page are all rendered from these values.
//! Each builder reads the one configuration snapshot it is given, so an
//! answer built from several (metrics, the overview) is of one generation
//! even while a reload replaces it.

use crate::live::{Live, Running};
use crate::view::View;
use sluice_control::api::{
    self, HealthCounts, KernelCounters, MemberRow, Metrics, Neighbor, NicCounters, Overview,
    PortCounters, PortPackets, PortStatus, Route, ServerCounters, ServerMember, Stats, Status,
    VirtualServer, WorkerCounters,
};
use sluice_dataplane::neighbor::State as NeighborState;
use sluice_dataplane::service::Member;
use sluice_dataplane::stats::{DropReason, WorkerStats};
use std::sync::atomic::Ordering::Relaxed;

pub fn status(view: &View, live: &Live) -> Status {
    let running = &view.running;
    let ports = live
        .shared
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| PortStatus {
            port: i,
            name: p.name.clone(),
            mac: api::mac(p.mac),
            link_up: view.ports.get(i).is_some_and(|port| port.link().up),
            mtu: p.mtu,
            addresses: (p.addresses.iter())
                .map(|(a, l)| format!("{a}/{l}"))
                .collect(),
        });
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        dpdk: sluice_ffi::version(),
        uptime_s: running.started.elapsed().as_secs(),
        workers: running.stats.len(),
        sessions: (running.stats.iter())
            .map(|s| s.sessions_active.load(Relaxed))
            .sum(),
        ports: ports.collect(),
        generation: live.shared.generation,
        announce: (crate::announce::report(running, &view.announce).ok()).map(|a| a.summary()),
    }
}

pub fn stats(view: &View, live: &Live) -> Stats {
    let running = &view.running;
    let ports = live.shared.ports.iter().enumerate().map(|(i, p)| {
        let sum = |f: fn(&sluice_dataplane::stats::PortCounters) -> u64| -> u64 {
            running
                .stats
                .iter()
                .filter_map(|s| s.ports.get(i))
                .map(f)
                .sum()
        };
        PortCounters {
            port: i,
            name: p.name.clone(),
            rx_packets: sum(|c| c.rx_packets.load(Relaxed)),
            tx_packets: sum(|c| c.tx_packets.load(Relaxed)),
            nic: view
                .ports
                .get(i)
                .and_then(|port| port.stats().ok())
                .map(|hw| NicCounters {
                    rx: hw.ipackets,
                    tx: hw.opackets,
                    missed: hw.imissed,
                    rx_errors: hw.ierrors,
                    tx_errors: hw.oerrors,
                    no_mbuf: hw.rx_nombuf,
                }),
        }
    });
    let workers = running.stats.iter().enumerate();
    let workers = workers.map(|(w, s)| worker_counters(w, s, live.shared.ports.len()));
    let kernel = live.shared.ports.iter().zip(&view.kernel);
    let kernel = kernel.filter_map(|(p, c)| {
        let c = c.as_ref()?;
        Some(KernelCounters {
            port: p.name.clone(),
            to_kernel: c.to_kernel.load(Relaxed),
            from_kernel: c.from_kernel.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
        })
    });
    Stats {
        ports: ports.collect(),
        workers: workers.collect(),
        virtual_servers: server_counters(running, live),
        kernel: kernel.collect(),
        generation: live.shared.generation,
    }
}

fn worker_counters(w: usize, s: &WorkerStats, ports: usize) -> WorkerCounters {
    let port = |p: &sluice_dataplane::stats::PortCounters| PortPackets {
        rx_packets: p.rx_packets.load(Relaxed),
        tx_packets: p.tx_packets.load(Relaxed),
    };
    WorkerCounters {
        worker: w,
        counters: (s.scalars().iter())
            .map(|(n, v)| (n.to_string(), *v))
            .collect(),
        drops_by_reason: (DropReason::ALL.iter())
            .map(|r| (r.name().to_string(), s.drops_of(*r)))
            .collect(),
        ports: s.ports.iter().take(ports).map(port).collect(),
    }
}

fn server_counters(running: &Running, live: &Live) -> Vec<ServerCounters> {
    let servers = live.shared.servers().map(|(slot, vs)| {
        let i = usize::from(slot);
        let c = |which: fn(&WorkerStats) -> &[std::sync::atomic::AtomicU64]| {
            running.vs_counter(i, which)
        };
        ServerCounters {
            name: vs.name.clone(),
            removed: vs.retired,
            sessions: running.vs_sessions(slot),
            packets_in: c(|s| &s.vs_packets_in),
            bytes_in: c(|s| &s.vs_bytes_in),
            packets_out: c(|s| &s.vs_packets_out),
            bytes_out: c(|s| &s.vs_bytes_out),
            rejected_no_member: c(|s| &s.vs_rejected),
            denied: c(|s| &s.vs_denied),
            rejected_full: c(|s| &s.vs_full),
        }
    });
    servers.collect()
}

/// What a member is, as an operator reads it: disabled and down win
/// over draining, which wins over up.
fn member_state(live: &Live, m: &Member) -> &'static str {
    let st = &live.shared.members;
    if !st.is_enabled(m.id) {
        "disabled"
    } else if !st.is_up(m.id) {
        "down"
    } else if st.configured_weight(m.id) == 0 {
        "draining"
    } else {
        "up"
    }
}

pub fn servers(running: &Running, live: &Live) -> Vec<VirtualServer> {
    let servers = live.shared.servers().map(|(slot, v)| {
        let members = v.members.iter().map(|m| ServerMember {
            member: m.addr().to_string(),
            backup: m.backup,
            weight: live.shared.members.configured_weight(m.id),
            state: member_state(live, m).to_string(),
        });
        VirtualServer {
            name: v.name.clone(),
            vip: v.vip,
            port: v.port,
            protocol: if v.proto == 6 { "tcp" } else { "udp" }.to_string(),
            forwarding: v.forwarding.as_str().to_string(),
            method: v.method.as_str().to_string(),
            pool: v.pool.clone(),
            members: members.collect(),
            sessions: running.vs_sessions(slot),
            removed: v.retired,
            removed_members: (v.retired_members.iter())
                .map(|m| m.addr().to_string())
                .collect(),
        }
    });
    servers.collect()
}

/// One row per (virtual server, member), removed ones included.
pub fn members(running: &Running, live: &Live) -> Vec<MemberRow> {
    let now = running.clock.now_ms();
    let mut rows = Vec::new();
    for (_, vs) in live.shared.servers() {
        let retired = vs.retired_members.iter().map(|m| (m, true));
        for (m, removed) in vs.members.iter().map(|m| (m, vs.retired)).chain(retired) {
            let mut row = member_row(live, now, m);
            row.virtual_server.clone_from(&vs.name);
            row.pool.clone_from(&vs.pool);
            row.server_removed = vs.retired;
            if removed {
                row.state = "removed".to_string();
            }
            rows.push(row);
        }
    }
    rows
}

fn member_row(live: &Live, now: u64, m: &Member) -> MemberRow {
    let target = live.plan.target_of.get(m.id as usize).copied().flatten();
    let status = target
        .and_then(|t| live.health.get(t))
        .map(|s| crate::health::lock(s).clone());
    let states = &live.shared.members;
    MemberRow {
        virtual_server: String::new(),
        pool: String::new(),
        member: m.addr().to_string(),
        role: if m.backup { "backup" } else { "primary" }.to_string(),
        state: member_state(live, m).to_string(),
        since_s: now.saturating_sub(status.as_ref().map_or(0, |s| s.since_ms)) / 1000,
        sessions: states.sessions(m.id),
        check: (live.plan.check_name.get(m.id as usize)).map_or("none".to_string(), Clone::clone),
        latency_ms: (status.as_ref())
            .and_then(|s| s.last_latency)
            .map(|d| d.as_secs_f64() * 1000.0),
        weight: states.configured_weight(m.id),
        effective_weight: states.weight(m.id),
        limit: m.max_connections,
        healthy: states.is_up(m.id),
        checks: status.as_ref().map(|s| HealthCounts {
            checks: s.checks,
            failures: s.failures,
            local_errors: s.local_errors,
        }),
        last: status.map(|s| s.last_reason),
        server_removed: false,
    }
}

pub fn neighbors(running: &Running, live: &Live) -> Vec<Neighbor> {
    let now = running.clock.now_ms();
    let entries = live.shared.neighbors.entries().into_iter();
    let list = entries.map(|(ip, port, e)| {
        let (usable, stale) = e.usable(now);
        Neighbor {
            address: ip,
            mac: api::mac(e.mac),
            port: port_name(live, port),
            fixed: e.state == NeighborState::Static,
            usable,
            stale,
            age_s: now.saturating_sub(e.updated_ms) / 1000,
        }
    });
    list.collect()
}

fn port_name(live: &Live, port: u16) -> Option<String> {
    live.shared
        .ports
        .get(usize::from(port))
        .map(|p| p.name.clone())
}

/// The routes of both families, IPv4 first, each longest prefix first.
pub fn routes(live: &Live) -> Vec<Route> {
    let shared = &live.shared;
    let v4 = shared.routes.routes().iter().map(|r| Route {
        destination: format!("{}/{}", r.prefix, r.len),
        gateway: r.gateway.map(Into::into),
        port: port_name(live, r.port),
    });
    let v6 = shared.routes6.routes().iter().map(|r| Route {
        destination: format!("{}/{}", r.prefix, r.len),
        gateway: r.gateway.map(Into::into),
        port: port_name(live, r.port),
    });
    v4.chain(v6).collect()
}

pub fn metrics(view: &View, live: &Live) -> Metrics {
    Metrics::build(&stats(view, live), &members(&view.running, live))
}

pub fn overview(view: &View, live: &Live) -> Overview {
    Overview {
        status: status(view, live),
        virtual_servers: servers(&view.running, live),
        members: members(&view.running, live),
        drops: stats(view, live).drops(),
        history: view.rates.history(),
    }
}
