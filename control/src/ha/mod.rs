//! High availability (`[ha]`): the addresses this node owns follow its
//! kernel interfaces, where keepalived puts them (`ownership`).

pub mod ownership;
