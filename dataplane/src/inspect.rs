//! Sessions seen from the control thread: `sluicectl sessions` lists them
//! and `sluicectl sessions flush` removes them. Sessions belong to their
//! worker alone, so the control thread asks: each request covers a bounded
//! slice of the worker's table, answered between two bursts, into a buffer
//! the control thread allocated (the worker never allocates for it).

use crate::addr::Addr;
use crate::flow::{Family, Table};
use crate::session::Session;
use crate::worker::Worker;
use std::net::{IpAddr, SocketAddr};

/// Which sessions a request is about; `None` fields match everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Index of the virtual server (`Shared::services`).
    pub vs: Option<u16>,
    pub member: Option<IpAddr>,
    pub member_port: Option<u16>,
    pub client: Option<IpAddr>,
}

impl SessionFilter {
    #[inline]
    pub fn matches<A: Addr>(&self, s: &Session<A>) -> bool {
        self.vs.is_none_or(|v| v == s.vs)
            && self.member.is_none_or(|m| A::of(m) == Some(s.member))
            && self.member_port.is_none_or(|p| p == s.mport)
            && self.client.is_none_or(|c| A::of(c) == Some(s.client))
    }
}

/// One session as `sluicectl sessions` shows it, of either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub member: SocketAddr,
    /// The client-side address the member sees (the client's without SNAT).
    pub snat: SocketAddr,
    pub vs: u16,
    pub proto: u8,
    pub state: u8,
    pub last_seen: u32,
}

impl<A: Addr> From<&Session<A>> for SessionView {
    fn from(s: &Session<A>) -> SessionView {
        let ep = |a: A, p: u16| SocketAddr::new(a.ip().into(), p);
        SessionView {
            client: ep(s.client, s.cport),
            vip: ep(s.vip, s.vport),
            member: ep(s.member, s.mport),
            snat: ep(s.snat, s.sport),
            vs: s.vs,
            proto: s.proto,
            state: s.state,
            last_seen: s.last_seen,
        }
    }
}

impl SessionView {
    /// The session back, as its worker has it (`None` if its addresses are
    /// not all of one family, which a worker never lists).
    pub fn session(&self) -> Option<crate::worker::AnySession> {
        use crate::worker::AnySession;
        match self.client.ip() {
            IpAddr::V4(_) => self.of::<u32>().map(AnySession::V4),
            IpAddr::V6(_) => self.of::<u128>().map(AnySession::V6),
        }
    }

    fn of<A: Addr>(&self) -> Option<Session<A>> {
        Some(Session {
            client: A::of(self.client.ip())?,
            vip: A::of(self.vip.ip())?,
            member: A::of(self.member.ip())?,
            snat: A::of(self.snat.ip())?,
            cport: self.client.port(),
            vport: self.vip.port(),
            mport: self.member.port(),
            sport: self.snat.port(),
            last_seen: self.last_seen,
            vs: self.vs,
            proto: self.proto,
            state: self.state,
        })
    }
}

/// One slice of work for a worker.
#[derive(Debug)]
pub struct Inspect {
    pub filter: SessionFilter,
    /// Remove the matching sessions instead of listing them.
    pub flush: bool,
    /// First table index of the slice; the worker sets it to where the next
    /// slice starts, or to `u32::MAX` when the table is done.
    pub cursor: u32,
    /// Matching sessions (listing), up to the buffer's capacity.
    pub found: Vec<SessionView>,
    /// Sessions removed (flush).
    pub removed: u32,
}

/// Table entries a worker examines per request.
pub const SLICE: u32 = 4096;

impl Worker {
    /// Serves one slice of `req`: at most [`SLICE`] entries, and never more
    /// matches than `req.found` has room for. The cursor runs over the
    /// IPv4 table, then on over the IPv6 one.
    pub fn inspect(&mut self, req: &mut Inspect) {
        let cap4 = self.v4.sessions.capacity();
        let cap = cap4.saturating_add(self.v6.sessions.capacity());
        if req.cursor < cap4 {
            req.cursor = self.inspect_table::<u32>(req, 0);
        } else if req.cursor < cap {
            req.cursor = self.inspect_table::<u128>(req, cap4);
        }
        if req.cursor >= cap {
            req.cursor = u32::MAX;
        }
    }

    /// One slice of `req` over table `A`, whose first index is `base` in
    /// the cursor's numbering; returns where the next slice starts.
    fn inspect_table<A: Family>(&mut self, req: &mut Inspect, base: u32) -> u32 {
        let cap = A::t(self).sessions.capacity();
        let start = req.cursor - base;
        let end = start.saturating_add(SLICE).min(cap);
        let mut idx = start;
        while idx < end {
            let table: &Table<A> = A::t(self);
            if let Some(s) = table.sessions.live(idx).filter(|s| req.filter.matches(*s)) {
                if req.flush {
                    self.remove_session::<A>(idx);
                    req.removed += 1;
                } else if req.found.len() < req.found.capacity() {
                    req.found.push(s.into());
                } else {
                    break;
                }
            }
            idx += 1;
        }
        base + idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_session_comes_back_whole() {
        let s = crate::session::Session6 {
            client: 1,
            vip: 2,
            member: 3,
            snat: 4,
            cport: 5,
            vport: 6,
            mport: 7,
            sport: 8,
            last_seen: 9,
            vs: 10,
            proto: 17,
            state: 0x80,
        };
        let v = SessionView::from(&s);
        assert_eq!(v.session(), Some(crate::worker::AnySession::V6(s)));
    }

    #[test]
    fn filter_fields_each_narrow() {
        let s = crate::session::Session4 {
            client: 1,
            member: 2,
            mport: 80,
            vs: 3,
            ..Default::default()
        };
        assert!(SessionFilter::default().matches(&s));
        let f = |vs, member, member_port, client| SessionFilter {
            vs,
            member,
            member_port,
            client,
        };
        let ip = |n: u32| Some(IpAddr::from(std::net::Ipv4Addr::from(n)));
        assert!(f(Some(3), ip(2), Some(80), ip(1)).matches(&s));
        assert!(!f(Some(4), None, None, None).matches(&s));
        assert!(!f(None, ip(9), None, None).matches(&s));
        assert!(!f(None, ip(2), Some(81), None).matches(&s));
        assert!(!f(None, None, None, ip(7)).matches(&s));
        let v6 = Some("::2".parse::<IpAddr>().unwrap());
        assert!(!f(None, v6, None, None).matches(&s), "another family");
    }
}
