//! Source-IP persistence: which member a client (its address masked to the
//! virtual server's netmask) had, until `timeout` after its last session ends.
//!
//! Every session of a client is owned by one worker (ownership follows the
//! client address, see `service::client_owner`), so each worker keeps the
//! entries of its own clients in its own table: no sharing, no locks.
//!
//! The table is fixed at boot and 4-way set associative: an entry lives in
//! one set of four slots chosen by its key's hash. A new entry takes a free or
//! expired slot of its set, else evicts the entry of the set that expires
//! first (counted): memory is bounded and nothing allocates after boot.
//! Expired entries are cleared by an incremental sweep, like sessions.

use crate::fixedmap::mix64;

const WAYS: usize = 4;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// 0 = empty; else the key with its top bit set.
    key: u64,
    /// Member id (`MemberStates`), stable across reloads.
    member: u32,
    /// Clock stamp (low 32 bits of the process milliseconds) after which
    /// the entry is gone; compared with wrapping arithmetic.
    expires: u32,
}

const USED: u64 = 1 << 63;

/// The key of a client of virtual server `vs` (address already masked).
#[inline]
pub fn key(vs: u16, client: u32) -> u64 {
    (u64::from(vs) << 32) | u64::from(client)
}

#[inline]
fn expired(expires: u32, now: u32) -> bool {
    now.wrapping_sub(expires) as i32 >= 0
}

/// One worker's persistence entries.
#[derive(Debug)]
pub struct PersistTable {
    slots: Box<[Slot]>,
    sets_mask: usize,
    len: u32,
    evicted: u64,
    sweep_at: usize,
}

impl PersistTable {
    /// A table of at least `capacity` entries (0: none at all).
    pub fn with_capacity(capacity: usize) -> PersistTable {
        let sets = if capacity == 0 {
            0
        } else {
            capacity.div_ceil(WAYS).next_power_of_two()
        };
        PersistTable {
            slots: vec![Slot::default(); sets * WAYS].into_boxed_slice(),
            sets_mask: sets.saturating_sub(1),
            len: 0,
            evicted: 0,
            sweep_at: 0,
        }
    }

    /// Entries the table can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Live entries (expired ones count until the sweep or a lookup clears them).
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries pushed out by newer ones before they expired.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    #[inline]
    fn set(&mut self, key: u64) -> &mut [Slot] {
        let s = (mix64(key) as usize & self.sets_mask) * WAYS;
        &mut self.slots[s..s + WAYS]
    }

    /// The member remembered for `key`, if its entry has not expired.
    #[inline]
    pub fn get(&mut self, key: u64, now: u32) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let tagged = key | USED;
        let slot = self.set(key).iter_mut().find(|s| s.key == tagged)?;
        if expired(slot.expires, now) {
            *slot = Slot::default();
            self.len -= 1;
            return None;
        }
        Some(slot.member)
    }

    /// Remembers `member` for `key` until `expires` (a later stamp than an
    /// existing entry's only ever extends it for the same member).
    pub fn put(&mut self, key: u64, member: u32, expires: u32, now: u32) {
        if self.slots.is_empty() {
            return;
        }
        let tagged = key | USED;
        let set = self.set(key);
        let slot = if let Some(i) = set.iter().position(|s| s.key == tagged) {
            i
        } else if let Some(i) = set
            .iter()
            .position(|s| s.key == 0 || expired(s.expires, now))
        {
            let fresh = set[i].key == 0;
            set[i].key = 0;
            self.len += u32::from(fresh);
            i
        } else {
            // The entry that would expire first makes room.
            let i = (0..WAYS)
                .min_by_key(|&i| set[i].expires.wrapping_sub(now))
                .unwrap_or(0);
            self.evicted += 1;
            i
        };
        let set = self.set(key);
        set[slot] = Slot {
            key: tagged,
            member,
            expires,
        };
    }

    /// Moves the expiry of `key`'s entry to `expires` (its client's session
    /// ended: the timeout runs from now).
    pub fn touch(&mut self, key: u64, expires: u32) {
        if self.slots.is_empty() {
            return;
        }
        let tagged = key | USED;
        if let Some(s) = self.set(key).iter_mut().find(|s| s.key == tagged) {
            s.expires = expires;
        }
    }

    /// Clears expired entries among the next `budget` slots. Returns how
    /// many it cleared.
    pub fn sweep(&mut self, budget: usize, now: u32) -> u32 {
        let n = self.slots.len();
        let mut cleared = 0;
        for _ in 0..budget.min(n) {
            let s = &mut self.slots[self.sweep_at];
            if s.key != 0 && expired(s.expires, now) {
                *s = Slot::default();
                cleared += 1;
            }
            self.sweep_at = (self.sweep_at + 1) % n;
        }
        self.len -= cleared;
        cleared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry() {
        let mut t = PersistTable::with_capacity(16);
        let k = key(1, 0x0a00_0001);
        assert_eq!(t.get(k, 0), None);
        t.put(k, 2, 1000, 0);
        assert_eq!((t.get(k, 999), t.len()), (Some(2), 1));
        assert_eq!(t.get(key(2, 0x0a00_0001), 999), None, "per virtual server");
        t.touch(k, 5000);
        assert_eq!(t.get(k, 4999), Some(2));
        assert_eq!(t.get(k, 5000), None);
        assert!(t.is_empty());
        t.put(k, 1, 10, 0);
        t.put(k, 3, 20, 0);
        assert_eq!((t.get(k, 15), t.len()), (Some(3), 1), "replaced in place");
    }

    #[test]
    fn expiry_wraps_with_the_clock() {
        let mut t = PersistTable::with_capacity(4);
        let k = key(0, 7);
        let now = u32::MAX - 10;
        t.put(k, 1, now.wrapping_add(100), now);
        assert_eq!(t.get(k, now.wrapping_add(50)), Some(1));
        assert_eq!(t.get(k, now.wrapping_add(100)), None);
    }

    #[test]
    fn full_sets_evict_the_soonest_expiry_and_sweep_clears() {
        // One set of four: every key lands in it.
        let mut t = PersistTable::with_capacity(4);
        for c in 0..4u32 {
            t.put(key(0, c), c, 100 + c, 0);
        }
        assert_eq!((t.len(), t.evicted()), (4, 0));
        t.put(key(0, 9), 9, 500, 0);
        assert_eq!((t.len(), t.evicted()), (4, 1));
        assert_eq!(t.get(key(0, 0), 1), None, "soonest expiry went");
        assert_eq!(t.get(key(0, 9), 1), Some(9));
        assert_eq!(t.sweep(4, 102), 2, "entries of 101 and 102 expired");
        assert_eq!(t.len(), 2);
        t.put(key(0, 10), 10, 600, 102);
        assert_eq!((t.len(), t.evicted()), (3, 1), "a free slot, no eviction");
        let mut none = PersistTable::with_capacity(0);
        none.put(key(0, 1), 1, 10, 0);
        assert_eq!((none.get(key(0, 1), 0), none.sweep(10, 0)), (None, 0));
    }
}
