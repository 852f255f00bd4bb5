//! What the workers let through to the kernel interfaces (the exception
//! path), and at what rate.
//!
//! Every frame for the kernel takes a token from a bucket of its own
//! interface and class, per worker. Budgets are per interface, so junk sent
//! to the external address cannot spend what the internal link needs; and
//! replies to the switch's own connections (health checks) have a class of
//! their own, [`KernelClass::Member`]: segments from a configured member's
//! address arriving on the port the switch reaches that member through.
//! Outside traffic cannot spend it: a flood from the outside arrives on
//! another port, and a host beside the members has another address.

use crate::stats::MAX_PORTS;

/// The kinds of frames for the kernel, each with its own budget per port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelClass {
    Arp = 0,
    Icmp = 1,
    /// TCP segments opening a connection to the switch (SYN without ACK).
    TcpSyn = 2,
    /// Other TCP.
    Tcp = 3,
    Udp = 4,
    /// Anything from a configured member, on the port towards it: replies to
    /// health checks (TCP, ICMP echo, UDP) and the member's ARP replies.
    Member = 5,
    /// Link-local multicast (224.0.0.0/24, ff02::/16) and VRRP: the
    /// protocols of the routers on the link and of the switch's peer
    /// (keepalived), kept apart so that a flood of anything else cannot
    /// starve them.
    LinkControl = 6,
    /// Session synchronisation from a configured peer (`[ha] sync_peers`,
    /// to `sync_port`): a bulk sync after a restart sends thousands of
    /// datagrams a second, which must neither starve nor be starved by
    /// the kernel's other traffic.
    Sync = 7,
    /// The routing daemon's sessions with a configured neighbour
    /// (`[announce] peers`): BGP (TCP port 179) and BFD (UDP 3784, 4784).
    /// A flood at the switch's addresses must not make its routes flap.
    Routing = 8,
}

const CLASSES: usize = 9;

/// Frames per second and burst per class, per port and worker
/// (`KernelClass` order). A thousand members checked every second need a
/// few thousand member frames a second; the other classes only serve the
/// kernel's own sockets and neighbours.
pub const KERNEL_RATE: [u32; CLASSES] = [
    2_000, 2_000, 2_000, 20_000, 5_000, 20_000, 1_000, 20_000, 10_000,
];

/// A token bucket of `rate` tokens a second, holding at most a second's
/// worth; refilled by the caller's clock.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    tokens: u32,
    rate: u32,
}

impl TokenBucket {
    /// A full bucket.
    pub const fn new(rate: u32) -> TokenBucket {
        TokenBucket { tokens: rate, rate }
    }

    /// Adds what `elapsed_ms` milliseconds earn.
    #[inline]
    pub fn refill(&mut self, elapsed_ms: u32) {
        let earned = u64::from(self.rate) * u64::from(elapsed_ms.min(1000)) / 1000;
        self.tokens = (u64::from(self.tokens) + earned).min(u64::from(self.rate)) as u32;
    }

    /// Takes a token; false when there is none.
    #[inline]
    pub fn take(&mut self) -> bool {
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// One worker's token buckets: one per port and class.
#[derive(Debug)]
pub struct KernelLimiter {
    buckets: [[TokenBucket; CLASSES]; MAX_PORTS],
}

impl Default for KernelLimiter {
    fn default() -> KernelLimiter {
        KernelLimiter {
            buckets: [KERNEL_RATE.map(TokenBucket::new); MAX_PORTS],
        }
    }
}

impl KernelLimiter {
    /// Adds the tokens `elapsed_ms` milliseconds earn.
    pub fn refill(&mut self, elapsed_ms: u32) {
        for b in self.buckets.iter_mut().flatten() {
            b.refill(elapsed_ms);
        }
    }

    /// Takes a token of `class` on `port`; false when its bucket is empty.
    #[inline]
    pub fn take(&mut self, port: u16, class: KernelClass) -> bool {
        self.buckets
            .get_mut(usize::from(port))
            .is_some_and(|b| b[class as usize].take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_classes_have_separate_budgets() {
        let mut l = KernelLimiter::default();
        let rate = KERNEL_RATE[KernelClass::Tcp as usize];
        for _ in 0..rate {
            assert!(l.take(0, KernelClass::Tcp));
        }
        assert!(!l.take(0, KernelClass::Tcp), "port 0's TCP budget spent");
        assert!(l.take(1, KernelClass::Tcp), "port 1 has its own");
        assert!(l.take(0, KernelClass::Member), "members have their own");
        assert!(!l.take(MAX_PORTS as u16, KernelClass::Tcp), "no such port");
        l.refill(1);
        assert_eq!(
            (0..100).filter(|_| l.take(0, KernelClass::Tcp)).count(),
            (rate / 1000) as usize,
            "one millisecond's worth back"
        );
    }
}
