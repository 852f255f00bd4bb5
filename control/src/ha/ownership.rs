//! `vip_ownership = "kernel"`: the floating addresses (VIPs, SNAT
//! addresses, a members' gateway) are this node's while its kernel
//! interfaces hold them, as VRRP (keepalived) decides.
//!
//! The control thread listens to the kernel's address events (rtnetlink
//! multicast, as `ip monitor address`), reads the addresses of every kernel
//! interface again after each burst of events (and every second, in case
//! one was missed), and when the set of floating addresses changed,
//! publishes a snapshot owning exactly those (`Shared::reown`) the way a
//! reload does: built here, handed to every worker between two bursts.
//! Worker 0 announces the addresses gained (gratuitous ARP, unsolicited
//! neighbour advertisement).

use crate::live::{Live, Running};
use crate::reload::{self, Reloader};
use futures_util::stream::{StreamExt, TryStreamExt};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::{Handle, MulticastGroup};
use sluice_config::Config;
use sluice_dataplane::shared::Owned;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long events are gathered before the addresses are read again: a
/// VRRP transition adds or removes several addresses at once.
const SETTLE: Duration = Duration::from_millis(20);
/// Addresses are read again at least this often.
const RESCAN: Duration = Duration::from_secs(1);

/// Why ownership cannot be followed.
#[derive(Debug)]
pub enum OwnershipError {
    /// No netlink socket for the address events.
    Connect(std::io::Error),
    /// A kernel interface is gone or its addresses cannot be read.
    Read { interface: String, error: String },
}

impl std::fmt::Display for OwnershipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnershipError::Connect(e) => write!(
                f,
                "cannot listen to the kernel's address events: {e} (sluice needs root or CAP_NET_ADMIN)"
            ),
            OwnershipError::Read { interface, error } => {
                write!(f, "cannot read the addresses of kernel interface {interface}: {error}")
            }
        }
    }
}

/// Follows the kernel interfaces' addresses until the runtime stops.
/// Returns only on an error (logged by the caller; the node then keeps the
/// addresses it owned).
pub async fn follow(view: Arc<Running>, reloader: Arc<Reloader>) -> OwnershipError {
    let groups = [MulticastGroup::Ipv4Ifaddr, MulticastGroup::Ipv6Ifaddr];
    let (conn, handle, mut events) = match rtnetlink::new_multicast_connection(&groups) {
        Ok(c) => c,
        Err(e) => return OwnershipError::Connect(e),
    };
    let conn = tokio::spawn(conn);
    let error = loop {
        let config = view.live().config.clone();
        match held(&handle, &config).await {
            Ok(owned) => publish_if_changed(&view, &reloader, owned).await,
            Err(e) => break e,
        }
        // The next event (and those right behind it), or the rescan.
        if tokio::time::timeout(RESCAN, events.next()).await.is_ok() {
            tokio::time::sleep(SETTLE).await;
            while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, events.next()).await {}
        }
    };
    conn.abort();
    error
}

/// The floating addresses the kernel interfaces hold now, by port: every
/// address but the interface's configured ones and link-local ones.
async fn held(handle: &Handle, cfg: &Config) -> Result<Owned, OwnershipError> {
    let mut owned = BTreeSet::new();
    for (port, itf) in cfg.interfaces.iter().enumerate() {
        let Some(name) = &itf.kernel_interface else {
            continue;
        };
        let failed = |error: String| OwnershipError::Read {
            interface: name.clone(),
            error,
        };
        let link = handle
            .link()
            .get()
            .match_name(name.clone())
            .execute()
            .try_next()
            .await
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| failed("no such interface".into()))?;
        let mut addresses = handle
            .address()
            .get()
            .set_link_index_filter(link.header.index)
            .execute();
        while let Some(msg) = addresses
            .try_next()
            .await
            .map_err(|e| failed(e.to_string()))?
        {
            for attr in msg.attributes {
                let AddressAttribute::Address(ip) = attr else {
                    continue;
                };
                let configured = itf.addresses.iter().any(|a| a.addr == ip);
                if !configured && !link_local(ip) {
                    owned.insert((port as u16, ip));
                }
            }
        }
    }
    Ok(owned)
}

fn link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_link_local(),
        IpAddr::V6(ip) => ip.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Publishes a snapshot owning `owned` if the running one owns something
/// else, logging what was gained and lost.
async fn publish_if_changed(view: &Running, reloader: &Reloader, owned: Owned) {
    let _one = reloader.gate.lock().await;
    let running = view.live();
    let before = running.shared.owned.as_deref().cloned().unwrap_or_default();
    if before == owned {
        return;
    }
    let next = running
        .shared
        .reown(&running.config, owned.clone(), &|slot| {
            view.vs_sessions(slot)
        });
    let next = match next {
        Ok(n) => Arc::new(n),
        Err(e) => return crate::log(format!("ha: cannot follow the kernel's addresses: {e}")),
    };
    let published = reload::publish(reloader, &running.shared, &next).await;
    view.replace_live(Live {
        config: running.config.clone(),
        shared: next.clone(),
        plan: running.plan.clone(),
        health: running.health.clone(),
    });
    let names = |port: u16| interface_name(&running.config, port);
    for (port, ip) in owned.difference(&before) {
        crate::log(format!("ha: owns {ip} on {}", names(*port)));
    }
    for (port, ip) in before.difference(&owned) {
        crate::log(format!("ha: no longer owns {ip} on {}", names(*port)));
    }
    if let Err(e) = published {
        crate::log(format!("ha: {e}"));
    }
}

fn interface_name(cfg: &Config, port: u16) -> &str {
    cfg.interfaces
        .get(usize::from(port))
        .map_or("?", |i| i.name.as_str())
}
