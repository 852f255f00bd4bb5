//! `sluicectl --json`: every answer as one JSON document, from the same
//! accessors as the text answers.

use crate::report::{MemberRow, View};
use serde_json::{json, Value};
use sluice_dataplane::neighbor::State;
use sluice_dataplane::stats::DropReason;
use std::sync::atomic::Ordering::Relaxed;

impl View {
    /// The JSON answer of a command; None for a command with none.
    pub fn json(&self, command: &str) -> Option<Value> {
        Some(match command {
            "status" => self.status_json(),
            "stats" => self.stats_json(),
            "virtual-servers" | "vs" => self.virtual_servers_json(),
            "members" => Value::Array(self.member_rows().iter().map(member_json).collect()),
            "neighbors" | "arp" => self.neighbors_json(),
            "routes" => self.routes_json(),
            "metrics" => metrics_json(&self.metrics()),
            _ => return None,
        })
    }

    fn status_json(&self) -> Value {
        let live = self.live();
        let ports: Vec<Value> = live
            .shared
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({
                    "port": i, "name": p.name, "mac": crate::report::mac(p.mac),
                    "link_up": self.ports[i].link().up, "mtu": p.mtu,
                    "addresses": p.addresses.iter().map(|(a, l)| format!("{a}/{l}")).collect::<Vec<_>>(),
                })
            })
            .collect();
        let sessions: u64 = self
            .stats
            .iter()
            .map(|s| s.sessions_active.load(Relaxed))
            .sum();
        json!({
            "version": env!("CARGO_PKG_VERSION"), "dpdk": sluice_ffi::version(),
            "uptime_s": self.started.elapsed().as_secs(), "workers": self.stats.len(),
            "sessions": sessions, "ports": ports, "generation": live.shared.generation,
        })
    }

    fn stats_json(&self) -> Value {
        let live = self.live();
        let workers: Vec<Value> = self
            .stats
            .iter()
            .map(|s| {
                let mut w = serde_json::Map::new();
                for (name, v) in s.scalars() {
                    w.insert(name.to_string(), json!(v));
                }
                let drops: serde_json::Map<String, Value> = DropReason::ALL
                    .iter()
                    .map(|r| (r.name().to_string(), json!(s.drops_of(*r))))
                    .collect();
                w.insert("drops_by_reason".to_string(), Value::Object(drops));
                Value::Object(w)
            })
            .collect();
        let servers: Vec<Value> = (live.shared.servers())
            .map(|(slot, v)| {
                let i = usize::from(slot);
                json!({
                    "name": v.name, "removed": v.retired, "sessions": self.vs_sessions(slot),
                    "packets_in": self.vs_counter(i, |s| &s.vs_packets_in),
                    "bytes_in": self.vs_counter(i, |s| &s.vs_bytes_in),
                    "packets_out": self.vs_counter(i, |s| &s.vs_packets_out),
                    "bytes_out": self.vs_counter(i, |s| &s.vs_bytes_out),
                    "rejected_no_member": self.vs_counter(i, |s| &s.vs_rejected),
                    "denied": self.vs_counter(i, |s| &s.vs_denied),
                    "rejected_full": self.vs_counter(i, |s| &s.vs_full),
                })
            })
            .collect();
        let kernel: Vec<Value> = (live.shared.ports.iter().zip(&self.kernel))
            .filter_map(|(p, c)| {
                let c = c.as_ref()?;
                Some(json!({
                    "port": p.name, "to_kernel": c.to_kernel.load(Relaxed),
                    "from_kernel": c.from_kernel.load(Relaxed), "dropped": c.dropped.load(Relaxed),
                }))
            })
            .collect();
        json!({ "workers": workers, "virtual_servers": servers, "kernel": kernel })
    }

    fn virtual_servers_json(&self) -> Value {
        let live = self.live();
        let list: Vec<Value> = live
            .shared
            .servers()
            .map(|(slot, v)| {
                let members: Vec<Value> = v
                    .members
                    .iter()
                    .map(|m| {
                        json!({
                            "member": m.addr().to_string(), "backup": m.backup,
                            "weight": live.shared.members.configured_weight(m.id),
                            "state": self.member_state(m),
                        })
                    })
                    .collect();
                json!({
                    "name": v.name, "vip": v.vip.to_string(), "port": v.port,
                    "protocol": if v.proto == 6 { "tcp" } else { "udp" },
                    "forwarding": v.forwarding.as_str(), "method": v.method.as_str(),
                    "pool": v.pool, "members": members, "sessions": self.vs_sessions(slot),
                    "removed": v.retired,
                    "removed_members": v.retired_members.iter()
                        .map(|m| m.addr().to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        Value::Array(list)
    }

    fn neighbors_json(&self) -> Value {
        let live = self.live();
        let now = self.clock.now_ms();
        let list: Vec<Value> = (live.shared.neighbors.entries().into_iter())
            .map(|(ip, port, e)| {
                let name = live
                    .shared
                    .ports
                    .get(usize::from(port))
                    .map(|p| p.name.clone());
                let (usable, stale) = e.usable(now);
                json!({
                    "address": ip.to_string(), "mac": crate::report::mac(e.mac), "port": name,
                    "static": e.state == State::Static, "usable": usable, "stale": stale,
                    "age_s": now.saturating_sub(e.updated_ms) / 1000,
                })
            })
            .collect();
        Value::Array(list)
    }

    fn routes_json(&self) -> Value {
        let live = self.live();
        let list: Vec<Value> = (crate::report::all_routes(&live.shared).iter())
            .map(|r| {
                let name = live
                    .shared
                    .ports
                    .get(usize::from(r.port))
                    .map(|p| p.name.clone());
                json!({
                    "destination": format!("{}/{}", r.prefix, r.len),
                    "gateway": r.gateway.map(|g| g.to_string()), "port": name,
                })
            })
            .collect();
        Value::Array(list)
    }
}

fn member_json(r: &MemberRow) -> Value {
    json!({
        "virtual_server": r.virtual_server, "pool": r.pool, "member": r.member,
        "role": r.role, "state": r.state, "since_s": r.since_s, "sessions": r.sessions,
        "check": r.check, "latency_ms": r.latency_ms, "weight": r.weight,
        "effective_weight": r.effective_weight, "limit": r.limit, "last": r.last,
    })
}

/// The Prometheus exposition as samples: `{name, labels, value}`.
fn metrics_json(text: &str) -> Value {
    let samples: Vec<Value> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels: serde_json::Map<String, Value> = labels
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), json!(v.trim_matches('"'))))
                .collect();
            Some(json!({ "name": name, "labels": labels, "value": value.parse::<f64>().ok()? }))
        })
        .collect();
    Value::Array(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_becomes_samples() {
        let v =
            metrics_json("# HELP x y\nsluice_a_total{worker=\"0\",port=\"ext\"} 5\nsluice_b 2\n");
        assert_eq!(
            v,
            json!([
                {"name": "sluice_a_total", "labels": {"worker": "0", "port": "ext"}, "value": 5.0},
                {"name": "sluice_b", "labels": {}, "value": 2.0},
            ])
        );
    }
}
