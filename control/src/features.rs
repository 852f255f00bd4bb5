//! Keys the contract defines whose behaviour this build does not have yet.
//! They parse and validate, then boot refuses them by name, file and line,
//! rather than silently ignoring what the user asked for.

use sluice_config::{Config, ConfigError, Method};
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
    for pool in &cfg.pools {
        let p = &pool.name;
        if pool.method != Method::RoundRobin {
            return no(
                format!("pool.{p}.method"),
                &format!(
                    "method \"{}\" (this build balances round_robin)",
                    pool.method.as_str()
                ),
            );
        }
        for (j, m) in pool.members.iter().enumerate() {
            let key = |k: &str| format!("pool.{p}.members[{j}].{k}");
            if m.max_connections.is_some() {
                return no(key("max_connections"), "max_connections");
            }
            if m.slow_start.is_some() {
                return no(key("slow_start"), "slow_start");
            }
        }
    }
    for (i, vs) in cfg.virtual_servers.iter().enumerate() {
        let key = |k: &str| format!("virtual_server[{i}].{k}");
        if matches!(vs.address.ip(), IpAddr::V6(_)) {
            return no(key("address"), "IPv6 virtual servers");
        }
        if vs.persistence.is_some() {
            return no(key("persistence"), "persistence");
        }
        if vs.reset_on_timeout {
            return no(key("reset_on_timeout"), "reset_on_timeout");
        }
        if !vs.allow_sources.is_empty() {
            return no(key("allow_sources"), "allow_sources");
        }
        if !vs.deny_sources.is_empty() {
            return no(key("deny_sources"), "deny_sources");
        }
    }
    Ok(())
}
