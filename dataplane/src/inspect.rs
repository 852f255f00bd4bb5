//! Sessions seen from the control thread: `sluicectl sessions` lists them
//! and `sluicectl sessions flush` removes them. Sessions belong to their
//! worker alone, so the control thread asks: each request covers a bounded
//! slice of the worker's table, answered between two bursts, into a buffer
//! the control thread allocated (the worker never allocates for it).

use crate::session::Session4;
use crate::worker::Worker;

/// Which sessions a request is about; `None` fields match everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Index of the virtual server (`Shared::services`).
    pub vs: Option<u16>,
    pub member: Option<u32>,
    pub member_port: Option<u16>,
    pub client: Option<u32>,
}

impl SessionFilter {
    #[inline]
    pub fn matches(&self, s: &Session4) -> bool {
        self.vs.is_none_or(|v| v == s.vs)
            && self.member.is_none_or(|m| m == s.member)
            && self.member_port.is_none_or(|p| p == s.mport)
            && self.client.is_none_or(|c| c == s.client)
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
    pub found: Vec<Session4>,
    /// Sessions removed (flush).
    pub removed: u32,
}

/// Table entries a worker examines per request.
pub const SLICE: u32 = 4096;

impl Worker {
    /// Serves one slice of `req`: at most [`SLICE`] entries, and never more
    /// matches than `req.found` has room for.
    pub fn inspect(&mut self, req: &mut Inspect) {
        let cap = self.v4.sessions.capacity();
        let end = req.cursor.saturating_add(SLICE).min(cap);
        let mut idx = req.cursor;
        while idx < end {
            if let Some(s) = self.v4.sessions.live(idx) {
                if req.filter.matches(s) {
                    if req.flush {
                        self.remove_session::<u32>(idx);
                        req.removed += 1;
                    } else if req.found.len() < req.found.capacity() {
                        req.found.push(*s);
                    } else {
                        break;
                    }
                }
            }
            idx += 1;
        }
        req.cursor = if idx >= cap { u32::MAX } else { idx };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_fields_each_narrow() {
        let s = Session4 {
            client: 1,
            member: 2,
            mport: 80,
            vs: 3,
            ..Session4::default()
        };
        assert!(SessionFilter::default().matches(&s));
        let f = |vs, member, member_port, client| SessionFilter {
            vs,
            member,
            member_port,
            client,
        };
        assert!(f(Some(3), Some(2), Some(80), Some(1)).matches(&s));
        assert!(!f(Some(4), None, None, None).matches(&s));
        assert!(!f(None, Some(9), None, None).matches(&s));
        assert!(!f(None, Some(2), Some(81), None).matches(&s));
        assert!(!f(None, None, None, Some(7)).matches(&s));
    }
}
