//! Longest-prefix-match routing over connected prefixes and static routes,
//! one table per address family. Built at boot; a handful of entries,
//! scanned longest prefix first.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An address a route table holds: IPv4 or IPv6.
pub trait RouteAddr: Copy + Eq + std::fmt::Debug + std::fmt::Display {
    /// The address with all but its first `len` bits cleared.
    fn masked(self, len: u8) -> Self;
    /// The address ANDed with netmask `mask` (bit for bit).
    fn and(self, mask: Self) -> Self;
    /// The address with every bit set (masked: a netmask).
    const ONES: Self;
}

impl RouteAddr for Ipv4Addr {
    #[inline]
    fn masked(self, len: u8) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self) & mask(len))
    }
    #[inline]
    fn and(self, mask: Ipv4Addr) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self) & u32::from(mask))
    }
    const ONES: Ipv4Addr = Ipv4Addr::BROADCAST;
}

impl RouteAddr for Ipv6Addr {
    #[inline]
    fn masked(self, len: u8) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self) & mask6(len))
    }
    #[inline]
    fn and(self, mask: Ipv6Addr) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self) & u128::from(mask))
    }
    const ONES: Ipv6Addr = Ipv6Addr::new(
        0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<A = Ipv4Addr> {
    /// The destination prefix, masked to `len`.
    pub prefix: A,
    pub len: u8,
    /// The netmask of `len` bits, kept so a lookup does not rebuild it.
    pub mask: A,
    /// None: directly connected, the destination itself is the next hop.
    pub gateway: Option<A>,
    pub port: u16,
}

/// An IPv4 netmask of `len` bits (0..=32).
#[inline]
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

/// An IPv6 netmask of `len` bits (0..=128).
#[inline]
pub fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

impl<A: RouteAddr> Route<A> {
    #[inline]
    pub fn contains(&self, ip: A) -> bool {
        ip.and(self.mask) == self.prefix
    }
}

/// Where to send a packet: out of `port`, to the MAC of `next_hop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop<A = Ipv4Addr> {
    pub port: u16,
    pub next_hop: A,
}

#[derive(Clone, Debug)]
pub struct RouteTable<A = Ipv4Addr> {
    routes: Vec<Route<A>>,
}

impl<A> Default for RouteTable<A> {
    fn default() -> Self {
        RouteTable { routes: Vec::new() }
    }
}

impl<A: RouteAddr> RouteTable<A> {
    /// Adds a route; the table stays sorted longest prefix first, connected
    /// routes before static ones of the same length.
    pub fn add(&mut self, prefix: A, len: u8, gateway: Option<A>, port: u16) {
        let route = Route {
            prefix: prefix.masked(len),
            len,
            mask: A::ONES.masked(len),
            gateway,
            port,
        };
        if self.routes.contains(&route) {
            return;
        }
        self.routes.push(route);
        self.routes
            .sort_by_key(|r| (std::cmp::Reverse(r.len), r.gateway.is_some()));
    }

    #[inline]
    pub fn lookup(&self, dst: A) -> Option<NextHop<A>> {
        let r = self.routes.iter().find(|r| r.contains(dst))?;
        Some(NextHop {
            port: r.port,
            next_hop: r.gateway.unwrap_or(dst),
        })
    }

    /// The connected route `ip` lies in, if any (on-link test).
    pub fn connected(&self, ip: A) -> Option<&Route<A>> {
        self.routes
            .iter()
            .find(|r| r.gateway.is_none() && r.contains(ip))
    }

    pub fn routes(&self) -> &[Route<A>] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = RouteTable::default();
        t.add(
            Ipv4Addr::new(0, 0, 0, 0),
            0,
            Some(Ipv4Addr::new(198, 51, 100, 254)),
            0,
        );
        t.add(Ipv4Addr::new(198, 51, 100, 1), 24, None, 0);
        t.add(Ipv4Addr::new(10, 20, 0, 1), 24, None, 1);
        t.add(
            Ipv4Addr::new(10, 30, 0, 0),
            16,
            Some(Ipv4Addr::new(10, 20, 0, 254)),
            1,
        );
        let hop = |ip: [u8; 4]| t.lookup(Ipv4Addr::from(ip)).unwrap();
        assert_eq!(
            hop([10, 20, 0, 5]),
            NextHop {
                port: 1,
                next_hop: Ipv4Addr::new(10, 20, 0, 5)
            }
        );
        assert_eq!(hop([10, 30, 9, 9]).next_hop, Ipv4Addr::new(10, 20, 0, 254));
        assert_eq!(
            hop([8, 8, 8, 8]),
            NextHop {
                port: 0,
                next_hop: Ipv4Addr::new(198, 51, 100, 254)
            }
        );
        assert!(t.connected(Ipv4Addr::new(10, 30, 0, 1)).is_none());
        assert_eq!(t.connected(Ipv4Addr::new(10, 20, 0, 9)).unwrap().port, 1);
        let mut empty = RouteTable::default();
        assert_eq!(empty.lookup(Ipv4Addr::new(1, 1, 1, 1)), None);
        empty.add(Ipv4Addr::new(1, 1, 1, 0), 32, None, 3);
        assert_eq!(empty.lookup(Ipv4Addr::new(1, 1, 1, 0)).unwrap().port, 3);
    }

    #[test]
    fn ipv6_longest_prefix_wins() {
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let mut t = RouteTable::default();
        t.add(ip("::"), 0, Some(ip("2001:db8:1::fe")), 0);
        t.add(ip("2001:db8:1::1"), 64, None, 0);
        t.add(ip("fd00:20::1"), 64, None, 1);
        t.add(ip("fd00:30::"), 48, Some(ip("fd00:20::fe")), 1);
        let hop = |s: &str| t.lookup(ip(s)).unwrap();
        assert_eq!(
            hop("fd00:20::11"),
            NextHop {
                port: 1,
                next_hop: ip("fd00:20::11")
            }
        );
        assert_eq!(hop("fd00:30:0:7::9").next_hop, ip("fd00:20::fe"));
        assert_eq!(hop("fd00:31::1").next_hop, ip("2001:db8:1::fe"));
        assert_eq!(
            t.connected(ip("fd00:20::5")).map(|r| r.prefix),
            Some(ip("fd00:20::"))
        );
        assert!(t.connected(ip("fd00:30::1")).is_none());
        assert_eq!((mask6(0), mask6(128), mask6(1)), (0, u128::MAX, 1 << 127));
    }
}
