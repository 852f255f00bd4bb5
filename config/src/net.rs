//! Interfaces, static routes and neighbours: the switch's own L3 view.

use std::net::IpAddr;

use crate::parse::defined;
use crate::reader::{Res, Tab};
use crate::types::{IfAddr, Interface, Neighbor, Prefix, Route};

/// Most interfaces a switch drives (its per-port counters are fixed arrays;
/// the dataplane's `stats::MAX_PORTS` is kept equal to it).
pub const MAX_INTERFACES: usize = 16;

const IFACE_KEYS: &[&str] = &[
    "name",
    "device",
    "addresses",
    "mtu",
    "kernel",
    "kernel_interface",
];
const ROUTE_KEYS: &[&str] = &["destination", "gateway", "interface"];
const NEIGHBOR_KEYS: &[&str] = &["address", "mac", "interface"];

pub(crate) fn interfaces(root: &Tab) -> Res<Vec<Interface>> {
    let tabs = root.tables("interface", IFACE_KEYS)?;
    if tabs.is_empty() {
        let line = root.cx.line_of("interface");
        return Err(root
            .cx
            .err_at(line, "interface", "at least one [[interface]] is required"));
    }
    if tabs.len() > MAX_INTERFACES {
        let key = format!("interface[{MAX_INTERFACES}]");
        let line = root.cx.line_of(&key);
        return Err(root.cx.err_at(
            line,
            &key,
            format!("at most {MAX_INTERFACES} interfaces (the switch's per-port counters hold that many)"),
        ));
    }
    let mut out: Vec<Interface> = Vec::with_capacity(tabs.len());
    for t in &tabs {
        let iface = interface(t, &out)?;
        out.push(iface);
    }
    Ok(out)
}

fn valid_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn interface(t: &Tab, earlier: &[Interface]) -> Res<Interface> {
    let name = t.required("name", t.string("name")?)?;
    if !valid_name(&name) {
        return Err(t.err("name", format!("invalid interface name {name:?}: use 1 to 32 characters from A-Z, a-z, 0-9, '_' and '-'")));
    }
    if earlier.iter().any(|i| i.name == name) {
        return Err(t.err("name", format!("duplicate interface name {name:?}")));
    }
    let device = t.required("device", t.string("device")?)?;
    if device.trim().is_empty() {
        return Err(t.err("device", "must not be empty"));
    }
    if let Some(other) = earlier.iter().find(|i| i.device == device) {
        let msg = format!(
            "device {device:?} is already used by interface {:?}",
            other.name
        );
        return Err(t.err("device", msg));
    }
    let addrs = t.required("addresses", t.ifaddrs("addresses")?)?;
    if addrs.is_empty() {
        return Err(t.err("addresses", "an interface needs at least one address"));
    }
    let mut addresses: Vec<IfAddr> = Vec::with_capacity(addrs.len());
    for (a, line) in addrs {
        let err = |m: String| t.cx.err_at(line, &t.key_path("addresses"), m);
        if addresses.iter().any(|x| x.addr == a.addr) {
            return Err(err(format!("{} is listed twice", a.addr)));
        }
        for other in earlier {
            if other.addresses.iter().any(|x| x.addr == a.addr) {
                return Err(err(format!(
                    "{} is already an address of interface {:?}",
                    a.addr, other.name
                )));
            }
            if let Some(x) = other
                .addresses
                .iter()
                .find(|x| x.prefix().overlaps(&a.prefix()))
            {
                return Err(err(format!(
                    "connected prefix {} (from {a}) overlaps {} of interface {:?}; each link needs its own subnet",
                    a.prefix(),
                    x.prefix(),
                    other.name
                )));
            }
        }
        addresses.push(a);
    }
    let ipv6_only = addresses.iter().all(|a| a.addr.is_ipv6());
    let min_mtu = if ipv6_only { 1280 } else { 576 };
    let mtu: u16 = t.int("mtu", 576, 9216)?.unwrap_or(1500);
    if mtu < min_mtu {
        return Err(t.err(
            "mtu",
            format!("IPv6 needs an MTU of at least 1280, found {mtu}"),
        ));
    }
    let kernel_interface = kernel_interface(t, &name, earlier)?;
    Ok(Interface {
        name,
        device,
        addresses,
        mtu,
        kernel_interface,
    })
}

/// Longest Linux network interface name (IFNAMSIZ - 1).
const KERNEL_NAME_MAX: usize = 15;

/// The exception path's kernel interface: `kernel_interface`, else
/// `sluice-<name>`; none with `kernel = false`.
fn kernel_interface(t: &Tab, name: &str, earlier: &[Interface]) -> Res<Option<String>> {
    let explicit = t.string("kernel_interface")?;
    if !t.bool("kernel")?.unwrap_or(true) {
        if explicit.is_some() {
            return Err(t.err("kernel_interface", "is set but kernel = false"));
        }
        return Ok(None);
    }
    let key = if explicit.is_some() {
        "kernel_interface"
    } else {
        "name"
    };
    let k = explicit.unwrap_or_else(|| format!("sluice-{name}"));
    let valid = (1..=KERNEL_NAME_MAX).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if !valid {
        return Err(t.err(
            key,
            format!("kernel interface name {k:?} is not a valid Linux interface name (1 to {KERNEL_NAME_MAX} characters from A-Z, a-z, 0-9, '_', '-', '.'); set kernel_interface"),
        ));
    }
    if earlier
        .iter()
        .any(|i| i.kernel_interface.as_deref() == Some(&k))
    {
        return Err(t.err(key, format!("kernel interface {k:?} is already used")));
    }
    Ok(Some(k))
}

/// The interface whose connected prefixes contain `ip`.
pub(crate) fn connected(ifaces: &[Interface], ip: IpAddr) -> Option<usize> {
    ifaces
        .iter()
        .position(|i| i.addresses.iter().any(|a| a.prefix().contains(ip)))
}

/// "ext: 198.51.100.0/24; int: 10.20.0.0/24", to show what is reachable.
pub(crate) fn describe_connected(ifaces: &[Interface]) -> String {
    let each = ifaces.iter().map(|i| {
        let p: Vec<String> = i.addresses.iter().map(|a| a.prefix().to_string()).collect();
        format!("{}: {}", i.name, p.join(", "))
    });
    each.collect::<Vec<_>>().join("; ")
}

/// The interface owning `ip` as one of its own addresses.
pub(crate) fn owner(ifaces: &[Interface], ip: IpAddr) -> Option<&Interface> {
    ifaces
        .iter()
        .find(|i| i.addresses.iter().any(|a| a.addr == ip))
}

/// Resolves the optional `interface` key of a route or neighbour and checks
/// that `ip` (at key `ip_key`) is directly reachable through it.
fn attach(t: &Tab, ifaces: &[Interface], ip_key: &str, ip: IpAddr, what: &str) -> Res<usize> {
    if let Some(i) = owner(ifaces, ip) {
        return Err(t.err(
            ip_key,
            format!(
                "{what} {ip} is this switch's own address on interface {:?}",
                i.name
            ),
        ));
    }
    let Some(name) = t.str("interface")? else {
        return connected(ifaces, ip).ok_or_else(|| {
            let msg = format!(
                "{what} {ip} is not inside any connected prefix ({}); it must be directly reachable",
                describe_connected(ifaces)
            );
            t.err(ip_key, msg)
        });
    };
    let Some(idx) = ifaces.iter().position(|i| i.name == name) else {
        let names: Vec<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
        return Err(t.err(
            "interface",
            format!("no interface named {name:?} ({})", defined(&names)),
        ));
    };
    if connected(ifaces, ip) != Some(idx) {
        let msg = format!(
            "{what} {ip} is not inside a connected prefix of interface {name:?} ({})",
            describe_connected(&ifaces[idx..=idx])
        );
        return Err(t.err(ip_key, msg));
    }
    Ok(idx)
}

pub(crate) fn routes(root: &Tab, ifaces: &[Interface]) -> Res<Vec<Route>> {
    let mut out: Vec<Route> = Vec::new();
    for t in root.tables("route", ROUTE_KEYS)? {
        let destination: Prefix =
            t.required("destination", t.parsed("destination", str::parse)?)?;
        let gateway = t.required("gateway", t.ip("gateway")?)?;
        if gateway.is_ipv4() != destination.addr.is_ipv4() {
            return Err(t.err(
                "gateway",
                format!("gateway {gateway} and destination {destination} are of different address families"),
            ));
        }
        if let Some(n) = out.iter().position(|r| r.destination == destination) {
            let first = root.cx.line_of(&format!("route[{n}]"));
            let msg = format!("duplicate route to {destination} (first defined at line {first})");
            return Err(t.err("destination", msg));
        }
        let interface = attach(&t, ifaces, "gateway", gateway, "gateway")?;
        out.push(Route {
            destination,
            gateway,
            interface,
        });
    }
    Ok(out)
}

pub(crate) fn neighbors(root: &Tab, ifaces: &[Interface]) -> Res<Vec<Neighbor>> {
    let mut out: Vec<Neighbor> = Vec::new();
    for t in root.tables("neighbor", NEIGHBOR_KEYS)? {
        let address = t.required("address", t.ip("address")?)?;
        let mac = t.required("mac", t.mac("mac")?)?;
        if out.iter().any(|n| n.address == address) {
            return Err(t.err("address", format!("duplicate neighbor entry for {address}")));
        }
        let interface = attach(&t, ifaces, "address", address, "neighbor")?;
        out.push(Neighbor {
            address,
            mac,
            interface,
        });
    }
    Ok(out)
}
