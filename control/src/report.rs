//! Text the control thread produces: `sluicectl` answers, the final counters
//! printed at exit, and the Prometheus exposition.

use crate::clock::Clock;
use crate::health::Statuses;
use crate::members::Plan;
use crate::prom::{Exposition, Kind};
use sluice_dataplane::service::Member;
use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::{scalar_help, DropReason, WorkerStats};
use sluice_ffi::Port;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

type VsCounter = fn(&WorkerStats) -> &[AtomicU64];
const VS_PACKETS_IN: VsCounter = |s| &s.vs_packets_in;
const VS_BYTES_IN: VsCounter = |s| &s.vs_bytes_in;
const VS_PACKETS_OUT: VsCounter = |s| &s.vs_packets_out;
const VS_BYTES_OUT: VsCounter = |s| &s.vs_bytes_out;

/// What `sluicectl members` shows of one member of one virtual server.
pub struct MemberRow {
    pub virtual_server: String,
    pub pool: String,
    pub member: String,
    pub role: &'static str,
    pub state: &'static str,
    pub since_s: u64,
    pub sessions: u64,
    pub check: String,
    pub latency_ms: Option<f64>,
    pub weight: u32,
    pub effective_weight: u32,
    pub limit: Option<u32>,
    pub last: Option<String>,
}

/// The running configuration as the control thread sees it: replaced as a
/// whole by a reload.
pub struct Live {
    pub config: sluice_config::Config,
    pub shared: Arc<Shared>,
    /// The health checks and what they decide.
    pub plan: Plan,
    /// Health of each check target (`plan.targets`).
    pub health: Statuses,
}

/// What the control thread knows about the running switch.
pub struct View {
    live: std::sync::RwLock<Arc<Live>>,
    pub stats: Vec<Arc<WorkerStats>>,
    pub ports: Vec<Port>,
    pub started: std::time::Instant,
    pub clock: Clock,
    /// Exception-path counters per interface (None without a kernel interface).
    pub kernel: crate::exception::Counters,
    /// Each worker's session mailbox, and the gate that lets one `sessions`
    /// request use them at a time.
    pub mailboxes: Vec<crate::sessions::Mailbox>,
    pub sessions_gate: tokio::sync::Mutex<()>,
    /// Each worker's reload channel, the running health-check tasks, and
    /// the gate that lets one reload run at a time.
    pub reload: crate::reload::Channels,
    /// The configuration file a reload reads.
    pub config_path: std::path::PathBuf,
    /// Session synchronisation with the peers (`[ha] sync_peers`).
    pub sync: Option<crate::ha::sync::Link>,
    /// The VIP routes for the routing daemon (`[announce]`), and draining.
    pub announce: crate::announce::State,
}

pub(crate) fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl View {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        live: Live,
        stats: Vec<Arc<WorkerStats>>,
        ports: Vec<Port>,
        clock: Clock,
        kernel: crate::exception::Counters,
        mailboxes: Vec<crate::sessions::Mailbox>,
        reload: crate::reload::Channels,
        config_path: std::path::PathBuf,
        sync: Option<crate::ha::sync::Link>,
    ) -> View {
        View {
            live: std::sync::RwLock::new(Arc::new(live)),
            stats,
            ports,
            started: std::time::Instant::now(),
            clock,
            kernel,
            mailboxes,
            sessions_gate: tokio::sync::Mutex::new(()),
            reload,
            config_path,
            sync,
            announce: Default::default(),
        }
    }

    /// The running configuration.
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `live` the running configuration (a reload, once every worker took it).
    pub fn replace_live(&self, live: Live) -> Arc<Live> {
        let mut slot = self.live.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, Arc::new(live))
    }

    /// Sessions of virtual-server slot `slot`, summed over the workers.
    pub fn vs_sessions(&self, slot: u16) -> u64 {
        self.stats
            .iter()
            .filter_map(|s| s.vs_sessions.get(usize::from(slot)))
            .map(|c| c.load(Relaxed))
            .sum()
    }

    pub fn status(&self) -> String {
        let live = self.live();
        let mut o = String::new();
        let sessions: u64 = self
            .stats
            .iter()
            .map(|s| s.sessions_active.load(Relaxed))
            .sum();
        let _ = writeln!(
            o,
            "sluice {} up {}s, dpdk {}",
            env!("CARGO_PKG_VERSION"),
            self.started.elapsed().as_secs(),
            sluice_ffi::version()
        );
        let _ = writeln!(o, "workers {}  sessions {}", self.stats.len(), sessions);
        if let Some(line) = crate::announce::status_line(self) {
            o.push_str(&line);
        }
        for (i, p) in live.shared.ports.iter().enumerate() {
            let link = self.ports[i].link();
            let addrs: Vec<String> = p
                .addresses
                .iter()
                .map(|(a, l)| format!("{a}/{l}"))
                .collect();
            let _ = writeln!(
                o,
                "port {i} {} mac {} link {} mtu {} addresses {}",
                p.name,
                mac(p.mac),
                if link.up { "up" } else { "down" },
                p.mtu,
                addrs.join(",")
            );
        }
        o
    }

    pub fn virtual_servers(&self) -> String {
        let live = self.live();
        let mut o = String::new();
        for (slot, vs) in live.shared.servers() {
            let proto = if vs.proto == 6 { "tcp" } else { "udp" };
            let _ = writeln!(
                o,
                "{} {} {} {} method {} sessions {}{}",
                vs.name,
                std::net::SocketAddr::new(vs.vip, vs.port),
                proto,
                vs.forwarding.as_str(),
                vs.method.as_str(),
                self.vs_sessions(slot),
                if vs.retired { " removed, draining" } else { "" }
            );
            for m in &vs.members {
                let _ = writeln!(
                    o,
                    "  member {} weight {}{} {}",
                    m.addr(),
                    live.shared.members.configured_weight(m.id),
                    if m.backup { " backup" } else { "" },
                    self.member_state(m)
                );
            }
            for m in &vs.retired_members {
                let _ = writeln!(o, "  member {} removed, draining", m.addr());
            }
        }
        o
    }

    /// What a member is, as an operator reads it: disabled and down win
    /// over draining, which wins over up.
    pub fn member_state(&self, m: &Member) -> &'static str {
        let live = self.live();
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

    /// Sessions of member `id`, summed over the workers.
    pub fn member_sessions(&self, id: u32) -> u64 {
        let live = self.live();
        live.shared.members.sessions(id)
    }

    /// One line per (virtual server, member): role, state and since when,
    /// active sessions, the check and its last result.
    /// One row per (virtual server, member), for `members` in text or JSON.
    pub fn member_rows(&self) -> Vec<MemberRow> {
        let live = self.live();
        let now = self.clock.now_ms();
        let mut rows = Vec::new();
        for (_, vs) in live.shared.servers() {
            let retired = vs.retired_members.iter().map(|m| (m, true));
            for (m, removed) in vs.members.iter().map(|m| (m, vs.retired)).chain(retired) {
                let target = live.plan.target_of.get(m.id as usize).copied().flatten();
                let status = target
                    .and_then(|t| live.health.get(t))
                    .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone());
                rows.push(MemberRow {
                    virtual_server: vs.name.clone(),
                    pool: vs.pool.clone(),
                    member: m.addr().to_string(),
                    role: if m.backup { "backup" } else { "primary" },
                    state: if removed {
                        "removed"
                    } else {
                        self.member_state(m)
                    },
                    since_s: now.saturating_sub(status.as_ref().map_or(0, |s| s.since_ms)) / 1000,
                    sessions: self.member_sessions(m.id),
                    check: live
                        .plan
                        .check_name
                        .get(m.id as usize)
                        .map_or("none".to_string(), |c| c.clone()),
                    latency_ms: status
                        .as_ref()
                        .and_then(|s| s.last_latency)
                        .map(|d| d.as_secs_f64() * 1000.0),
                    weight: live.shared.members.configured_weight(m.id),
                    effective_weight: live.shared.members.weight(m.id),
                    limit: m.max_connections,
                    last: status.map(|s| s.last_reason),
                });
            }
        }
        rows
    }

    /// One line per (virtual server, member): role, state and since when,
    /// sessions, the check and its last result, weights and limit.
    pub fn members(&self) -> String {
        let mut o = String::from(
            "virtual_server pool member role state since sessions check latency weight effective limit last\n",
        );
        for r in self.member_rows() {
            let latency = r
                .latency_ms
                .map_or("-".to_string(), |l| format!("{l:.1}ms"));
            let limit = r.limit.map_or("-".to_string(), |l| l.to_string());
            let _ = writeln!(
                o,
                "{} {} {} {} {} {}s {} {} {latency} {} {} {limit} {}",
                r.virtual_server,
                r.pool,
                r.member,
                r.role,
                r.state,
                r.since_s,
                r.sessions,
                r.check,
                r.weight,
                r.effective_weight,
                r.last.as_deref().unwrap_or("-"),
            );
        }
        o
    }

    pub fn neighbors(&self) -> String {
        let live = self.live();
        let now = self.clock.now_ms();
        let mut o = String::new();
        for (ip, port, e) in live.shared.neighbors.entries() {
            let name = live
                .shared
                .ports
                .get(usize::from(port))
                .map_or("?", |p| p.name.as_str());
            let state = match e.state {
                sluice_dataplane::neighbor::State::Static => "static".to_string(),
                sluice_dataplane::neighbor::State::Dynamic => {
                    let (usable, stale) = e.usable(now);
                    let age = now.saturating_sub(e.updated_ms) / 1000;
                    let s = if !usable {
                        "expired"
                    } else if stale {
                        "stale"
                    } else {
                        "reachable"
                    };
                    format!("{s} {age}s")
                }
            };
            let _ = writeln!(o, "{ip} {} {name} {state}", mac(e.mac));
        }
        o
    }

    pub fn routes(&self) -> String {
        let live = self.live();
        let mut o = String::new();
        for r in all_routes(&live.shared) {
            let name = live
                .shared
                .ports
                .get(usize::from(r.port))
                .map_or("?", |p| p.name.as_str());
            let prefix = r.prefix;
            match r.gateway {
                Some(g) => writeln!(o, "{prefix}/{} via {g} dev {name}", r.len),
                None => writeln!(o, "{prefix}/{} dev {name} connected", r.len),
            }
            .ok();
        }
        o
    }

    /// Per-port and per-worker counters; drop reasons that are zero are left out.
    pub fn stats(&self) -> String {
        let live = self.live();
        let mut o = String::new();
        for (i, p) in live.shared.ports.iter().enumerate() {
            let (rx, tx): (u64, u64) = self.stats.iter().fold((0, 0), |(r, t), s| {
                (
                    r + s.ports[i].rx_packets.load(Relaxed),
                    t + s.ports[i].tx_packets.load(Relaxed),
                )
            });
            let _ = write!(o, "port {i} {}: rx {rx} tx {tx}", p.name);
            if let Ok(hw) = self.ports[i].stats() {
                let _ = write!(
                    o,
                    "  (nic: rx {} tx {} missed {} rx_errors {} tx_errors {} no_mbuf {})",
                    hw.ipackets, hw.opackets, hw.imissed, hw.ierrors, hw.oerrors, hw.rx_nombuf
                );
            }
            o.push('\n');
        }
        for (w, s) in self.stats.iter().enumerate() {
            let _ = write!(o, "worker {w}:");
            for (name, v) in s.scalars() {
                let _ = write!(o, " {name} {v}");
            }
            o.push('\n');
            for r in DropReason::ALL {
                let v = s.drops_of(*r);
                if v > 0 {
                    let _ = writeln!(o, "  drop {} {v}", r.name());
                }
            }
        }
        for (slot, vs) in live.shared.servers() {
            let i = usize::from(slot);
            let _ = writeln!(
                o,
                "virtual_server {} rejected_no_member {} denied {} rejected_full {} sessions {} packets_in {} bytes_in {} packets_out {} bytes_out {}{}",
                vs.name,
                self.vs_counter(i, |s| &s.vs_rejected),
                self.vs_counter(i, |s| &s.vs_denied),
                self.vs_counter(i, |s| &s.vs_full),
                self.vs_sessions(slot),
                self.vs_counter(i, VS_PACKETS_IN),
                self.vs_counter(i, VS_BYTES_IN),
                self.vs_counter(i, VS_PACKETS_OUT),
                self.vs_counter(i, VS_BYTES_OUT),
                if vs.retired { " removed" } else { "" },
            );
        }
        let _ = writeln!(o, "configuration generation {}", live.shared.generation);
        for (p, c) in live.shared.ports.iter().zip(&self.kernel) {
            if let Some(c) = c {
                let _ = writeln!(
                    o,
                    "kernel {}: to_kernel {} from_kernel {} dropped {}",
                    p.name,
                    c.to_kernel.load(Relaxed),
                    c.from_kernel.load(Relaxed),
                    c.dropped.load(Relaxed)
                );
            }
        }
        o
    }

    /// A per-virtual-server counter of virtual server `i`, over the workers.
    pub fn vs_counter(&self, i: usize, which: impl Fn(&WorkerStats) -> &[AtomicU64]) -> u64 {
        self.stats
            .iter()
            .filter_map(|s| which(s).get(i))
            .map(|c| c.load(Relaxed))
            .sum()
    }

    /// Prometheus text exposition format: every family once, its samples
    /// together (`prom::Exposition`).
    pub fn metrics(&self) -> String {
        let live = self.live();
        let mut e = Exposition::default();
        for (i, p) in live.shared.ports.iter().enumerate() {
            for (w, s) in self.stats.iter().enumerate() {
                let c = &s.ports[i];
                let w = w.to_string();
                for (dir, v) in [("rx", &c.rx_packets), ("tx", &c.tx_packets)] {
                    let labels = [
                        ("port", p.name.as_str()),
                        ("direction", dir),
                        ("worker", &w),
                    ];
                    e.sample(
                        "sluice_port_packets_total",
                        Kind::Counter,
                        "Packets per port, direction and worker.",
                        &labels,
                        v.load(Relaxed),
                    );
                }
            }
        }
        for (w, s) in self.stats.iter().enumerate() {
            let w = w.to_string();
            for r in DropReason::ALL {
                e.sample(
                    "sluice_drops_total",
                    Kind::Counter,
                    "Dropped packets by reason and worker.",
                    &[("reason", r.name()), ("worker", &w)],
                    s.drops_of(*r),
                );
            }
            for (name, v) in s.scalars() {
                // Sums of families above: the drops by reason, the ports' packets.
                if matches!(name, "drops" | "rx_packets") {
                    continue;
                }
                let (help, gauge) = scalar_help(name);
                let (family, kind) = match gauge {
                    true => (format!("sluice_{name}"), Kind::Gauge),
                    false => (format!("sluice_{name}_total"), Kind::Counter),
                };
                e.sample(&family, kind, help, &[("worker", &w)], v);
            }
        }
        self.member_metrics(&live, &mut e);
        self.server_metrics(&live, &mut e);
        e.render()
    }

    /// Per member (labelled by virtual server, pool and member): health,
    /// sessions and checks.
    fn member_metrics(&self, live: &Live, e: &mut Exposition) {
        for (_, vs) in live.shared.servers() {
            for m in vs.members.iter().chain(&vs.retired_members) {
                let member = m.addr().to_string();
                let mut labels = vec![
                    ("virtual_server", vs.name.as_str()),
                    ("pool", vs.pool.as_str()),
                    ("member", member.as_str()),
                ];
                // A retired server may share its name with the live one
                // that replaced it: its series are told apart.
                if vs.retired {
                    labels.push(("retired", "true"));
                }
                let up = u64::from(live.shared.members.is_up(m.id));
                e.sample(
                    "sluice_member_up",
                    Kind::Gauge,
                    "Whether the member passes its health check (1) or not (0).",
                    &labels,
                    up,
                );
                e.sample(
                    "sluice_member_sessions",
                    Kind::Gauge,
                    "Active sessions on the member.",
                    &labels,
                    self.member_sessions(m.id),
                );
                let target = live.plan.target_of.get(m.id as usize).copied().flatten();
                if let Some(st) = target.and_then(|t| live.health.get(t)) {
                    let st = crate::health::lock(st).clone();
                    e.sample(
                        "sluice_health_checks_total",
                        Kind::Counter,
                        "Health checks of the member.",
                        &labels,
                        st.checks,
                    );
                    e.sample(
                        "sluice_health_check_failures_total",
                        Kind::Counter,
                        "Failed health checks of the member.",
                        &labels,
                        st.failures,
                    );
                    e.sample(
                        "sluice_health_check_local_errors_total",
                        Kind::Counter,
                        "Health checks of the member the switch could not make (no socket): they count neither way.",
                        &labels,
                        st.local_errors,
                    );
                }
            }
        }
    }

    /// Per virtual server: sessions, traffic, refusals; the configuration
    /// generation; per port: the exception path.
    fn server_metrics(&self, live: &Live, e: &mut Exposition) {
        for (slot, vs) in live.shared.servers() {
            let i = usize::from(slot);
            let mut name = vec![("virtual_server", vs.name.as_str())];
            if vs.retired {
                name.push(("retired", "true"));
            }
            e.sample(
                "sluice_virtual_server_sessions",
                Kind::Gauge,
                "Open sessions of the virtual server.",
                &name,
                self.vs_sessions(slot),
            );
            for (dir, packets, bytes) in [
                ("in", VS_PACKETS_IN, VS_BYTES_IN),
                ("out", VS_PACKETS_OUT, VS_BYTES_OUT),
            ] {
                let mut labels = name.clone();
                labels.push(("direction", dir));
                e.sample(
                    "sluice_virtual_server_packets_total",
                    Kind::Counter,
                    "Packets of the virtual server's sessions, by direction (in: client to member).",
                    &labels,
                    self.vs_counter(i, packets),
                );
                e.sample(
                    "sluice_virtual_server_bytes_total",
                    Kind::Counter,
                    "Bytes (frames as received) of the virtual server's sessions, by direction.",
                    &labels,
                    self.vs_counter(i, bytes),
                );
            }
            for (reason, v) in [
                ("no_member", self.vs_counter(i, |s| &s.vs_rejected)),
                ("full", self.vs_counter(i, |s| &s.vs_full)),
                ("denied", self.vs_counter(i, |s| &s.vs_denied)),
            ] {
                e.sample(
                    "sluice_virtual_server_rejected_total",
                    Kind::Counter,
                    "New sessions refused, by reason: no_member and full answered with a RST / ICMP unreachable, denied (source ACL) dropped.",
                    &[name.as_slice(), &[("reason", reason)]].concat(),
                    v,
                );
            }
        }
        e.sample(
            "sluice_config_generation",
            Kind::Gauge,
            "Configuration generation: 0 at boot, one more per reload.",
            &[],
            live.shared.generation,
        );
        for (p, c) in live.shared.ports.iter().zip(&self.kernel) {
            let Some(c) = c else { continue };
            for (dir, v) in [("to_kernel", &c.to_kernel), ("from_kernel", &c.from_kernel)] {
                e.sample(
                    "sluice_kernel_frames_total",
                    Kind::Counter,
                    "Frames through the exception path per port and direction.",
                    &[("port", p.name.as_str()), ("direction", dir)],
                    v.load(Relaxed),
                );
            }
        }
    }
}

/// The routes of both families, IPv4 first, each longest prefix first.
pub(crate) fn all_routes(
    shared: &sluice_dataplane::shared::Shared,
) -> Vec<sluice_dataplane::route::Route<std::net::IpAddr>> {
    use sluice_dataplane::route::Route;
    let v4 = shared.routes.routes().iter().map(|r| Route {
        prefix: r.prefix.into(),
        len: r.len,
        mask: r.mask.into(),
        gateway: r.gateway.map(Into::into),
        port: r.port,
    });
    let v6 = shared.routes6.routes().iter().map(|r| Route {
        prefix: r.prefix.into(),
        len: r.len,
        mask: r.mask.into(),
        gateway: r.gateway.map(Into::into),
        port: r.port,
    });
    v4.chain(v6).collect()
}
