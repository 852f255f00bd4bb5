//! Longest-prefix-match routing over connected prefixes and static routes.
//! Built at boot; a handful of entries, scanned longest prefix first.

use std::net::Ipv4Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: u32,
    pub len: u8,
    /// None: directly connected, the destination itself is the next hop.
    pub gateway: Option<Ipv4Addr>,
    pub port: u16,
}

#[inline]
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl Route {
    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == self.prefix
    }
}

/// Where to send a packet: out of `port`, to the MAC of `next_hop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub port: u16,
    pub next_hop: Ipv4Addr,
}

#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Adds a route; the table stays sorted longest prefix first, connected
    /// routes before static ones of the same length.
    pub fn add(&mut self, prefix: Ipv4Addr, len: u8, gateway: Option<Ipv4Addr>, port: u16) {
        let route = Route {
            prefix: u32::from(prefix) & mask(len),
            len,
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
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let r = self.routes.iter().find(|r| r.contains(dst))?;
        Some(NextHop {
            port: r.port,
            next_hop: r.gateway.unwrap_or(dst),
        })
    }

    /// The connected route `ip` lies in, if any (on-link test).
    pub fn connected(&self, ip: Ipv4Addr) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.gateway.is_none() && r.contains(ip))
    }

    pub fn routes(&self) -> &[Route] {
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
}
