//! What a reload changes, as operators read it: a line per server, pool
//! and member added, removed, replaced or changed.

use crate::live::Running;
use sluice_config::Config;
use sluice_dataplane::shared::Shared;
use std::collections::BTreeMap;

/// What a reload changes, as operators read it.
pub(super) fn changes(
    old: &Config,
    new: &Config,
    before: &Shared,
    next: &Shared,
    view: &Running,
) -> Vec<String> {
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
    view: &Running,
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
