//! Health across a reload: targets the old and new files both check go on
//! as they were (schedule, streaks, status), new ones start fresh, and
//! each member's health word is set from its target's status.

use super::Reloader;
use crate::health::{self, SharedStatus, Statuses};
use crate::live::{Live, Running};
use crate::members;
use sluice_dataplane::shared::Shared;
use std::sync::Arc;

/// Runs the health checks of `plan` for snapshot `shared` (on the control
/// thread's runtime): targets already checked go on as they were (their
/// schedule, streaks and status: `health::Checks`), new ones start with
/// status `fresh(i)`. Returns the statuses, in `plan.targets` order.
pub(crate) fn run_checks(
    running: &Running,
    reloader: &Reloader,
    shared: &Shared,
    plan: &members::Plan,
    fresh: &dyn Fn(usize) -> SharedStatus,
) -> Statuses {
    let on_change = members::on_change(shared.members.clone(), plan, reloader.ramps.clone());
    let clock = running.clock;
    let clock: health::Clock = Arc::new(move || clock.now_ms());
    let mut checks = health::lock(&reloader.checks);
    checks.apply(&plan.targets, fresh, &clock, &on_change)
}

/// Member health words as the new targets' statuses say; unchecked
/// members are up.
pub(super) fn apply_health(live: &Live) {
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
