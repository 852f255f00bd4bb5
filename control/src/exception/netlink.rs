//! Gives each kernel interface of the exception path what the switch has on
//! that link: the port's MAC, the interface's addresses (the kernel adds
//! their connected routes) and the static routes through that link, over
//! rtnetlink, in the network namespace sluice runs in.

use futures_util::stream::TryStreamExt;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use sluice_config::{Config, Interface};
use std::net::{IpAddr, Ipv4Addr};

/// Why a kernel interface could not be set up.
#[derive(Debug)]
pub enum NetlinkError {
    /// No netlink socket (not root, or no netlink in this namespace).
    Connect(std::io::Error),
    /// The tap DPDK created is not there under its name.
    NoLink(String),
    /// The kernel refused a request.
    Refused {
        link: String,
        what: String,
        error: rtnetlink::Error,
    },
}

impl std::fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetlinkError::Connect(e) => write!(
                f,
                "cannot open a netlink socket: {e} (sluice needs root or CAP_NET_ADMIN)"
            ),
            NetlinkError::NoLink(n) => {
                write!(f, "kernel interface {n} not found after DPDK created it")
            }
            NetlinkError::Refused { link, what, error } => {
                write!(f, "kernel interface {link}: cannot {what}: {error}")
            }
        }
    }
}

/// Configures the kernel interface of every `[[interface]]` that has one;
/// `macs[i]` is the MAC of interface i's port.
pub async fn configure(cfg: &Config, macs: &[[u8; 6]]) -> Result<(), NetlinkError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
    let task = tokio::spawn(conn);
    let mut result = Ok(());
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        let Some(name) = &itf.kernel_interface else {
            continue;
        };
        let mac = macs.get(i).copied().unwrap_or_default();
        result = link(&handle, cfg, i, itf, name, mac).await;
        if result.is_err() {
            break;
        }
    }
    task.abort();
    result
}

async fn link(
    handle: &Handle,
    cfg: &Config,
    i: usize,
    itf: &Interface,
    name: &str,
    mac: [u8; 6],
) -> Result<(), NetlinkError> {
    let refused = |what: String| {
        let link = name.to_string();
        move |error| NetlinkError::Refused { link, what, error }
    };
    let index = handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .map_err(refused("find it".into()))?
        .ok_or_else(|| NetlinkError::NoLink(name.to_string()))?
        .header
        .index;
    // IPv6 would send router solicitations and DAD out of the port; the
    // switch is IPv4 only for now.
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
    let set = |m| handle.link().set(m).execute();
    set(LinkUnspec::new_with_index(index).down().build())
        .await
        .map_err(refused("set it down".into()))?;
    set(LinkUnspec::new_with_index(index)
        .address(mac.to_vec())
        .mtu(u32::from(itf.mtu))
        .build())
    .await
    .map_err(refused("set its MAC and MTU".into()))?;
    set(LinkUnspec::new_with_index(index).up().build())
        .await
        .map_err(refused("set it up".into()))?;
    for a in &itf.addresses {
        handle
            .address()
            .add(index, a.addr, a.prefix_len)
            .replace()
            .execute()
            .await
            .map_err(refused(format!("add address {a}")))?;
    }
    for r in cfg.routes.iter().filter(|r| r.interface == i) {
        let (IpAddr::V4(dst), IpAddr::V4(gw)) = (r.destination.addr, r.gateway) else {
            continue;
        };
        if dst == Ipv4Addr::UNSPECIFIED && r.destination.len == 0 {
            // The host keeps its own default route: the exception path only
            // reaches the networks the switch is configured for.
            continue;
        }
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, r.destination.len)
            .gateway(gw)
            .output_interface(index)
            .build();
        handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(refused(format!("add route {} via {gw}", r.destination)))?;
    }
    Ok(())
}
