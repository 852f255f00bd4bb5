//! Turning a stream of check results into up/down transitions.
//!
//! A target starts up but unconfirmed, so a freshly booted switch serves at
//! once; while unconfirmed one failure takes it down (HAProxy's initial
//! state) and one success confirms it. After that a confirmed up target
//! needs `fall` consecutive failures to go down and a down target `rise`
//! consecutive successes to come up.

/// Rise/fall counter of one target. Pure: no clock, no I/O.
#[derive(Clone, Debug)]
pub struct RiseFall {
    fall: u32,
    rise: u32,
    up: bool,
    confirmed: bool,
    successes: u32,
    failures: u32,
}

impl RiseFall {
    /// Up and unconfirmed. A `fall` or `rise` of 0 counts as 1.
    pub fn new(fall: u32, rise: u32) -> RiseFall {
        RiseFall {
            fall: fall.max(1),
            rise: rise.max(1),
            up: true,
            confirmed: false,
            successes: 0,
            failures: 0,
        }
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Length of the current run of equal results (successes if the last
    /// result was a success, failures otherwise).
    pub fn streak(&self) -> u32 {
        self.successes.max(self.failures)
    }

    /// Feeds one result; returns the new state only on a transition.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        }
        let was_up = self.up;
        self.up = match (self.up, ok) {
            (true, true) => {
                self.confirmed = true;
                true
            }
            (true, false) => self.confirmed && self.failures < self.fall,
            (false, true) => self.successes >= self.rise,
            (false, false) => false,
        };
        if self.up && !was_up {
            // Reaching `rise` is as good a confirmation as the first success.
            self.confirmed = true;
        }
        (self.up != was_up).then_some(self.up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transitions of a fresh counter fed `results` ('+' success, '-'
    /// failure), as a string of the same length: 'U' up, 'D' down, '.' none.
    fn run(fall: u32, rise: u32, results: &str) -> String {
        let mut rf = RiseFall::new(fall, rise);
        results
            .chars()
            .map(|c| match rf.observe(c == '+') {
                Some(true) => 'U',
                Some(false) => 'D',
                None => '.',
            })
            .collect()
    }

    #[test]
    fn unconfirmed_failure_goes_down_at_once() {
        assert_eq!(run(4, 2, "-"), "D");
        assert_eq!(run(4, 2, "---"), "D..");
    }

    #[test]
    fn first_success_confirms_without_a_transition() {
        let mut rf = RiseFall::new(3, 2);
        assert!(rf.is_up());
        assert_eq!(rf.observe(true), None);
        assert!(rf.is_up());
        assert_eq!(run(3, 2, "+--+---"), "......D");
    }

    #[test]
    fn confirmed_needs_fall_consecutive_failures() {
        assert_eq!(run(4, 2, "+----"), "....D");
        assert_eq!(run(1, 1, "+-"), ".D");
    }

    #[test]
    fn down_needs_rise_consecutive_successes() {
        assert_eq!(run(2, 3, "-+++"), "D..U");
        assert_eq!(run(2, 3, "-++-+++"), "D.....U");
        // Back up counts as confirmed: it again takes `fall` failures.
        assert_eq!(run(2, 1, "-+-"), "DU.");
        assert_eq!(run(2, 1, "-+--"), "DU.D");
    }

    #[test]
    fn alternating_results_never_flap() {
        assert_eq!(run(2, 2, "+-+-+-+-+-"), "..........");
        assert_eq!(run(2, 2, "-+-+-+-+-+"), "D.........");
    }

    #[test]
    fn streak_counts_the_current_run() {
        let mut rf = RiseFall::new(2, 2);
        rf.observe(true);
        rf.observe(true);
        assert_eq!(rf.streak(), 2);
        rf.observe(false);
        assert_eq!(rf.streak(), 1);
        assert_eq!(rf.observe(false), Some(false));
        assert_eq!(rf.streak(), 2);
    }

    #[test]
    fn zero_fall_and_rise_count_as_one() {
        assert_eq!(run(0, 0, "+-+"), ".DU");
    }
}
