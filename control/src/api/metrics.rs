//! `metrics` and `GET /metrics`: the Prometheus families, built from the
//! same typed answers as `stats` and `members` ([`Metrics::build`]), then
//! written in the text exposition format ([`Metrics::exposition`]: each
//! family once, HELP and TYPE first, all its samples together, label
//! values escaped) or as JSON samples.

use super::members::MemberRow;
use super::stats::Stats;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sluice_dataplane::stats::scalar_help;
use std::fmt::Write;

/// A family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Counter,
    Gauge,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Families in the order first named.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub families: Vec<Family>,
}

impl Metrics {
    /// Every family of the switch, from its counters and its members.
    pub fn build(stats: &Stats, members: &[MemberRow]) -> Metrics {
        let mut m = Metrics::default();
        m.ports(stats);
        m.workers(stats);
        m.members(members);
        m.servers(stats);
        m
    }

    /// Adds a sample to family `name` (declared with `help` and `kind` the
    /// first time it is named).
    pub fn sample(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        self.families[at].samples.push(Sample {
            labels: labels.collect(),
            value,
        });
    }

    fn ports(&mut self, stats: &Stats) {
        for p in &stats.ports {
            for w in &stats.workers {
                let Some(c) = w.ports.get(p.port) else {
                    continue;
                };
                let worker = w.worker.to_string();
                for (dir, v) in [("rx", c.rx_packets), ("tx", c.tx_packets)] {
                    let labels = [
                        ("port", p.name.as_str()),
                        ("direction", dir),
                        ("worker", &worker),
                    ];
                    self.sample(
                        "sluice_port_packets_total",
                        Kind::Counter,
                        "Packets per port, direction and worker.",
                        &labels,
                        v as f64,
                    );
                }
            }
        }
    }

    fn workers(&mut self, stats: &Stats) {
        for w in &stats.workers {
            let worker = w.worker.to_string();
            for (reason, v) in &w.drops_by_reason {
                self.sample(
                    "sluice_drops_total",
                    Kind::Counter,
                    "Dropped packets by reason and worker.",
                    &[("reason", reason), ("worker", &worker)],
                    *v as f64,
                );
            }
            for (name, v) in &w.counters {
                // Sums of families above: the drops by reason, the ports' packets.
                if matches!(name.as_str(), "drops" | "rx_packets") {
                    continue;
                }
                let (help, gauge) = scalar_help(name);
                let (family, kind) = match gauge {
                    true => (format!("sluice_{name}"), Kind::Gauge),
                    false => (format!("sluice_{name}_total"), Kind::Counter),
                };
                self.sample(&family, kind, help, &[("worker", &worker)], *v as f64);
            }
        }
    }

    /// Per member, labelled by virtual server, pool and member (and
    /// `retired` for a removed server's, which may share its name with the
    /// server that replaced it).
    fn members(&mut self, rows: &[MemberRow]) {
        for r in rows {
            let mut labels = vec![
                ("virtual_server", r.virtual_server.as_str()),
                ("pool", r.pool.as_str()),
                ("member", r.member.as_str()),
            ];
            if r.server_removed {
                labels.push(("retired", "true"));
            }
            let gauges = [
                ("sluice_member_up", "Whether the member passes its health check (1) or not (0).", f64::from(u8::from(r.healthy))),
                ("sluice_member_sessions", "Active sessions on the member.", r.sessions as f64),
                ("sluice_member_weight", "The member's weight in effect (0: draining, disabled or down; ramping in slow start).", f64::from(r.effective_weight)),
            ];
            for (name, help, v) in gauges {
                self.sample(name, Kind::Gauge, help, &labels, v);
            }
            if let Some(c) = r.checks {
                let counters = [
                    ("sluice_health_checks_total", "Health checks of the member.", c.checks),
                    ("sluice_health_check_failures_total", "Failed health checks of the member.", c.failures),
                    ("sluice_health_check_local_errors_total", "Health checks of the member the switch could not make (no socket): they count neither way.", c.local_errors),
                ];
                for (name, help, v) in counters {
                    self.sample(name, Kind::Counter, help, &labels, v as f64);
                }
            }
            if let Some(ms) = r.latency_ms {
                self.sample(
                    "sluice_health_check_latency_seconds",
                    Kind::Gauge,
                    "How long the member's last successful health check took.",
                    &labels,
                    ms / 1000.0,
                );
            }
        }
    }

    /// Per virtual server: sessions, traffic, refusals; the configuration
    /// generation; per port: the exception path.
    fn servers(&mut self, stats: &Stats) {
        for v in &stats.virtual_servers {
            let mut name = vec![("virtual_server", v.name.as_str())];
            if v.removed {
                name.push(("retired", "true"));
            }
            self.sample(
                "sluice_virtual_server_sessions",
                Kind::Gauge,
                "Open sessions of the virtual server.",
                &name,
                v.sessions as f64,
            );
            for (dir, packets, bytes) in [
                ("in", v.packets_in, v.bytes_in),
                ("out", v.packets_out, v.bytes_out),
            ] {
                let labels = [name.as_slice(), &[("direction", dir)]].concat();
                self.sample(
                    "sluice_virtual_server_packets_total",
                    Kind::Counter,
                    "Packets of the virtual server's sessions, by direction (in: client to member).",
                    &labels,
                    packets as f64,
                );
                self.sample(
                    "sluice_virtual_server_bytes_total",
                    Kind::Counter,
                    "Bytes (frames as received) of the virtual server's sessions, by direction.",
                    &labels,
                    bytes as f64,
                );
            }
            for (reason, n) in [
                ("no_member", v.rejected_no_member),
                ("full", v.rejected_full),
                ("denied", v.denied),
            ] {
                self.sample(
                    "sluice_virtual_server_rejected_total",
                    Kind::Counter,
                    "New sessions refused, by reason: no_member and full answered with a RST / ICMP unreachable, denied (source ACL) dropped.",
                    &[name.as_slice(), &[("reason", reason)]].concat(),
                    n as f64,
                );
            }
        }
        self.sample(
            "sluice_config_generation",
            Kind::Gauge,
            "Configuration generation: 0 at boot, one more per reload.",
            &[],
            stats.generation as f64,
        );
        for k in &stats.kernel {
            for (dir, v) in [("to_kernel", k.to_kernel), ("from_kernel", k.from_kernel)] {
                self.sample(
                    "sluice_kernel_frames_total",
                    Kind::Counter,
                    "Frames through the exception path per port and direction.",
                    &[("port", k.port.as_str()), ("direction", dir)],
                    v as f64,
                );
            }
        }
    }

    /// The text exposition format, one family after another.
    pub fn exposition(&self) -> String {
        let mut o = String::new();
        for f in &self.families {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(o, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(o, "# TYPE {} {kind}", f.name);
            for s in &f.samples {
                o.push_str(&f.name);
                if !s.labels.is_empty() {
                    let labels: Vec<String> = (s.labels.iter())
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                        .collect();
                    let _ = write!(o, "{{{}}}", labels.join(","));
                }
                let _ = writeln!(o, " {}", s.value);
            }
        }
        o
    }

    /// Every sample as `{name, labels, value}`.
    pub fn samples_json(&self) -> Value {
        let samples = self.families.iter().flat_map(|f| {
            f.samples.iter().map(|s| {
                let labels: serde_json::Map<String, Value> = (s.labels.iter())
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                json!({ "name": f.name, "labels": labels, "value": s.value })
            })
        });
        Value::Array(samples.collect())
    }
}

/// A label value as the format wants it: backslash, quote and newline escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text: backslash and newline escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_stay_together_whatever_the_order_of_samples() {
        let mut e = Metrics::default();
        for m in ["a", "b"] {
            e.sample("x_up", Kind::Gauge, "Up.", &[("m", m)], 1.0);
            e.sample("x_total", Kind::Counter, "Checks.", &[("m", m)], 7.0);
        }
        e.sample("x_plain", Kind::Gauge, "No labels.", &[], 0.25);
        e.sample("x_up", Kind::Gauge, "Up.", &[("m", "q\"\\\n")], 0.0);
        assert_eq!(
            e.exposition(),
            "# HELP x_up Up.\n# TYPE x_up gauge\nx_up{m=\"a\"} 1\nx_up{m=\"b\"} 1\n\
             x_up{m=\"q\\\"\\\\\\n\"} 0\n\
             # HELP x_total Checks.\n# TYPE x_total counter\nx_total{m=\"a\"} 7\nx_total{m=\"b\"} 7\n\
             # HELP x_plain No labels.\n# TYPE x_plain gauge\nx_plain 0.25\n"
        );
        assert_eq!(
            e.samples_json()[0],
            json!({"name": "x_up", "labels": {"m": "a"}, "value": 1.0})
        );
    }

    #[test]
    fn help_text_escapes_backslash_and_newline_only() {
        let mut e = Metrics::default();
        e.sample("x", Kind::Gauge, "A \\ \"b\"\nc.", &[], 1.0);
        assert_eq!(
            e.exposition(),
            "# HELP x A \\\\ \"b\"\\nc.\n# TYPE x gauge\nx 1\n"
        );
    }
}
