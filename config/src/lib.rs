//! Sluice configuration: schema, parsing and validation of the boot config
//! file. Everything is checked before the dataplane touches a port, and every
//! error names the file, line and key so operators can fix it directly.

mod announce;
mod error;
mod ha;
mod live;
mod net;
mod parse;
mod reader;
mod types;
mod values;
mod vs;

use std::path::Path;

pub use error::ConfigError;
pub use ha::DEFAULT_SYNC_PORT;
pub use live::restart_keys;
pub use net::MAX_INTERFACES;
pub use types::*;
pub use values::{is_prime, next_prime, parse_duration};

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        key: String::new(),
        message: format!("cannot read config file: {e}"),
    })?;
    parse(&text, &file)
}

/// Parses and validates config text; `file` is only used in error messages.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    parse::parse(text, file)
}
