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
                "node {}, vip_ownership {}\nowns: {}\nsession sync: not configured\nready: {}\n",
                s.node.map_or("-".into(), |n| n.to_string()),
                s.ownership,
                if owned.is_empty() {
                    "nothing".into()
                } else {
                    owned.join(", ")
                },
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
        "session_sync": null,
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
/// stopped taking snapshots has stopped forwarding). Without session
/// synchronisation there is no bulk sync to wait for.
fn ready(view: &View, generation: u64) -> Result<(), String> {
    let lagging = view
        .stats
        .iter()
        .position(|s| s.generation.load(Ordering::Relaxed) != generation);
    match lagging {
        Some(w) => Err(format!("worker {w} has not taken generation {generation}")),
        None => Ok(()),
    }
}
