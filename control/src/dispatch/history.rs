//! The rates the status page draws: the counters read every
//! [`Rates::INTERVAL_S`] seconds, each reading's difference from the one
//! before kept as a point ([`Point::between`]).

use super::model;
use crate::view::{Rates, View};
use sluice_control::api::Point;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads the counters forever (a task on the control thread's runtime).
pub async fn run(view: Arc<View>) {
    let mut tick = tokio::time::interval(Duration::from_secs(Rates::INTERVAL_S));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    loop {
        tick.tick().await;
        let (now, stats) = (Instant::now(), model::stats(&view, &view.running.live()));
        if let Some((then, before)) = &last {
            let secs = now.duration_since(*then).as_secs_f64();
            let uptime = view.running.started.elapsed().as_secs();
            view.rates
                .push(Point::between(before, &stats, secs, uptime));
        }
        last = Some((now, stats));
    }
}
