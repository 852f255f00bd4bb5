//! `stats`: every counter, per port, per worker, per virtual server.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub ports: Vec<PortCounters>,
    pub workers: Vec<WorkerCounters>,
    pub virtual_servers: Vec<ServerCounters>,
    /// The exception path, per port that has a kernel interface.
    pub kernel: Vec<KernelCounters>,
    pub generation: u64,
}

/// One port: the workers' counts, and the NIC's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCounters {
    pub port: usize,
    pub name: String,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub nic: Option<NicCounters>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicCounters {
    pub rx: u64,
    pub tx: u64,
    pub missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub no_mbuf: u64,
}

/// One worker's counters, in the order the dataplane defines them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCounters {
    pub worker: usize,
    #[serde(flatten, with = "super::ordered_map")]
    pub counters: Vec<(String, u64)>,
    /// Every drop reason, zero or not.
    #[serde(with = "super::ordered_map")]
    pub drops_by_reason: Vec<(String, u64)>,
    /// Packets received and sent on each port (in port order).
    pub ports: Vec<PortPackets>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortPackets {
    pub rx_packets: u64,
    pub tx_packets: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCounters {
    pub name: String,
    pub removed: bool,
    pub sessions: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// New sessions refused: no usable member (RST / unreachable sent),
    /// the source ACL (dropped), every member at its limit.
    pub rejected_no_member: u64,
    pub denied: u64,
    pub rejected_full: u64,
}

impl ServerCounters {
    /// (packets both ways, bytes both ways, new sessions refused for any
    /// reason): what the status page draws rates of.
    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.packets_in + self.packets_out,
            self.bytes_in + self.bytes_out,
            self.rejected_no_member + self.rejected_full + self.denied,
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCounters {
    pub port: String,
    pub to_kernel: u64,
    pub from_kernel: u64,
    pub dropped: u64,
}

/// Drops of one reason, every worker's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCount {
    pub reason: String,
    pub packets: u64,
}

impl WorkerCounters {
    /// A counter by name (0 if the dataplane has none such).
    pub fn get(&self, name: &str) -> u64 {
        (self.counters.iter())
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }
}

impl Stats {
    /// Drops by reason, summed over the workers, in the dataplane's order.
    pub fn drops(&self) -> Vec<DropCount> {
        let mut out: Vec<DropCount> = Vec::new();
        for w in &self.workers {
            for (i, (reason, n)) in w.drops_by_reason.iter().enumerate() {
                match out.get_mut(i) {
                    Some(d) => d.packets += n,
                    None => out.push(DropCount {
                        reason: reason.clone(),
                        packets: *n,
                    }),
                }
            }
        }
        out
    }

    pub fn text(&self) -> String {
        let mut o = String::new();
        for p in &self.ports {
            let _ = write!(
                o,
                "port {} {}: rx {} tx {}",
                p.port, p.name, p.rx_packets, p.tx_packets
            );
            if let Some(n) = &p.nic {
                let _ = write!(
                    o,
                    "  (nic: rx {} tx {} missed {} rx_errors {} tx_errors {} no_mbuf {})",
                    n.rx, n.tx, n.missed, n.rx_errors, n.tx_errors, n.no_mbuf
                );
            }
            o.push('\n');
        }
        for w in &self.workers {
            let _ = write!(o, "worker {}:", w.worker);
            for (name, v) in &w.counters {
                let _ = write!(o, " {name} {v}");
            }
            o.push('\n');
            for (reason, v) in w.drops_by_reason.iter().filter(|(_, v)| *v > 0) {
                let _ = writeln!(o, "  drop {reason} {v}");
            }
        }
        for v in &self.virtual_servers {
            let _ = writeln!(
                o,
                "virtual_server {} rejected_no_member {} denied {} rejected_full {} sessions {} packets_in {} bytes_in {} packets_out {} bytes_out {}{}",
                v.name, v.rejected_no_member, v.denied, v.rejected_full, v.sessions,
                v.packets_in, v.bytes_in, v.packets_out, v.bytes_out,
                if v.removed { " removed" } else { "" },
            );
        }
        let _ = writeln!(o, "configuration generation {}", self.generation);
        for k in &self.kernel {
            let _ = writeln!(
                o,
                "kernel {}: to_kernel {} from_kernel {} dropped {}",
                k.port, k.to_kernel, k.from_kernel, k.dropped
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_one_flat_json_object_with_its_drops_beside() {
        let w = WorkerCounters {
            worker: 0,
            counters: vec![("forwarded".into(), 5), ("drops".into(), 2)],
            drops_by_reason: vec![("no_session".into(), 2), ("bad_checksum".into(), 0)],
            ports: vec![PortPackets {
                rx_packets: 7,
                tx_packets: 5,
            }],
        };
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v["forwarded"], 5);
        assert_eq!(v["drops_by_reason"]["no_session"], 2);
        let back: WorkerCounters =
            serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back, w);
        let s = Stats {
            ports: Vec::new(),
            workers: vec![w.clone(), w],
            virtual_servers: Vec::new(),
            kernel: Vec::new(),
            generation: 3,
        };
        assert_eq!(
            s.drops(),
            vec![
                DropCount {
                    reason: "no_session".into(),
                    packets: 4
                },
                DropCount {
                    reason: "bad_checksum".into(),
                    packets: 0
                }
            ]
        );
        assert_eq!(
            s.text(),
            "worker 0: forwarded 5 drops 2\n  drop no_session 2\n\
             worker 0: forwarded 5 drops 2\n  drop no_session 2\nconfiguration generation 3\n"
        );
    }
}
