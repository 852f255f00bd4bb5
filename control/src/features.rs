//! Keys the contract defines whose behaviour this build does not have yet.
//! They parse and validate, then boot refuses them by name, file and line,
//! rather than silently ignoring what the user asked for.

use sluice_config::{CheckKind, Config, ConfigError, PoolCheck};

/// Refuses the first configured feature this build does not implement.
pub fn check_supported(cfg: &Config) -> Result<(), ConfigError> {
    let no = |key: String, what: &str| Err(cfg.error(&key, format!("not supported yet: {what}")));
    for p in &cfg.pools {
        let PoolCheck::Named(c) = p.health_check else {
            continue;
        };
        let v6 = p.members.iter().any(|m| m.address.is_ipv6());
        if v6 && cfg.health_checks[c].kind == CheckKind::Icmp {
            return no(
                format!("pool.{}.health_check", p.name),
                "icmp checks of IPv6 members (tcp, http, udp and script checks work)",
            );
        }
    }
    Ok(())
}
