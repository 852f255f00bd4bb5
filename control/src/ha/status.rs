//! `sluicectl ha` and `sluicectl ha ready`: what this node of a pair owns,
//! and whether keepalived may make it master.

use super::sync::Link;
use crate::live::Running;
use sluice_config::VipOwnership;
use sluice_control::api::{HaStatus, Owned, SyncReport};
use sluice_dataplane::sync::{SyncCounters, SyncRefusal};
use std::sync::atomic::{AtomicU64, Ordering};

/// What `ha` answers.
pub fn report(running: &Running, link: Option<&Link>) -> HaStatus {
    let live = running.live();
    let cfg = &live.config;
    let name = |port: u16| {
        cfg.interfaces
            .get(usize::from(port))
            .map_or("?".to_string(), |i| i.name.clone())
    };
    let owned = live.shared.owned.iter().flat_map(|o| o.iter());
    let ready = ready(running, link);
    HaStatus {
        node_id: cfg.ha.node_id,
        vip_ownership: match cfg.ha.vip_ownership {
            VipOwnership::Config => "config",
            VipOwnership::Kernel => "kernel",
        }
        .to_string(),
        owned: owned
            .map(|(p, a)| Owned {
                address: a.to_string(),
                interface: name(*p),
            })
            .collect(),
        session_sync: link.map(|l| SyncReport {
            workers: worker_counters(running),
            ..l.status().report()
        }),
        ready: ready.is_ok(),
        not_ready: ready.err(),
    }
}

/// Ready while every worker runs the published snapshot (a worker that
/// stopped taking snapshots has stopped forwarding) and, with session
/// synchronisation, once the bulk sync from every peer has finished (or
/// the peer stayed silent: it is down).
pub fn ready(running: &Running, link: Option<&Link>) -> Result<(), String> {
    let generation = running.live().shared.generation;
    if let Some(w) = running.lagging_worker(generation) {
        return Err(format!("worker {w} has not taken generation {generation}"));
    }
    link.map_or(Ok(()), super::sync::ready)
}

/// The workers' synchronisation counters, summed: (name, value).
fn worker_counters(running: &Running) -> Vec<(String, u64)> {
    let sum = |f: &dyn Fn(&SyncCounters) -> &AtomicU64| -> u64 {
        (running.stats.iter())
            .map(|s| f(&s.sync).load(Ordering::Relaxed))
            .sum()
    };
    let mut v = vec![
        ("queued".to_string(), sum(&|c| &c.queued)),
        ("queue_full".to_string(), sum(&|c| &c.queue_full)),
        ("installed".to_string(), sum(&|c| &c.installed)),
        ("updated".to_string(), sum(&|c| &c.updated)),
        ("removed".to_string(), sum(&|c| &c.removed)),
        ("snat_port_busy".to_string(), sum(&|c| &c.snat_port_busy)),
    ];
    for r in SyncRefusal::ALL {
        let n = sum(&|c| &c.refused[*r as usize]);
        v.push((format!("refused_{}", r.name()), n));
    }
    v
}
