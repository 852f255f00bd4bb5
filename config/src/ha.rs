//! `[ha]`: who owns the floating addresses (the configuration, or the kernel
//! interfaces where keepalived puts them), and the session synchronisation
//! between the nodes of a pair.

use std::net::IpAddr;

use crate::reader::{Res, Tab};
use crate::types::{Ha, Interface, SessionSync, VipOwnership};
use crate::values::parse_ip;

pub(crate) const HA_KEYS: &[&str] = &[
    "vip_ownership",
    "node_id",
    "sync_interface",
    "sync_peers",
    "sync_port",
    "sync_key",
];

/// The default UDP port of session synchronisation.
pub const DEFAULT_SYNC_PORT: u16 = 8848;
/// The shortest `sync_key` accepted: a shorter shared secret is guessable.
const MIN_KEY_LEN: usize = 16;

/// Reads `[ha]` against the interfaces read before it.
pub(crate) fn ha(t: &Tab, interfaces: &[Interface]) -> Res<Ha> {
    let ownership = t
        .choice(
            "vip_ownership",
            &[
                ("config", VipOwnership::Config),
                ("kernel", VipOwnership::Kernel),
            ],
        )?
        .unwrap_or(VipOwnership::Config);
    if ownership == VipOwnership::Kernel && interfaces.iter().all(|i| i.kernel_interface.is_none())
    {
        return Err(t.err(
            "vip_ownership",
            "\"kernel\" needs a kernel interface on at least one [[interface]] (kernel = false on all of them)",
        ));
    }
    let node_id = t.int::<u8>("node_id", 1, 255)?;
    let sync = session_sync(t, interfaces)?;
    if sync.is_some() && node_id.is_none() {
        return Err(t.err_here(
            "missing required key \"node_id\" (1..255, unique in the cluster): sync_peers is set",
        ));
    }
    Ok(Ha {
        vip_ownership: ownership,
        node_id,
        sync,
    })
}

fn session_sync(t: &Tab, interfaces: &[Interface]) -> Res<Option<SessionSync>> {
    let Some(peers) = t.list("sync_peers", parse_ip)? else {
        for k in ["sync_interface", "sync_port", "sync_key"] {
            t.refuse(k, "needs sync_peers (the other nodes' addresses)")?;
        }
        return Ok(None);
    };
    let name = t.required("sync_interface", t.string("sync_interface")?)?;
    let Some(interface) = interfaces.iter().position(|i| i.name == name) else {
        let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        return Err(t.err(
            "sync_interface",
            format!(
                "no [[interface]] named {name:?} (defined: {})",
                names.join(", ")
            ),
        ));
    };
    let itf = &interfaces[interface];
    if itf.kernel_interface.is_none() {
        return Err(t.err(
            "sync_interface",
            format!("interface {name:?} has no kernel interface (kernel = false): the sync traffic goes through it"),
        ));
    }
    if peers.is_empty() {
        return Err(t.err("sync_peers", "must name at least one peer"));
    }
    let mut seen: Vec<IpAddr> = Vec::new();
    for (peer, _) in &peers {
        let reach = itf.addresses.iter().find(|a| a.prefix().contains(*peer));
        match reach {
            None => {
                return Err(t.err(
                    "sync_peers",
                    format!(
                    "{peer} is not on a prefix of interface {name:?}: peers are on the sync link"
                ),
                ))
            }
            Some(a) if a.addr == *peer => {
                return Err(t.err(
                    "sync_peers",
                    format!("{peer} is this node's own address on {name:?}"),
                ))
            }
            Some(_) if seen.contains(peer) => {
                return Err(t.err("sync_peers", format!("{peer} is listed twice")))
            }
            Some(_) => seen.push(*peer),
        }
    }
    let key = t.string("sync_key")?;
    if key.as_ref().is_some_and(|k| k.len() < MIN_KEY_LEN) {
        return Err(t.err(
            "sync_key",
            format!("must be at least {MIN_KEY_LEN} characters (a shared secret, the same on every node)"),
        ));
    }
    Ok(Some(SessionSync {
        interface,
        peers: seen,
        port: t.int("sync_port", 1, 65535)?.unwrap_or(DEFAULT_SYNC_PORT),
        key,
    }))
}
