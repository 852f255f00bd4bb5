//! `virtual-servers`: each virtual server, how it forwards and balances,
//! and its members.

use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualServer {
    pub name: String,
    pub vip: IpAddr,
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub forwarding: String,
    pub method: String,
    pub pool: String,
    pub members: Vec<ServerMember>,
    pub sessions: u64,
    /// Removed by a reload; drains its sessions.
    pub removed: bool,
    /// Members a reload removed that still have sessions here.
    pub removed_members: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMember {
    pub member: String,
    pub backup: bool,
    pub weight: u32,
    pub state: String,
}

/// The `virtual-servers` listing.
pub fn text(servers: &[VirtualServer]) -> String {
    let mut o = String::new();
    for vs in servers {
        let _ = writeln!(
            o,
            "{} {} {} {} method {} sessions {}{}",
            vs.name,
            SocketAddr::new(vs.vip, vs.port),
            vs.protocol,
            vs.forwarding,
            vs.method,
            vs.sessions,
            if vs.removed { " removed, draining" } else { "" }
        );
        for m in &vs.members {
            let _ = writeln!(
                o,
                "  member {} weight {}{} {}",
                m.member,
                m.weight,
                if m.backup { " backup" } else { "" },
                m.state
            );
        }
        for m in &vs.removed_members {
            let _ = writeln!(o, "  member {m} removed, draining");
        }
    }
    o
}
