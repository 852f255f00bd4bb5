//! Member loads as each worker reads them when it chooses.
//!
//! A worker choosing by least connections, or checking a member's
//! `max_connections`, reads its own row of session counts (exact) and one
//! row that sums the other workers' (`MemberStates::fold`). This task
//! refreshes those rows every millisecond for the members whose load
//! matters, so a new session costs two loads per member instead of one per
//! member and worker, none of them on a line another core just wrote.
//! Between two folds a worker does not see the other workers' newest
//! sessions: about a millisecond of them, more while the control thread is
//! busy (a reload, a metrics page).

use crate::live::Running;
use sluice_config::Method;
use sluice_dataplane::shared::Shared;
use std::sync::Arc;
use std::time::Duration;

/// How often the other workers' counts are folded.
pub const FOLD_EVERY: Duration = Duration::from_millis(1);

/// Folds forever (a task on the control thread's runtime).
pub async fn run(view: Arc<Running>) {
    let mut tick = tokio::time::interval(FOLD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut generation, mut ids) = (None, Vec::new());
    loop {
        tick.tick().await;
        let live = view.live();
        if generation != Some(live.shared.generation) {
            generation = Some(live.shared.generation);
            ids = counted(&live.shared);
        }
        live.shared.members.fold(&ids);
    }
}

/// The member ids whose load a worker reads when it chooses: the members
/// of servers balanced by least connections, and members with a
/// `max_connections`. None when a single worker runs.
pub fn counted(shared: &Shared) -> Vec<u32> {
    if shared.workers < 2 {
        return Vec::new();
    }
    let least = |m: Method| {
        matches!(
            m,
            Method::LeastConnections | Method::WeightedLeastConnections
        )
    };
    let mut ids: Vec<u32> = shared
        .servers()
        .filter(|(_, v)| !v.retired)
        .flat_map(|(_, v)| {
            let all = least(v.method);
            v.members
                .iter()
                .filter(move |m| all || m.max_connections.is_some())
                .map(|m| m.id)
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[dataplane]
workers = 2
[[interface]]
name = "int"
device = "net_null0"
addresses = ["10.20.0.1/24"]
kernel = false
[pool.least]
method = "least_connections"
members = [{ address = "10.20.0.11:80" }, { address = "10.20.0.12:80" }]
[pool.rr]
members = [{ address = "10.20.0.13:80", max_connections = 5 }, { address = "10.20.0.14:80" }]
[pool.idle]
method = "least_connections"
members = [{ address = "10.20.0.15:80" }]
[[virtual_server]]
name = "a"
address = "10.20.0.100:80"
protocol = "tcp"
pool = "least"
[[virtual_server]]
name = "b"
address = "10.20.0.101:80"
protocol = "tcp"
pool = "rr"
"#;

    #[test]
    fn only_members_whose_load_is_read_are_folded() {
        let cfg = sluice_config::parse(CFG, "t.toml").unwrap();
        let shared = Shared::new(&cfg, &[[2, 0, 0, 0, 0, 1]], 2);
        let id = |p: usize, m: usize| shared.member_id(p, m);
        // Least connections: both; round robin: the limited one; a pool no
        // server uses: none.
        assert_eq!(counted(&shared), vec![id(0, 0), id(0, 1), id(1, 0)]);
        let one = Shared::new(&cfg, &[[2, 0, 0, 0, 0, 1]], 1);
        assert!(
            counted(&one).is_empty(),
            "one worker reads only its own row"
        );
    }
}
