//! `neighbors` and `routes`: the switch's own ARP/ND and route tables.

use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbor {
    pub address: IpAddr,
    pub mac: String,
    /// The interface it was learned on.
    pub port: Option<String>,
    /// Configured (`[[neighbor]]`), never ages.
    #[serde(rename = "static")]
    pub fixed: bool,
    pub usable: bool,
    /// Usable, but due for a refresh.
    pub stale: bool,
    pub age_s: u64,
}

/// How `neighbors` names an entry's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighborState {
    Static,
    Reachable,
    Stale,
    Expired,
}

impl Neighbor {
    pub fn state(&self) -> NeighborState {
        match (self.fixed, self.usable, self.stale) {
            (true, _, _) => NeighborState::Static,
            (false, false, _) => NeighborState::Expired,
            (false, true, true) => NeighborState::Stale,
            (false, true, false) => NeighborState::Reachable,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// PREFIX/LEN.
    pub destination: String,
    pub gateway: Option<IpAddr>,
    pub port: Option<String>,
}

pub fn neighbors_text(list: &[Neighbor]) -> String {
    let mut o = String::new();
    for n in list {
        let state = match n.state() {
            NeighborState::Static => "static".to_string(),
            NeighborState::Reachable => format!("reachable {}s", n.age_s),
            NeighborState::Stale => format!("stale {}s", n.age_s),
            NeighborState::Expired => format!("expired {}s", n.age_s),
        };
        let port = n.port.as_deref().unwrap_or("?");
        let _ = writeln!(o, "{} {} {port} {state}", n.address, n.mac);
    }
    o
}

pub fn routes_text(list: &[Route]) -> String {
    let mut o = String::new();
    for r in list {
        let dev = r.port.as_deref().unwrap_or("?");
        let _ = match r.gateway {
            Some(g) => writeln!(o, "{} via {g} dev {dev}", r.destination),
            None => writeln!(o, "{} dev {dev} connected", r.destination),
        };
    }
    o
}
