//! Keys the contract defines whose behaviour this build does not have yet.
//! They parse and validate, then boot refuses them by name, file and line,
//! rather than silently ignoring what the user asked for.

use sluice_config::{Config, ConfigError};
use std::net::IpAddr;

/// Refuses the first configured feature this build does not implement.
pub fn check_supported(cfg: &Config) -> Result<(), ConfigError> {
    let no = |key: String, what: &str| Err(cfg.error(&key, format!("not supported yet: {what}")));
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        for a in &itf.addresses {
            if a.addr.is_ipv6() {
                return no(
                    format!("interface[{i}].addresses"),
                    "IPv6 interface addresses",
                );
            }
        }
    }
    for (i, r) in cfg.routes.iter().enumerate() {
        if r.destination.addr.is_ipv6() {
            return no(format!("route[{i}].destination"), "IPv6 routes");
        }
    }
    for (i, n) in cfg.neighbors.iter().enumerate() {
        if n.address.is_ipv6() {
            return no(format!("neighbor[{i}].address"), "IPv6 neighbors");
        }
    }
    for (i, vs) in cfg.virtual_servers.iter().enumerate() {
        if matches!(vs.address.ip(), IpAddr::V6(_)) {
            return no(
                format!("virtual_server[{i}].address"),
                "IPv6 virtual servers",
            );
        }
    }
    Ok(())
}
