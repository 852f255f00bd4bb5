//! SYN floods: half-open sessions are bounded, expire early under pressure,
//! and give way to new ones; established sessions are never touched.
//!
//! A spoofed SYN creates a session whose handshake never completes: the
//! member may answer, but the client's ACK never comes (`syn_sent`,
//! `syn_recv`). Such half-open sessions are counted per worker.
//!
//! - **Bounded.** At most a quarter of the session table may be half-open.
//!   A new SYN beyond that (or into a full table) evicts a half-open
//!   session, found by a bounded scan from a cursor, instead of being
//!   refused. Flood SYNs push each other out, and a real client's SYN
//!   always gets in; it is safe once its handshake completes, a round trip
//!   to the member and back later.
//! - **Early expiry.** Past an eighth of the table, half-open sessions idle
//!   for more than a second expire, whatever `tcp_syn` says. The sweep,
//!   bounded per loop turn, clears them after the flood.
//! - **SNAT ports.** A new session that finds no free SNAT port takes the
//!   port of a half-open session, so a flood at a Both-NAT server cannot
//!   exhaust them.
//!
//! This is the embryonic-limit defence (as in LVS's `drop_entry`, or the
//! kernel's SYN backlog under pressure), not SYN cookies: the switch keeps no
//! sequence numbers (a 32-byte session entry) and so cannot proxy the
//! handshake as F5's or DPVS's synproxy do.

use crate::conntrack::{self, flag};
use crate::session::Session4;
use crate::stats::{self, DropReason};
use crate::worker::Worker;

/// Half-open sessions past `capacity / EMBRYONIC_SHARE` make room for new
/// ones (a tiny table allows up to `EMBRYONIC_MIN`).
const EMBRYONIC_SHARE: u32 = 4;
const EMBRYONIC_MIN: u32 = 16;
/// Past `capacity / PRESSURE_SHARE` half-open sessions expire early.
const PRESSURE_SHARE: u32 = 8;
/// The idle time after which a half-open session expires under pressure.
pub const PRESSURE_SYN_TIMEOUT_MS: u32 = 1_000;
/// Entries looked at to find a half-open session to evict.
const EVICT_BUDGET: u32 = 256;

impl Worker {
    /// Whether half-open sessions are numerous enough to expire early.
    #[inline]
    pub(crate) fn syn_pressure(&self) -> bool {
        self.embryonic() >= u64::from((self.sessions.capacity() / PRESSURE_SHARE).max(1))
    }

    fn embryonic(&self) -> u64 {
        self.stats
            .embryonic
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Room for a new TCP session: past the half-open limit, or in a full
    /// table, a half-open session is evicted for it.
    #[cold]
    pub(crate) fn admit_syn(&mut self) -> Result<(), DropReason> {
        let cap = self.sessions.capacity();
        let full = self.sessions.len() >= cap;
        let limit = (cap / EMBRYONIC_SHARE).max(cap.min(EMBRYONIC_MIN));
        if !full && self.embryonic() < u64::from(limit) {
            return Ok(());
        }
        if self.evict_embryonic(false) {
            return Ok(());
        }
        Err(if full {
            DropReason::SessionTableFull
        } else {
            DropReason::SynFlood
        })
    }

    /// Evicts one half-open session (one holding a SNAT port when
    /// `with_snat_port`); false when the bounded scan found none.
    #[cold]
    pub(crate) fn evict_embryonic(&mut self, with_snat_port: bool) -> bool {
        let pick = |s: &Session4| {
            conntrack::embryonic(s.state, s.proto)
                && (!with_snat_port || s.state & flag::SNAT_PORT != 0)
        };
        let mut cursor = self.evict_cursor;
        let found = self.sessions.find_from(&mut cursor, EVICT_BUDGET, pick);
        self.evict_cursor = cursor;
        let Some(idx) = found else {
            return false;
        };
        self.discard_session(idx);
        stats::inc(&self.stats.embryonic_evicted);
        true
    }

    /// Counts a session entering or leaving the half-open state.
    #[inline]
    pub(crate) fn embryonic_changed(&self, before: Option<u8>, after: Option<u8>, proto: u8) {
        let was = before.is_some_and(|s| conntrack::embryonic(s, proto));
        let is = after.is_some_and(|s| conntrack::embryonic(s, proto));
        match (was, is) {
            (false, true) => stats::inc(&self.stats.embryonic),
            (true, false) => stats::dec(&self.stats.embryonic),
            _ => {}
        }
    }
}
