//! What unit tests of the control side share: a running switch of a
//! configuration without DPDK (no ports, no lcores).

use crate::live::{Live, Running};
use crate::reload::Reloader;
use crate::sessions::Sessions;
use crate::view::View;
use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::WorkerStats;
use std::sync::Arc;

/// A switch with one interface (`int`, 10.20.0.1/24, no kernel interface)
/// and virtual server `web` (10.20.0.100:80 tcp) on pool `web` of
/// `members` (the inside of a TOML array), followed by `more`.
pub fn web_config(members: &str, more: &str) -> String {
    format!(
        r#"
[[interface]]
name = "int"
device = "net_null0"
addresses = ["10.20.0.1/24"]
kernel = false
[pool.web]
members = [{members}]
[[virtual_server]]
name = "web"
address = "10.20.0.100:80"
protocol = "tcp"
pool = "web"
{more}"#
    )
}

/// Configuration `cfg` run by `workers` workers (their counters fresh).
pub fn running(cfg: &str, workers: u16) -> Running {
    let cfg = sluice_config::parse(cfg, "t.toml").expect("test config parses");
    let shared = Arc::new(Shared::new(&cfg, &[[2, 0, 0, 0, 0, 1]], workers));
    let plan = crate::members::plan(&cfg, &shared);
    let health = crate::health::statuses(plan.targets.len(), 0);
    let stats = (0..workers)
        .map(|_| Arc::new(WorkerStats::new(shared.vs_capacity())))
        .collect();
    let live = Live {
        config: cfg,
        shared,
        plan,
        health,
    };
    Running::new(live, stats, crate::clock::Clock::start())
}

/// The view of [`running`]`(cfg, workers)`: no worker answers a mailbox.
pub fn view(cfg: &str, workers: u16) -> View {
    let running = running(cfg, workers);
    let reloader = Reloader {
        config_path: "t.toml".into(),
        workers: Vec::new(),
        checks: std::sync::Mutex::new(crate::health::Checks::default()),
        gate: tokio::sync::Mutex::new(()),
        sessions_per_worker: 1024,
        ramps: crate::members::ramps(&running.live().shared.members),
    };
    View {
        running: Arc::new(running),
        ports: Vec::new(),
        kernel: Vec::new(),
        sessions: Arc::new(Sessions::new(Vec::new())),
        reloader: Arc::new(reloader),
        sync: None,
        announce: Default::default(),
        rates: Default::default(),
    }
}
