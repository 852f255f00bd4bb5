//! Member health as the workers see it: one word per member, written by the
//! control thread (health checks), read by workers when they choose a member
//! for a new session and when their sweep looks for sessions to reset.
//!
//! It lives outside the configuration snapshot and is indexed by a member id
//! (the member's position in the flat list of every pool's members), so a
//! worker reads it with one relaxed load and nothing on the packet path ever
//! writes it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Health of every configured member.
#[derive(Debug)]
pub struct MemberStates {
    up: Box<[AtomicBool]>,
}

impl MemberStates {
    /// `n` members, all up (a switch serves at once after boot; checks take
    /// members down).
    pub fn new(n: usize) -> MemberStates {
        MemberStates {
            up: (0..n).map(|_| AtomicBool::new(true)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.up.len()
    }

    pub fn is_empty(&self) -> bool {
        self.up.is_empty()
    }

    /// Whether member `id` passes its health check (unknown ids are down).
    #[inline]
    pub fn is_up(&self, id: u32) -> bool {
        self.up
            .get(id as usize)
            .is_some_and(|u| u.load(Ordering::Relaxed))
    }

    /// Sets the health of member `id` (control thread only).
    pub fn set(&self, id: u32, up: bool) {
        if let Some(u) = self.up.get(id as usize) {
            u.store(up, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_down_by_id() {
        let s = MemberStates::new(3);
        assert!(s.is_up(0) && s.is_up(2));
        assert!(!s.is_up(3), "unknown id reads down");
        s.set(1, false);
        assert!(!s.is_up(1) && s.is_up(0) && s.is_up(2));
        s.set(1, true);
        assert!(s.is_up(1));
        s.set(9, false);
        assert_eq!(s.len(), 3);
    }
}
