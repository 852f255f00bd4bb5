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

use crate::health::{self, SharedStatus, Statuses};
use crate::members;
use crate::report::{Live, View};
use sluice_config::{Config, ConfigError};
use sluice_dataplane::reload::{Adopt, Leftovers};
use sluice_dataplane::shared::{ReloadError, Shared};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::mpsc::TryRecvError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a worker may take to move to a new snapshot (it looks once per
/// loop turn, so this is only reached by a stuck worker).
const WORKER_TIMEOUT: Duration = Duration::from_secs(2);

/// The control thread's end of one worker's reload channel: snapshots
/// out, what they replaced back.
pub type WorkerChannel = crate::mailbox::Mailbox<Adopt, Leftovers>;

/// The worker's end.
pub type WorkerEnd = crate::mailbox::WorkerEnd<Adopt, Leftovers>;

/// A channel pair for one worker.
pub fn channel() -> (WorkerChannel, WorkerEnd) {
    crate::mailbox::mailbox()
}

/// What a reload needs besides the view.
pub struct Channels {
    pub workers: Vec<WorkerChannel>,
    /// The running health checks; a reload keeps those of unchanged targets.
    pub checks: Mutex<health::Checks>,
    /// One reload at a time.
    pub gate: tokio::sync::Mutex<()>,
    /// Session slots per worker (sizes a persistence table a reload adds).
    pub sessions_per_worker: u32,
    /// Slow-start ramp counters by member id, for the life of the process.
    pub ramps: members::Ramps,
}

/// Why a reload was refused; nothing changed.
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

/// A reload that was applied.
#[derive(Debug)]
pub struct Applied {
    pub generation: u64,
    /// What changed, a line each.
    pub changes: Vec<String>,
}

/// Runs the health checks of `plan` for snapshot `shared` (on the control
/// thread's runtime): targets already checked go on as they were (their
/// schedule, streaks and status: `health::Checks`), new ones start with
/// status `fresh(i)`. Returns the statuses, in `plan.targets` order.
pub fn run_checks(
    view: &View,
    shared: &Shared,
    plan: &members::Plan,
    fresh: &dyn Fn(usize) -> SharedStatus,
) -> Statuses {
    let on_change = members::on_change(shared.members.clone(), plan, view.reload.ramps.clone());
    let clock = view.clock;
    let clock: health::Clock = Arc::new(move || clock.now_ms());
    let mut checks = health::lock(&view.reload.checks);
    checks.apply(&plan.targets, fresh, &clock, &on_change)
}

/// Reloads, logging the outcome; what `sluicectl reload` and SIGHUP run.
/// Runs as a task of its own, so a client that goes away cannot cancel a
/// reload half done.
pub async fn run(view: Arc<View>) -> Result<Applied, Refused> {
    let task = tokio::spawn(async move {
        let outcome = reload(&view).await;
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

async fn reload(view: &View) -> Result<Applied, Refused> {
    let _one = view.reload.gate.lock().await;
    let running = view.live();
    // Every worker must run the current generation: what the last reload
    // removed is freed now only if no worker can still be using it, and each
    // worker's state is prepared from the snapshot it runs.
    if let Some(w) = lagging_worker(view, running.shared.generation) {
        return Err(Refused::Behind(w));
    }
    let cfg = sluice_config::load(&view.config_path).map_err(Refused::Invalid)?;
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
    zero_new_slots(view, &running.shared, &next);
    let changes = changes(&running.config, &cfg, &running.shared, &next, view);
    apply_member_settings(&cfg, &running.shared, &next, &view.reload.ramps);
    let plan = members::plan(&cfg, &next);
    let now = view.clock.now_ms();
    let health = run_checks(view, &next, &plan, &|_| health::fresh_status(now));
    let live = Live {
        config: cfg,
        shared: next.clone(),
        plan,
        health,
    };
    apply_health(&live);
    // Checks and member states follow the new file from here on, so the
    // view does too, even if a worker is late to take it.
    let published = publish(view, &running.shared, &next).await;
    view.replace_live(live);
    published?;
    Ok(Applied {
        generation: next.generation,
        changes,
    })
}

/// Starts the per-server counters of each slot a server takes that no
/// server held (a slot let go by an earlier reload still holds its old
/// server's totals). The workers own these counters, but none counts on a
/// slot the running snapshot does not name, so this thread may write them.
fn zero_new_slots(view: &View, running: &Shared, next: &Shared) {
    for (slot, _) in next
        .servers()
        .filter(|(s, _)| running.service(*s).is_none())
    {
        let i = usize::from(slot);
        for st in &view.stats {
            for counters in [
                &st.vs_rejected,
                &st.vs_full,
                &st.vs_denied,
                &st.vs_packets_in,
                &st.vs_bytes_in,
                &st.vs_packets_out,
                &st.vs_bytes_out,
            ] {
                if let Some(c) = counters.get(i) {
                    sluice_dataplane::stats::set(c, 0);
                }
            }
        }
    }
}

/// Administrative state from the file (a reload drops run-time changes made
/// by `sluicectl member`), and a fresh state for members new to the switch.
fn apply_member_settings(cfg: &Config, old: &Shared, next: &Shared, ramps: &members::Ramps) {
    let states = &next.members;
    for (p, pool) in cfg.pools.iter().enumerate() {
        for (j, m) in pool.members.iter().enumerate() {
            let id = next.member_id(p, j);
            // The file's weight holds from now: a ramp still running ends.
            members::end_ramp(ramps, id);
            let known = old.member_key_id(&pool.name, m.address) == Some(id);
            if known {
                states.set_enabled(id, m.enabled);
                states.set_configured_weight(id, m.weight);
            } else {
                states.assign(id, m.weight, m.enabled);
            }
        }
    }
}

/// Member health words as the new targets' statuses say; unchecked
/// members are up.
fn apply_health(live: &Live) {
    let states = &live.shared.members;
    for (p, pool) in live.config.pools.iter().enumerate() {
        for j in 0..pool.members.len() {
            let id = live.shared.member_id(p, j);
            let target = live.plan.target_of.get(id as usize).copied().flatten();
            let up = target
                .and_then(|t| live.health.get(t))
                .is_none_or(|s| health::lock(s).up);
            states.set(id, up);
        }
    }
}

/// The first worker whose running generation is not `generation`.
fn lagging_worker(view: &View, generation: u64) -> Option<u16> {
    view.stats
        .iter()
        .position(|s| s.generation.load(std::sync::atomic::Ordering::Relaxed) != generation)
        .map(|w| w as u16)
}

/// Hands `next` to every worker and waits until each has moved on; the
/// snapshots they replaced are dropped here, on the control thread.
pub(crate) async fn publish(view: &View, old: &Shared, next: &Arc<Shared>) -> Result<(), Refused> {
    let sessions = view.reload.sessions_per_worker;
    for ch in &view.reload.workers {
        // A late answer to an earlier reload that timed out.
        let stale = ch.from_worker.lock().unwrap_or_else(|e| e.into_inner());
        while stale.try_recv().is_ok() {}
    }
    for (w, ch) in view.reload.workers.iter().enumerate() {
        let mut adopt = Adopt::prepare(old, next.clone(), w as u16, sessions);
        if w == 0 {
            let before = crate::boot::announcements(old);
            adopt.announce = crate::boot::announcements(next);
            adopt.announce.retain(|a| !before.contains(a));
        }
        if ch.to_worker.try_send(adopt).is_err() {
            return Err(Refused::Worker(w as u16));
        }
    }
    let start = Instant::now();
    for (w, ch) in view.reload.workers.iter().enumerate() {
        loop {
            let got = ch
                .from_worker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_recv();
            match got {
                Ok(left) if left.generation >= next.generation => break,
                Ok(_) => continue,
                Err(TryRecvError::Empty) if start.elapsed() < WORKER_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(_) => return Err(Refused::Worker(w as u16)),
            }
        }
    }
    Ok(())
}

/// What a reload changes, as operators read it.
fn changes(old: &Config, new: &Config, before: &Shared, next: &Shared, view: &View) -> Vec<String> {
    let mut out = Vec::new();
    let servers = |c: &Config| -> BTreeMap<String, sluice_config::VirtualServer> {
        c.virtual_servers
            .iter()
            .map(|v| (v.name.clone(), v.clone()))
            .collect()
    };
    let (a, b) = (servers(old), servers(new));
    for (name, v) in &b {
        match a.get(name) {
            None => out.push(format!(
                "virtual server {name} added ({} {})",
                v.address,
                v.protocol.as_str()
            )),
            Some(o) if !same_server(old, o, new, v) => {
                out.push(server_change(old, o, new, v, view))
            }
            Some(_) => {}
        }
    }
    for name in a.keys().filter(|n| !b.contains_key(*n)) {
        let slot = before.slot_of(name);
        let sessions = slot.map_or(0, |s| view.vs_sessions(s));
        let kept = slot.is_some_and(|s| next.service(s).is_some_and(|v| v.retired));
        out.push(if kept && sessions > 0 {
            format!("virtual server {name} removed; its {sessions} sessions drain")
        } else {
            format!("virtual server {name} removed")
        });
    }
    for p in &new.pools {
        let before = old.pools.iter().find(|o| o.name == p.name);
        let settings = |p: &sluice_config::Pool| sluice_config::Pool {
            members: Vec::new(),
            ..p.clone()
        };
        match before {
            None => out.push(format!("pool {} added", p.name)),
            Some(o) if settings(o) != settings(p) => {
                out.push(format!("pool {} changed (method, check or limits)", p.name))
            }
            Some(_) => {}
        }
    }
    member_changes(old, new, &mut out);
    if old.health_checks != new.health_checks {
        out.push("health checks changed".to_string());
    }
    if old.timeouts != new.timeouts {
        out.push("timeouts changed".to_string());
    }
    out
}

/// How a kept server changed: in place, or replaced by a new one when what
/// identifies it changed (see `Shared::reload`), the old one draining.
fn server_change(
    old: &Config,
    a: &sluice_config::VirtualServer,
    new: &Config,
    b: &sluice_config::VirtualServer,
    view: &View,
) -> String {
    let name = &b.name;
    let pools = (&old.pools[a.pool].name, &new.pools[b.pool].name);
    let mut what = Vec::new();
    if a.address != b.address {
        what.push(format!("address {} -> {}", a.address, b.address));
    }
    if a.protocol != b.protocol {
        what.push(format!(
            "protocol {} -> {}",
            a.protocol.as_str(),
            b.protocol.as_str()
        ));
    }
    if a.forwarding != b.forwarding {
        what.push(format!("forwarding {} -> {}", a.forwarding, b.forwarding));
    }
    if pools.0 != pools.1 {
        what.push(format!("pool {} -> {}", pools.0, pools.1));
    }
    let netmask = |v: &sluice_config::VirtualServer| {
        v.persistence
            .as_ref()
            .map_or("none".to_string(), |p| format!("/{}", p.netmask))
    };
    if netmask(a) != netmask(b) {
        what.push(format!("persistence {} -> {}", netmask(a), netmask(b)));
    }
    if what.is_empty() {
        return format!("virtual server {name} changed");
    }
    let sessions = view
        .live()
        .shared
        .slot_of(name)
        .map_or(0, |s| view.vs_sessions(s));
    format!(
        "virtual server {name} replaced ({}); its {sessions} sessions drain",
        what.join(", ")
    )
}

/// Whether a server's own settings are the same (its pool by name: pool
/// indexes move when pools are added or removed).
fn same_server(
    old: &Config,
    a: &sluice_config::VirtualServer,
    new: &Config,
    b: &sluice_config::VirtualServer,
) -> bool {
    let pool_a = &old.pools[a.pool].name;
    let pool_b = &new.pools[b.pool].name;
    pool_a == pool_b
        && sluice_config::VirtualServer {
            pool: b.pool,
            ..a.clone()
        } == *b
}

/// Members added, removed and re-weighted, per pool.
fn member_changes(old: &Config, new: &Config, out: &mut Vec<String>) {
    type Members = BTreeMap<(String, String), (u32, bool)>;
    let members = |c: &Config| -> Members {
        c.pools
            .iter()
            .flat_map(|p| {
                p.members.iter().map(move |m| {
                    (
                        (p.name.clone(), m.address.to_string()),
                        (m.weight, m.enabled),
                    )
                })
            })
            .collect()
    };
    let (a, b) = (members(old), members(new));
    for ((pool, addr), (w, enabled)) in &b {
        match a.get(&(pool.clone(), addr.clone())) {
            None => out.push(format!("pool {pool}: member {addr} added")),
            Some((ow, oe)) if (ow, oe) != (w, enabled) => out.push(format!(
                "pool {pool}: member {addr} weight {ow} -> {w}{}",
                if enabled == oe {
                    String::new()
                } else if *enabled {
                    ", enabled".to_string()
                } else {
                    ", disabled".to_string()
                }
            )),
            Some(_) => {}
        }
    }
    for (pool, addr) in a.keys().filter(|k| !b.contains_key(*k)) {
        out.push(format!(
            "pool {pool}: member {addr} removed; its sessions drain"
        ));
    }
}

/// The text `sluicectl reload` prints (`error: ...` on refusal).
pub fn text(outcome: &Result<Applied, Refused>) -> String {
    match outcome {
        Ok(a) => {
            let mut o = format!("reloaded: generation {}\n", a.generation);
            for c in &a.changes {
                o.push_str(&format!("  {c}\n"));
            }
            if a.changes.is_empty() {
                o.push_str("  nothing changed\n");
            }
            o
        }
        Err(e) => format!("error: reload refused: {e}\n"),
    }
}

/// The JSON `sluicectl reload --json` prints.
pub fn json(outcome: &Result<Applied, Refused>) -> String {
    match outcome {
        Ok(a) => format!(
            "{}\n",
            serde_json::json!({ "generation": a.generation, "changes": a.changes })
        ),
        Err(e) => crate::control::error_json(&format!("reload refused: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    const CFG: &str = r#"
[[interface]]
name = "int"
device = "net_null0"
addresses = ["10.20.0.1/24"]
kernel = false
[pool.web]
members = [{ address = "10.20.0.11:80" }]
[[virtual_server]]
name = "web"
address = "10.20.0.100:80"
protocol = "tcp"
pool = "web"
"#;

    #[test]
    fn a_slot_a_new_server_takes_starts_its_counters_at_zero() {
        let view = crate::testing::view(CFG, 2, Vec::new());
        let running = view.live().shared.clone();
        let added = format!(
            "{CFG}[[virtual_server]]\nname = \"new\"\naddress = \"10.20.0.101:80\"\nprotocol = \"tcp\"\npool = \"web\"\n"
        );
        let cfg = sluice_config::parse(&added, "t.toml").unwrap();
        let next = running.reload(&cfg, &|_| 0).unwrap();
        let slot = usize::from(next.slot_of("new").unwrap());
        let kept = usize::from(next.slot_of("web").unwrap());
        // What an earlier server of the free slot left, and the kept one's.
        for st in &view.stats {
            st.vs_packets_in[slot].store(7, Relaxed);
            st.vs_rejected[slot].store(3, Relaxed);
            st.vs_packets_in[kept].store(5, Relaxed);
        }
        zero_new_slots(&view, &running, &next);
        assert_eq!(
            (
                view.vs_counter(slot, |s| &s.vs_packets_in),
                view.vs_counter(slot, |s| &s.vs_rejected)
            ),
            (0, 0)
        );
        assert_eq!(
            view.vs_counter(kept, |s| &s.vs_packets_in),
            10,
            "a kept server keeps its counts"
        );
    }
}
