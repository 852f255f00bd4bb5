//! Weighted Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and
//! Reliable Software Network Load Balancer", NSDI 2016, section 3.4).
//!
//! A table of a prime number of slots, each naming a member. Every member
//! walks its own permutation of the slots (`offset`, `offset + skip`, ...
//! modulo the size) and the members take turns claiming the next free slot of
//! their walk until the table is full. A flow's hash picks a slot.
//!
//! **Weights** use a credit scheme (Katran's `MaglevHashV2`): in each turn
//! every member earns its weight in credit, and a member whose credit reaches
//! the largest weight spends that much to claim one slot. A member of the
//! largest weight claims a slot every turn, one of half that weight every
//! other turn, and so on, so table shares follow the weights to within a
//! few slots per member; with equal weights this is the paper's algorithm
//! exactly. Weight 0 earns nothing and gets no slot.
//!
//! **Determinism.** A member's permutation comes from its address and port
//! only (two [`mix64`] hashes with fixed seeds), and the turns go in the
//! order of (address, port), not of the member list. So the same members give
//! the same table on every worker and on every Sluice node, whatever order
//! the configuration lists them in; only the indices stored in the slots
//! follow the list.
//!
//! **Health.** The table is built from configuration and is not rebuilt when
//! a member goes down: [`Maglev::lookup_eligible`] skips past the member's
//! slots to the next eligible one, so only the flows of the member that went
//! down move, and they spread over the others roughly in proportion to
//! their shares.

use crate::addr::Addr;
use crate::fixedmap::mix64;
use sluice_config::{is_prime, next_prime};
use std::fmt;
use std::net::IpAddr;

/// The paper's table size: prime, and about 650 slots per member for 100
/// members, which keeps shares within a fraction of a percent.
pub const DEFAULT_SIZE: u32 = 65537;

/// A slot owned by no member: only in the table of a pool whose members all
/// have weight 0.
pub const NO_MEMBER: u16 = u16::MAX;

const OFFSET_SEED: u64 = 0x5851_f42d_4c95_7f2d;
const SKIP_SEED: u64 = 0x1405_7b7e_f767_814f;

/// A member as the table builder sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaglevMember {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
}

/// Why a table cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaglevError {
    /// The pool has no members.
    Empty,
    /// The table size is not a prime number.
    NotPrime(u32),
    /// The table needs more slots than there are members.
    TooSmall { size: u32, members: usize },
    /// Slots hold 16-bit member indices.
    TooMany { members: usize },
}

impl fmt::Display for MaglevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaglevError::Empty => f.write_str("a maglev pool needs at least one member"),
            MaglevError::NotPrime(n) => {
                write!(f, "maglev table size {n} is not a prime number")?;
                match next_prime(*n) {
                    Some(p) => write!(f, "; the next prime is {p}"),
                    None => write!(f, "; the default is {DEFAULT_SIZE}"),
                }
            }
            MaglevError::TooSmall { size, members } => write!(
                f,
                "maglev table size {size} must be larger than the number of members ({members}); \
                 use a prime of at least 100 slots per member for even shares \
                 ({DEFAULT_SIZE} suits up to about 650 members)"
            ),
            MaglevError::TooMany { members } => write!(
                f,
                "a maglev pool holds at most {} members, this one has {members}; split it",
                NO_MEMBER
            ),
        }
    }
}

impl std::error::Error for MaglevError {}

/// A built lookup table: slot -> member index (into the member list given to
/// [`Maglev::build`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maglev {
    table: Box<[u16]>,
}

impl Maglev {
    /// Builds the table of `size` slots for `members` (off the packet path:
    /// allocates; about `size * ln(size)` slot probes).
    ///
    /// `size` must be prime (so every skip walks the whole table) and larger
    /// than the number of members.
    pub fn build(members: &[MaglevMember], size: u32) -> Result<Maglev, MaglevError> {
        if members.is_empty() {
            return Err(MaglevError::Empty);
        }
        if members.len() > usize::from(NO_MEMBER) {
            return Err(MaglevError::TooMany {
                members: members.len(),
            });
        }
        if !is_prime(size) {
            return Err(MaglevError::NotPrime(size));
        }
        if size as usize <= members.len() {
            return Err(MaglevError::TooSmall {
                size,
                members: members.len(),
            });
        }
        Ok(Maglev {
            table: populate(members, size),
        })
    }

    /// The member of the slot `hash` falls in ([`NO_MEMBER`] only when no
    /// member has a weight).
    #[inline]
    pub fn lookup(&self, hash: u64) -> u16 {
        self.table[(hash % self.table.len() as u64) as usize]
    }

    /// The member of the slot `hash` falls in if `eligible` says it may take
    /// the flow, otherwise the first eligible member of the following slots
    /// (wrapping). `None` when no member is eligible (or none has a weight).
    ///
    /// Flows whose own member is eligible never move. Expected probes are
    /// about one over the eligible members' share of the table; when none is
    /// eligible the whole table is scanned, so a caller that knows the pool
    /// is all down should not ask.
    #[inline]
    pub fn lookup_eligible(&self, hash: u64, eligible: impl Fn(u16) -> bool) -> Option<u16> {
        let size = self.table.len();
        let mut i = (hash % size as u64) as usize;
        for _ in 0..size {
            let m = self.table[i];
            if m == NO_MEMBER {
                return None;
            }
            if eligible(m) {
                return Some(m);
            }
            i = if i + 1 == size { 0 } else { i + 1 };
        }
        None
    }

    /// The member of slot `i`.
    pub fn slot(&self, i: usize) -> u16 {
        self.table[i]
    }

    /// Number of slots (the prime size).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Never true for a built table; here for the `len` convention.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// One member's walk through its permutation of the slots.
struct Walk {
    slot: u32,
    skip: u32,
}

impl Walk {
    fn new(m: &MaglevMember, size: u32) -> Walk {
        let key = match m.addr {
            IpAddr::V4(a) => (u64::from(u32::from(a)) << 16) | u64::from(m.port),
            IpAddr::V6(a) => mix64(u128::from(a).fold() ^ u64::from(m.port)),
        };
        let offset = mix64(key ^ OFFSET_SEED) % u64::from(size);
        let skip = mix64(key ^ SKIP_SEED) % u64::from(size - 1) + 1;
        Walk {
            slot: offset as u32,
            skip: skip as u32,
        }
    }

    /// Claims the next free slot of the walk for `member`.
    fn claim(&mut self, table: &mut [u16], member: u16) {
        while table[self.slot as usize] != NO_MEMBER {
            self.advance(table.len() as u64);
        }
        table[self.slot as usize] = member;
        self.advance(table.len() as u64);
    }

    fn advance(&mut self, size: u64) {
        let next = u64::from(self.slot) + u64::from(self.skip);
        self.slot = if next >= size { next - size } else { next } as u32;
    }
}

/// Fills the table by turns, weights spent as credit (see the module docs).
fn populate(members: &[MaglevMember], size: u32) -> Box<[u16]> {
    let mut table = vec![NO_MEMBER; size as usize].into_boxed_slice();
    // Members with a weight, in (address, port) order: the turn order must
    // not depend on how the configuration lists them.
    let mut order: Vec<usize> = (0..members.len())
        .filter(|&i| members[i].weight > 0)
        .collect();
    order.sort_by_key(|&i| {
        let m = &members[i];
        (m.addr, m.port, m.weight, i)
    });
    let Some(max) = order.iter().map(|&i| u64::from(members[i].weight)).max() else {
        return table;
    };
    let mut walks: Vec<Walk> = order
        .iter()
        .map(|&i| Walk::new(&members[i], size))
        .collect();
    let mut credit = vec![0u64; order.len()];
    let mut filled = 0u32;
    loop {
        for (k, &i) in order.iter().enumerate() {
            // Credit stays below `max` between turns, so one claim at most.
            credit[k] += u64::from(members[i].weight);
            if credit[k] < max {
                continue;
            }
            credit[k] -= max;
            walks[k].claim(&mut table, i as u16);
            filled += 1;
            if filled == size {
                return table;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u32, weight: u32) -> MaglevMember {
        MaglevMember {
            addr: std::net::Ipv4Addr::from(0x0a00_0000 + i).into(),
            port: 8080,
            weight,
        }
    }

    fn equal(n: u32) -> Vec<MaglevMember> {
        (1..=n).map(|i| member(i, 1)).collect()
    }

    fn shares(t: &Maglev, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        (0..t.len()).for_each(|s| c[usize::from(t.slot(s))] += 1);
        c
    }

    /// The table as (address, port) per slot: what a flow actually reaches.
    fn owners(t: &Maglev, members: &[MaglevMember]) -> Vec<(IpAddr, u16)> {
        (0..t.len())
            .map(|s| {
                let m = &members[usize::from(t.slot(s))];
                (m.addr, m.port)
            })
            .collect()
    }

    /// Largest |share - weight share| / weight share.
    fn worst_deviation(members: &[MaglevMember], size: u32) -> f64 {
        let t = Maglev::build(members, size).unwrap();
        let total: u32 = members.iter().map(|m| m.weight).sum();
        let c = shares(&t, members.len());
        members
            .iter()
            .zip(&c)
            .map(|(m, &got)| {
                let want = f64::from(size) * f64::from(m.weight) / f64::from(total);
                (got as f64 - want).abs() / want
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn shares_follow_weights() {
        let weighted: Vec<_> = (1..=4).map(|w| member(w, w)).collect();
        let d = worst_deviation(&weighted, DEFAULT_SIZE);
        assert!(d < 0.01, "weights 1..4: {d}");
        let d = worst_deviation(&equal(10), DEFAULT_SIZE);
        assert!(d < 0.01, "10 equal: {d}");
        let d = worst_deviation(&equal(100), DEFAULT_SIZE);
        assert!(d < 0.01, "100 equal: {d}");
        let skewed: Vec<_> = (0..20)
            .map(|i| member(i, if i == 0 { 1000 } else { 1 }))
            .collect();
        let d = worst_deviation(&skewed, DEFAULT_SIZE);
        assert!(d < 0.01, "1000 and 19 x 1: {d}");
    }

    #[test]
    fn weight_zero_gets_no_slot() {
        let members = [member(1, 2), member(2, 0), member(3, 1)];
        let t = Maglev::build(&members, 1009).unwrap();
        let c = shares(&t, 3);
        assert_eq!(c[1], 0);
        assert_eq!(c[0] + c[2], 1009);
        assert!(c[0].abs_diff(2 * c[2]) <= 3, "{c:?}");
    }

    #[test]
    fn all_weights_zero_table_has_no_member() {
        let t = Maglev::build(&[member(1, 0), member(2, 0)], 7).unwrap();
        assert!((0..7).all(|s| t.slot(s) == NO_MEMBER));
        assert_eq!(t.lookup(12345), NO_MEMBER);
        assert_eq!(t.lookup_eligible(12345, |_| true), None);
    }

    /// Slots that change owner when member `gone` of `all` is removed:
    /// (those that were not `gone`'s, all of them).
    fn disruption(all: &[MaglevMember], gone: usize, size: u32) -> (usize, usize) {
        let mut rest = all.to_vec();
        let removed = rest.remove(gone);
        let before = owners(&Maglev::build(all, size).unwrap(), all);
        let after = owners(&Maglev::build(&rest, size).unwrap(), &rest);
        let changed = before.iter().zip(&after).filter(|(b, a)| b != a);
        let others = changed
            .clone()
            .filter(|(b, _)| **b != (removed.addr, removed.port))
            .count();
        (others, changed.count())
    }

    /// Removing one of 100 equal members moves its own slots and, as the
    /// paper's population does, a few more: about 0.57/N of the table more
    /// at 65537 slots, shrinking as the table grows (0.14/N at 655373).
    #[test]
    fn removal_disrupts_little() {
        let all = equal(100);
        let per_member = |size: u32| f64::from(size) / 100.0;
        for gone in [0, 42, 99] {
            let (others, total) = disruption(&all, gone, DEFAULT_SIZE);
            let n = per_member(DEFAULT_SIZE);
            assert!(others as f64 <= 0.7 * n, "others moved: {others}");
            assert!(total as f64 <= 1.7 * n, "total moved: {total}");
        }
        let (others, total) = disruption(&all, 42, 655_373);
        let n = per_member(655_373);
        assert!(others as f64 <= 0.2 * n, "others moved: {others}");
        assert!(total as f64 <= 1.2 * n, "total moved: {total}");
    }

    #[test]
    fn deterministic() {
        let members: Vec<_> = (1..=7).map(|i| member(i * 3, i)).collect();
        let a = Maglev::build(&members, 1021).unwrap();
        let b = Maglev::build(&members, 1021).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn member_order_only_renumbers() {
        let members: Vec<_> = (1..=50).map(|i| member(i * 7, 1 + i % 3)).collect();
        let mut shuffled = members.clone();
        shuffled.reverse();
        shuffled.swap(3, 17);
        let a = Maglev::build(&members, DEFAULT_SIZE).unwrap();
        let b = Maglev::build(&shuffled, DEFAULT_SIZE).unwrap();
        assert_ne!(a, b, "indices follow the list");
        assert_eq!(owners(&a, &members), owners(&b, &shuffled));
    }

    #[test]
    fn port_distinguishes_members() {
        let a = MaglevMember {
            port: 80,
            ..member(1, 1)
        };
        let b = MaglevMember { port: 81, ..a };
        let t = Maglev::build(&[a, b], 101).unwrap();
        let c = shares(&t, 2);
        assert!(c[0].abs_diff(c[1]) <= 1, "{c:?}");
    }

    /// One member ineligible: exactly its flows move, over all the others.
    #[test]
    fn lookup_eligible_moves_only_the_ineligible_members_flows() {
        let t = Maglev::build(&equal(10), DEFAULT_SIZE).unwrap();
        let down = 3u16;
        let mut moved_to = [0u32; 10];
        for k in 0..100_000u64 {
            let h = mix64(k);
            let own = t.lookup(h);
            let got = t.lookup_eligible(h, |m| m != down).unwrap();
            if own == down {
                assert_ne!(got, down);
                moved_to[usize::from(got)] += 1;
            } else {
                assert_eq!(got, own, "hash {h:#x} moved");
            }
        }
        let moved: u32 = moved_to.iter().sum();
        assert!((9_000..11_000).contains(&moved), "{moved}");
        for (m, &n) in moved_to.iter().enumerate() {
            if m != usize::from(down) {
                assert!(n > moved / 9 / 3, "member {m} took {n} of {moved}");
            }
        }
        assert_eq!(t.lookup_eligible(7, |_| false), None);
    }

    #[test]
    fn lookup_wraps_at_the_end() {
        let t = Maglev::build(&equal(2), 5).unwrap();
        let last = t.slot(4);
        let first_other = (0..5).map(|s| t.slot(s)).find(|&m| m != last).unwrap();
        assert_eq!(t.lookup(4), last);
        assert_eq!(t.lookup(9), last, "hash modulo size");
        assert_eq!(t.lookup_eligible(4, |m| m != last), Some(first_other));
    }

    #[test]
    fn errors() {
        use MaglevError::*;
        assert_eq!(Maglev::build(&[], DEFAULT_SIZE), Err(Empty));
        assert_eq!(Maglev::build(&equal(3), 65536), Err(NotPrime(65536)));
        assert_eq!(Maglev::build(&equal(3), 1), Err(NotPrime(1)));
        assert_eq!(Maglev::build(&equal(3), 0), Err(NotPrime(0)));
        assert_eq!(
            Maglev::build(&equal(5), 5),
            Err(TooSmall {
                size: 5,
                members: 5
            })
        );
        assert!(Maglev::build(&equal(4), 5).is_ok());
        let many = vec![member(1, 1); 65536];
        assert_eq!(
            Maglev::build(&many, DEFAULT_SIZE),
            Err(TooMany { members: 65536 })
        );
        assert_eq!(
            NotPrime(65536).to_string(),
            "maglev table size 65536 is not a prime number; the next prime is 65537"
        );
        assert!(TooSmall {
            size: 5,
            members: 5
        }
        .to_string()
        .contains("larger than the number of members (5)"));
    }

    #[test]
    fn primes() {
        let small: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65537) && is_prime(655_373) && !is_prime(65535));
        assert!(is_prime(4_294_967_291), "largest 32-bit prime");
        assert!(!is_prime(u32::MAX));
        assert!(!is_prime(65_521 * 65_519), "product of two large primes");
        assert_eq!(next_prime(65536), Some(65537));
        assert_eq!(next_prime(4_294_967_291), None);
    }
}
