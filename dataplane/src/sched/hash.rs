//! The keys the hash methods look up in their pool's [`Maglev`] table.
//!
//! `source_hash` and `source_port_hash` are not separate tables: they look up
//! the pool's Maglev table with these keys, so they share its consistency (a
//! member going down moves only its own clients; the same configuration maps
//! a client to the same member on every worker and every node).
//!
//! [`Maglev`]: super::maglev::Maglev

use crate::addr::Addr;
use crate::fixedmap::mix64;
use crate::session::Tuple;

// Seeded so these keys are independent of `service::client_owner`, which
// hashes the same client address and port to choose the owning worker.
const SOURCE_SEED: u64 = 0x6a09_e667_f3bc_c908;
const SOURCE_PORT_SEED: u64 = 0xbb67_ae85_84ca_a73b;

/// `source_hash`: every session of a client address goes to one member.
#[inline]
pub fn source_key<A: Addr>(client: A) -> u64 {
    mix64(client.fold() ^ SOURCE_SEED)
}

/// `source_port_hash`: the client address and source port choose the member.
#[inline]
pub fn source_port_key<A: Addr>(client: A, port: u16) -> u64 {
    mix64(((client.fold() << 16) | u64::from(port)) ^ SOURCE_PORT_SEED)
}

/// `maglev`: the flow's 5-tuple as the client sent it (the session table's
/// hash, so a new session hashes its tuple once).
#[inline]
pub fn flow_key<A: Addr>(t: &Tuple<A>) -> u64 {
    t.hash()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::maglev::{Maglev, MaglevMember, DEFAULT_SIZE};
    use std::net::Ipv4Addr;

    #[test]
    fn keys_are_fixed_functions() {
        assert_eq!(source_key(0x0a00_0001u32), source_key(0x0a00_0001u32));
        assert_ne!(source_key(0x0a00_0001u32), source_key(0x0a00_0002u32));
        assert_ne!(
            source_port_key(0x0a00_0001u32, 1000),
            source_port_key(0x0a00_0001u32, 1001)
        );
        assert_ne!(
            source_port_key(0x0a00_0001u32, 0),
            source_key(0x0a00_0001u32)
        );
        let t = crate::session::Tuple4 {
            src: 0x0a00_0001,
            dst: 0xc0a8_0001,
            sport: 40000,
            dport: 443,
            proto: 6,
        };
        assert_eq!(flow_key(&t), t.hash());
    }

    /// Sequential clients (one /16) spread evenly over 10 equal members.
    #[test]
    fn sequential_clients_spread() {
        let members: Vec<_> = (1..=10u32)
            .map(|i| MaglevMember {
                addr: Ipv4Addr::from(0xc0a8_0000 + i).into(),
                port: 80,
                weight: 1,
            })
            .collect();
        let t = Maglev::build(&members, DEFAULT_SIZE).unwrap();
        let mut by_source = [0u32; 10];
        let mut by_port = [0u32; 10];
        for i in 0..65536u32 {
            by_source[usize::from(t.lookup(source_key(0x0a01_0000 + i)))] += 1;
            let port = 1024 + (i % 1000) as u16;
            by_port[usize::from(t.lookup(source_port_key(0x0a01_0000 + i / 1000, port)))] += 1;
        }
        for c in by_source.iter().chain(&by_port) {
            assert!((6_000..7_100).contains(c), "{by_source:?} {by_port:?}");
        }
    }
}
