//! Source-IP persistence: which member a client (its address masked to the
//! virtual server's netmask) had, for as long as it has sessions open and
//! `timeout` after the last one ends (IPVS keeps its persistence template
//! while connections use it, the same way).
//!
//! Every session of a client is owned by one worker (ownership follows the
//! client address, see `service::client_owner`), so each worker keeps the
//! entries of its own clients in its own table: no sharing, no locks.
//!
//! An entry is written when a session is admitted ([`PersistTable::open`]),
//! not when a member is chosen, so a refused SYN leaves nothing; and it is
//! *tentative* until one of its client's sessions is confirmed (a real
//! client, see `flood`; [`PersistTable::confirm`]). A tentative entry never
//! pushes out a confirmed one, so a flood of spoofed SYNs cannot evict the
//! entries of real clients; yet the parallel connections a browser opens
//! before its first handshake completes all find the first one's member.
//!
//! The table is fixed at boot and 4-way set associative: an entry lives in
//! one set of four slots chosen by its key's hash. A new entry takes a free
//! or expired slot of its set, else evicts (counted) a tentative entry, or,
//! when it is confirmed itself, the idle confirmed entry that expires
//! first; an entry with open sessions is never evicted. Memory is bounded
//! and nothing allocates after boot. Expired entries are cleared by an
//! incremental sweep, like sessions.

use crate::fixedmap::mix64;

const WAYS: usize = 4;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// 0 = empty; else the key with its top bit set.
    key: u64,
    /// Member id (`MemberStates`), stable across reloads.
    member: u32,
    /// Clock stamp (low 32 bits of the process milliseconds) after which
    /// the entry is gone once it has no open session; compared with
    /// wrapping arithmetic.
    expires: u32,
    /// Sessions of the client open on this entry.
    sessions: u32,
    /// A session of the client was confirmed.
    confirmed: bool,
}

impl Slot {
    #[inline]
    fn gone(&self, now: u32) -> bool {
        self.key == 0 || (self.sessions == 0 && expired(self.expires, now))
    }
}

const USED: u64 = 1 << 63;

/// The key of a client of virtual server `vs`: its address, already
/// masked, folded to 64 bits ([`crate::addr::Addr::fold`]). Exact for IPv4;
/// for IPv6 two clients may share a key (and so a member), with odds of
/// one in 2^63 per pair.
#[inline]
pub fn key(vs: u16, client: u64) -> u64 {
    (client ^ (u64::from(vs) << 32)) & !USED
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

    /// The entry of `key`, if present (expired or not).
    fn find(&mut self, key: u64) -> Option<&mut Slot> {
        if self.slots.is_empty() {
            return None;
        }
        let tagged = key | USED;
        self.set(key).iter_mut().find(|s| s.key == tagged)
    }

    /// The member remembered for `key`, if its entry is alive. Reads only:
    /// a member chosen is not yet a session admitted.
    #[inline]
    pub fn get(&mut self, key: u64, now: u32) -> Option<u32> {
        let slot = self.find(key)?;
        if slot.gone(now) {
            *slot = Slot::default();
            self.len -= 1;
            return None;
        }
        Some(slot.member)
    }

    /// A session of `key`'s client was admitted on `member`: the entry
    /// (tentative if new) remembers it, with one more open session.
    pub fn open(&mut self, key: u64, member: u32, now: u32) {
        if let Some(slot) = self.find(key).filter(|s| !s.gone(now)) {
            slot.member = member;
            slot.sessions += 1;
            return;
        }
        self.insert(key, member, now, false);
    }

    /// A session of `key`'s client on `member` was confirmed: its entry is
    /// no longer tentative (and is written, confirmed, if it was lost).
    pub fn confirm(&mut self, key: u64, member: u32, now: u32) {
        match self.find(key).filter(|s| !s.gone(now)) {
            Some(slot) => slot.confirmed = true,
            None => self.insert(key, member, now, true),
        }
    }

    /// A session of `key`'s client ended: once none is left, the entry
    /// lives until `expires`.
    pub fn close(&mut self, key: u64, expires: u32) {
        if let Some(slot) = self.find(key) {
            slot.sessions = slot.sessions.saturating_sub(1);
            if slot.sessions == 0 {
                slot.expires = expires;
            }
        }
    }

    /// Writes a new entry with one open session, where its set has room
    /// for it (module docs); nothing when it has none.
    fn insert(&mut self, key: u64, member: u32, now: u32, confirmed: bool) {
        if self.slots.is_empty() {
            return;
        }
        // Which entries a new one may push out, most expendable first:
        // tentative idle, tentative with sessions, and (for a confirmed new
        // entry only) confirmed idle; never a confirmed one in use.
        let rank = |s: &Slot| match (s.confirmed, s.sessions > 0) {
            (false, false) => Some(0),
            (false, true) => Some(1),
            (true, false) if confirmed => Some(2),
            (true, _) => None,
        };
        let set = self.set(key);
        let slot = match set.iter().position(|s| s.gone(now)) {
            Some(i) => i,
            None => {
                let victim = (0..WAYS)
                    .filter_map(|i| Some((rank(&set[i])?, set[i].expires.wrapping_sub(now), i)))
                    .min();
                let Some((_, _, i)) = victim else {
                    return;
                };
                self.evicted += 1;
                i
            }
        };
        let set = self.set(key);
        let fresh = set[slot].key == 0;
        set[slot] = Slot {
            key: key | USED,
            member,
            expires: now,
            sessions: 1,
            confirmed,
        };
        self.len += u32::from(fresh);
    }

    /// Clears expired entries among the next `budget` slots. Returns how
    /// many it cleared.
    pub fn sweep(&mut self, budget: usize, now: u32) -> u32 {
        let n = self.slots.len();
        let mut cleared = 0;
        for _ in 0..budget.min(n) {
            let s = &mut self.slots[self.sweep_at];
            if s.key != 0 && s.gone(now) {
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

    /// A session opened and closed at `now`, the entry living until `until`.
    fn visit(t: &mut PersistTable, k: u64, member: u32, now: u32, until: u32) {
        t.open(k, member, now);
        t.close(k, until);
    }

    #[test]
    fn lives_while_sessions_are_open_then_until_expiry() {
        let mut t = PersistTable::with_capacity(16);
        let k = key(1, 0x0a00_0001);
        assert_eq!(t.get(k, 0), None);
        t.open(k, 2, 0);
        t.open(k, 2, 10);
        assert_eq!(
            (t.get(k, 1_000_000), t.len()),
            (Some(2), 1),
            "open: never expires"
        );
        assert_eq!(t.get(key(2, 0x0a00_0001), 5), None, "per virtual server");
        t.close(k, 5000);
        assert_eq!(t.get(k, 6000), Some(2), "one session still open");
        t.close(k, 7000);
        assert_eq!(t.get(k, 6999), Some(2));
        assert_eq!(t.get(k, 7000), None, "timeout after the last one");
        assert!(t.is_empty());
        visit(&mut t, k, 1, 0, 10);
        t.open(k, 3, 5);
        assert_eq!((t.get(k, 15), t.len()), (Some(3), 1), "replaced in place");
        t.close(k, 2);
        t.close(k, 20);
        assert_eq!(t.get(k, 19), Some(3), "a count never goes below zero");
    }

    #[test]
    fn expiry_wraps_with_the_clock() {
        let mut t = PersistTable::with_capacity(4);
        let k = key(0, 7);
        let now = u32::MAX - 10;
        visit(&mut t, k, 1, now, now.wrapping_add(100));
        assert_eq!(t.get(k, now.wrapping_add(50)), Some(1));
        assert_eq!(t.get(k, now.wrapping_add(100)), None);
    }

    #[test]
    fn tentative_entries_never_push_out_confirmed_ones() {
        // One set of four: every key lands in it.
        let mut t = PersistTable::with_capacity(4);
        for c in 0..4u32 {
            visit(&mut t, key(0, u64::from(c)), c, 0, 100 + c);
            t.confirm(key(0, u64::from(c)), c, 0);
        }
        // A flood of tentative entries finds no room.
        for c in 10..100u32 {
            t.open(key(0, u64::from(c)), c, 1);
        }
        assert_eq!((t.len(), t.evicted()), (4, 0));
        assert!((0..4).all(|c| t.get(key(0, u64::from(c)), 1) == Some(c)));
        // A confirmed one pushes out the idle confirmed entry expiring first.
        t.open(key(0, 9), 9, 1);
        t.confirm(key(0, 9), 9, 1);
        assert_eq!((t.len(), t.evicted()), (4, 1));
        assert_eq!(t.get(key(0, 0), 1), None, "soonest expiry went");
        assert_eq!(t.get(key(0, 9), 1), Some(9));
        assert_eq!(t.sweep(4, 102), 2, "entries of 101 and 102 expired");
        assert_eq!(t.len(), 2);
        t.open(key(0, 10), 10, 102);
        assert_eq!((t.len(), t.evicted()), (3, 1), "a free slot, no eviction");
        let mut none = PersistTable::with_capacity(0);
        none.open(key(0, 1), 1, 0);
        assert_eq!((none.get(key(0, 1), 0), none.sweep(10, 0)), (None, 0));
    }

    #[test]
    fn tentative_entries_push_each_other_out_and_busy_confirmed_ones_stay() {
        let mut t = PersistTable::with_capacity(4);
        for c in 0..4u32 {
            t.open(key(0, u64::from(c)), c, 0);
        }
        t.confirm(key(0, 0), 0, 0);
        // Spoofed sessions still open: the newest tentative one takes the
        // place of another tentative one, never of the confirmed one.
        for c in 10..20u32 {
            t.open(key(0, u64::from(c)), c, 1);
        }
        assert_eq!(t.get(key(0, 0), 1), Some(0));
        assert_eq!(t.get(key(0, 19), 1), Some(19));
        // Confirmed and in use everywhere: nothing is pushed out.
        let mut busy = PersistTable::with_capacity(4);
        for c in 0..4u32 {
            busy.open(key(0, u64::from(c)), c, 0);
            busy.confirm(key(0, u64::from(c)), c, 0);
        }
        busy.open(key(0, 9), 9, 1);
        busy.confirm(key(0, 9), 9, 1);
        assert_eq!((busy.get(key(0, 9), 1), busy.evicted()), (None, 0));
    }
}
