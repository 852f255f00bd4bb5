//! Gives each kernel interface of the exception path what the switch has on
//! that link: the port's MAC, the interface's addresses (the kernel adds
//! their connected routes) and the static routes through that link, over
//! rtnetlink, in the network namespace sluice runs in.

use futures_util::stream::TryStreamExt;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use sluice_config::{Config, Interface};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

impl std::error::Error for NetlinkError {}

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
    ipv6_settings(name, itf);
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
        if r.destination.len == 0 {
            // The host keeps its own default route: the exception path only
            // reaches the networks the switch is configured for.
            continue;
        }
        let (dst, len, gw) = (r.destination.addr, r.destination.len, r.gateway);
        let route = match (dst, gw) {
            (IpAddr::V4(dst), IpAddr::V4(gw)) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(dst, len)
                .gateway(gw)
                .output_interface(index)
                .build(),
            (IpAddr::V6(dst), IpAddr::V6(gw)) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(dst, len)
                .gateway(gw)
                .output_interface(index)
                .build(),
            _ => continue,
        };
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

/// IPv6 on a kernel interface: off when its link has no IPv6 address (no
/// router solicitations or listener reports out of the port). Otherwise on,
/// with the addresses the configuration gives and nothing else: no
/// autoconfiguration from router advertisements, no duplicate address
/// detection (the dataplane answers for the address on the wire, so the
/// kernel would only delay its health checks), and the link-local address
/// made from the MAC (EUI-64) as the dataplane makes it.
fn ipv6_settings(name: &str, itf: &Interface) {
    let set = |key: &str, value: &str| {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/{key}"), value);
    };
    if !itf.addresses.iter().any(|a| a.addr.is_ipv6()) {
        set("disable_ipv6", "1");
        return;
    }
    for (key, value) in [
        ("accept_ra", "0"),
        ("autoconf", "0"),
        ("accept_dad", "0"),
        ("addr_gen_mode", "0"),
        ("disable_ipv6", "0"),
    ] {
        set(key, value);
    }
}
