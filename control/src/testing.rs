//! What unit tests of the control side share: a view of a configuration
//! without DPDK (no ports, no lcores).

use crate::report::{Live, View};
use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::WorkerStats;
use std::sync::Arc;

/// A view of configuration `cfg` run by `workers` workers (their counters
/// fresh), answering `sluicectl sessions` through `mailboxes`.
pub fn view(cfg: &str, workers: u16, mailboxes: Vec<crate::sessions::Mailbox>) -> View {
    let cfg = sluice_config::parse(cfg, "t.toml").expect("test config parses");
    let shared = Arc::new(Shared::new(&cfg, &[[2, 0, 0, 0, 0, 1]], workers));
    let plan = crate::members::plan(&cfg, &shared);
    let health = crate::health::statuses(plan.targets.len(), 0);
    let reload = crate::reload::Channels {
        workers: Vec::new(),
        checks: std::sync::Mutex::new(crate::health::Checks::default()),
        gate: tokio::sync::Mutex::new(()),
        sessions_per_worker: 1024,
        ramps: crate::members::ramps(&shared.members),
    };
    let stats = (0..workers)
        .map(|_| Arc::new(WorkerStats::new(shared.vs_capacity())))
        .collect();
    let live = Live {
        config: cfg,
        shared,
        plan,
        health,
    };
    View::new(
        live,
        stats,
        Vec::new(),
        crate::clock::Clock::start(),
        Vec::new(),
        mailboxes,
        reload,
        "t.toml".into(),
        None,
    )
}
