//! Least connections and weighted least connections.
//!
//! Plain least connections is [`pick_least`] with `weight(i) = 1` for every
//! eligible member (and 0 for the others): minimising `load / 1` is
//! minimising the load.

/// The member with the least `load / weight` among `0..n`, where `cost(i)`
/// is `Some((load, weight))` for an eligible member (a weight of 0 counts
/// as not eligible) and `None` for the others. One call per member: the
/// caller reads its state and load once.
///
/// Ratios are compared by cross-multiplication in `u128`, so there is no
/// division, no rounding and no overflow. Ties go round robin: the scan
/// starts at `*cursor`, the first minimal member found wins and the cursor
/// moves just past it, so equally loaded members (an idle pool, a burst of
/// new sessions between counter updates) take turns instead of member 0
/// taking them all. `None` when no member is eligible.
#[inline]
pub fn pick_least(
    n: usize,
    cost: impl Fn(usize) -> Option<(u64, u32)>,
    cursor: &mut u32,
) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let start = *cursor as usize % n;
    let mut best: Option<(usize, u64, u32)> = None;
    for step in 0..n {
        let i = if start + step >= n {
            start + step - n
        } else {
            start + step
        };
        let Some((l, w)) = cost(i).filter(|(_, w)| *w > 0) else {
            continue;
        };
        let less = best.is_none_or(|(_, bl, bw)| match w == bw {
            // Plain least connections: every weight is 1.
            true => l < bl,
            false => u128::from(l) * u128::from(bw) < u128::from(bl) * u128::from(w),
        });
        if less {
            best = Some((i, l, w));
        }
    }
    let (i, _, _) = best?;
    *cursor = ((i + 1) % n) as u32;
    Some(i)
}

/// A member's load as IPVS's `lc` and `wlc` schedulers count it
/// (`ip_vs_dest_conn_overhead`): `active * 256 + inactive`. A session that is
/// closing (FIN or RST seen, TIME_WAIT, a UDP flow gone idle) still holds an
/// entry but costs the member next to nothing, so it weighs 1/256 of an
/// established one. Saturates instead of overflowing.
#[inline]
pub fn ipvs_load(active: u64, inactive: u64) -> u64 {
    active.saturating_mul(256).saturating_add(inactive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(loads: &[u64], weights: &[u32], cursor: &mut u32, k: usize) -> Vec<usize> {
        (0..k)
            .map(|_| pick_least(loads.len(), |i| Some((loads[i], weights[i])), cursor).unwrap())
            .collect()
    }

    #[test]
    fn ties_rotate() {
        let mut c = 0;
        assert_eq!(seq(&[0, 0, 0], &[1, 1, 1], &mut c, 5), [0, 1, 2, 0, 1]);
        assert_eq!(c, 2);
        let mut c = 0;
        assert_eq!(seq(&[1, 0, 0, 0], &[1; 4], &mut c, 4), [1, 2, 3, 1]);
        let mut c = 2;
        assert_eq!(seq(&[5, 3, 7, 3], &[1; 4], &mut c, 3), [3, 1, 3]);
    }

    #[test]
    fn cursor_past_the_end_wraps() {
        let mut c = 7;
        assert_eq!(seq(&[0, 0, 0], &[1; 3], &mut c, 1), [1]);
        assert_eq!(c, 2);
    }

    #[test]
    fn weighted_ratio() {
        let mut c = 0;
        // 1/1 against 2/3: the heavier member is the less loaded.
        assert_eq!(seq(&[1, 2], &[1, 3], &mut c, 1), [1]);
        // 1/1 against 3/3: a tie, taken in turn.
        let mut c = 0;
        assert_eq!(seq(&[1, 3], &[1, 3], &mut c, 2), [0, 1]);
        // 2/1 against 5/3 (1.67): member 1.
        assert_eq!(seq(&[2, 5], &[1, 3], &mut c, 1), [1]);
    }

    /// Sessions that never end, loads updated after every pick: the loads
    /// follow the weights exactly.
    #[test]
    fn loads_follow_weights() {
        let mut loads = [0u64; 3];
        let weights = [1u32, 2, 3];
        let mut c = 0;
        for _ in 0..600 {
            let i = pick_least(3, |i| Some((loads[i], weights[i])), &mut c).unwrap();
            loads[i] += 1;
        }
        assert_eq!(loads, [100, 200, 300]);
    }

    #[test]
    fn ineligible_skipped() {
        let mut c = 0;
        assert_eq!(seq(&[0, 9, 9], &[0, 1, 1], &mut c, 3), [1, 2, 1]);
    }

    #[test]
    fn none() {
        let mut c = 0;
        assert_eq!(pick_least(3, |_| Some((0, 0)), &mut c), None);
        assert_eq!(pick_least(3, |_| None, &mut c), None);
        assert_eq!(pick_least(0, |_| Some((0, 1)), &mut c), None);
        assert_eq!(c, 0);
    }

    #[test]
    fn no_overflow_at_the_extremes() {
        let loads = [u64::MAX, u64::MAX - 1];
        let mut c = 0;
        assert_eq!(seq(&loads, &[u32::MAX, u32::MAX], &mut c, 1), [1]);
        assert_eq!(seq(&loads, &[1, u32::MAX], &mut c, 1), [1]);
    }

    #[test]
    fn ipvs_overhead() {
        assert_eq!(ipvs_load(0, 0), 0);
        assert_eq!(ipvs_load(1, 0), 256);
        assert_eq!(ipvs_load(3, 10), 778);
        // 255 closing sessions weigh less than one established.
        assert!(ipvs_load(0, 255) < ipvs_load(1, 0));
        assert_eq!(ipvs_load(u64::MAX / 2, 5), u64::MAX);
    }
}
