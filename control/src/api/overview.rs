//! What the status page shows (`GET /api/overview`): the status, every
//! virtual server and member, drops by reason, and the rates of the last
//! minutes, computed from `stats` taken at a fixed interval.

use super::members::MemberRow;
use super::servers::VirtualServer;
use super::stats::{DropCount, ServerCounters, Stats};
use super::status::Status;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub status: Status,
    pub virtual_servers: Vec<VirtualServer>,
    pub members: Vec<MemberRow>,
    pub drops: Vec<DropCount>,
    pub history: History,
}

/// Rates over the last minutes, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub interval_s: u64,
    pub points: Vec<Point>,
}

/// The rates over one interval, ending at `uptime_s`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub uptime_s: u64,
    pub servers: Vec<ServerRate>,
    pub workers: Vec<WorkerRate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerRate {
    pub name: String,
    /// Both directions.
    pub packets_per_s: f64,
    pub bytes_per_s: f64,
    /// Open sessions at the end of the interval.
    pub sessions: u64,
    pub rejected_per_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerRate {
    pub worker: usize,
    /// Packets received.
    pub packets_per_s: f64,
    pub new_sessions_per_s: f64,
    pub drops_per_s: f64,
}

impl Overview {
    /// Status, members, and the drops that happened; the rates are in the
    /// JSON (and on the page) only.
    pub fn text(&self) -> String {
        let mut o = self.status.text();
        o.push('\n');
        o.push_str(&super::members::text(&self.members));
        let drops: Vec<&DropCount> = self.drops.iter().filter(|d| d.packets > 0).collect();
        if !drops.is_empty() {
            o.push_str("\ndrops");
            for d in drops {
                o.push_str(&format!(" {} {}", d.reason, d.packets));
            }
            o.push('\n');
        }
        o
    }
}

impl Point {
    /// The rates between two readings of the counters `secs` apart. A
    /// server new since `before` (or a slot reused by a reload) starts
    /// from zero; counters never go back, so a smaller one reads as zero.
    pub fn between(before: &Stats, after: &Stats, secs: f64, uptime_s: u64) -> Point {
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs.max(0.001);
        let servers = (after.virtual_servers.iter())
            .filter(|v| !v.removed)
            .map(|v| {
                let old = (before.virtual_servers.iter()).find(|o| o.name == v.name && !o.removed);
                let (p0, b0, r0) = old.map_or((0, 0, 0), ServerCounters::totals);
                let (p1, b1, r1) = v.totals();
                ServerRate {
                    name: v.name.clone(),
                    packets_per_s: rate(p0, p1),
                    bytes_per_s: rate(b0, b1),
                    sessions: v.sessions,
                    rejected_per_s: rate(r0, r1),
                }
            });
        let workers = after.workers.iter().map(|w| {
            let old = before.workers.iter().find(|o| o.worker == w.worker);
            let was = |name: &str| old.map_or(0, |o| o.get(name));
            WorkerRate {
                worker: w.worker,
                packets_per_s: rate(was("rx_packets"), w.get("rx_packets")),
                new_sessions_per_s: rate(was("sessions_created"), w.get("sessions_created")),
                drops_per_s: rate(was("drops"), w.get("drops")),
            }
        });
        Point {
            uptime_s,
            servers: servers.collect(),
            workers: workers.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::stats::{ServerCounters, WorkerCounters};
    use super::*;

    fn stats(packets: u64, created: u64, servers: &[(&str, u64)]) -> Stats {
        Stats {
            ports: Vec::new(),
            workers: vec![WorkerCounters {
                worker: 0,
                counters: vec![
                    ("sessions_created".into(), created),
                    ("drops".into(), 0),
                    ("rx_packets".into(), packets),
                ],
                drops_by_reason: Vec::new(),
                ports: Vec::new(),
            }],
            virtual_servers: (servers.iter())
                .map(|(name, n)| ServerCounters {
                    name: name.to_string(),
                    removed: false,
                    sessions: 3,
                    packets_in: *n,
                    bytes_in: n * 100,
                    packets_out: *n,
                    bytes_out: n * 100,
                    rejected_no_member: 0,
                    denied: 0,
                    rejected_full: 0,
                })
                .collect(),
            kernel: Vec::new(),
            generation: 0,
        }
    }

    #[test]
    fn rates_are_differences_over_the_interval_and_new_servers_start_at_zero() {
        let before = stats(1000, 10, &[("web", 100)]);
        let after = stats(2000, 60, &[("web", 600), ("new", 50)]);
        let p = Point::between(&before, &after, 5.0, 60);
        assert_eq!(p.workers[0].packets_per_s, 200.0);
        assert_eq!(p.workers[0].new_sessions_per_s, 10.0);
        assert_eq!(p.servers[0].packets_per_s, 200.0);
        assert_eq!(p.servers[0].bytes_per_s, 20000.0);
        assert_eq!(p.servers[1].name, "new");
        assert_eq!(p.servers[1].packets_per_s, 20.0);
        // A counter that went back (a slot reused) is no negative rate.
        let q = Point::between(&after, &before, 5.0, 65);
        assert_eq!(q.servers[0].packets_per_s, 0.0);
    }
}
