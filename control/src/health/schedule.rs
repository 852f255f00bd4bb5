//! When each target is checked, and what a result does to its state.

use super::probe::{self, Outcome};
use super::risefall::RiseFall;
use super::{lock, Binding, Clock, SharedStatus, Target};

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{self, Instant, MissedTickBehavior};

/// `tokio::time::interval_at` panics on a zero period; the configuration
/// never yields one, but a hand-built check must not take the switch down.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Delay of target `i` of `n` before its first check: the first round is
/// spread evenly over one interval, so a thousand targets do not all
/// connect in the same millisecond after boot.
pub(super) fn first_offset(interval: Duration, i: usize, n: usize) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let nanos = interval.as_nanos() * i as u128 / n as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Everything one target's task owns.
pub(super) struct Task {
    pub target: Target,
    pub status: SharedStatus,
    /// What its transitions decide: a reload re-binds it, the task goes on.
    pub binding: Arc<Mutex<Binding>>,
    pub clock: Clock,
    /// Delay before the first check.
    pub first: Duration,
}

/// Checks one target until aborted, one probe per interval, with its own
/// rise/fall streaks (kept for as long as the task runs: across reloads).
pub(super) async fn run(task: Task) {
    let check = &task.target.check;
    let interval = check.interval.max(MIN_INTERVAL);
    let mut ticks = time::interval_at(Instant::now() + task.first, interval);
    // A probe slower than the interval delays the next one, never bunches them.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut state = RiseFall::new(check.fall, check.rise);
    loop {
        ticks.tick().await;
        let outcome = probe::check(&task.target).await;
        task.record(&mut state, outcome);
    }
}

impl Task {
    /// Stores one result; on a transition also logs it and tells the switch.
    fn record(&self, state: &mut RiseFall, outcome: Outcome) {
        if outcome.local {
            return self.record_local(outcome);
        }
        let binding = lock(&self.binding).clone();
        let ok = outcome.result.is_ok();
        let change = state.observe(ok);
        let reason = match outcome.result {
            Ok(text) | Err(text) => text,
        };
        if let Some(up) = change {
            eprintln!(
                "{}",
                transition_line(&binding.label, &self.target, up, &reason, state.streak())
            );
        }
        {
            let mut status = lock(&self.status);
            status.checks += 1;
            status.failures += u64::from(!ok);
            status.last_ok = Some(ok);
            status.last_reason = reason;
            status.last_latency = Some(outcome.latency);
            if let Some(up) = change {
                status.up = up;
                status.since_ms = (self.clock)();
            }
        }
        // Outside the lock: the callback may well read the statuses.
        if let Some(up) = change {
            (binding.on_change)(binding.index, up);
        }
    }
}

impl Task {
    /// A probe the switch could not make (no socket): counted and shown,
    /// logged when such failures begin, and kept from the rise/fall
    /// streaks, so it marks nobody down (nor up).
    fn record_local(&self, outcome: Outcome) {
        let reason = match outcome.result {
            Ok(text) | Err(text) => text,
        };
        let mut status = lock(&self.status);
        if !status.last_reason.starts_with(LOCAL) {
            eprintln!(
                "sluice: health: {} check {}: cannot probe ({reason}); the member's state stays",
                lock(&self.binding).label,
                self.target.check.name,
            );
        }
        status.local_errors += 1;
        status.last_reason = format!("{LOCAL}{reason}");
    }
}

/// How the reason of a probe the switch could not make begins.
const LOCAL: &str = "local error: ";

/// The one log line of a transition.
fn transition_line(label: &str, target: &Target, up: bool, reason: &str, streak: u32) -> String {
    let (state, run) = if up {
        ("UP", "successes")
    } else {
        ("DOWN", "failures")
    };
    format!(
        "sluice: health: {label} check {} ({}) {state}: {reason} ({streak} consecutive {run})",
        target.check.name,
        target.check.kind.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::{fresh_status, test_target, Binding, Checks, OnChange, Statuses};
    use super::*;
    use sluice_config::CheckKind;
    use std::sync::Arc;
    use tokio::net::TcpListener;

    #[test]
    fn first_checks_spread_evenly() {
        let s = Duration::from_secs(1);
        let offsets: Vec<_> = (0..4).map(|i| first_offset(s, i, 4)).collect();
        assert_eq!(
            offsets,
            [0, 250, 500, 750].map(Duration::from_millis).to_vec()
        );
        assert_eq!(first_offset(s, 0, 1), Duration::ZERO);
        assert_eq!(first_offset(s, 0, 0), Duration::ZERO);
        assert_eq!(first_offset(s, 999, 1000), Duration::from_millis(999));
        // Deterministic: the same inputs give the same schedule.
        assert_eq!(first_offset(s, 7, 13), first_offset(s, 7, 13));
        assert_eq!(first_offset(s, 1, 3), Duration::from_nanos(333_333_333));
    }

    #[test]
    fn transition_line_format() {
        let t = test_target(8080, CheckKind::Tcp, Duration::from_secs(1));
        assert_eq!(
            transition_line(&t.label, &t, false, "connection refused", 4),
            "sluice: health: 127.0.0.1:8080 (pool test) check test (tcp) DOWN: \
             connection refused (4 consecutive failures)"
        );
        assert_eq!(
            transition_line(&t.label, &t, true, "connected", 2),
            "sluice: health: 127.0.0.1:8080 (pool test) check test (tcp) UP: \
             connected (2 consecutive successes)"
        );
    }

    fn test_clock() -> Clock {
        let start = std::time::Instant::now();
        Arc::new(move || start.elapsed().as_millis() as u64)
    }

    /// Runs `targets` (as a reload would hand them to `checks`).
    fn apply(checks: &mut Checks, targets: &[Target], on_change: &OnChange) -> Statuses {
        checks.apply(targets, &|_| fresh_status(0), &test_clock(), on_change)
    }

    #[tokio::test]
    async fn down_and_up_again_end_to_end() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut target = test_target(addr.port(), CheckKind::Tcp, Duration::from_millis(50));
        let check = Arc::make_mut(&mut target.check);
        (check.interval, check.fall, check.rise) = (Duration::from_millis(100), 2, 2);

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let on_change: OnChange = Arc::new(move |i, up| tx.send((i, up)).unwrap());
        let mut checks = Checks::default();
        let st = apply(&mut checks, &[target], &on_change);

        let wait = Duration::from_secs(3);
        time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            lock(&st[0]).last_ok,
            Some(true),
            "confirmed while listening"
        );
        drop(listener);
        assert_eq!(
            time::timeout(wait, rx.recv()).await.unwrap(),
            Some((0, false))
        );
        assert!(!lock(&st[0]).up);
        assert_eq!(lock(&st[0]).last_reason, "connection refused");

        let _listener = TcpListener::bind(addr).await.unwrap();
        assert_eq!(
            time::timeout(wait, rx.recv()).await.unwrap(),
            Some((0, true))
        );
        let status = lock(&st[0]).clone();
        assert!(status.up && status.failures >= 2 && status.checks >= 6);
    }

    /// A member that dies under reloads every half interval: reloads keep
    /// its task, schedule and streaks, so it goes down after exactly `fall`
    /// failed checks, as without reloads (`interval * fall` after it died,
    /// give or take an interval); and the binding the last reload gave it
    /// is the one its transition reaches.
    #[tokio::test]
    async fn reloads_never_postpone_a_member_going_down() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut member = test_target(port, CheckKind::Tcp, Duration::from_millis(50));
        let check = Arc::make_mut(&mut member.check);
        (check.interval, check.fall) = (Duration::from_millis(100), 4);
        let other = test_target(port + 1, CheckKind::Tcp, Duration::from_millis(50));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let on_change: OnChange = Arc::new(move |i, up| tx.send((i, up)).unwrap());
        let mut checks = Checks::default();
        let first = apply(&mut checks, &[member.clone()], &on_change);
        while lock(&first[0]).last_ok != Some(true) {
            time::sleep(Duration::from_millis(10)).await;
        }
        drop(listener);
        let died = Instant::now();
        let mut flip = false;
        let down = loop {
            // A reload every 50 ms, the target moving in the list.
            flip = !flip;
            let targets = if flip {
                vec![other.clone(), member.clone()]
            } else {
                vec![member.clone(), other.clone()]
            };
            let st = apply(&mut checks, &targets, &on_change);
            let at = usize::from(flip);
            assert!(Arc::ptr_eq(&st[at], &first[0]), "the same status");
            assert_eq!(checks.len(), 2);
            let news = time::timeout(Duration::from_millis(50), rx.recv()).await;
            match news {
                Ok(Some((i, false))) if i == at => break died.elapsed(),
                _ if died.elapsed() < Duration::from_secs(3) => continue,
                _ => panic!("still up 3 s after it died, under reloads"),
            }
        };
        let status = lock(&first[0]).clone();
        eprintln!("down {down:?} after it died, under a reload every 50 ms");
        assert!(!status.up);
        assert_eq!(
            status.failures, 4,
            "exactly `fall` failures: no streak restarted"
        );
    }

    /// A probe that cannot get a socket says nothing of the member: its
    /// state stays, and the error is counted and shown.
    #[test]
    fn a_local_failure_marks_nobody_down() {
        let t = test_target(9, CheckKind::Tcp, Duration::from_secs(1));
        let (tx, rx) = std::sync::mpsc::channel();
        let on_change: OnChange = Arc::new(move |i, up| tx.send((i, up)).unwrap());
        let task = Task {
            target: t.clone(),
            status: fresh_status(0),
            binding: Arc::new(Mutex::new(Binding {
                index: 0,
                on_change,
                label: t.label.clone(),
            })),
            clock: test_clock(),
            first: Duration::ZERO,
        };
        let mut state = RiseFall::new(1, 1);
        let local = || Outcome {
            result: Err("socket: Too many open files (os error 24)".to_string()),
            local: true,
            latency: Duration::ZERO,
        };
        for _ in 0..10 {
            task.record(&mut state, local());
        }
        assert!(rx.try_recv().is_err(), "no transition");
        let status = lock(&task.status).clone();
        assert!(status.up && state.is_up());
        assert_eq!(
            (status.checks, status.failures, status.local_errors),
            (0, 0, 10)
        );
        assert_eq!(
            status.last_reason,
            "local error: socket: Too many open files (os error 24)"
        );
        // A real failure still counts (fall 1, unconfirmed: down at once).
        task.record(
            &mut state,
            Outcome {
                result: Err("connection refused".to_string()),
                local: false,
                latency: Duration::ZERO,
            },
        );
        assert_eq!(rx.try_recv(), Ok((0, false)));
    }

    /// Counts accepted connections and drops them at once.
    async fn accept_and_drop(listener: TcpListener) {
        while listener.accept().await.is_ok() {}
    }

    #[tokio::test]
    async fn a_thousand_targets_on_one_thread() {
        const N: usize = 1000;
        const RUN: Duration = Duration::from_millis(4500);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(accept_and_drop(listener));
        let targets: Vec<Target> = (0..N)
            .map(|_| {
                let mut t = test_target(port, CheckKind::Tcp, Duration::from_millis(500));
                Arc::make_mut(&mut t.check).interval = Duration::from_secs(1);
                t
            })
            .collect();
        let begun = std::time::Instant::now();
        let mut checks = Checks::default();
        let quiet: OnChange = Arc::new(|_, _| {});
        let st = apply(&mut checks, &targets, &quiet);
        time::sleep(RUN).await;
        checks.stop();
        let elapsed = begun.elapsed();
        server.abort();

        let counts: Vec<(u64, u64, Duration)> = st
            .iter()
            .map(|s| {
                // One guard at a time: locking twice in one expression deadlocks.
                let s = lock(s);
                (s.checks, s.failures, s.last_latency.unwrap_or_default())
            })
            .collect();
        let checks: u64 = counts.iter().map(|c| c.0).sum();
        let failures: u64 = counts.iter().map(|c| c.1).sum();
        let per_second = checks as f64 / elapsed.as_secs_f64();
        let slowest = counts.iter().map(|c| c.2).max().unwrap_or_default();
        eprintln!(
            "health capacity: {checks} checks ({failures} failed) in {elapsed:?}: \
             {per_second:.0} checks/s, slowest last probe {slowest:?}"
        );
        assert!(checks >= (N as u64 * 4) * 8 / 10, "only {checks} checks");
        let least = counts.iter().map(|c| c.0).min().unwrap();
        assert!(least >= 3, "a target was checked only {least} times");
    }
}
