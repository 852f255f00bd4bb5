//! Text the control thread produces: `sluicectl` answers, the final counters
//! printed at exit, and the Prometheus exposition.

use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::{DropReason, WorkerStats};
use sluice_ffi::Port;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// What the control thread knows about the running switch.
pub struct View {
    pub shared: Arc<Shared>,
    pub stats: Vec<Arc<WorkerStats>>,
    pub ports: Vec<Port>,
    pub started: std::time::Instant,
    pub now_ms: Box<dyn Fn() -> u32 + Send>,
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl View {
    pub fn status(&self) -> String {
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
        for (i, p) in self.shared.ports.iter().enumerate() {
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
        let mut o = String::new();
        for vs in &self.shared.services {
            let proto = if vs.proto == 6 { "tcp" } else { "udp" };
            let _ = writeln!(
                o,
                "{} {}:{} {} {}",
                vs.name,
                vs.vip,
                vs.port,
                proto,
                vs.forwarding.as_str()
            );
            for m in &vs.members {
                let state = if !m.enabled {
                    "disabled"
                } else if m.up.load(Relaxed) {
                    "up"
                } else {
                    "down"
                };
                let _ = writeln!(
                    o,
                    "  member {}:{} weight {}{} {}",
                    m.ip,
                    m.port,
                    m.weight,
                    if m.backup { " backup" } else { "" },
                    state
                );
            }
        }
        o
    }

    pub fn neighbors(&self) -> String {
        let now = (self.now_ms)();
        let mut o = String::new();
        for (ip, port, e) in self.shared.neighbors.entries() {
            let name = self
                .shared
                .ports
                .get(usize::from(port))
                .map_or("?", |p| p.name.as_str());
            let state = match e.state {
                sluice_dataplane::neighbor::State::Static => "static".to_string(),
                sluice_dataplane::neighbor::State::Dynamic => {
                    let (usable, stale) = e.usable(now);
                    let age = now.wrapping_sub(e.updated_ms) / 1000;
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
        let mut o = String::new();
        for r in self.shared.routes.routes() {
            let name = self
                .shared
                .ports
                .get(usize::from(r.port))
                .map_or("?", |p| p.name.as_str());
            let prefix = std::net::Ipv4Addr::from(r.prefix);
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
        let mut o = String::new();
        for (i, p) in self.shared.ports.iter().enumerate() {
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
        o
    }

    /// Prometheus text exposition format.
    pub fn metrics(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# HELP sluice_port_packets_total Packets per port, direction and worker.\n# TYPE sluice_port_packets_total counter");
        for (i, p) in self.shared.ports.iter().enumerate() {
            for (w, s) in self.stats.iter().enumerate() {
                let c = &s.ports[i];
                let _ = writeln!(
                    o,
                    "sluice_port_packets_total{{port=\"{}\",direction=\"rx\",worker=\"{w}\"}} {}",
                    p.name,
                    c.rx_packets.load(Relaxed)
                );
                let _ = writeln!(
                    o,
                    "sluice_port_packets_total{{port=\"{}\",direction=\"tx\",worker=\"{w}\"}} {}",
                    p.name,
                    c.tx_packets.load(Relaxed)
                );
            }
        }
        let _ = writeln!(o, "# HELP sluice_drops_total Dropped packets by reason and worker.\n# TYPE sluice_drops_total counter");
        for (w, s) in self.stats.iter().enumerate() {
            for r in DropReason::ALL {
                let _ = writeln!(
                    o,
                    "sluice_drops_total{{reason=\"{}\",worker=\"{w}\"}} {}",
                    r.name(),
                    s.drops_of(*r)
                );
            }
        }
        for (w, s) in self.stats.iter().enumerate() {
            for (name, v) in s.scalars() {
                let kind = if name == "sessions_active" {
                    ""
                } else {
                    "_total"
                };
                let _ = writeln!(o, "sluice_{name}{kind}{{worker=\"{w}\"}} {v}");
            }
        }
        o
    }
}
