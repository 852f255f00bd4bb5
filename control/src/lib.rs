//! What the `sluice` daemon and `sluicectl` share: the control API, every
//! request and answer as a Rust type, and their renderings (text for
//! people, JSON for programs, the Prometheus exposition, the status page's
//! data).

pub mod api;
