//! Keys the contract defines whose behaviour this build does not have yet.
//! They parse and validate, then boot refuses them by name, file and line,
//! rather than silently ignoring what the user asked for.

use sluice_config::{Config, ConfigError};
use std::net::IpAddr;

/// Refuses the first configured feature this build does not implement.
pub fn check_supported(cfg: &Config) -> Result<(), ConfigError> {
    let no = |key: String, what: &str| Err(cfg.error(&key, format!("not supported yet: {what}")));
    for (i, vs) in cfg.virtual_servers.iter().enumerate() {
        if matches!(vs.address.ip(), IpAddr::V6(_)) {
            return no(
                format!("virtual_server[{i}].address"),
                "IPv6 virtual servers (the switch answers neighbour discovery and echo on its IPv6 addresses, and routes for them)",
            );
        }
    }
    Ok(())
}
