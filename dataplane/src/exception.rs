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
}

const CLASSES: usize = 6;

/// Frames per second and burst per class, per port and worker
/// (`KernelClass` order). A thousand members checked every second need a
/// few thousand member frames a second; the other classes only serve the
/// kernel's own sockets and neighbours.
pub const KERNEL_RATE: [u32; CLASSES] = [2_000, 2_000, 2_000, 20_000, 5_000, 20_000];

/// One worker's token buckets: one per port and class.
#[derive(Debug)]
pub struct KernelLimiter {
    tokens: [[u32; CLASSES]; MAX_PORTS],
    refilled_ms: u64,
}

impl Default for KernelLimiter {
    fn default() -> KernelLimiter {
        KernelLimiter {
            tokens: [KERNEL_RATE; MAX_PORTS],
            refilled_ms: 0,
        }
    }
}

impl KernelLimiter {
    /// Adds the tokens earned since the last refill (called once per
    /// millisecond at most, from `maintain`).
    pub fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.refilled_ms).min(1000) as u32;
        if elapsed == 0 {
            return;
        }
        self.refilled_ms = now_ms;
        for port in self.tokens.iter_mut() {
            for (t, rate) in port.iter_mut().zip(KERNEL_RATE) {
                *t = (*t + rate * elapsed / 1000).min(rate);
            }
        }
    }

    /// Takes a token of `class` on `port`; false when its bucket is empty.
    #[inline]
    pub fn take(&mut self, port: u16, class: KernelClass) -> bool {
        let Some(bucket) = self.tokens.get_mut(usize::from(port)) else {
            return false;
        };
        let t = &mut bucket[class as usize];
        if *t == 0 {
            return false;
        }
        *t -= 1;
        true
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
