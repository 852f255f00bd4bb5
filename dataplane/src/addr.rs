//! An address family as the packet path stores it: an IPv4 address as a
//! `u32`, an IPv6 address as a `u128` (big-endian octets, as `From<Ipv4Addr>`
//! and `From<Ipv6Addr>` make them). Sessions, tuples and the code that
//! handles them are generic over it; each instance compiles to code for its
//! own width, so IPv4 pays nothing for IPv6.

use crate::fixedmap::mix64;
use std::fmt::Debug;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::BitAnd;

pub trait Addr:
    Copy + Eq + Ord + Default + Debug + Hash + Send + Sync + BitAnd<Output = Self> + 'static
{
    /// The standard library's address of the family.
    type Ip: Copy + Eq + Debug + Into<IpAddr> + Into<Self>;
    /// Bits in an address (32, 128).
    const BITS: u8;
    fn ip(self) -> Self::Ip;
    /// The address if `ip` is of this family.
    fn of(ip: IpAddr) -> Option<Self>;
    /// The netmask of `len` bits.
    fn mask(len: u8) -> Self;
    /// The address with all but its first `len` bits cleared.
    #[inline(always)]
    fn masked(self, len: u8) -> Self {
        self & Self::mask(len)
    }
    /// 64 bits standing for the address in hashes: the address itself for
    /// IPv4, its halves mixed for IPv6.
    fn fold(self) -> u64;
    /// The word widened to 128 bits (an IPv4 address in the low 32: not
    /// an IPv6 address, only comparable with other widened IPv4 words).
    fn widen(self) -> u128;
    /// The inverse of `widen`.
    fn narrow(w: u128) -> Self;
    /// Whether the family is IPv4 (a constant: branches on it fold away).
    #[inline(always)]
    fn is_v4() -> bool {
        Self::BITS == 32
    }
}

impl Addr for u32 {
    type Ip = Ipv4Addr;
    const BITS: u8 = 32;

    #[inline(always)]
    fn ip(self) -> Ipv4Addr {
        Ipv4Addr::from(self)
    }

    #[inline]
    fn of(ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(ip) => Some(u32::from(ip)),
            IpAddr::V6(_) => None,
        }
    }

    #[inline(always)]
    fn mask(len: u8) -> u32 {
        crate::route::mask(len)
    }

    #[inline(always)]
    fn fold(self) -> u64 {
        u64::from(self)
    }

    #[inline(always)]
    fn widen(self) -> u128 {
        u128::from(self)
    }

    #[inline(always)]
    fn narrow(w: u128) -> u32 {
        w as u32
    }
}

impl Addr for u128 {
    type Ip = Ipv6Addr;
    const BITS: u8 = 128;

    #[inline(always)]
    fn ip(self) -> Ipv6Addr {
        Ipv6Addr::from(self)
    }

    #[inline]
    fn of(ip: IpAddr) -> Option<u128> {
        match ip {
            IpAddr::V6(ip) => Some(u128::from(ip)),
            IpAddr::V4(_) => None,
        }
    }

    #[inline(always)]
    fn mask(len: u8) -> u128 {
        crate::route::mask6(len)
    }

    #[inline(always)]
    fn fold(self) -> u64 {
        (self >> 64) as u64 ^ mix64(self as u64)
    }

    #[inline(always)]
    fn widen(self) -> u128 {
        self
    }

    #[inline(always)]
    fn narrow(w: u128) -> u128 {
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_round_trip_and_mask() {
        let v4: Ipv4Addr = "10.20.30.40".parse().unwrap();
        assert_eq!(u32::of(v4.into()).map(Addr::ip), Some(v4));
        assert_eq!(u32::of("::1".parse().unwrap()), None);
        assert_eq!(u32::from(v4).masked(16), 0x0a14_0000);
        let v6: Ipv6Addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(u128::of(v6.into()).map(Addr::ip), Some(v6));
        assert_eq!(
            u128::from(v6).masked(48).ip(),
            "2001:db8:1::".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(u128::from(v6).masked(0), 0);
        assert_eq!(u128::from(v6).masked(128), u128::from(v6));
        // Two addresses that differ only in one half fold apart.
        let other = u128::from(v6) ^ 1;
        assert_ne!(u128::from(v6).fold(), other.fold());
        assert_ne!(u128::from(v6).fold(), (u128::from(v6) ^ (1 << 64)).fold());
    }
}
