//! Session synchronisation between the nodes of a pair, the worker's half
//! (DESIGN.md "Pair (HA)"). The packet path only queues what changed, into
//! a buffer allocated beforehand ([`SyncOut`]): a session confirmed, its TCP
//! state changed, a session removed other than by idling out; the sweep adds
//! a refresh of the active sessions of the VIPs this node owns, once every
//! [`REFRESH_PASSES`] passes. The daemon takes the buffer between bursts and
//! something off the workers sends it to the peers.
//!
//! A peer's records come back the other way ([`Worker::install_synced`]),
//! to the worker that owns the session by the same function as its packets.
//! A record names its virtual server as a packet does (VIP, port, protocol)
//! and its member by address and port, so both nodes need the same
//! configuration, not the same snapshot; a record the local configuration
//! cannot place is refused and counted by reason, never trusted.

use crate::conntrack::{self, flag};
use crate::flow::Family;
use crate::service::snat_port_owner;
use crate::session::{Dir, InsertError, Session};
use crate::stats;
pub use crate::stats::{SyncCounters, SyncRefusal};
use crate::worker::{AnySession, Worker};
use sluice_config::Forwarding;

/// Records a worker queues between two hand-overs at most; more are
/// counted (`queue_full`) and lost until the daemon takes the buffer.
pub const SYNC_QUEUE: usize = 4096;
/// The sweep refreshes active sessions on one pass in this many (a pass
/// is about a second), so a peer's copy of a live session is never older
/// than about this many seconds.
pub const REFRESH_PASSES: u64 = 8;
/// A session counts as active for a refresh if it saw a packet this recently.
const REFRESH_ACTIVE_MS: u32 = 2 * 1000 * REFRESH_PASSES as u32;

/// What a record asks of the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncOp {
    /// Install the session, or bring its state and idle time up to date.
    Update,
    /// The session ended (closed, reset, flushed): remove it.
    Remove,
}

/// One session change: what a worker queues and what a peer's receiver
/// hands to the owning worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRecord {
    pub op: SyncOp,
    /// The session as its node has it; `vs` and `last_seen` are that node's
    /// and mean nothing to another.
    pub session: AnySession,
    /// Its virtual server's forwarding mode: a node whose virtual server
    /// forwards otherwise refuses the record.
    pub mode: Forwarding,
    /// How long the session has been idle, in milliseconds.
    pub idle_ms: u32,
}

/// A worker's queue of changes for the peers.
#[derive(Debug, Default)]
pub struct SyncOut {
    records: Vec<SyncRecord>,
    /// Session synchronisation is configured.
    enabled: bool,
}

impl SyncOut {
    /// A queue of [`SYNC_QUEUE`] records, or none when `enabled` is false.
    pub fn new(enabled: bool) -> SyncOut {
        SyncOut {
            records: Vec::with_capacity(if enabled { SYNC_QUEUE } else { 0 }),
            enabled,
        }
    }

    /// A buffer to swap with a worker's full one ([`Worker::take_sync`]).
    pub fn buffer() -> Vec<SyncRecord> {
        Vec::with_capacity(SYNC_QUEUE)
    }

    /// Queues `r`; counted as lost when the buffer is full.
    #[inline]
    pub(crate) fn push(&mut self, r: SyncRecord, c: &SyncCounters) {
        if self.records.len() < self.records.capacity() {
            self.records.push(r);
            stats::inc(&c.queued);
        } else {
            stats::inc(&c.queue_full);
        }
    }

    /// The record of session `s` of server `vs`'s mode, if `s` is one to
    /// synchronise: confirmed (a real client is behind it).
    #[inline]
    pub(crate) fn record<A: Family>(
        &self,
        op: SyncOp,
        s: &Session<A>,
        mode: Forwarding,
        now: u32,
    ) -> Option<SyncRecord> {
        (self.enabled && s.state & flag::CONFIRMED != 0).then(|| SyncRecord {
            op,
            session: A::any(s),
            mode,
            idle_ms: now.wrapping_sub(s.last_seen),
        })
    }

    /// Queues a refresh of `s` from the sweep, if it is active.
    #[inline]
    pub(crate) fn refresh<A: Family>(
        &mut self,
        s: &Session<A>,
        mode: Forwarding,
        now: u32,
        c: &SyncCounters,
    ) {
        if now.wrapping_sub(s.last_seen) < REFRESH_ACTIVE_MS {
            if let Some(r) = self.record(SyncOp::Update, s, mode, now) {
                self.push(r, c);
            }
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }
}

impl Worker {
    /// Queues a change of session `s` for the peers (a confirmed session's
    /// state changed, or it ended).
    #[cold]
    pub(crate) fn sync_session<A: Family>(&mut self, op: SyncOp, s: &Session<A>) {
        let Some(vs) = self.shared.service(s.vs) else {
            return;
        };
        if let Some(r) = self.sync.record(op, s, vs.forwarding, self.stamp()) {
            self.sync.push(r, &self.stats.sync);
        }
    }

    /// Records queued for the peers since the last [`Worker::take_sync`].
    #[inline]
    pub fn sync_pending(&self) -> usize {
        self.sync.records.len()
    }

    /// Hands the queued records over in `spare` (an empty buffer of
    /// [`SYNC_QUEUE`] records, see [`SyncOut::buffer`]), keeping `spare`'s
    /// buffer to queue into.
    pub fn take_sync(&mut self, spare: &mut Vec<SyncRecord>) {
        spare.clear();
        std::mem::swap(&mut self.sync.records, spare);
    }

    /// Installs, updates or removes a peer's session on this worker.
    /// Nothing is queued back for the peers.
    pub fn install_synced(&mut self, r: &SyncRecord) -> Result<(), SyncRefusal> {
        let done = match r.session {
            AnySession::V4(s) => self.install::<u32>(r, s),
            AnySession::V6(s) => self.install::<u128>(r, s),
        };
        if let Err(why) = done {
            stats::inc(&self.stats.sync.refused[why as usize]);
        }
        done
    }

    fn install<A: Family>(&mut self, r: &SyncRecord, s: Session<A>) -> Result<(), SyncRefusal> {
        let vs_idx = A::find_vs(&self.shared, s.vip, s.vport, s.proto)
            .ok_or(SyncRefusal::NoVirtualServer)?;
        let t = s.forward();
        let found = A::t(self).sessions.lookup(&t, t.hash());
        if r.op == SyncOp::Remove {
            if let Some((idx, Dir::Forward)) = found {
                if A::t(self).sessions.get(idx).reverse() == s.reverse() {
                    self.release_session::<A>(idx);
                    stats::inc(&self.stats.sync.removed);
                }
            }
            return Ok(());
        }
        match found {
            Some((idx, Dir::Forward)) if A::t(self).sessions.get(idx).reverse() == s.reverse() => {
                self.update_synced(idx, &s, r.idle_ms);
                Ok(())
            }
            // Its copy here serves the VIP: this node's packets decide.
            Some(_) if self.shared.owns(s.vip.ip().into()) => Err(SyncRefusal::Conflict),
            Some((idx, _)) => {
                self.release_session::<A>(idx);
                self.insert_synced(vs_idx, r, s)
            }
            None => self.insert_synced(vs_idx, r, s),
        }
    }

    /// A peer's news of a session this worker has: its state, and its idle
    /// time if the peer saw it later.
    fn update_synced<A: Family>(&mut self, idx: u32, s: &Session<A>, idle_ms: u32) {
        let now = self.stamp();
        let seen = now.wrapping_sub(idle_ms);
        let local = A::t_mut(self).sessions.get_mut(idx);
        let before = local.state;
        if (seen.wrapping_sub(local.last_seen) as i32) > 0 {
            local.last_seen = seen;
        }
        let kept = flag::SNAT_PORT | flag::RESET_PENDING;
        local.state = (before & kept) | (s.state & !kept) | flag::CONFIRMED;
        let after = *local;
        if after.state != before {
            self.recount(&after, before);
        }
        stats::inc(&self.stats.sync.updated);
    }

    /// A peer's session new to this worker: checked against the local
    /// configuration, its SNAT port reserved, inserted and counted as a
    /// session of its own would be.
    fn insert_synced<A: Family>(
        &mut self,
        vs_idx: u16,
        r: &SyncRecord,
        mut s: Session<A>,
    ) -> Result<(), SyncRefusal> {
        let vs = self
            .shared
            .service(vs_idx)
            .ok_or(SyncRefusal::NoVirtualServer)?;
        if vs.forwarding != r.mode {
            return Err(SyncRefusal::OtherMode);
        }
        let member = vs
            .member_of(s.member, s.mport)
            .ok_or(SyncRefusal::NoMember)?;
        let (member_id, persistence) = (member.id, vs.persistence);
        let n = self.shared.workers;
        if n > 1 && self.shared.client_owner_of(s.client) != self.id {
            return Err(SyncRefusal::OtherWorker);
        }
        let nat = s.snat != s.client || s.sport != s.cport;
        let mut held = 0;
        if nat {
            // Not `local`: on a standby the address is not owned yet.
            let ring = (self.shared.snat_index(s.snat))
                .filter(|i| vs.snat.contains(i))
                .ok_or(SyncRefusal::SnatAddress)?;
            if snat_port_owner(s.sport, n) != self.id {
                return Err(SyncRefusal::OtherWorker);
            }
            let reserved = self.snat.get_mut(usize::from(ring));
            if reserved.is_some_and(|r| r.reserve(s.sport)) {
                held = flag::SNAT_PORT;
            } else {
                stats::inc(&self.stats.sync.snat_port_busy);
            }
        }
        let now = self.stamp();
        s.vs = vs_idx;
        s.last_seen = now.wrapping_sub(r.idle_ms);
        s.state = (s.state & !(flag::SNAT_PORT | flag::RESET_PENDING)) | flag::CONFIRMED | held;
        let idx = match A::t_mut(self).sessions.insert(s) {
            Ok(idx) => idx,
            Err(e) => {
                if held != 0 {
                    self.release_snat_port::<A>(&s);
                }
                return Err(match e {
                    InsertError::Full => SyncRefusal::TableFull,
                    InsertError::Exists => SyncRefusal::Conflict,
                });
            }
        };
        A::t_mut(self).handshakes[idx as usize] = now;
        stats::inc(&self.stats.sync.installed);
        if let Some(c) = self.stats.vs_sessions.get(usize::from(vs_idx)) {
            stats::inc(c);
        }
        self.shared.members.opened(self.id, member_id);
        if conntrack::closing(s.state, s.proto) {
            self.shared.members.moved(self.id, member_id, true);
        }
        if let Some(p) = persistence {
            let key = p.key(vs_idx, s.client);
            self.balancer.persist.open(key, member_id, now);
            self.balancer.persist.confirm(key, member_id, now);
        }
        self.count_active();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_are_distinct_counters() {
        let mut names: Vec<&str> = SyncRefusal::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SyncRefusal::COUNT);
        assert!(SyncRefusal::ALL.iter().all(|r| !r.help().is_empty()));
    }

    #[test]
    fn only_confirmed_sessions_are_recorded() {
        let q = SyncOut::new(true);
        let mut s = crate::session::Session4 {
            last_seen: 100,
            state: conntrack::tcp::SYN_SENT,
            ..Default::default()
        };
        assert_eq!(q.record(SyncOp::Update, &s, Forwarding::DestNat, 400), None);
        s.state = conntrack::tcp::ESTABLISHED | flag::CONFIRMED;
        let r = q.record(SyncOp::Update, &s, Forwarding::DestNat, 400);
        assert_eq!(r.map(|r| r.idle_ms), Some(300));
        let off = SyncOut::new(false);
        assert_eq!(
            off.record(SyncOp::Update, &s, Forwarding::DestNat, 400),
            None
        );
    }
}
