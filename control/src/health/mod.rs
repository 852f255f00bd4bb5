//! Health checks of pool members.
//!
//! One tokio task per target on the control thread's runtime: the task
//! waits for its turn ([`schedule`]), runs one probe bounded by the check's
//! timeout ([`probe`]), and feeds the result to a rise/fall counter
//! ([`risefall`]). Only transitions reach the rest of the switch (the
//! target's [`Binding`] and one log line); every result lands in the
//! target's [`Status`] for sluicectl.
//!
//! [`Checks`] keeps the running tasks by target. A reload hands it the new
//! targets: a target already checked (same address, port, source and
//! check) keeps its task, so its schedule, its rise/fall streaks and its
//! status go on as if nothing happened (only what it decides is re-bound:
//! which members, under which label); new targets start, gone ones stop.
//! Reloads every few seconds therefore never postpone a member going down.

mod probe;
mod risefall;
mod schedule;

use sluice_config::{CheckKind, HealthCheck};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;

/// One member address to check with one health check.
#[derive(Clone, Debug)]
pub struct Target {
    /// Member address to check.
    pub addr: IpAddr,
    /// Port to check (already resolved: the check's port or the member's).
    pub port: u16,
    /// Local address every probe socket binds to (the switch's interface
    /// address); `None` lets the kernel choose.
    pub source: Option<IpAddr>,
    pub check: Arc<HealthCheck>,
    /// The member reads a PROXY protocol header first (its pool serves a
    /// virtual server with `proxy_protocol`): a TCP or HTTP probe sends
    /// the LOCAL command before anything else, as the member expects.
    pub proxy_local: bool,
    /// For logs, e.g. "10.20.0.11:8080 (pool web)".
    pub label: String,
}

impl Target {
    /// The same check of the same address and port from the same source.
    pub fn same_as(&self, other: &Target) -> bool {
        (self.addr, self.port, self.source) == (other.addr, other.port, other.source)
            && *self.check == *other.check
            && self.proxy_local == other.proxy_local
    }
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
    /// Probes that could not be made for a reason of the switch's own (no
    /// socket: too many open files): they count neither way.
    pub local_errors: u64,
}

/// The status of one target, shared by its task and the reports.
pub type SharedStatus = Arc<Mutex<Status>>;

/// One entry per target, in the order of the targets of the running plan.
pub type Statuses = Arc<Vec<SharedStatus>>;

/// Process milliseconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Called with the target index and its new state on every transition.
pub type OnChange = Arc<dyn Fn(usize, bool) + Send + Sync>;

/// What a target's transitions decide, and how its log lines name it:
/// replaced by a reload, while the task goes on.
#[derive(Clone)]
pub struct Binding {
    /// The target's index in the running plan (passed to `on_change`).
    pub index: usize,
    pub on_change: OnChange,
    pub label: String,
}

/// A status up since `now_ms` and not checked yet.
pub fn fresh_status(now_ms: u64) -> SharedStatus {
    Arc::new(Mutex::new(Status {
        up: true,
        since_ms: now_ms,
        last_ok: None,
        last_reason: "not checked yet".to_string(),
        last_latency: None,
        checks: 0,
        failures: 0,
        local_errors: 0,
    }))
}

/// `n` statuses, all up since `now_ms` and not checked yet.
pub fn statuses(n: usize, now_ms: u64) -> Statuses {
    Arc::new((0..n).map(|_| fresh_status(now_ms)).collect())
}

/// A poisoned lock still holds the best we know; never let it stop checks.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One running target.
struct Running {
    target: Target,
    status: SharedStatus,
    binding: Arc<Mutex<Binding>>,
    task: Option<JoinHandle<()>>,
}

type Key = (IpAddr, u16, Option<IpAddr>);

fn key(t: &Target) -> Key {
    (t.addr, t.port, t.source)
}

/// The running checks (see the module docs). Control thread only.
#[derive(Default)]
pub struct Checks {
    running: HashMap<Key, Vec<Running>>,
}

impl Checks {
    /// Runs the checks of exactly `targets`, bound to `on_change` (with
    /// each target's index): a target already running keeps its task and
    /// its status; a new one starts with status `fresh(i)`, the new ones
    /// spread over one interval; the rest stop. Returns the statuses in
    /// target order. Must run inside the runtime.
    pub fn apply(
        &mut self,
        targets: &[Target],
        fresh: &dyn Fn(usize) -> SharedStatus,
        clock: &Clock,
        on_change: &OnChange,
    ) -> Statuses {
        let mut before = std::mem::take(&mut self.running);
        let mut statuses = Vec::with_capacity(targets.len());
        let mut new = Vec::new();
        for (index, target) in targets.iter().enumerate() {
            let binding = Binding {
                index,
                on_change: on_change.clone(),
                label: target.label.clone(),
            };
            let kept = before.get_mut(&key(target)).and_then(|list| {
                let i = list.iter().position(|r| r.target.same_as(target))?;
                Some(list.swap_remove(i))
            });
            let running = match kept {
                Some(r) => {
                    *lock(&r.binding) = binding;
                    r
                }
                None => {
                    new.push(index);
                    Running {
                        target: target.clone(),
                        status: fresh(index),
                        binding: Arc::new(Mutex::new(binding)),
                        task: None,
                    }
                }
            };
            statuses.push(running.status.clone());
            self.running.entry(key(target)).or_default().push(running);
        }
        for gone in before.into_values().flatten() {
            if let Some(t) = gone.task {
                t.abort();
            }
        }
        let n = new.len();
        let waiting = self
            .running
            .values_mut()
            .flatten()
            .filter(|r| r.task.is_none());
        for (k, r) in waiting.enumerate() {
            let task = schedule::Task {
                target: r.target.clone(),
                status: r.status.clone(),
                binding: r.binding.clone(),
                clock: clock.clone(),
                first: schedule::first_offset(r.target.check.interval, k, n),
            };
            r.task = Some(tokio::spawn(schedule::run(task)));
        }
        Arc::new(statuses)
    }

    /// Stops every check.
    pub fn stop(&mut self) {
        for r in std::mem::take(&mut self.running).into_values().flatten() {
            if let Some(t) = r.task {
                t.abort();
            }
        }
    }

    /// Targets checked.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn len(&self) -> usize {
        self.running.values().map(Vec::len).sum()
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        self.stop();
    }
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

/// A target on 127.0.0.1 for tests.
#[cfg(test)]
fn test_target(port: u16, kind: CheckKind, timeout: Duration) -> Target {
    Target {
        addr: std::net::Ipv4Addr::LOCALHOST.into(),
        port,
        source: Some(std::net::Ipv4Addr::LOCALHOST.into()),
        check: Arc::new(HealthCheck {
            name: "test".to_string(),
            kind,
            timeout,
            ..default_check()
        }),
        proxy_local: false,
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
