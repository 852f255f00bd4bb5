//! `status`: what runs, since when, its ports and links.

use super::announce::AnnounceSummary;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub dpdk: String,
    pub uptime_s: u64,
    pub workers: usize,
    /// Open sessions, every worker's.
    pub sessions: u64,
    pub ports: Vec<PortStatus>,
    /// Configuration generation: 0 at boot, one more per reload.
    pub generation: u64,
    /// `[announce]`: whether the node announces its VIP routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<AnnounceSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    pub port: usize,
    pub name: String,
    pub mac: String,
    pub link_up: bool,
    pub mtu: u16,
    /// Each address with its prefix length.
    pub addresses: Vec<String>,
}

impl Status {
    pub fn text(&self) -> String {
        let mut o = format!(
            "sluice {} up {}s, dpdk {}\nworkers {}  sessions {}\n",
            self.version, self.uptime_s, self.dpdk, self.workers, self.sessions
        );
        if let Some(a) = &self.announce {
            o.push_str(&a.text());
        }
        for p in &self.ports {
            let _ = writeln!(
                o,
                "port {} {} mac {} link {} mtu {} addresses {}",
                p.port,
                p.name,
                p.mac,
                if p.link_up { "up" } else { "down" },
                p.mtu,
                p.addresses.join(",")
            );
        }
        o
    }
}
