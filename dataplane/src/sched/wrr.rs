//! Smooth weighted round robin, as nginx does it
//! (`ngx_http_upstream_get_peer`): heavy members are interleaved with light
//! ones instead of being picked in a burst, and the proportions are exact over
//! every period of `sum(weights)` picks.

/// The running state of one worker's weighted round robin over one pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmoothWrr {
    /// nginx's `current_weight` per member.
    current: Box<[i64]>,
}

impl SmoothWrr {
    /// State for a pool of `members` members (built with the snapshot).
    pub fn new(members: usize) -> SmoothWrr {
        SmoothWrr {
            current: vec![0; members].into_boxed_slice(),
        }
    }

    /// Picks a member. `weight(i)` is member `i`'s effective weight now; 0
    /// means not eligible (down, disabled, draining, full, or filtered out by
    /// the caller) and leaves that member's state untouched, so it resumes
    /// where it was when it becomes eligible again.
    ///
    /// Each eligible member's current weight grows by its weight; the largest
    /// (the lowest index on a tie) is picked and gives back the total of the
    /// eligible weights. `None` when no member is eligible.
    #[inline]
    pub fn pick(&mut self, weight: impl Fn(usize) -> u32) -> Option<usize> {
        let mut total = 0i64;
        let mut best: Option<(usize, i64)> = None;
        for (i, current) in self.current.iter_mut().enumerate() {
            let w = i64::from(weight(i));
            if w == 0 {
                continue;
            }
            *current += w;
            total += w;
            if best.is_none_or(|(_, c)| *current > c) {
                best = Some((i, *current));
            }
        }
        let (i, _) = best?;
        self.current[i] -= total;
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(wrr: &mut SmoothWrr, weights: &[u32], n: usize) -> Vec<usize> {
        (0..n).map(|_| wrr.pick(|i| weights[i]).unwrap()).collect()
    }

    /// nginx's documented example: weights a=5, b=1, c=1 give a a b a c a a.
    #[test]
    fn nginx_sequence_and_period() {
        let mut wrr = SmoothWrr::new(3);
        let w = [5, 1, 1];
        assert_eq!(picks(&mut wrr, &w, 7), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(wrr.current[..], [0, 0, 0], "back to the start each period");
        assert_eq!(picks(&mut wrr, &w, 7), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn exact_proportions_and_interleaving() {
        let mut wrr = SmoothWrr::new(3);
        let seq = picks(&mut wrr, &[1, 2, 3], 600);
        let mut count = [0; 3];
        seq.iter().for_each(|&i| count[i] += 1);
        assert_eq!(count, [100, 200, 300]);
        let longest_run = seq
            .chunk_by(|a, b| a == b)
            .map(<[usize]>::len)
            .max()
            .unwrap();
        assert!(longest_run < 4, "run of {longest_run}");
        assert_eq!(&seq[..6], [2, 1, 0, 2, 1, 2]);
    }

    #[test]
    fn ineligible_member_is_skipped_and_keeps_its_state() {
        let mut wrr = SmoothWrr::new(3);
        let mut w = [5, 1, 1];
        assert_eq!(picks(&mut wrr, &w, 2), [0, 0]);
        let frozen = wrr.current[0];
        w[0] = 0;
        let seq = picks(&mut wrr, &w, 100);
        assert_eq!(seq.iter().filter(|&&i| i == 1).count(), 50);
        assert_eq!(seq.iter().filter(|&&i| i == 2).count(), 50);
        assert_eq!(wrr.current[0], frozen);
        w[0] = 5;
        let seq = picks(&mut wrr, &w, 700);
        let mut count = [0; 3];
        seq.iter().for_each(|&i| count[i] += 1);
        assert_eq!(count, [500, 100, 100], "proportions resume");
    }

    #[test]
    fn none_eligible() {
        let mut wrr = SmoothWrr::new(3);
        assert_eq!(wrr.pick(|_| 0), None);
        assert_eq!(wrr.current[..], [0, 0, 0]);
        assert_eq!(SmoothWrr::new(0).pick(|_| 1), None);
    }

    #[test]
    fn single_member() {
        let mut wrr = SmoothWrr::new(1);
        assert_eq!(picks(&mut wrr, &[7], 3), [0, 0, 0]);
        assert_eq!(wrr.current[0], 0);
    }
}
