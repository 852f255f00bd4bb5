//! The routes of `[announce]` in the kernel, over rtnetlink: host routes
//! (/32, /128) of protocol [`super::PROTOCOL`] in Sluice's table, through a
//! kernel interface of the exception path.

use super::{Wanted, PROTOCOL};
use crate::log;
use futures_util::stream::TryStreamExt;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why the routes cannot be kept.
#[derive(Debug)]
pub enum KernelError {
    /// No netlink socket (not root, or no netlink in this namespace).
    Connect(std::io::Error),
    /// Listing the routes failed.
    List(rtnetlink::Error),
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelError::Connect(e) => write!(
                f,
                "cannot open a netlink socket: {e} (sluice needs root or CAP_NET_ADMIN); VIP routes are not announced"
            ),
            KernelError::List(e) => write!(f, "cannot list the kernel's routes: {e}; VIP routes are not announced"),
        }
    }
}

/// A netlink connection and the routes this run installed.
pub struct Kernel {
    handle: Handle,
    conn: tokio::task::JoinHandle<()>,
    /// VIP → interface index of its route.
    installed: BTreeMap<IpAddr, u32>,
    /// Interface indexes by name (a tap keeps its index while sluice runs).
    links: BTreeMap<String, u32>,
    /// The last error per VIP, logged once.
    failed: BTreeMap<IpAddr, String>,
}

impl Drop for Kernel {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Kernel {
    pub fn connect() -> Result<Kernel, KernelError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(KernelError::Connect)?;
        Ok(Kernel {
            handle,
            conn: tokio::spawn(conn),
            installed: BTreeMap::new(),
            links: BTreeMap::new(),
            failed: BTreeMap::new(),
        })
    }

    /// Removes every route of Sluice's protocol from `table` (ours of this
    /// run, or left by an earlier one).
    pub async fn flush(&mut self, table: u32) -> Result<(), KernelError> {
        let mut ours = Vec::new();
        for empty in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let mut routes = self.handle.route().get(empty).execute();
            while let Some(r) = routes.try_next().await.map_err(KernelError::List)? {
                if table_of(&r) == table && r.header.protocol == RouteProtocol::from(PROTOCOL) {
                    ours.push(r);
                }
            }
        }
        for r in ours {
            let vip = destination(&r).map_or("?".to_string(), |a| a.to_string());
            if let Err(e) = self.handle.route().del(r).execute().await {
                log(format!(
                    "announce: cannot remove the route of {vip} from table {table}: {e}"
                ));
            }
        }
        self.installed.clear();
        Ok(())
    }

    /// Adds and removes routes until `table` holds exactly the announced
    /// ones of `wanted`; returns how many changed.
    pub async fn apply(&mut self, table: u32, wanted: &[Wanted]) -> Result<u64, KernelError> {
        let mut changes = 0;
        for w in wanted {
            let Some(index) = self.link(&w.link).await else {
                self.failed_once(w.vip, format!("no kernel interface {}", w.link));
                continue;
            };
            let now = self.installed.get(&w.vip).copied();
            let result = match (w.announced, now) {
                (true, Some(i)) if i == index => continue,
                (true, _) => self.add(table, w.vip, index).await,
                (false, Some(i)) => self.del(table, w.vip, i).await,
                (false, None) => continue,
            };
            match result {
                Ok(()) => {
                    changes += 1;
                    self.failed.remove(&w.vip);
                    let what = if w.announced {
                        "announced"
                    } else {
                        "withdrawn"
                    };
                    log(format!(
                        "announce: {} {what} (table {table}, dev {}): {}",
                        w.vip, w.link, w.why
                    ));
                }
                Err(e) => self.failed_once(w.vip, e.to_string()),
            }
        }
        let gone: Vec<(IpAddr, u32)> = (self.installed.iter())
            .filter(|(vip, _)| !wanted.iter().any(|w| w.vip == **vip))
            .map(|(v, i)| (*v, *i))
            .collect();
        for (vip, index) in gone {
            match self.del(table, vip, index).await {
                Ok(()) => {
                    changes += 1;
                    log(format!(
                        "announce: {vip} withdrawn (table {table}): no virtual server on it"
                    ));
                }
                Err(e) => self.failed_once(vip, e.to_string()),
            }
        }
        Ok(changes)
    }

    fn failed_once(&mut self, vip: IpAddr, e: String) {
        if self.failed.get(&vip) != Some(&e) {
            log(format!(
                "announce: cannot change the route of {vip}: {e}; retrying"
            ));
            self.failed.insert(vip, e);
        }
    }

    async fn link(&mut self, name: &str) -> Option<u32> {
        if let Some(i) = self.links.get(name) {
            return Some(*i);
        }
        let found = (self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute())
        .try_next()
        .await;
        let index = found.ok().flatten()?.header.index;
        self.links.insert(name.to_string(), index);
        Some(index)
    }

    async fn add(&mut self, table: u32, vip: IpAddr, index: u32) -> Result<(), rtnetlink::Error> {
        if let Some(old) = self.installed.get(&vip).copied() {
            // Another interface now: replace cannot change the key's oif.
            self.del(table, vip, old).await?;
        }
        self.handle
            .route()
            .add(route(table, vip, index))
            .replace()
            .execute()
            .await?;
        self.installed.insert(vip, index);
        Ok(())
    }

    async fn del(&mut self, table: u32, vip: IpAddr, index: u32) -> Result<(), rtnetlink::Error> {
        match self
            .handle
            .route()
            .del(route(table, vip, index))
            .execute()
            .await
        {
            // Already gone (removed by hand): what was wanted.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -ESRCH => {}
            other => other?,
        }
        self.installed.remove(&vip);
        Ok(())
    }
}

/// ESRCH: "no such process", the kernel's answer to deleting a missing route.
const ESRCH: i32 = 3;

/// The host route of `vip` through interface `index` in `table`.
fn route(table: u32, vip: IpAddr, index: u32) -> RouteMessage {
    match vip {
        IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(a, 32)
            .output_interface(index)
            .table_id(table)
            .protocol(RouteProtocol::from(PROTOCOL))
            .scope(RouteScope::Link)
            .build(),
        IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(a, 128)
            .output_interface(index)
            .table_id(table)
            .protocol(RouteProtocol::from(PROTOCOL))
            .build(),
    }
}

/// A route's table: the header's byte, or the attribute for tables past 255.
fn table_of(r: &RouteMessage) -> u32 {
    (r.attributes.iter())
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

fn destination(r: &RouteMessage) -> Option<IpAddr> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    })
}
