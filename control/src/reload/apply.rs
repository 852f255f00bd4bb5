//! Bringing the switch in line with a new snapshot: counters of new
//! slots, member settings from the file, and the handover to every worker.

use super::{Refused, Reloader, WORKER_TIMEOUT};
use crate::live::Running;
use crate::members;
use sluice_config::Config;
use sluice_dataplane::reload::Adopt;
use sluice_dataplane::shared::Shared;
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts the per-server counters of each slot a server takes that no
/// server held (a slot let go by an earlier reload still holds its old
/// server's totals). The workers own these counters, but none counts on a
/// slot the running snapshot does not name, so this thread may write them.
pub(super) fn zero_new_slots(view: &Running, running: &Shared, next: &Shared) {
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
pub(super) fn apply_member_settings(
    cfg: &Config,
    old: &Shared,
    next: &Shared,
    ramps: &members::Ramps,
) {
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

/// Hands `next` to every worker and waits until each has moved on; the
/// snapshots they replaced are dropped here, on the control thread.
pub(crate) async fn publish(
    reloader: &Reloader,
    old: &Shared,
    next: &Arc<Shared>,
) -> Result<(), Refused> {
    let sessions = reloader.sessions_per_worker;
    for ch in &reloader.workers {
        // A late answer to an earlier reload that timed out.
        let stale = ch.from_worker.lock().unwrap_or_else(|e| e.into_inner());
        while stale.try_recv().is_ok() {}
    }
    for (w, ch) in reloader.workers.iter().enumerate() {
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
    for (w, ch) in reloader.workers.iter().enumerate() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::web_config;
    use std::sync::atomic::Ordering::Relaxed;

    const MEMBERS: &str = r#"{ address = "10.20.0.11:80" }"#;

    #[test]
    fn a_slot_a_new_server_takes_starts_its_counters_at_zero() {
        let view = crate::testing::running(&web_config(MEMBERS, ""), 2);
        let running = view.live().shared.clone();
        let added = web_config(
            MEMBERS,
            "[[virtual_server]]\nname = \"new\"\naddress = \"10.20.0.101:80\"\nprotocol = \"tcp\"\npool = \"web\"\n",
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
