//! High availability (`[ha]`): the addresses this node owns follow its
//! kernel interfaces, where keepalived puts them (`ownership`);
//! `sluicectl ha [ready]` reports on it (`status`).

pub mod ownership;
pub mod status;

use sluice_config::{Config, ConfigError};

/// Refuses what `[ha]` asks that this build does not do yet, by key:
/// session synchronisation (`sync_peers`).
pub fn check_supported(cfg: &Config) -> Result<(), ConfigError> {
    match cfg.ha.sync {
        Some(_) => Err(cfg.error(
            "ha.sync_peers",
            "not supported yet: session synchronisation (vip_ownership = \"kernel\" works: a pair fails over, established connections do not survive it)",
        )),
        None => Ok(()),
    }
}
