//! Member state as the workers see it, outside the configuration snapshot
//! and indexed by a stable member id (given to a (pool, address) when it is
//! first configured and kept across reloads; see `shared::Identity`):
//!
//! - health (up or down), the administrative state (enabled, weight: from
//!   the configuration, changed at run time by `sluicectl member`) and the
//!   effective weight (the weight, lower while a member slow-starts),
//!   written by the control thread, read by workers when they choose a
//!   member;
//! - each worker's own row of session counts per member (all, and closing),
//!   written by that worker alone and summed by whoever needs them exactly
//!   (`sluicectl`, a reload). A session that starts closing changes one
//!   count only, so a reader never sees it gone;
//! - for each worker, the other workers' counts as of the last [`fold`]
//!   (written by the control thread every millisecond): a worker choosing a
//!   member by least connections or checking `max_connections` reads its
//!   own row, exact, and that one row, instead of every worker's row, mostly
//!   on lines other cores just wrote.
//!
//! [`fold`]: MemberStates::fold
//!
//! Nothing on the packet path takes a lock, and no line is written by two
//! threads.

use crate::stats;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One cache line of counts: a row is made of whole lines, allocated with
/// the line's alignment, so two workers' rows never share a cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line([[AtomicU64; 2]; 4]);

/// One worker's session counts: count `2 * id` is every session of
/// member `id`, `2 * id + 1` those closing.
#[derive(Debug)]
struct Row(Box<[Line]>);

impl Row {
    fn new(counts: usize) -> Row {
        Row((0..counts.div_ceil(8)).map(|_| Line::default()).collect())
    }

    #[inline]
    fn get(&self, at: usize) -> Option<&AtomicU64> {
        self.0.get(at / 8).map(|l| &l.0[at % 8 / 2][at % 2])
    }
}

/// What a worker needs to know of a member to choose it, read in one load:
/// its health, administrative state and weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberState(u64);

const UP: u64 = 1 << 63;
const ENABLED: u64 = 1 << 62;
/// Weights are at most this (the configuration allows 1000).
pub const MAX_WEIGHT: u32 = (1 << 30) - 1;

impl MemberState {
    fn new(up: bool, enabled: bool, configured: u32, weight: u32) -> MemberState {
        let flag = |on: bool, bit: u64| if on { bit } else { 0 };
        MemberState(
            flag(up, UP)
                | flag(enabled, ENABLED)
                | u64::from(configured.min(MAX_WEIGHT)) << 32
                | u64::from(weight.min(MAX_WEIGHT)),
        )
    }

    /// Passes its health check.
    #[inline]
    pub fn up(self) -> bool {
        self.0 & UP != 0
    }

    /// Enabled (configuration, `sluicectl member`).
    #[inline]
    pub fn enabled(self) -> bool {
        self.0 & ENABLED != 0
    }

    /// The weight an operator set (0 drains).
    #[inline]
    pub fn configured(self) -> u32 {
        ((self.0 >> 32) as u32) & MAX_WEIGHT
    }

    /// The weight in use: `configured`, or less during a slow start.
    #[inline]
    pub fn weight(self) -> u32 {
        self.0 as u32 & MAX_WEIGHT
    }

    /// May take new sessions as far as health and administration go: up,
    /// enabled, weighted (not draining, not at 0 in a slow start).
    #[inline]
    pub fn available(self) -> bool {
        self.0 & (UP | ENABLED) == UP | ENABLED && self.configured() > 0 && self.weight() > 0
    }
}

/// Both counts of member `id` in row `w` of `rows` (one line holds both).
#[inline]
fn pair(rows: &[Row], w: usize, id: u32) -> (u64, u64) {
    let id = id as usize;
    match rows.get(w).and_then(|r| r.0.get(id / 4)) {
        Some(line) => {
            let [all, closing] = &line.0[id % 4];
            (all.load(Relaxed), closing.load(Relaxed))
        }
        None => (0, 0),
    }
}

/// Health, effective weight and load of every configured member.
#[derive(Debug)]
pub struct MemberStates {
    /// One word per member id ([`MemberState`]), written by the control
    /// thread alone.
    words: Box<[AtomicU64]>,
    rows: Box<[Row]>,
    /// `others[w]`: the sum of every row but `rows[w]`, as of the last fold.
    others: Box<[Row]>,
}

impl MemberStates {
    /// Members with these configured (weight, enabled), all up (a switch
    /// serves at once after boot; checks take members down), for `workers`
    /// workers.
    pub fn new(members: &[(u32, bool)], workers: u16) -> MemberStates {
        MemberStates::with_capacity(members, workers, members.len())
    }

    /// Like [`MemberStates::new`], with room for `capacity` member ids (at
    /// least `members.len()`), so members added by a reload get ids without
    /// reallocating what the workers read.
    pub fn with_capacity(members: &[(u32, bool)], workers: u16, capacity: usize) -> MemberStates {
        let n = capacity.max(members.len());
        let at = |i: usize| members.get(i).copied().unwrap_or((0, false));
        let word = |i: usize| {
            let (weight, enabled) = at(i);
            AtomicU64::new(MemberState::new(true, enabled, weight, weight).0)
        };
        MemberStates {
            words: (0..n).map(word).collect(),
            rows: (0..workers.max(1)).map(|_| Row::new(2 * n)).collect(),
            others: (0..workers.max(1)).map(|_| Row::new(2 * n)).collect(),
        }
    }

    /// Gives id `id` to a member that was not configured before (control
    /// thread, before the snapshot naming it is published): up, as at boot,
    /// with this weight and administrative state.
    pub fn assign(&self, id: u32, weight: u32, enabled: bool) {
        self.store(id, MemberState::new(true, enabled, weight, weight));
    }

    /// Member ids this table has room for.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The state of member `id` (an unknown id reads down, disabled, weight 0).
    #[inline]
    pub fn state(&self, id: u32) -> MemberState {
        MemberState(self.words.get(id as usize).map_or(0, |w| w.load(Relaxed)))
    }

    /// Replaces the state of member `id` (control thread only: the single
    /// writer, so a read and a store make a change).
    fn store(&self, id: u32, s: MemberState) {
        if let Some(w) = self.words.get(id as usize) {
            w.store(s.0, Relaxed);
        }
    }

    /// Whether member `id` passes its health check (unknown ids are down).
    #[inline]
    pub fn is_up(&self, id: u32) -> bool {
        self.state(id).up()
    }

    /// Sets the health of member `id` (control thread only).
    pub fn set(&self, id: u32, up: bool) {
        let s = self.state(id);
        self.store(
            id,
            MemberState::new(up, s.enabled(), s.configured(), s.weight()),
        );
    }

    /// Whether member `id` may take new sessions as far as its health and
    /// administrative state go: up, enabled, weighted (not draining).
    #[inline]
    pub fn available(&self, id: u32) -> bool {
        self.state(id).available()
    }

    /// Whether member `id` is enabled (configuration, `sluicectl member`).
    #[inline]
    pub fn is_enabled(&self, id: u32) -> bool {
        self.state(id).enabled()
    }

    /// Enables or disables member `id` (control thread only).
    pub fn set_enabled(&self, id: u32, enabled: bool) {
        let s = self.state(id);
        self.store(
            id,
            MemberState::new(s.up(), enabled, s.configured(), s.weight()),
        );
    }

    /// The weight an operator set for member `id` (0: draining).
    #[inline]
    pub fn configured_weight(&self, id: u32) -> u32 {
        self.state(id).configured()
    }

    /// Sets member `id`'s weight, and its effective weight with it (control
    /// thread only; ends the effect of a slow start in progress).
    pub fn set_configured_weight(&self, id: u32, weight: u32) {
        let s = self.state(id);
        self.store(id, MemberState::new(s.up(), s.enabled(), weight, weight));
    }

    /// Sets member `id`'s weight as an operator does at run time (control
    /// thread only): a slow start in progress (the effective weight below
    /// the configured one) goes on, towards the new weight.
    pub fn reweigh(&self, id: u32, weight: u32) {
        let s = self.state(id);
        let effective = if s.weight() < s.configured() {
            s.weight().min(weight)
        } else {
            weight
        };
        self.store(id, MemberState::new(s.up(), s.enabled(), weight, effective));
    }

    /// The effective weight of member `id`: its weight, or less while it
    /// slow-starts.
    #[inline]
    pub fn weight(&self, id: u32) -> u32 {
        self.state(id).weight()
    }

    /// Sets the effective weight of member `id` (control thread only).
    pub fn set_weight(&self, id: u32, weight: u32) {
        let s = self.state(id);
        self.store(
            id,
            MemberState::new(s.up(), s.enabled(), s.configured(), weight),
        );
    }

    #[inline]
    fn count(&self, worker: u16, at: usize) -> Option<&AtomicU64> {
        self.rows.get(usize::from(worker))?.get(at)
    }

    /// Worker `worker` opened a session on member `id`.
    #[inline]
    pub fn opened(&self, worker: u16, id: u32) {
        if let Some(c) = self.count(worker, 2 * id as usize) {
            stats::inc(c);
        }
    }

    /// A session of `worker` on member `id` started closing (FIN or RST
    /// seen; `closing`) or, after a RST its sender did not mean, went back
    /// to established (`!closing`). One count changes: the total stays.
    #[inline]
    pub fn moved(&self, worker: u16, id: u32, closing: bool) {
        if let Some(c) = self.count(worker, 2 * id as usize + 1) {
            if closing {
                stats::inc(c);
            } else {
                stats::dec(c);
            }
        }
    }

    /// A session of `worker` on member `id` ended; `closing` says whether
    /// it was counted closing.
    #[inline]
    pub fn closed(&self, worker: u16, id: u32, closing: bool) {
        if closing {
            if let Some(c) = self.count(worker, 2 * id as usize + 1) {
                stats::dec(c);
            }
        }
        if let Some(c) = self.count(worker, 2 * id as usize) {
            stats::dec(c);
        }
    }

    /// Sessions on member `id` summed over the workers: (established, closing).
    #[inline]
    pub fn load(&self, id: u32) -> (u64, u64) {
        let at = 2 * id as usize;
        let (all, closing) = self.rows.iter().fold((0, 0), |(a, c), r| {
            let get = |i: usize| r.get(i).map_or(0, |x| x.load(Relaxed));
            (a + get(at), c + get(at + 1))
        });
        (all.saturating_sub(closing), closing)
    }

    /// All sessions on member `id`, over the workers.
    pub fn sessions(&self, id: u32) -> u64 {
        let at = 2 * id as usize;
        self.rows
            .iter()
            .map(|r| r.get(at).map_or(0, |x| x.load(Relaxed)))
            .sum()
    }

    /// Brings every worker's view of the other workers' counts of members
    /// `ids` up to date (control thread only, every millisecond).
    pub fn fold(&self, ids: &[u32]) {
        const MOST: usize = 128;
        let mut own = [0u64; MOST];
        for &id in ids {
            for at in [2 * id as usize, 2 * id as usize + 1] {
                let mut total = 0u64;
                for (w, r) in self.rows.iter().enumerate().take(MOST) {
                    own[w] = r.get(at).map_or(0, |x| x.load(Relaxed));
                    total += own[w];
                }
                for (w, o) in self.others.iter().enumerate().take(MOST) {
                    // Stored only when it changed: a store takes the line
                    // from the worker that reads it on every choice.
                    let v = total - own[w];
                    if let Some(c) = o.get(at).filter(|c| c.load(Relaxed) != v) {
                        c.store(v, Relaxed);
                    }
                }
            }
        }
    }

    /// Sessions on member `id` as worker `worker` counts them when it
    /// chooses: its own exactly, the other workers' as of the last fold.
    /// (established, closing).
    #[inline]
    pub fn load_for(&self, worker: u16, id: u32) -> (u64, u64) {
        let w = usize::from(worker);
        let (all, closing) = pair(&self.rows, w, id);
        let (all, closing) = match self.rows.len() {
            1 => (all, closing),
            _ => {
                let (a, c) = pair(&self.others, w, id);
                (all + a, closing + c)
            }
        };
        (all.saturating_sub(closing), closing)
    }

    /// All sessions on member `id` as worker `worker` counts them (see
    /// [`MemberStates::load_for`]).
    #[inline]
    pub fn sessions_for(&self, worker: u16, id: u32) -> u64 {
        let at = 2 * id as usize;
        let get = |r: &[Row]| {
            r.get(usize::from(worker))
                .and_then(|r| r.get(at))
                .map_or(0, |x| x.load(Relaxed))
        };
        get(&self.rows) + get(&self.others)
    }

    /// Sessions of one worker on member `id` (established + closing).
    pub fn sessions_of(&self, worker: u16, id: u32) -> u64 {
        self.count(worker, 2 * id as usize)
            .map_or(0, |x| x.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_down_by_id() {
        let s = MemberStates::new(&[(1, true), (2, true), (3, true)], 1);
        assert!(s.is_up(0) && s.is_up(2));
        assert!(!s.is_up(3), "unknown id reads down");
        s.set(1, false);
        assert!(!s.is_up(1) && s.is_up(0) && s.is_up(2));
        s.set(1, true);
        assert!(s.is_up(1));
        s.set(9, false);
        assert_eq!(s.len(), 3);
        assert_eq!(s.weight(1), 2);
        s.set_weight(1, 1);
        assert_eq!((s.weight(1), s.weight(9)), (1, 0));
        assert!(s.available(1));
        s.set_weight(1, 0);
        assert!(!s.available(1), "slow start at 0");
        s.set_configured_weight(1, 0);
        assert_eq!((s.configured_weight(1), s.weight(1)), (0, 0));
        s.set_configured_weight(1, 5);
        assert!(s.available(1));
        s.set_enabled(1, false);
        assert!(!s.available(1) && !s.is_enabled(1));
        let d = MemberStates::new(&[(1, false), (0, true)], 1);
        assert!(!d.available(0) && !d.available(1), "disabled, draining");
    }

    #[test]
    fn room_for_members_a_reload_adds() {
        let s = MemberStates::with_capacity(&[(3, true)], 2, 8);
        assert_eq!(s.len(), 8);
        assert!(s.available(0));
        assert!(!s.available(5), "a spare id has no weight yet");
        s.opened(1, 5);
        s.assign(5, 7, true);
        assert!(s.available(5));
        assert_eq!((s.weight(5), s.configured_weight(5)), (7, 7));
        assert_eq!(s.load(5), (1, 0), "assignment keeps the rows");
    }

    /// A session moving between established and closing, many times over
    /// on one thread, is never seen gone from another.
    #[test]
    fn a_moving_session_is_never_seen_gone() {
        let s = std::sync::Arc::new(MemberStates::new(&[(1, true)], 1));
        s.opened(0, 0);
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..2_000_000 {
                    s.moved(0, 0, true);
                    s.moved(0, 0, false);
                }
            })
        };
        let mut reads = 0u64;
        while !writer.is_finished() {
            assert_eq!(s.sessions(0), 1, "after {reads} reads");
            let (active, closing) = s.load(0);
            assert!(active + closing >= 1, "after {reads} reads");
            reads += 1;
        }
        writer.join().unwrap();
    }

    #[test]
    fn a_worker_sees_its_own_counts_now_and_the_others_as_of_the_fold() {
        let s = MemberStates::new(&[(1, true), (1, true)], 3);
        s.opened(0, 1);
        s.opened(1, 1);
        s.opened(1, 1);
        s.moved(2, 1, true);
        s.opened(2, 1);
        assert_eq!(s.load_for(0, 1), (1, 0), "its own only, before a fold");
        s.fold(&[0, 1]);
        assert_eq!(s.load_for(0, 1), (3, 1));
        assert_eq!(s.load_for(1, 1), (3, 1));
        assert_eq!((s.sessions_for(2, 1), s.sessions(1)), (4, 4));
        s.opened(1, 1);
        assert_eq!(s.load_for(1, 1), (4, 1), "its own at once");
        assert_eq!(s.load_for(0, 1), (3, 1), "another's at the next fold");
        s.fold(&[1]);
        assert_eq!(s.load_for(0, 1), (4, 1));
        assert_eq!(s.load_for(9, 1), (0, 0), "no such worker");
    }

    #[test]
    fn loads_sum_over_workers() {
        let s = MemberStates::new(&[(1, true), (1, true)], 2);
        s.opened(0, 1);
        s.opened(1, 1);
        s.opened(1, 1);
        assert_eq!(s.load(1), (3, 0));
        s.moved(1, 1, true);
        assert_eq!(s.load(1), (2, 1));
        s.moved(1, 1, false);
        assert_eq!(s.load(1), (3, 0));
        s.moved(1, 1, true);
        assert_eq!(s.sessions_of(1, 1), 2);
        s.closed(1, 1, true);
        s.closed(0, 1, false);
        assert_eq!(s.load(1), (1, 0));
        assert_eq!(s.load(0), (0, 0));
        assert_eq!(s.sessions(1), 1);
    }
}
