//! `[announce]`: scale-out behind ECMP routers. Sluice keeps one host route
//! per VIP in a kernel routing table of its own while the VIP should
//! attract traffic; the node's routing daemon (BIRD, FRR), peering over a
//! kernel interface of the exception path, exports that table.

use std::net::IpAddr;

use crate::reader::{Res, Tab};
use crate::types::{Announce, Interface};
use crate::values::parse_ip;

pub(crate) const ANNOUNCE_KEYS: &[&str] = &["table", "peers"];

/// Kernel tables that are not free for a daemon: unspecified, default,
/// main, local.
const RESERVED_TABLES: &[(u32, &str)] = &[
    (0, "unspec"),
    (253, "default"),
    (254, "main"),
    (255, "local"),
];

/// Reads `[announce]` against the interfaces read before it.
pub(crate) fn announce(t: &Tab, interfaces: &[Interface]) -> Res<Announce> {
    if interfaces.iter().all(|i| i.kernel_interface.is_none()) {
        return Err(t.err_here(
            "needs a kernel interface on at least one [[interface]] (kernel = false on all of them): the routes go on it and the routing daemon peers through it",
        ));
    }
    let table = t.required("table", t.int::<u32>("table", 1, i64::from(u32::MAX))?)?;
    if let Some((_, name)) = RESERVED_TABLES.iter().find(|(n, _)| *n == table) {
        return Err(t.err(
            "table",
            format!(
                "{table} is the kernel's {name:?} table: choose a table of Sluice's own (e.g. 100)"
            ),
        ));
    }
    let mut peers: Vec<IpAddr> = Vec::new();
    for (peer, _) in t.list("peers", parse_ip)?.unwrap_or_default() {
        if interfaces
            .iter()
            .any(|i| i.addresses.iter().any(|a| a.addr == peer))
        {
            return Err(t.err("peers", format!("{peer} is this node's own address")));
        }
        if peers.contains(&peer) {
            return Err(t.err("peers", format!("{peer} is listed twice")));
        }
        peers.push(peer);
    }
    Ok(Announce { table, peers })
}
