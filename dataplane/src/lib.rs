//! dataplane

pub mod session;
