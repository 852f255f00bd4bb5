//! The neighbour table (ARP and NDP), shared by all workers and the control
//! thread.
//!
//! Readers never wait and never write: each slot is a seqlock whose writers
//! take it with one compare-and-swap and give up (the update is simply
//! skipped) if another writer holds it. Slots are claimed once and never
//! freed, so a probe sequence stops at the first empty slot. Learning is
//! limited to hosts that talk to the switch's own addresses, which bounds
//! the number of entries to the hosts on the attached links.
//!
//! An IPv4 neighbour's key is exact (address and port in one word). An
//! IPv6 neighbour's key is a fingerprint of address and port, and its slot
//! holds the whole address, written once by the writer that claimed the
//! slot before it publishes the key; a lookup checks it.

use crate::fixedmap::mix64;
use crate::wire::Mac;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// How an entry came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Learned from ARP; refreshed when used after `STALE_MS`, unusable after `EXPIRE_MS`.
    Dynamic,
    /// From `[[neighbor]]`: never expires, never overwritten by ARP.
    Static,
}

/// A learned entry older than this is refreshed by an ARP request when used.
pub const STALE_MS: u64 = 30_000;
/// A learned entry older than this is no longer used.
pub const EXPIRE_MS: u64 = 90_000;
const MAX_PROBE: usize = 32;

const VALID: u64 = 1 << 48;
const STATIC: u64 = 1 << 49;

/// Key of a slot being claimed (its address not written yet).
const CLAIMING: u64 = 1;
/// Key bit of an IPv6 neighbour (its slot's `addr` holds the address).
const V6: u64 = 1 << 62;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    seq: AtomicU32,
    /// Process clock (64-bit milliseconds: ages never wrap).
    updated_ms: AtomicU64,
    /// 0 = empty, `CLAIMING`, else `ip | port << 32 | 1 << 63` (IPv4) or a
    /// fingerprint of address and port with `V6` and bit 63 set.
    key: AtomicU64,
    /// MAC in the low 48 bits, flags above.
    mac: AtomicU64,
    /// IPv6 address, high and low halves, and port (written before `key`).
    addr: [AtomicU64; 2],
    port: AtomicU32,
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub mac: Mac,
    pub state: State,
    pub updated_ms: u64,
}

impl Entry {
    /// Whether the entry may still be used at `now_ms`, and whether it wants refreshing.
    #[inline]
    pub fn usable(&self, now_ms: u64) -> (bool, bool) {
        match self.state {
            State::Static => (true, false),
            State::Dynamic => {
                let age = now_ms.saturating_sub(self.updated_ms);
                (age < EXPIRE_MS, age >= STALE_MS)
            }
        }
    }
}

/// Fixed-size table of IPv4 neighbours per port.
#[derive(Debug)]
pub struct NeighborTable {
    slots: Box<[Slot]>,
    mask: usize,
}

/// A neighbour's key and, for IPv6, its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    key: u64,
    addr: u128,
    port: u16,
}

#[inline]
fn key_of(ip: IpAddr, port: u16) -> Key {
    match ip {
        IpAddr::V4(ip) => Key {
            key: u64::from(u32::from(ip)) | (u64::from(port) << 32) | (1 << 63),
            addr: 0,
            port,
        },
        IpAddr::V6(ip) => {
            let addr = u128::from(ip);
            let fold = (addr >> 64) as u64 ^ mix64(addr as u64 ^ u64::from(port));
            Key {
                key: mix64(fold) | V6 | (1 << 63),
                addr,
                port,
            }
        }
    }
}

fn mac_to_u64(mac: Mac) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&mac);
    u64::from_le_bytes(b)
}

fn u64_to_mac(v: u64) -> Mac {
    let b = v.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

impl NeighborTable {
    pub fn with_capacity(capacity: usize) -> NeighborTable {
        let n = (capacity.max(16) * 2).next_power_of_two();
        NeighborTable {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
        }
    }

    fn find(&self, key: Key) -> Option<&Slot> {
        let mut i = mix64(key.key) as usize & self.mask;
        for _ in 0..MAX_PROBE {
            let slot = &self.slots[i];
            match slot.key.load(Ordering::Acquire) {
                0 => return None,
                k if k == key.key && slot.holds(key) => return Some(slot),
                _ => i = (i + 1) & self.mask,
            }
        }
        None
    }

    /// Looks up the MAC of `ip` on `port`. Never blocks.
    #[inline]
    pub fn lookup(&self, ip: impl Into<IpAddr>, port: u16) -> Option<Entry> {
        let slot = self.find(key_of(ip.into(), port))?;
        for _ in 0..4 {
            let s1 = slot.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                continue;
            }
            let mac = slot.mac.load(Ordering::Relaxed);
            let updated_ms = slot.updated_ms.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            if mac & VALID == 0 {
                return None;
            }
            let state = if mac & STATIC != 0 {
                State::Static
            } else {
                State::Dynamic
            };
            return Some(Entry {
                mac: u64_to_mac(mac),
                state,
                updated_ms,
            });
        }
        None
    }

    /// Records a learned MAC. Static entries are left alone. Returns false if
    /// the table is full or another writer held the slot (the caller may
    /// count it; the next ARP packet will try again).
    pub fn learn(&self, ip: impl Into<IpAddr>, port: u16, mac: Mac, now_ms: u64) -> bool {
        self.write(ip.into(), port, mac, now_ms, false)
    }

    /// Installs a static entry (boot time, from `[[neighbor]]`).
    pub fn set_static(&self, ip: impl Into<IpAddr>, port: u16, mac: Mac) -> bool {
        self.write(ip.into(), port, mac, 0, true)
    }

    /// Updates an entry only if it exists already (gratuitous ARP,
    /// unsolicited neighbour advertisements).
    pub fn refresh_existing(
        &self,
        ip: impl Into<IpAddr>,
        port: u16,
        mac: Mac,
        now_ms: u64,
    ) -> bool {
        let ip = ip.into();
        self.find(key_of(ip, port)).is_some() && self.learn(ip, port, mac, now_ms)
    }

    /// The slot of `key`, claimed if it has none. A slot being claimed by
    /// another writer is passed over (at worst the address gets a second
    /// slot, after the first, which lookups never reach).
    fn claim(&self, key: Key) -> Option<&Slot> {
        let mut i = mix64(key.key) as usize & self.mask;
        for _ in 0..MAX_PROBE {
            let slot = &self.slots[i];
            match slot
                .key
                .compare_exchange(0, CLAIMING, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    slot.addr[0].store((key.addr >> 64) as u64, Ordering::Relaxed);
                    slot.addr[1].store(key.addr as u64, Ordering::Relaxed);
                    slot.port.store(u32::from(key.port), Ordering::Relaxed);
                    slot.key.store(key.key, Ordering::Release);
                    return Some(slot);
                }
                Err(k) if k == key.key && slot.holds(key) => return Some(slot),
                Err(_) => i = (i + 1) & self.mask,
            }
        }
        None
    }

    fn write(&self, ip: IpAddr, port: u16, mac: Mac, now_ms: u64, is_static: bool) -> bool {
        let Some(slot) = self.claim(key_of(ip, port)) else {
            return false;
        };
        let s = slot.seq.load(Ordering::Relaxed);
        if s & 1 == 1
            || slot
                .seq
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let old = slot.mac.load(Ordering::Relaxed);
        let keep_static = old & STATIC != 0 && !is_static;
        if !keep_static {
            let flags = VALID | if is_static { STATIC } else { 0 };
            slot.mac.store(mac_to_u64(mac) | flags, Ordering::Relaxed);
            slot.updated_ms.store(now_ms, Ordering::Relaxed);
        }
        slot.seq.store(s + 2, Ordering::Release);
        !keep_static
    }

    /// All valid entries: (ip, port, entry), IPv4 first. For the control
    /// thread.
    pub fn entries(&self) -> Vec<(IpAddr, u16, Entry)> {
        let mut out = Vec::new();
        for slot in self.slots.iter() {
            let key = slot.key.load(Ordering::Acquire);
            if key == 0 || key == CLAIMING {
                continue;
            }
            let (ip, port) = match key & V6 {
                0 => {
                    let ip = IpAddr::V4(Ipv4Addr::from(key as u32));
                    (ip, ((key >> 32) & 0xffff) as u16)
                }
                _ => {
                    let ip = IpAddr::V6(Ipv6Addr::from(slot.address()));
                    (ip, slot.port.load(Ordering::Relaxed) as u16)
                }
            };
            if let Some(e) = self.lookup(ip, port) {
                out.push((ip, port, e));
            }
        }
        out.sort_by_key(|(ip, port, _)| (*port, ip.is_ipv6(), *ip));
        out.dedup_by_key(|(ip, port, _)| (*ip, *port));
        out
    }
}

impl Slot {
    /// Whether this slot (whose key matched) is `key`'s: an IPv4 key is
    /// exact, an IPv6 one is checked against the address.
    #[inline]
    fn holds(&self, key: Key) -> bool {
        key.key & V6 == 0
            || (self.address() == key.addr
                && self.port.load(Ordering::Relaxed) == u32::from(key.port))
    }

    fn address(&self) -> u128 {
        let hi = self.addr[0].load(Ordering::Relaxed);
        let lo = self.addr[1].load(Ordering::Relaxed);
        u128::from(hi) << 64 | u128::from(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M1: Mac = [2, 0, 0, 0, 0, 1];
    const M2: Mac = [2, 0, 0, 0, 0, 2];

    #[test]
    fn learn_lookup_age() {
        let t = NeighborTable::with_capacity(64);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(t.lookup(ip, 0), None);
        assert!(t.learn(ip, 0, M1, 1000));
        let e = t.lookup(ip, 0).unwrap();
        assert_eq!(e.mac, M1);
        assert_eq!(e.usable(1000 + STALE_MS - 1), (true, false));
        assert_eq!(e.usable(1000 + STALE_MS), (true, true));
        assert_eq!(e.usable(1000 + EXPIRE_MS), (false, true));
        assert_eq!(t.lookup(ip, 1), None, "per port");
        assert!(t.learn(ip, 0, M2, 2000));
        assert_eq!(t.lookup(ip, 0).unwrap().mac, M2);
    }

    #[test]
    fn static_entries_win() {
        let t = NeighborTable::with_capacity(64);
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert!(t.set_static(ip, 1, M1));
        assert!(!t.learn(ip, 1, M2, 5));
        let e = t.lookup(ip, 1).unwrap();
        assert_eq!((e.mac, e.state), (M1, State::Static));
        assert_eq!(e.usable(u64::MAX), (true, false));
        assert!(!t.refresh_existing(Ipv4Addr::new(10, 0, 0, 3), 1, M1, 0));
        assert_eq!(t.entries().len(), 1);
    }

    #[test]
    fn ipv6_neighbours_are_checked_by_their_whole_address() {
        let t = NeighborTable::with_capacity(64);
        let a: Ipv6Addr = "fd00:20::11".parse().unwrap();
        assert!(t.learn(a, 1, M1, 10));
        assert_eq!(t.lookup(a, 1).map(|e| e.mac), Some(M1));
        assert_eq!(t.lookup(a, 0), None, "per port");
        // An address made to share the first one's fingerprint (same low
        // half folded the same way) is a neighbour of its own.
        let (hi, lo) = ((u128::from(a) >> 64) as u64, u128::from(a) as u64);
        let lo2 = lo ^ 0xff;
        let hi2 = hi ^ mix64(lo ^ 1) ^ mix64(lo2 ^ 1);
        let b = Ipv6Addr::from(u128::from(hi2) << 64 | u128::from(lo2));
        assert_eq!(key_of(b.into(), 1).key, key_of(a.into(), 1).key);
        assert_eq!(t.lookup(b, 1), None);
        assert!(t.learn(b, 1, M2, 20));
        assert_eq!(t.lookup(a, 1).map(|e| e.mac), Some(M1));
        assert_eq!(t.lookup(b, 1).map(|e| e.mac), Some(M2));
        t.learn(Ipv4Addr::new(10, 0, 0, 1), 1, M1, 0);
        let listed: Vec<(IpAddr, u16)> = t.entries().iter().map(|(ip, p, _)| (*ip, *p)).collect();
        assert_eq!(
            listed,
            [
                (Ipv4Addr::new(10, 0, 0, 1).into(), 1),
                (b.into(), 1),
                (a.into(), 1)
            ],
            "sorted by port, family, address"
        );
    }

    #[test]
    fn concurrent_readers_see_whole_entries() {
        let t = std::sync::Arc::new(NeighborTable::with_capacity(64));
        let ip = Ipv4Addr::new(10, 0, 0, 9);
        t.learn(ip, 0, M1, 0);
        let r = t.clone();
        let reader = std::thread::spawn(move || {
            for _ in 0..200_000 {
                if let Some(e) = r.lookup(ip, 0) {
                    assert!(e.mac == M1 || e.mac == M2);
                }
            }
        });
        for i in 0..200_000u64 {
            t.learn(ip, 0, if i % 2 == 0 { M1 } else { M2 }, i);
        }
        reader.join().unwrap();
    }
}
