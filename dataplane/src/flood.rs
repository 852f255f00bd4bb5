//! SYN floods: unconfirmed ("half-open") sessions are bounded, expire early
//! under pressure, and give way to new ones; confirmed sessions are never
//! touched.
//!
//! A spoofed SYN creates a session no real client stands behind. The switch
//! counts a TCP session as unconfirmed until it shows one (the `CONFIRMED`
//! flag of its state), whatever SYN, ACK, FIN or RST it saw meanwhile:
//!
//! - **NAT modes** (both directions pass the switch): the member's SYN-ACK,
//!   then a client ACK that acknowledges it (its ACK number within 64 KB
//!   past the member's sequence number, kept per entry in `handshakes` while
//!   unconfirmed). A blind ACK, sent without seeing the SYN-ACK, does not
//!   count; nor does the member's RST to it, which leaves the session
//!   evictable with its SNAT port.
//! - **DSR modes** (only the client's side passes): nothing a blind sender
//!   could not forge, so time: the client keeps the flow going for
//!   `CONFIRM_AFTER_MS` (one second). Short DSR connections stay unconfirmed
//!   all their life, which costs them nothing unless a flood fills the
//!   unconfirmed share. Under pressure (or with the table full), a confirmed
//!   DSR session whose pool balances by a hash that still picks its member
//!   may be evicted too: its next segment starts a session on that same
//!   member (`resumes`, counted `sessions_resumed`).
//! - **Dest-NAT sessions resumed mid-flow** (a hash method's server, a
//!   segment without a session: `resumes`): the member's answer, an ACK
//!   without RST; to a blind ACK the member answers RST, which closes it.
//! - **UDP**: a member's answer confirms it, or a second of traffic (a
//!   one-way mode, or a flow nobody answers such as syslog). UDP
//!   sessions are never evicted; confirmation only decides whether their
//!   client's persistence entry may push out others.
//!
//! The defence against unconfirmed sessions:
//!
//! - **Bounded.** At most a quarter of the session table may be
//!   unconfirmed. A new SYN beyond that (or into a full table) evicts an
//!   unconfirmed session, found by a bounded scan from a cursor, instead of
//!   being refused. Flood sessions push each other out, and a real client's
//!   SYN always gets in; it is safe once confirmed, a round trip later.
//! - **Early expiry.** Past an eighth of the table, unconfirmed sessions idle
//!   for more than a second expire, whatever `tcp_syn` says. The sweep,
//!   bounded per loop turn, clears them after the flood.
//! - **SNAT ports.** A new session that finds no free SNAT port takes the
//!   port of an unconfirmed session, so a flood at a Both-NAT server cannot
//!   exhaust them.
//!
//! This is the embryonic-limit defence (as in LVS's `drop_entry`, or the
//! kernel's SYN backlog under pressure), not SYN cookies: the switch keeps no
//! sequence numbers in its 32-byte session entry and so cannot proxy the
//! handshake as F5's or DPVS's synproxy do.

use crate::addr::Addr;
use crate::conntrack::{self, flag, tcp as st};
use crate::flow::Family;
use crate::flow::Flow;
use crate::sched::pick::{hash_choice, is_hash};
use crate::session::{Dir, Session};
use crate::shared::Shared;
use crate::stats::{self, DropReason};
use crate::wire::ipv4::proto;
use crate::wire::tcp::flags;
use crate::worker::Worker;
use sluice_config::Forwarding;

/// Unconfirmed sessions past `capacity / EMBRYONIC_SHARE` make room for new
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
        let cap = self.v4.sessions.capacity() + self.v6.sessions.capacity();
        self.embryonic() >= u64::from((cap / PRESSURE_SHARE).max(1))
    }

    fn embryonic(&self) -> u64 {
        self.stats
            .embryonic
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Room for a new TCP session: past the half-open limit, or in a full
    /// table, a half-open session is evicted for it.
    #[cold]
    pub(crate) fn admit_syn<A: Family>(&mut self) -> Result<(), DropReason> {
        let sessions = &A::t(self).sessions;
        let cap = sessions.capacity();
        let full = sessions.len() >= cap;
        let limit = (cap / EMBRYONIC_SHARE).max(cap.min(EMBRYONIC_MIN));
        if !full && self.embryonic() < u64::from(limit) {
            return Ok(());
        }
        if self.evict_embryonic::<A>(false) {
            return Ok(());
        }
        Err(if full {
            DropReason::SessionTableFull
        } else {
            DropReason::SynFlood
        })
    }

    /// Evicts one half-open session (one holding a SNAT port when
    /// `with_snat_port`), or under pressure a DSR session that its pool's
    /// hash method gives back to its member ([`rehashable`]); false when the
    /// bounded scan found none.
    #[cold]
    pub(crate) fn evict_embryonic<A: Family>(&mut self, with_snat_port: bool) -> bool {
        let (worker, syn_pressure) = (self.id, self.syn_pressure);
        let (shared, table) = A::split(self);
        let full = table.sessions.len() >= table.sessions.capacity();
        let pressure = syn_pressure || full;
        let pick = |s: &Session<A>| {
            (conntrack::embryonic(s.state, s.proto) || (pressure && rehashable(shared, worker, s)))
                && (!with_snat_port || s.state & flag::SNAT_PORT != 0)
        };
        let mut cursor = table.evict_cursor;
        let found = table.sessions.find_from(&mut cursor, EVICT_BUDGET, pick);
        table.evict_cursor = cursor;
        let Some(idx) = found else {
            return false;
        };
        self.discard_session::<A>(idx);
        stats::inc(&self.stats.embryonic_evicted);
        true
    }

    /// [`Worker::touch`] for a session not confirmed yet: the one place
    /// that looks for evidence of a real client (module docs) and keeps
    /// what it needs for that in `handshakes`.
    #[cold]
    pub(crate) fn touch_unconfirmed<A: Family>(
        &mut self,
        idx: u32,
        dir: Dir,
        flow: &Flow<A>,
        one_way: bool,
    ) -> Session<A> {
        let now = self.stamp();
        let table = A::t_mut(self);
        let s = *table.sessions.get(idx);
        let before = s.state;
        let mark = &mut table.handshakes[idx as usize];
        let lasted = |mark: u32| now.wrapping_sub(mark) >= conntrack::CONFIRM_AFTER_MS;
        let after = match (s.proto, one_way) {
            // A member's answer confirms a UDP session; so does a second of
            // traffic (one-way modes, and flows nobody answers: syslog).
            (proto::UDP, _) if (!one_way && dir == Dir::Reverse) || lasted(*mark) => {
                before | flag::CONFIRMED
            }
            (proto::TCP, true) => {
                let after = conntrack::update_tcp_one_way(before, flow.tcp_flags);
                if after & st::MASK == st::ESTABLISHED && lasted(*mark) {
                    after | flag::CONFIRMED
                } else {
                    after
                }
            }
            (proto::TCP, false) => {
                let syn_ack = flags::SYN | flags::ACK;
                if dir == Dir::Reverse && flow.tcp_flags & syn_ack == syn_ack {
                    *mark = flow.seq.wrapping_add(1);
                }
                let acked = dir == Dir::Forward
                    && flow.ack.wrapping_sub(*mark) < conntrack::HANDSHAKE_WINDOW;
                let after = conntrack::update_tcp(before, dir, flow.tcp_flags, acked);
                // A session resumed mid-flow: the member's answer shows it
                // holds the connection (to a blind ACK it answers RST).
                let answer = flow.tcp_flags & (flags::ACK | flags::RST | flags::SYN) == flags::ACK;
                if before & st::MASK == st::ESTABLISHED && dir == Dir::Reverse && answer {
                    after | flag::CONFIRMED
                } else {
                    after
                }
            }
            _ => before,
        };
        let confirmed = (after & !before) & flag::CONFIRMED != 0;
        if confirmed && s.proto == proto::TCP && dir == Dir::Forward && !one_way {
            // The handshake is over: the slot keeps the client's first
            // sequence number, where a PROXY header goes (`proxy`).
            A::t_mut(self).handshakes[idx as usize] = flow.seq;
        }
        let s = A::t_mut(self).sessions.get_mut(idx);
        s.state = after;
        let s = *s;
        if after != before {
            self.state_changed(&s, before);
        }
        s
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

/// Whether a TCP segment without a session may start one mid-flow: with a
/// hash method, the member the hash picks is the one the flow had (its
/// session was evicted, or it began on another node behind the same ECMP
/// routers), in the DSR modes, where the switch has no state of the
/// member's to lose, and in Dest-NAT, where the member sees the same
/// addresses from any node. Any segment but a RST.
#[inline]
pub(crate) fn resumes(shared: &Shared, vs: u16, tcp_flags: u8) -> bool {
    tcp_flags & flags::RST == 0
        && shared.service(vs).is_some_and(|v| {
            (v.one_way() || v.forwarding == Forwarding::DestNat) && is_hash(v.method) && !v.retired
        })
}

/// Whether evicting session `s` loses nothing: a DSR session whose pool's
/// hash still picks its member, so its next segment resumes it there.
fn rehashable<A: Addr>(shared: &Shared, worker: u16, s: &Session<A>) -> bool {
    let Some(vs) = shared.service(s.vs) else {
        return false;
    };
    if s.proto != proto::TCP || !vs.one_way() || !resumes(shared, s.vs, 0) {
        return false;
    }
    hash_choice(shared, vs, &s.forward(), worker).is_some_and(|m| {
        let m = &vs.members[usize::from(m)];
        A::of(m.ip) == Some(s.member) && (vs.port == 0 || m.port == s.mport)
    })
}
