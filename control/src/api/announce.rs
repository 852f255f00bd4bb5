//! `announce`, `drain`, `resume`: the VIP routes kept for the routing
//! daemon (`[announce]`).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `sluicectl announce`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    pub table: u32,
    pub draining: bool,
    /// Routes added or removed since start.
    pub changes: u64,
    pub routes: Vec<RouteState>,
}

/// One VIP's route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteState {
    pub vip: IpAddr,
    /// The kernel interface the route names.
    pub link: String,
    pub announced: bool,
    /// Why it is or is not announced.
    pub why: String,
}

/// The line `status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceSummary {
    pub draining: bool,
    pub table: u32,
    pub present: usize,
    pub total: usize,
}

impl Announce {
    pub fn summary(&self) -> AnnounceSummary {
        AnnounceSummary {
            draining: self.draining,
            table: self.table,
            present: self.routes.iter().filter(|r| r.announced).count(),
            total: self.routes.len(),
        }
    }

    pub fn text(&self) -> String {
        let mut o = self.summary().text();
        for r in &self.routes {
            let mark = if r.announced {
                "announced"
            } else {
                "withdrawn"
            };
            o.push_str(&format!("  {} dev {}: {mark} ({})\n", r.vip, r.link, r.why));
        }
        o
    }
}

impl AnnounceSummary {
    pub fn text(&self) -> String {
        let state = if self.draining {
            "draining"
        } else {
            "announcing"
        };
        format!(
            "announce: {state}, table {}, {} of {} VIP routes present\n",
            self.table, self.present, self.total
        )
    }
}
