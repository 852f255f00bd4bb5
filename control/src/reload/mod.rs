//! `sluicectl reload` and SIGHUP: read the configuration file again,
//! validate all of it, refuse what cannot change live, and apply the rest
//! without touching a session.
//!
//! The new snapshot is built on the control thread beside the running one
//! (`Shared::reload` keeps slots, member ids and SNAT indexes, and keeps
//! removed servers and members while they have sessions). Member states and
//! health checks are brought in line, then each worker is handed the
//! snapshot and the per-worker state built for it through its own channel;
//! it takes it between two bursts and hands back what it replaced. The old
//! snapshot is freed here once every worker has moved on: packets never
//! wait, and no worker ever takes a lock.

mod apply;
mod carry;
mod diff;

pub(crate) use apply::publish;
pub(crate) use carry::run_checks;

use crate::channels::ReloadMailbox;
use crate::health;
use crate::live::{Live, Running};
use crate::members;
use sluice_config::ConfigError;
use sluice_control::api::{ApiError, RefusalKind, Reloaded};
use sluice_dataplane::shared::ReloadError;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a worker may take to move to a new snapshot (it looks once per
/// loop turn, so this is only reached by a stuck worker).
const WORKER_TIMEOUT: Duration = Duration::from_secs(2);

/// What reloads need besides the running switch: the file, each worker's
/// reload channel, the running health checks.
pub struct Reloader {
    /// The configuration file a reload reads.
    pub config_path: PathBuf,
    pub workers: Vec<ReloadMailbox>,
    /// The running health checks; a reload keeps those of unchanged targets.
    pub checks: Mutex<health::Checks>,
    /// One reload (or change of owned addresses) at a time.
    pub gate: tokio::sync::Mutex<()>,
    /// Session slots per worker (sizes a persistence table a reload adds).
    pub sessions_per_worker: u32,
    /// Slow-start ramp counters by member id, for the life of the process.
    pub ramps: members::Ramps,
}

/// Why a reload did not complete. Nothing changed, except for `Worker`
/// (the new configuration runs; a worker had not taken it yet) and
/// `Aborted` (see the log).
#[derive(Debug)]
pub enum Refused {
    /// The file does not parse or validate (file, line, key).
    Invalid(ConfigError),
    /// It changes what only a restart can change.
    NeedsRestart(ConfigError),
    /// It does not fit what was sized at boot.
    Capacity { file: String, error: ReloadError },
    /// A worker did not take the new snapshot in time.
    Worker(u16),
    /// The reload task itself failed (a bug): see the log.
    Aborted,
    /// A worker has not taken the previous reload's snapshot yet.
    Behind(u16),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Invalid(e) | Refused::NeedsRestart(e) => {
                write!(f, "{e}; the running configuration stays")
            }
            Refused::Capacity { file, error } => {
                write!(f, "{file}: {error}; the running configuration stays")
            }
            Refused::Worker(w) => write!(
                f,
                "worker {w} did not take the new configuration within {WORKER_TIMEOUT:?}; workers may run different generations until it does"
            ),
            Refused::Aborted => write!(f, "the reload stopped half way; see the log"),
            Refused::Behind(w) => write!(
                f,
                "worker {w} still runs an older configuration generation; nothing changed (try again)"
            ),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> ApiError {
        let reason = match &r {
            Refused::Invalid(_) => RefusalKind::Invalid,
            Refused::NeedsRestart(_) => RefusalKind::NeedsRestart,
            Refused::Capacity { .. } => RefusalKind::Capacity,
            Refused::Worker(_) => RefusalKind::WorkerLate,
            Refused::Aborted => RefusalKind::Aborted,
            Refused::Behind(_) => RefusalKind::Behind,
        };
        ApiError::ReloadRefused {
            reason,
            message: r.to_string(),
        }
    }
}

/// Reloads, logging the outcome; what `sluicectl reload` and SIGHUP run.
/// Runs as a task of its own, so a client that goes away cannot cancel a
/// reload half done.
pub async fn run(running: Arc<Running>, reloader: Arc<Reloader>) -> Result<Reloaded, Refused> {
    let task = tokio::spawn(async move {
        let outcome = reload(&running, &reloader).await;
        match &outcome {
            Ok(a) => {
                for c in &a.changes {
                    crate::log(format!("reload: {c}"));
                }
                crate::log(format!(
                    "reload: generation {} running ({} changes)",
                    a.generation,
                    a.changes.len()
                ));
            }
            Err(e) => crate::log(format!("reload refused: {e}")),
        }
        outcome
    });
    task.await.unwrap_or(Err(Refused::Aborted))
}

async fn reload(view: &Running, reloader: &Reloader) -> Result<Reloaded, Refused> {
    let _one = reloader.gate.lock().await;
    let running = view.live();
    // Every worker must run the current generation: what the last reload
    // removed is freed now only if no worker can still be using it, and each
    // worker's state is prepared from the snapshot it runs.
    if let Some(w) = view.lagging_worker(running.shared.generation) {
        return Err(Refused::Behind(w));
    }
    let cfg = sluice_config::load(&reloader.config_path).map_err(Refused::Invalid)?;
    let keys = sluice_config::restart_keys(&running.config, &cfg);
    if let Some(first) = keys.first() {
        let message = format!("cannot change without a restart: {}", keys.join(", "));
        return Err(Refused::NeedsRestart(cfg.error(first, message)));
    }
    let next = running
        .shared
        .reload(&cfg, &|slot| view.vs_sessions(slot))
        .map_err(|error| Refused::Capacity {
            file: cfg.file.clone(),
            error,
        })?;
    let next = Arc::new(next);
    apply::zero_new_slots(view, &running.shared, &next);
    let changes = diff::changes(&running.config, &cfg, &running.shared, &next, view);
    apply::apply_member_settings(&cfg, &running.shared, &next, &reloader.ramps);
    let plan = members::plan(&cfg, &next);
    let now = view.clock.now_ms();
    let health = run_checks(view, reloader, &next, &plan, &|_| health::fresh_status(now));
    let live = Live {
        config: cfg,
        shared: next.clone(),
        plan,
        health,
    };
    carry::apply_health(&live);
    // Checks and member states follow the new file from here on, so the
    // view does too, even if a worker is late to take it.
    let published = publish(reloader, &running.shared, &next).await;
    view.replace_live(live);
    published?;
    Ok(Reloaded {
        generation: next.generation,
        changes,
    })
}
