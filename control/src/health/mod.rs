//! Health checks of pool members.
//!
//! One tokio task per target on the control thread's runtime: the task
//! waits for its turn ([`schedule`]), runs one probe bounded by the check's
//! timeout ([`probe`]), and feeds the result to a rise/fall counter
//! ([`risefall`]). Only transitions reach the rest of the switch (the
//! `on_change` callback and one log line); every result lands in the
//! target's [`Status`] for sluicectl.

mod probe;
mod risefall;
mod schedule;

use sluice_config::{CheckKind, HealthCheck};

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One member address to check with one health check.
#[derive(Clone, Debug)]
pub struct Target {
    /// Member address to check.
    pub addr: Ipv4Addr,
    /// Port to check (already resolved: the check's port or the member's).
    pub port: u16,
    /// Local address every probe socket binds to (the switch's interface
    /// address); `None` lets the kernel choose.
    pub source: Option<Ipv4Addr>,
    pub check: Arc<HealthCheck>,
    /// For logs, e.g. "10.20.0.11:8080 (pool web)".
    pub label: String,
}

/// What sluicectl shows about one target. Control thread only.
#[derive(Clone, Debug)]
pub struct Status {
    pub up: bool,
    /// Clock time of the last transition (or of the start).
    pub since_ms: u64,
    pub last_ok: Option<bool>,
    /// Result text of the last probe, success or failure.
    pub last_reason: String,
    pub last_latency: Option<Duration>,
    pub checks: u64,
    pub failures: u64,
}

/// One entry per target, in the order of the targets given to [`spawn`].
pub type Statuses = Arc<Vec<Mutex<Status>>>;

/// Process milliseconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Called with the target index and its new state on every transition.
pub type OnChange = Arc<dyn Fn(usize, bool) + Send + Sync>;

/// `n` statuses, all up since `now_ms` and not checked yet.
pub fn statuses(n: usize, now_ms: u64) -> Statuses {
    let fresh = || {
        Mutex::new(Status {
            up: true,
            since_ms: now_ms,
            last_ok: None,
            last_reason: "not checked yet".to_string(),
            last_latency: None,
            checks: 0,
            failures: 0,
        })
    };
    Arc::new((0..n).map(|_| fresh()).collect())
}

/// The check of a pool without a `health_check` key.
pub fn default_check() -> HealthCheck {
    HealthCheck {
        name: "default".to_string(),
        kind: CheckKind::Tcp,
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        fall: 4,
        rise: 2,
        port: None,
    }
}

/// Spawns one task per target on the current tokio runtime and returns at
/// once. `statuses` must hold one entry per target.
///
/// # Panics
/// If there are fewer statuses than targets, or outside a tokio runtime.
pub fn spawn(
    targets: Vec<Target>,
    statuses: Statuses,
    clock: Clock,
    on_change: OnChange,
) -> Vec<tokio::task::JoinHandle<()>> {
    assert!(
        statuses.len() >= targets.len(),
        "health: {} statuses for {} targets",
        statuses.len(),
        targets.len()
    );
    let n = targets.len();
    targets
        .into_iter()
        .enumerate()
        .map(|(index, target)| {
            let task = schedule::Task {
                index,
                target,
                statuses: Arc::clone(&statuses),
                clock: Arc::clone(&clock),
                on_change: Arc::clone(&on_change),
            };
            tokio::spawn(schedule::run(task, n))
        })
        .collect()
}

/// A target on 127.0.0.1 for tests.
#[cfg(test)]
fn test_target(port: u16, kind: CheckKind, timeout: Duration) -> Target {
    Target {
        addr: Ipv4Addr::LOCALHOST,
        port,
        source: Some(Ipv4Addr::LOCALHOST),
        check: Arc::new(HealthCheck {
            name: "test".to_string(),
            kind,
            timeout,
            ..default_check()
        }),
        label: format!("127.0.0.1:{port} (pool test)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_statuses_are_up_and_unchecked() {
        let s = statuses(3, 42);
        assert_eq!(s.len(), 3);
        let first = s[0].lock().unwrap().clone();
        assert!(first.up);
        assert_eq!(first.since_ms, 42);
        assert_eq!(first.last_ok, None);
        assert_eq!(first.last_reason, "not checked yet");
        assert_eq!((first.checks, first.failures), (0, 0));
    }

    #[test]
    fn default_check_matches_the_documented_default() {
        let c = default_check();
        assert_eq!(c.name, "default");
        assert_eq!(c.kind, CheckKind::Tcp);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!((c.fall, c.rise, c.port), (4, 2, None));
    }
}
