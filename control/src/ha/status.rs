//! `sluicectl ha` and `sluicectl ha ready`: what this node of a pair owns,
//! and whether keepalived may make it master.

use crate::report::View;
use serde_json::{json, Value};
use sluice_config::VipOwnership;
use std::sync::atomic::Ordering;

/// `ha [ready]` as text; a refusal starts with `error:` (sluicectl then
/// exits 1, which is what keepalived's `vrrp_script` reads).
pub fn text(view: &View, args: &[&str]) -> String {
    match args {
        [] => {
            let s = status(view);
            let owned: Vec<String> = s.owned.iter().map(|(a, i)| format!("{a} on {i}")).collect();
            format!(
                "node {}, vip_ownership {}\nowns: {}\n{}ready: {}\n",
                s.node.map_or("-".into(), |n| n.to_string()),
                s.ownership,
                if owned.is_empty() {
                    "nothing".into()
                } else {
                    owned.join(", ")
                },
                sync_text(view),
                s.ready
                    .as_ref()
                    .map_or_else(|e| format!("no ({e})"), |_| "yes".into()),
            )
        }
        ["ready"] => match status(view).ready {
            Ok(()) => "ready\n".into(),
            Err(e) => format!("error: not ready: {e}\n"),
        },
        _ => format!(
            "error: unknown ha command {:?} (ha, ha ready)\n",
            args.join(" ")
        ),
    }
}

/// `ha --json`.
pub fn json(view: &View) -> Value {
    let s = status(view);
    json!({
        "node_id": s.node,
        "vip_ownership": s.ownership,
        "owned": s.owned.iter().map(|(a, i)| json!({"address": a, "interface": i})).collect::<Vec<_>>(),
        "session_sync": view.sync.as_ref().map(|l| {
            let mut j = l.status().json();
            j["workers"] = worker_counters_json(view);
            j
        }),
        "ready": s.ready.is_ok(),
        "not_ready": s.ready.err(),
    })
}

struct Status {
    node: Option<u8>,
    ownership: &'static str,
    /// (address, interface name) of what the dataplane owns from the kernel.
    owned: Vec<(String, String)>,
    ready: Result<(), String>,
}

fn status(view: &View) -> Status {
    let live = view.live();
    let cfg = &live.config;
    let name = |port: u16| {
        cfg.interfaces
            .get(usize::from(port))
            .map_or("?".to_string(), |i| i.name.clone())
    };
    let owned = live.shared.owned.iter().flat_map(|o| o.iter());
    Status {
        node: cfg.ha.node_id,
        ownership: match cfg.ha.vip_ownership {
            VipOwnership::Config => "config",
            VipOwnership::Kernel => "kernel",
        },
        owned: owned.map(|(p, a)| (a.to_string(), name(*p))).collect(),
        ready: ready(view, live.shared.generation),
    }
}

/// Ready while every worker runs the published snapshot (a worker that
/// stopped taking snapshots has stopped forwarding) and, with session
/// synchronisation, once the bulk sync from every peer has finished (or
/// the peer stayed silent: it is down).
fn ready(view: &View, generation: u64) -> Result<(), String> {
    let lagging = view
        .stats
        .iter()
        .position(|s| s.generation.load(Ordering::Relaxed) != generation);
    if let Some(w) = lagging {
        return Err(format!("worker {w} has not taken generation {generation}"));
    }
    view.sync.as_ref().map_or(Ok(()), crate::ha::sync::ready)
}

/// The workers' synchronisation counters, summed: (name, value).
fn worker_counters(view: &View) -> Vec<(String, u64)> {
    let sum = |f: &dyn Fn(&sluice_dataplane::sync::SyncCounters) -> u64| -> u64 {
        view.stats.iter().map(|s| f(&s.sync)).sum()
    };
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let mut v = vec![
        ("queued".to_string(), sum(&|c| get(&c.queued))),
        ("queue_full".to_string(), sum(&|c| get(&c.queue_full))),
        ("installed".to_string(), sum(&|c| get(&c.installed))),
        ("updated".to_string(), sum(&|c| get(&c.updated))),
        ("removed".to_string(), sum(&|c| get(&c.removed))),
        (
            "snat_port_busy".to_string(),
            sum(&|c| get(&c.snat_port_busy)),
        ),
    ];
    for r in sluice_dataplane::sync::SyncRefusal::ALL {
        let n = sum(&|c| get(&c.refused[*r as usize]));
        v.push((format!("refused_{}", r.name()), n));
    }
    v
}

fn worker_counters_json(view: &View) -> Value {
    let map: serde_json::Map<String, Value> = worker_counters(view)
        .into_iter()
        .map(|(k, n)| (k, json!(n)))
        .collect();
    Value::Object(map)
}

fn sync_text(view: &View) -> String {
    let Some(link) = view.sync.as_ref() else {
        return "session sync: not configured\n".into();
    };
    let counters: Vec<String> = worker_counters(view)
        .into_iter()
        .filter(|(k, n)| *n > 0 || !k.starts_with("refused_"))
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    format!("{}workers: {}\n", link.status().text(), counters.join(", "))
}
