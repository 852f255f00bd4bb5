//! Member choice for a new session: the pure balancing algorithms.
//!
//! Nothing here reads packets, health words or counters: each function is
//! handed closures or slices that say which members are eligible and how
//! loaded they are, so the algorithms are tested exactly on their own.
//! Everything called per new session is free of allocation, locks, floating
//! point and system calls; only [`maglev::Maglev::build`] allocates, and it
//! runs when a configuration snapshot is built.
//!
//! | method | state | per new session |
//! |---|---|---|
//! | `round_robin` | a cursor per worker and server | `VirtualServer::pick_round_robin` |
//! | `weighted_round_robin` | a [`wrr::SmoothWrr`] per worker and server | [`wrr::SmoothWrr::pick`] |
//! | `least_connections` | a tie cursor per worker and server | [`least::pick_least`], weight 1 for eligible members |
//! | `weighted_least_connections` | a tie cursor per worker and server | [`least::pick_least`] with the members' weights |
//! | `source_hash` | the pool's [`maglev::Maglev`] table (shared, immutable) | [`maglev::Maglev::lookup_eligible`] of [`hash::source_key`] |
//! | `source_port_hash` | the pool's Maglev table | `lookup_eligible` of [`hash::source_port_key`] |
//! | `maglev` | the pool's Maglev table | `lookup_eligible` of [`hash::flow_key`] |
//!
//! Load for the least-connections methods is [`least::ipvs_load`] of the
//! member's active and closing sessions, summed over the workers' rows.
//!
//! The stateful methods keep their state per worker: each worker balances its
//! own share of new sessions, so the whole switch keeps the proportions
//! without any shared write. The hash methods keep no mutable state at all,
//! and the table depends only on the configuration, so every worker and every
//! Sluice node behind the same ECMP group sends a flow to the same member.

pub mod hash;
pub mod least;
pub mod maglev;
pub mod pick;
pub mod wrr;
