//! High availability (`[ha]`): the addresses this node owns follow its
//! kernel interfaces, where keepalived puts them (`ownership`); sessions
//! are synchronised with the peers (`sync`); `sluicectl ha [ready]`
//! reports on both (`status`).

pub mod ownership;
pub mod status;
pub mod sync;
