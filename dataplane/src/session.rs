//! Per-worker session table.
//!
//! Each worker owns one [`SessionTable`]; nothing is shared, so there are no
//! atomics and no locks. Everything is allocated by
//! [`SessionTable::with_capacity`]; lookup, insert, remove and sweep never
//! allocate.
//!
//! # Layout
//!
//! * `entries`: one [`Entry`] per session (32 bytes, half a cache line, for
//!   [`Session4`]; 96 for [`Session6`], whose four addresses take 64). An
//!   entry is free when [`Entry::is_free`] says so.
//! * `index`: a bucketized cuckoo hash table. A bucket is one 64-byte cache
//!   line of 8 slots; a slot is `tag:32 | dir:1 | entry_index:31`, 0 meaning
//!   empty (tags are never 0). Every live session has TWO keys in the index,
//!   its forward tuple (client -> VIP, as received) and its reverse tuple
//!   (member -> client-side address, as the member sends it), so a packet of
//!   either direction finds its session with one hash lookup. The number of
//!   buckets is `ceil(2 * capacity / (8 * 0.90))`, so the index is at most 90%
//!   full when the table is. Hashes map to buckets with fastrange, so the
//!   bucket count need not be a power of two.
//! * `free`: a stack of free entry indices.
//!
//! A key has two candidate buckets, from the low and high 32 bits of its
//! 64-bit hash. Insert places a key in the less loaded candidate; if both are
//! full it searches (breadth first, bounded) for a cuckoo path to a bucket
//! with an empty slot, and only then moves keys along it, so a failed insert
//! has nothing to undo. A displaced key's other bucket is found by reading
//! its entry and rehashing its tuple for that direction.
//!
//! Memory per session is 32 (entry) + 64 * 2 / 7.2 ≈ 17.8 (index) + 4 (free
//! list) ≈ 53.8 bytes for IPv4, and 96 + 17.8 + 4 ≈ 117.8 bytes for IPv6.
//!
//! When the table is full, insert fails; existing sessions are never evicted.

use crate::addr::Addr;
use sluice_hint::prefetch;

// ---------------------------------------------------------------------------
// Tuple and session, of either family
// ---------------------------------------------------------------------------

/// A 5-tuple as seen on the wire, addresses as words from big-endian bytes
/// (`u32::from(Ipv4Addr)`, `u128::from(Ipv6Addr)`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct Tuple<A> {
    pub src: A,
    pub dst: A,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

pub type Tuple4 = Tuple<u32>;
pub type Tuple6 = Tuple<u128>;

/// Murmur3's 64-bit finalizer: a bijection with full avalanche.
#[inline(always)]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

impl<A: Addr> Tuple<A> {
    /// Fast multiply-xorshift hash of the tuple (not SipHash: the table is
    /// per worker and not exposed to an attacker choosing keys against a
    /// known seed any more than any unseeded hash is).
    ///
    /// For IPv4 and a fixed port/protocol part the hash is a bijection of
    /// the address part and vice versa, so no subset of tuples degenerates
    /// to one value; IPv6 addresses are folded to 64 bits first.
    #[inline]
    pub fn hash(&self) -> u64 {
        let addrs = self.src.fold().rotate_left(32) ^ self.dst.fold();
        let rest =
            (u64::from(self.sport) << 24) | (u64::from(self.dport) << 8) | u64::from(self.proto);
        let x = (addrs ^ 0x243f_6a88_85a3_08d3).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ rest;
        fmix64(x)
    }

    /// The same flow seen from the other end: addresses and ports swapped.
    #[inline]
    pub fn reversed(&self) -> Tuple<A> {
        Tuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }
}

/// One session: half a cache line for IPv4. The forward direction is
/// client -> VIP (as received); the reverse direction is member ->
/// client-side address (as the member sends it). `snat`/`sport` equal
/// `client`/`cport` when there is no source NAT.
#[repr(C, align(32))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Session<A> {
    pub client: A,
    pub vip: A,
    pub member: A,
    pub snat: A,
    pub cport: u16,
    pub vport: u16,
    pub mport: u16,
    pub sport: u16,
    /// Milliseconds, wrapping (compare with `wrapping_sub`).
    pub last_seen: u32,
    /// Virtual-server index; `u16::MAX` marks a free entry.
    pub vs: u16,
    pub proto: u8,
    /// Opaque to the table (the pipeline encodes TCP state and flags).
    pub state: u8,
}

pub type Session4 = Session<u32>;
pub type Session6 = Session<u128>;

const _: () = assert!(core::mem::size_of::<Session4>() == 32);
const _: () = assert!(core::mem::align_of::<Session4>() == 32);
const _: () = assert!(core::mem::size_of::<Session6>() == 96);

impl<A: Addr> Session<A> {
    /// `vs` value of a free entry.
    pub const FREE_VS: u16 = u16::MAX;

    /// The tuple of a client packet: client:cport -> vip:vport.
    #[inline]
    pub fn forward(&self) -> Tuple<A> {
        Tuple {
            src: self.client,
            dst: self.vip,
            sport: self.cport,
            dport: self.vport,
            proto: self.proto,
        }
    }

    /// The tuple of a member packet: member:mport -> snat:sport.
    #[inline]
    pub fn reverse(&self) -> Tuple<A> {
        Tuple {
            src: self.member,
            dst: self.snat,
            sport: self.mport,
            dport: self.sport,
            proto: self.proto,
        }
    }

    #[inline]
    pub fn is_free(&self) -> bool {
        self.vs == Self::FREE_VS
    }
}

// ---------------------------------------------------------------------------
// Generic entry
// ---------------------------------------------------------------------------

/// What the table stores: an entry reachable by two tuples.
pub trait Entry: Copy + Default {
    type Tuple: Copy + Eq;
    /// The tuple of packets from the client side.
    fn forward(&self) -> Self::Tuple;
    /// The tuple of packets from the member side.
    fn reverse(&self) -> Self::Tuple;
    fn hash(t: &Self::Tuple) -> u64;
    fn is_free(&self) -> bool;
    /// A free entry (`free().is_free()` must hold).
    fn free() -> Self;
}

impl<A: Addr> Entry for Session<A> {
    type Tuple = Tuple<A>;

    #[inline]
    fn forward(&self) -> Tuple<A> {
        Session::forward(self)
    }

    #[inline]
    fn reverse(&self) -> Tuple<A> {
        Session::reverse(self)
    }

    #[inline]
    fn hash(t: &Tuple<A>) -> u64 {
        t.hash()
    }

    #[inline]
    fn is_free(&self) -> bool {
        Session::is_free(self)
    }

    #[inline]
    fn free() -> Self {
        Session {
            vs: Self::FREE_VS,
            ..Session::default()
        }
    }
}

/// Which tuple of the session a packet matched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dir {
    /// Client -> VIP.
    Forward,
    /// Member -> client-side address.
    Reverse,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InsertError {
    /// No free entry, or the index could not place a key.
    Full,
    /// The forward or reverse tuple is already in the table (or the two
    /// tuples of the new entry are equal).
    Exists,
}

impl core::fmt::Display for InsertError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            InsertError::Full => "session table full",
            InsertError::Exists => "session already exists",
        })
    }
}

impl std::error::Error for InsertError {}

// ---------------------------------------------------------------------------
// Index
// ---------------------------------------------------------------------------

const SLOTS: usize = 8;
const EMPTY: u64 = 0;
const IDX_MASK: u64 = 0x7fff_ffff;
const DIR_BIT: u64 = 1 << 31;
/// Largest capacity: entry indices must fit 31 bits.
pub const MAX_CAPACITY: u32 = 1 << 31;

/// Buckets per key at full table: the index is at most 90% loaded.
/// `buckets = ceil(2 * capacity * 10 / (8 * 9))`.
fn bucket_count(capacity: u32) -> u32 {
    let n = (u64::from(capacity) * 20).div_ceil(72);
    u32::try_from(n.max(2)).expect("bucket count fits u32")
}

/// One cache line of 8 slots.
#[repr(C, align(64))]
#[derive(Clone, Copy, Default)]
struct Bucket {
    slots: [u64; SLOTS],
}

const _: () = assert!(core::mem::size_of::<Bucket>() == 64);

impl Bucket {
    #[inline]
    fn empty_count(&self) -> usize {
        self.slots.iter().filter(|&&s| s == EMPTY).count()
    }

    #[inline]
    fn first_empty(&self) -> Option<usize> {
        self.slots.iter().position(|&s| s == EMPTY)
    }
}

/// Nonzero tag from a hash, from all of its bits (the bucket choice uses the
/// high bits of each half).
#[inline(always)]
fn tag_of(hash: u64) -> u32 {
    let t = (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32;
    t.max(1)
}

#[inline(always)]
fn make_slot(tag: u32, dir: Dir, idx: u32) -> u64 {
    let d = match dir {
        Dir::Forward => 0,
        Dir::Reverse => DIR_BIT,
    };
    (u64::from(tag) << 32) | d | u64::from(idx)
}

#[inline(always)]
fn slot_tag(slot: u64) -> u32 {
    (slot >> 32) as u32
}

#[inline(always)]
fn slot_idx(slot: u64) -> u32 {
    (slot & IDX_MASK) as u32
}

#[inline(always)]
fn slot_dir(slot: u64) -> Dir {
    if slot & DIR_BIT == 0 {
        Dir::Forward
    } else {
        Dir::Reverse
    }
}

/// Buckets examined by one cuckoo path search (at most 8 entry reads each).
const MAX_BFS: usize = 512;
/// Longest cuckoo path considered (BFS with 8-way fan-out never gets near).
const MAX_PATH: usize = 8;
const NO_PARENT: u32 = u32::MAX;

/// A bucket reached by the cuckoo path search: the key in slot `slot` of the
/// parent node's bucket can move to `bucket`.
#[derive(Clone, Copy, Default)]
struct BfsNode {
    bucket: u32,
    parent: u32,
    slot: u8,
}

// ---------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------

/// A fixed-capacity session table, see the module documentation.
pub struct SessionTable<E: Entry = Session4> {
    entries: Vec<E>,
    index: Vec<Bucket>,
    free: Vec<u32>,
    len: u32,
    sweep_cursor: u32,
    /// Full passes the sweep has made.
    sweep_passes: u64,
    /// `index.len()`, as u64 for fastrange.
    nbuckets: u64,
    /// Scratch queue for the cuckoo path search, allocated once.
    bfs: Vec<BfsNode>,
}

impl<E: Entry> core::fmt::Debug for SessionTable<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionTable")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .field("buckets", &self.nbuckets)
            .field("sweep_cursor", &self.sweep_cursor)
            .finish()
    }
}

impl<E: Entry> SessionTable<E> {
    /// Allocates a table for `capacity` sessions (at most [`MAX_CAPACITY`]).
    pub fn with_capacity(capacity: u32) -> Self {
        Self::with_capacity_advised(capacity, &|_, _| {})
    }

    /// Like [`with_capacity`](Self::with_capacity), calling `advise(address,
    /// bytes)` for the entries and the index between their allocation and
    /// their first touch (the daemon asks for transparent huge pages there).
    pub fn with_capacity_advised(capacity: u32, advise: &dyn Fn(usize, usize)) -> Self {
        assert!(
            capacity <= MAX_CAPACITY,
            "session table capacity {capacity} > {MAX_CAPACITY}"
        );
        let nb = bucket_count(capacity);
        let mut entries: Vec<E> = Vec::with_capacity(capacity as usize);
        advise(
            entries.as_ptr() as usize,
            entries.capacity() * std::mem::size_of::<E>(),
        );
        entries.resize(capacity as usize, E::free());
        let mut index: Vec<Bucket> = Vec::with_capacity(nb as usize);
        advise(
            index.as_ptr() as usize,
            index.capacity() * std::mem::size_of::<Bucket>(),
        );
        index.resize(nb as usize, Bucket::default());
        // Pop order 0, 1, 2, ...: a young table uses the start of `entries`.
        let mut free = Vec::with_capacity(capacity as usize);
        free.extend((0..capacity).rev());
        SessionTable {
            entries,
            index,
            free,
            len: 0,
            sweep_cursor: 0,
            sweep_passes: 0,
            nbuckets: u64::from(nb),
            bfs: Vec::with_capacity(MAX_BFS),
        }
    }

    #[inline]
    pub fn capacity(&self) -> u32 {
        self.entries.len() as u32
    }

    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes allocated by the table: entries + index + free list (+ the small
    /// fixed cuckoo search queue).
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<E>()
            + self.index.capacity() * core::mem::size_of::<Bucket>()
            + self.free.capacity() * core::mem::size_of::<u32>()
            + self.bfs.capacity() * core::mem::size_of::<BfsNode>()
    }

    /// The two candidate buckets of a hash: fastrange of the low and of the
    /// high 32 bits; if equal, the second is the next bucket.
    #[inline(always)]
    fn buckets_of(&self, hash: u64) -> (usize, usize) {
        let n = self.nbuckets;
        let b1 = ((hash & 0xffff_ffff) * n) >> 32;
        let mut b2 = ((hash >> 32) * n) >> 32;
        if b2 == b1 {
            b2 += 1;
            if b2 == n {
                b2 = 0;
            }
        }
        (b1 as usize, b2 as usize)
    }

    /// Prefetches the two candidate buckets of `hash`.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        let (b1, b2) = self.buckets_of(hash);
        if let Some(b) = self.index.get(b1) {
            prefetch(b);
        }
        if let Some(b) = self.index.get(b2) {
            prefetch(b);
        }
    }

    /// Prefetches entry `idx` (e.g. after `lookup`, before `get`).
    #[inline]
    pub fn prefetch_entry(&self, idx: u32) {
        if let Some(e) = self.entries.get(idx as usize) {
            prefetch(e);
        }
    }

    #[inline(always)]
    fn tuple_of(e: &E, dir: Dir) -> E::Tuple {
        match dir {
            Dir::Forward => e.forward(),
            Dir::Reverse => e.reverse(),
        }
    }

    #[inline(always)]
    fn find_in(&self, b: usize, t: &E::Tuple, tag: u32) -> Option<(u32, Dir)> {
        for &slot in &self.index[b].slots {
            if slot_tag(slot) == tag {
                let idx = slot_idx(slot);
                let dir = slot_dir(slot);
                if Self::tuple_of(&self.entries[idx as usize], dir) == *t {
                    return Some((idx, dir));
                }
            }
        }
        None
    }

    /// Finds the session of a packet of either direction. `hash` must be
    /// `E::hash(t)` (computed once by the caller, typically over a burst,
    /// with [`prefetch`](Self::prefetch) in between). Returns the entry index
    /// and which tuple matched. Never allocates.
    #[inline(always)]
    pub fn lookup(&self, t: &E::Tuple, hash: u64) -> Option<(u32, Dir)> {
        let (b1, b2) = self.buckets_of(hash);
        let tag = tag_of(hash);
        match self.find_in(b1, t, tag) {
            Some(r) => Some(r),
            None => self.find_in(b2, t, tag),
        }
    }

    /// The entry at `idx` (free or live). Panics if `idx >= capacity`.
    #[inline]
    pub fn get(&self, idx: u32) -> &E {
        &self.entries[idx as usize]
    }

    /// The entry at `idx`, to update its mutable state (timestamps, state).
    /// The fields that make up its forward and reverse tuples must NOT be
    /// changed, nor the entry be made free: use [`remove`](Self::remove) and
    /// [`insert`](Self::insert) for that. Panics if `idx >= capacity`.
    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> &mut E {
        &mut self.entries[idx as usize]
    }

    /// Inserts a session, indexing both `e.forward()` and `e.reverse()`.
    ///
    /// * `Err(Exists)` if either tuple is already present (or both tuples are
    ///   equal); nothing changes.
    /// * `Err(Full)` if no entry is free or the index cannot place a key;
    ///   nothing changes (a key placed before the failure is removed again;
    ///   other keys may have moved between their two buckets, which is
    ///   harmless).
    ///
    /// Panics if `e.is_free()`.
    pub fn insert(&mut self, e: E) -> Result<u32, InsertError> {
        assert!(!e.is_free(), "inserting a free entry");
        let f = e.forward();
        let r = e.reverse();
        let hf = E::hash(&f);
        let hr = E::hash(&r);
        if f == r || self.lookup(&f, hf).is_some() || self.lookup(&r, hr).is_some() {
            return Err(InsertError::Exists);
        }
        let Some(idx) = self.free.pop() else {
            return Err(InsertError::Full);
        };
        // The entry must be in place before its keys are: a later cuckoo move
        // rehashes the tuples of the keys it displaces.
        self.entries[idx as usize] = e;
        let sf = make_slot(tag_of(hf), Dir::Forward, idx);
        if !self.place(hf, sf) {
            self.entries[idx as usize] = E::free();
            self.free.push(idx);
            return Err(InsertError::Full);
        }
        let sr = make_slot(tag_of(hr), Dir::Reverse, idx);
        if !self.place(hr, sr) {
            self.unlink(hf, sf);
            self.entries[idx as usize] = E::free();
            self.free.push(idx);
            return Err(InsertError::Full);
        }
        self.len += 1;
        Ok(idx)
    }

    /// Removes the session at `idx`: both index keys, and frees the entry.
    /// Does nothing if the entry is already free. Panics if
    /// `idx >= capacity`.
    pub fn remove(&mut self, idx: u32) {
        let e = self.entries[idx as usize];
        if e.is_free() {
            return;
        }
        let f = e.forward();
        let r = e.reverse();
        let hf = E::hash(&f);
        let hr = E::hash(&r);
        let found_f = self.unlink(hf, make_slot(tag_of(hf), Dir::Forward, idx));
        let found_r = self.unlink(hr, make_slot(tag_of(hr), Dir::Reverse, idx));
        debug_assert!(
            found_f && found_r,
            "session {idx} missing from the index (tuple fields changed through get_mut?)"
        );
        self.entries[idx as usize] = E::free();
        self.free.push(idx);
        self.len -= 1;
    }

    /// Examines at most `budget` entries starting at an internal cursor that
    /// wraps around; for each live entry calls `expired(&mut entry)` (which
    /// may update fields other than the tuples); if it returns true the entry
    /// is passed to `on_remove(idx, &entry)` and removed. Returns the number
    /// removed. Bounded work per call: never more than `min(budget, capacity)`
    /// entries.
    pub fn sweep(
        &mut self,
        budget: u32,
        mut expired: impl FnMut(&mut E) -> bool,
        mut on_remove: impl FnMut(u32, &E),
    ) -> u32 {
        let cap = self.capacity();
        if cap == 0 {
            return 0;
        }
        let n = budget.min(cap);
        let mut cur = self.sweep_cursor;
        let mut removed = 0;
        for _ in 0..n {
            let idx = cur;
            cur += 1;
            if cur == cap {
                cur = 0;
                self.sweep_passes += 1;
            }
            let e = &mut self.entries[idx as usize];
            if e.is_free() {
                continue;
            }
            let gone = expired(e);
            let e = *e;
            if gone {
                on_remove(idx, &e);
                self.remove(idx);
                removed += 1;
            }
        }
        self.sweep_cursor = cur;
        removed
    }

    /// Full passes [`SessionTable::sweep`] has made over the table.
    pub fn sweep_passes(&self) -> u64 {
        self.sweep_passes
    }

    /// The first live entry from `cursor` on (wrapping around) that `pick`
    /// accepts, looking at no more than `budget` entries; the cursor is
    /// left after the entries looked at, so successive calls go round.
    pub fn find_from(
        &self,
        cursor: &mut u32,
        budget: u32,
        mut pick: impl FnMut(&E) -> bool,
    ) -> Option<u32> {
        let cap = self.capacity();
        for _ in 0..budget.min(cap) {
            let idx = *cursor % cap.max(1);
            *cursor = (idx + 1) % cap;
            let e = &self.entries[idx as usize];
            if !e.is_free() && pick(e) {
                return Some(idx);
            }
        }
        None
    }

    /// The live entry at `idx`, if any (for scanning the table in slices).
    #[inline]
    pub fn live(&self, idx: u32) -> Option<&E> {
        self.entries.get(idx as usize).filter(|e| !e.is_free())
    }

    /// Live entries with their indices (control/debug use; a full scan).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &E)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_free())
            .map(|(i, e)| (i as u32, e))
    }

    /// Removes the index slot equal to `slot` from the candidate buckets of
    /// `hash`. Returns whether it was found.
    fn unlink(&mut self, hash: u64, slot: u64) -> bool {
        let (b1, b2) = self.buckets_of(hash);
        for b in [b1, b2] {
            if let Some(s) = self.index[b].slots.iter_mut().find(|s| **s == slot) {
                *s = EMPTY;
                return true;
            }
        }
        false
    }

    /// The candidate bucket of the key in `slot` other than `cur`.
    #[inline]
    fn alt_bucket(&self, slot: u64, cur: usize) -> usize {
        let e = &self.entries[slot_idx(slot) as usize];
        let h = E::hash(&Self::tuple_of(e, slot_dir(slot)));
        let (b1, b2) = self.buckets_of(h);
        if b1 == cur {
            b2
        } else {
            b1
        }
    }

    /// Puts `slot` (the key of `hash`) in the index. Returns false, with the
    /// index unchanged, if no place was found.
    fn place(&mut self, hash: u64, slot: u64) -> bool {
        let (b1, b2) = self.buckets_of(hash);
        let e1 = self.index[b1].empty_count();
        let e2 = self.index[b2].empty_count();
        if e1 > 0 || e2 > 0 {
            // The first bucket while it has room: a lookup finds most
            // keys there without reading the second.
            let b = if e1 > 0 { b1 } else { b2 };
            if let Some(s) = self.index[b].first_empty() {
                self.index[b].slots[s] = slot;
                return true;
            }
        }
        self.cuckoo(b1, b2, slot)
    }

    /// Both candidate buckets are full: breadth-first search, over at most
    /// `MAX_BFS` buckets, for a path of moves ending at an empty slot; then
    /// moves the keys along it, last first, and puts `new_slot` in the freed
    /// slot of `b1` or `b2`. Nothing moves unless a complete path was found.
    fn cuckoo(&mut self, b1: usize, b2: usize, new_slot: u64) -> bool {
        let mut bfs = core::mem::take(&mut self.bfs);
        bfs.clear();
        for b in [b1, b2] {
            bfs.push(BfsNode {
                bucket: b as u32,
                parent: NO_PARENT,
                slot: 0,
            });
        }
        let mut found = None;
        let mut head = 0;
        'search: while head < bfs.len() {
            let node = bfs[head];
            let bucket = self.index[node.bucket as usize];
            let grand = if node.parent == NO_PARENT {
                usize::MAX
            } else {
                bfs[node.parent as usize].bucket as usize
            };
            for (s, &slot) in bucket.slots.iter().enumerate() {
                let alt = self.alt_bucket(slot, node.bucket as usize);
                if alt == grand || alt == node.bucket as usize {
                    continue; // moving back where it came from: useless
                }
                if let Some(free_slot) = self.index[alt].first_empty() {
                    if path_is_simple(&bfs, head, alt as u32) {
                        found = Some((head, s, alt, free_slot));
                        break 'search;
                    }
                    continue;
                }
                if bfs.len() < MAX_BFS {
                    bfs.push(BfsNode {
                        bucket: alt as u32,
                        parent: head as u32,
                        slot: s as u8,
                    });
                }
            }
            head += 1;
        }
        let ok = if let Some((head, s, alt, free_slot)) = found {
            let node = bfs[head];
            let (mut fb, mut fs) = (node.bucket as usize, s);
            self.index[alt].slots[free_slot] = self.index[fb].slots[fs];
            let mut cur = node;
            while cur.parent != NO_PARENT {
                let p = bfs[cur.parent as usize];
                let (pb, ps) = (p.bucket as usize, cur.slot as usize);
                self.index[fb].slots[fs] = self.index[pb].slots[ps];
                (fb, fs) = (pb, ps);
                cur = p;
            }
            self.index[fb].slots[fs] = new_slot;
            true
        } else {
            false
        };
        self.bfs = bfs;
        ok
    }

    /// For tests: every live entry is findable by both tuples, every index
    /// slot points at a live entry with a matching tuple in one of its
    /// candidate buckets, and free list + live == capacity.
    pub fn check_consistency(&self) -> Result<(), String> {
        let cap = self.capacity() as usize;
        let mut live = 0usize;
        for (i, e) in self.entries.iter().enumerate() {
            if e.is_free() {
                continue;
            }
            live += 1;
            for dir in [Dir::Forward, Dir::Reverse] {
                let t = Self::tuple_of(e, dir);
                match self.lookup(&t, E::hash(&t)) {
                    Some((idx, d)) if idx as usize == i && d == dir => {}
                    other => {
                        return Err(format!(
                            "entry {i} {dir:?}: lookup gives {other:?}, expected ({i}, {dir:?})"
                        ))
                    }
                }
            }
        }
        if live != self.len as usize {
            return Err(format!("{live} live entries, len {}", self.len));
        }
        if live + self.free.len() != cap {
            return Err(format!(
                "{live} live + {} free != capacity {cap}",
                self.free.len()
            ));
        }
        let mut seen = vec![false; cap];
        for &f in &self.free {
            let f = f as usize;
            if f >= cap {
                return Err(format!("free list holds {f} >= capacity {cap}"));
            }
            if seen[f] {
                return Err(format!("free list holds {f} twice"));
            }
            seen[f] = true;
            if !self.entries[f].is_free() {
                return Err(format!("free list holds live entry {f}"));
            }
        }
        let mut keys = vec![0u8; cap];
        let mut slots = 0usize;
        for (b, bucket) in self.index.iter().enumerate() {
            for &slot in &bucket.slots {
                if slot == EMPTY {
                    continue;
                }
                slots += 1;
                let idx = slot_idx(slot) as usize;
                let dir = slot_dir(slot);
                if idx >= cap || self.entries[idx].is_free() {
                    return Err(format!(
                        "bucket {b}: slot {slot:#x} points at no live entry"
                    ));
                }
                let bit = match dir {
                    Dir::Forward => 1,
                    Dir::Reverse => 2,
                };
                if keys[idx] & bit != 0 {
                    return Err(format!("entry {idx} {dir:?} indexed twice"));
                }
                keys[idx] |= bit;
                let h = E::hash(&Self::tuple_of(&self.entries[idx], dir));
                if slot_tag(slot) != tag_of(h) {
                    return Err(format!("bucket {b}: entry {idx} {dir:?} has a stale tag"));
                }
                let (b1, b2) = self.buckets_of(h);
                if b != b1 && b != b2 {
                    return Err(format!(
                        "bucket {b}: entry {idx} {dir:?} belongs in {b1} or {b2}"
                    ));
                }
            }
        }
        if slots != 2 * live {
            return Err(format!("{slots} index slots for {live} live entries"));
        }
        Ok(())
    }
}

/// Whether the path from the root to `bfs[head]`, extended by `last`, visits
/// no bucket twice (moves along it are then independent), and is not longer
/// than `MAX_PATH`.
fn path_is_simple(bfs: &[BfsNode], head: usize, last: u32) -> bool {
    let mut path = [0u32; MAX_PATH + 1];
    let mut n = 0;
    path[n] = last;
    n += 1;
    let mut cur = head as u32;
    while cur != NO_PARENT {
        if n == path.len() {
            return false;
        }
        let node = bfs[cur as usize];
        if path[..n].contains(&node.bucket) {
            return false;
        }
        path[n] = node.bucket;
        n += 1;
        cur = node.parent;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sess(i: u32) -> Session4 {
        Session4 {
            client: 0x0a00_0000 + i,
            vip: 0xc0a8_0001,
            member: 0xac10_0000 + (i % 7),
            snat: 0x6440_0000 + (i % 3),
            cport: (i % 50_000) as u16 + 1024,
            vport: 80,
            mport: 8080,
            sport: (i % 60_000) as u16 + 1,
            last_seen: i,
            vs: 3,
            proto: 6,
            state: 0,
        }
    }

    fn find(t: &SessionTable, tu: &Tuple4) -> Option<(u32, Dir)> {
        t.lookup(tu, tu.hash())
    }

    #[test]
    fn sizes() {
        assert_eq!(core::mem::size_of::<Session4>(), 32);
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
        assert_eq!(core::mem::align_of::<Bucket>(), 64);
        assert!(<Session4 as Entry>::free().is_free());
        assert!(!Session4::default().is_free());
    }

    #[test]
    fn tuples() {
        let s = sess(5);
        let f = s.forward();
        assert_eq!(
            (f.src, f.dst, f.sport, f.dport, f.proto),
            (s.client, s.vip, s.cport, 80, 6)
        );
        let r = s.reverse();
        assert_eq!(
            (r.src, r.dst, r.sport, r.dport),
            (s.member, s.snat, 8080, s.sport)
        );
        assert_eq!(f.reversed().reversed(), f);
        assert_eq!(f.reversed().src, f.dst);
        assert_eq!(f.reversed().sport, f.dport);
    }

    #[test]
    fn insert_lookup_both_directions() {
        let mut t = SessionTable::<Session4>::with_capacity(100);
        assert!(t.is_empty());
        let s = sess(1);
        let idx = t.insert(s).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(find(&t, &s.forward()), Some((idx, Dir::Forward)));
        assert_eq!(find(&t, &s.reverse()), Some((idx, Dir::Reverse)));
        assert_eq!(find(&t, &s.forward().reversed()), None);
        assert_eq!(find(&t, &sess(2).forward()), None);
        assert_eq!(*t.get(idx), s);
        t.get_mut(idx).last_seen = 99;
        assert_eq!(t.get(idx).last_seen, 99);
        t.prefetch(s.forward().hash());
        t.prefetch_entry(idx);
        t.prefetch_entry(1_000_000); // out of range: ignored
        t.check_consistency().unwrap();
    }

    #[test]
    fn remove_and_reuse() {
        let mut t = SessionTable::<Session4>::with_capacity(4);
        let a = t.insert(sess(1)).unwrap();
        let b = t.insert(sess(2)).unwrap();
        t.remove(a);
        assert_eq!(t.len(), 1);
        assert_eq!(find(&t, &sess(1).forward()), None);
        assert_eq!(find(&t, &sess(1).reverse()), None);
        assert_eq!(find(&t, &sess(2).reverse()), Some((b, Dir::Reverse)));
        assert!(t.get(a).is_free());
        t.remove(a); // already free: no-op
        assert_eq!(t.len(), 1);
        let c = t.insert(sess(3)).unwrap();
        assert_eq!(c, a, "freed entry is reused first");
        assert_eq!(find(&t, &sess(3).forward()), Some((c, Dir::Forward)));
        t.check_consistency().unwrap();
    }

    #[test]
    fn exists() {
        let mut t = SessionTable::<Session4>::with_capacity(10);
        let s = sess(1);
        t.insert(s).unwrap();
        assert_eq!(t.insert(s), Err(InsertError::Exists));
        // Same forward tuple, different member.
        let mut s2 = s;
        s2.member += 100;
        assert_eq!(t.insert(s2), Err(InsertError::Exists));
        // Same reverse tuple, different client.
        let mut s3 = s;
        s3.client += 100;
        assert_eq!(t.insert(s3), Err(InsertError::Exists));
        // New forward tuple equal to an existing reverse tuple.
        let s4 = Session4 {
            client: s.member,
            vip: s.snat,
            cport: s.mport,
            vport: s.sport,
            member: 1,
            snat: 2,
            ..s
        };
        assert_eq!(t.insert(s4), Err(InsertError::Exists));
        // Forward == reverse.
        let s5 = Session4 {
            member: 7,
            client: 7,
            vip: 8,
            snat: 8,
            cport: 1,
            mport: 1,
            vport: 2,
            sport: 2,
            ..s
        };
        assert_eq!(t.insert(s5), Err(InsertError::Exists));
        assert_eq!(t.len(), 1);
        t.check_consistency().unwrap();
    }

    #[test]
    fn full_at_capacity() {
        let mut t = SessionTable::<Session4>::with_capacity(50);
        for i in 0..50 {
            t.insert(sess(i)).unwrap();
        }
        assert_eq!(t.len(), 50);
        assert_eq!(t.insert(sess(50)), Err(InsertError::Full));
        assert_eq!(t.insert(sess(3)), Err(InsertError::Exists));
        assert_eq!(t.len(), 50);
        t.check_consistency().unwrap();
        // No eviction: every original session is still there.
        for i in 0..50 {
            assert!(find(&t, &sess(i).forward()).is_some());
        }
        t.remove(find(&t, &sess(7).reverse()).unwrap().0);
        t.insert(sess(50)).unwrap();
        t.check_consistency().unwrap();
    }

    #[test]
    fn zero_capacity() {
        let mut t = SessionTable::<Session4>::with_capacity(0);
        assert_eq!(t.insert(sess(1)), Err(InsertError::Full));
        assert_eq!(t.sweep(10, |_| true, |_, _| {}), 0);
        assert_eq!(find(&t, &sess(1).forward()), None);
        t.check_consistency().unwrap();
    }

    #[test]
    #[should_panic]
    fn insert_free_entry_panics() {
        let mut t = SessionTable::<Session4>::with_capacity(2);
        let _ = t.insert(<Session4 as Entry>::free());
    }

    #[test]
    fn sweep_bounded_and_wrapping() {
        let mut t = SessionTable::<Session4>::with_capacity(10);
        for i in 0..10 {
            let idx = t.insert(sess(i)).unwrap();
            assert_eq!(idx, i);
        }
        // Entries 0..10 have last_seen == index; expire the even ones.
        let mut examined = 0;
        let mut removed = Vec::new();
        let n = t.sweep(
            4,
            |e| {
                examined += 1;
                e.last_seen % 2 == 0
            },
            |i, e| removed.push((i, e.last_seen)),
        );
        assert_eq!(examined, 4);
        assert_eq!(n, 2);
        assert_eq!(removed, vec![(0, 0), (2, 2)]);
        // Next call continues at 4, wraps after 9.
        let mut removed = Vec::new();
        examined = 0;
        let n = t.sweep(
            8,
            |e| {
                examined += 1;
                e.last_seen % 2 == 0
            },
            |i, _| removed.push(i),
        );
        // Examined 4..10 (6 entries, 3 even) then 0, 1: 0 is free, 1 odd.
        assert_eq!(examined, 7);
        assert_eq!(n, 3);
        assert_eq!(removed, vec![4, 6, 8]);
        assert_eq!(t.len(), 5);
        // A huge budget examines each entry at most once.
        examined = 0;
        let n = t.sweep(
            u32::MAX,
            |_| {
                examined += 1;
                false
            },
            |_, _| {},
        );
        assert_eq!((n, examined), (0, 5));
        let n = t.sweep(u32::MAX, |_| true, |_, _| {});
        assert_eq!(n, 5);
        assert!(t.is_empty());
        t.check_consistency().unwrap();
        assert_eq!(t.iter().count(), 0);
    }

    #[test]
    fn iter_lists_live_entries() {
        let mut t = SessionTable::<Session4>::with_capacity(8);
        for i in 0..5 {
            t.insert(sess(i)).unwrap();
        }
        t.remove(2);
        let v: Vec<u32> = t.iter().map(|(i, _)| i).collect();
        assert_eq!(v, vec![0, 1, 3, 4]);
        assert!(t.iter().all(|(i, e)| *e == sess(i)));
    }

    #[test]
    fn memory_per_session() {
        for cap in [1_048_576u32, 10_000_000] {
            let nb = bucket_count(cap) as usize;
            let bytes = cap as usize * 32 + nb * 64 + cap as usize * 4;
            assert!(bytes as f64 / cap as f64 <= 54.0, "{cap}: {bytes}");
        }
        let t = SessionTable::<Session4>::with_capacity(1_048_576);
        let per = t.memory_bytes() as f64 / 1_048_576.0;
        assert!(per <= 64.0, "{per}");
        assert!(t.nbuckets * 8 * 9 >= 2 * 1_048_576 * 10, "load <= 90%");
    }

    #[test]
    fn tags_nonzero() {
        assert_ne!(tag_of(0), 0);
        for i in 0..100_000u64 {
            let h = fmix64(i);
            assert_ne!(tag_of(h), 0);
        }
    }

    /// Sequential clients and ports (the realistic worst case for a weak
    /// hash) spread evenly over the buckets.
    #[test]
    fn hash_spreads_over_buckets() {
        let t = SessionTable::<Session4>::with_capacity(10_000);
        let n = t.nbuckets as usize;
        let mut load1 = vec![0u32; n];
        let mut load2 = vec![0u32; n];
        let keys = 100_000u32;
        let mut distinct = std::collections::HashSet::new();
        for i in 0..keys {
            let tu = Tuple4 {
                src: 0x0a00_0000 + (i / 1000),
                dst: 0xc0a8_0001,
                sport: 1024 + (i % 1000) as u16,
                dport: 443,
                proto: 6,
            };
            let h = tu.hash();
            distinct.insert(h);
            let (b1, b2) = t.buckets_of(h);
            assert_ne!(b1, b2);
            load1[b1] += 1;
            load2[b2] += 1;
        }
        assert_eq!(distinct.len(), keys as usize, "no 64-bit collisions");
        let mean = f64::from(keys) / n as f64; // ~36
        for load in [&load1, &load2] {
            let max = *load.iter().max().unwrap();
            let min = *load.iter().min().unwrap();
            assert!(f64::from(max) < mean * 2.0, "max {max} mean {mean}");
            assert!(f64::from(min) > mean / 4.0, "min {min} mean {mean}");
            let chi2: f64 = load
                .iter()
                .map(|&l| (f64::from(l) - mean).powi(2) / mean)
                .sum();
            // Expected ~n with sd sqrt(2n) (~75 for n = 2778).
            assert!(
                chi2 < n as f64 + 6.0 * (2.0 * n as f64).sqrt(),
                "chi2 {chi2} n {n}"
            );
        }
    }

    /// Flipping any input bit flips each output bit with probability ~1/2.
    #[test]
    fn hash_avalanche() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            fmix64(rng)
        };
        let samples = 2000;
        let mut flips = [[0u32; 64]; 104];
        for _ in 0..samples {
            let a = next();
            let b = next();
            let t = Tuple4 {
                src: a as u32,
                dst: (a >> 32) as u32,
                sport: b as u16,
                dport: (b >> 16) as u16,
                proto: (b >> 32) as u8,
            };
            let h = t.hash();
            for (bit, row) in flips.iter_mut().enumerate() {
                let mut u = t;
                match bit {
                    0..=31 => u.src ^= 1 << bit,
                    32..=63 => u.dst ^= 1 << (bit - 32),
                    64..=79 => u.sport ^= 1 << (bit - 64),
                    80..=95 => u.dport ^= 1 << (bit - 80),
                    _ => u.proto ^= 1 << (bit - 96),
                }
                let d = h ^ u.hash();
                for (o, f) in row.iter_mut().enumerate() {
                    *f += ((d >> o) & 1) as u32;
                }
            }
        }
        for (bit, row) in flips.iter().enumerate() {
            for (o, &f) in row.iter().enumerate() {
                let p = f64::from(f) / f64::from(samples);
                assert!(
                    (0.40..=0.60).contains(&p),
                    "input bit {bit} -> output bit {o}: {p}"
                );
            }
        }
    }

    #[test]
    fn cuckoo_path_moves_keys() {
        // A table with few buckets forces displacement; fill it completely
        // and check every key is still in one of its buckets.
        let mut t = SessionTable::<Session4>::with_capacity(200);
        for i in 0..200 {
            t.insert(sess(i * 13)).unwrap();
        }
        t.check_consistency().unwrap();
        let load: usize = t.index.iter().map(|b| SLOTS - b.empty_count()).sum();
        assert_eq!(load, 400);
    }
}
