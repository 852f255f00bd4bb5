//! Internet checksum (RFC 1071) and incremental update (RFC 1624).
//!
//! Partial sums are `u32` values that are congruent, modulo 0xffff, to the
//! ones'-complement sum of the 16-bit big-endian words. [`sum`] returns a
//! value no larger than 0xffff, so tens of thousands of partial sums can be
//! added in a `u32` before [`fold`] / [`finish`].
//!
//! Incremental updates follow RFC 1624 eqn 3, `HC' = ~(~HC + ~m + m')`.
//! Callers handling UDP must skip the update when the checksum is 0 (no
//! checksum) and send a resulting 0 as 0xffff.

use core::net::{Ipv4Addr, Ipv6Addr};

/// Reduces a 64-bit accumulator to at most 0xffff, preserving the value
/// modulo 0xffff (and keeping nonzero values nonzero).
#[inline]
fn reduce64(mut acc: u64) -> u32 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// Ones'-complement partial sum of `data` as 16-bit big-endian words; an odd
/// trailing byte is padded with a zero low byte. Not complemented; the result
/// is at most 0xffff but is meant to be combined with other partial sums and
/// passed to [`fold`] or [`finish`].
///
/// Processes 8 bytes per step, accumulating 32-bit words in a `u64`
/// (2^32 ≡ 1 mod 0xffff, so this equals the 16-bit word sum).
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let hi = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        let lo = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
        acc += u64::from(hi) + u64::from(lo);
    }
    let mut rest = chunks.remainder();
    if rest.len() >= 4 {
        acc += u64::from(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]));
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let Some(&b) = rest.first() {
        acc += u64::from(b) << 8;
    }
    reduce64(acc)
}

/// [`sum`] of an IPv4 header without options: its ten words added in a
/// `u32`, where no carry is lost (at most 10 * 0xffff); not reduced to
/// 0xffff, which [`fold`] does.
#[inline(always)]
pub fn sum20(h: &[u8; 20]) -> u32 {
    (0..10)
        .map(|i| u32::from(u16::from_be_bytes([h[2 * i], h[2 * i + 1]])))
        .sum()
}

/// Folds the carries of a partial sum into 16 bits. Not complemented.
#[inline]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum field value for a partial sum: `!fold(sum)`.
#[inline]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// Partial sum of the IPv4 pseudo header (RFC 793 / RFC 768).
#[inline]
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(proto)
        + u32::from(len)
}

/// Partial sum of the IPv6 pseudo header (RFC 8200 section 8.1).
#[inline]
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, len: u32) -> u32 {
    sum(&src.octets()) + sum(&dst.octets()) + (len >> 16) + (len & 0xffff) + u32::from(proto)
}

/// RFC 1624 eqn 3: checksum after a 16-bit word (at an even offset of the
/// checksummed data) changes from `old` to `new`.
///
/// For a word at an odd offset pass both values byte-swapped.
#[inline]
pub fn adjust16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(s)
}

/// Like [`adjust16`] for a 32-bit value at an even offset (two words).
#[inline]
pub fn adjust32(csum: u16, old: u32, new: u32) -> u16 {
    let s = u32::from(!csum)
        + u32::from(!((old >> 16) as u16))
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xffff);
    !fold(s)
}

/// Like [`adjust16`] for a byte string at an even offset that changes from
/// `old` to `new` (e.g. a 4- or 16-byte address). The two are meant to have
/// equal length; unequal lengths do not panic, each string is then summed
/// as it is (odd trailing byte padded).
#[inline]
pub fn adjust_addr(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut s = u32::from(!csum);
    for w in old.chunks(2) {
        let hi = w[0];
        let lo = w.get(1).copied().unwrap_or(0);
        s += u32::from(!u16::from_be_bytes([hi, lo]));
    }
    s += sum(new);
    // At most 0xffff + 8 * 0xffff + 0xffff for 16-byte addresses; longer
    // inputs are still fine as long as they are below ~65000 words.
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*; deterministic, no extra crates.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn u16(&mut self) -> u16 {
            self.next() as u16
        }
        /// Edge values with high probability.
        fn edgy16(&mut self) -> u16 {
            match self.next() % 8 {
                0 => 0,
                1 => 0xffff,
                2 => 0xfffe,
                3 => 1,
                4 => 0x8000,
                _ => self.u16(),
            }
        }
    }

    /// Straightforward RFC 1071 reference: 16-bit words, fold at the end.
    fn naive_sum(data: &[u8]) -> u32 {
        let mut acc: u64 = 0;
        let mut i = 0;
        while i < data.len() {
            let hi = data[i];
            let lo = if i + 1 < data.len() { data[i + 1] } else { 0 };
            acc += u64::from(u16::from_be_bytes([hi, lo]));
            i += 2;
        }
        reduce64(acc)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 -> sum 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
        assert_eq!(finish(sum(&d)), !0xddf2);
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0xff, 0xff, 0x00, 0x01]), 1);
        assert_eq!(fold(0x0001_fffe), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0), 0);
    }

    #[test]
    fn ipv4_header_example() {
        // Classic example header (checksum field 0xb861).
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(sum(&h)), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(fold(sum(&h)), 0xffff);
    }

    #[test]
    fn fast_sum_matches_naive() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut buf = [0u8; 300];
        for round in 0..2000 {
            let len = (rng.next() % 300) as usize;
            for b in buf.iter_mut().take(len) {
                *b = match round % 3 {
                    0 => 0xff,
                    1 => rng.next() as u8,
                    _ => (rng.next() as u8) | 0xf0,
                };
            }
            let d = &buf[..len];
            assert_eq!(fold(sum(d)), fold(naive_sum(d)), "len {len}");
            assert_eq!(sum(d) % 0xffff, naive_sum(d) % 0xffff);
            assert!(sum(d) <= 0xffff);
            // Splitting at an even offset and adding partial sums is exact.
            let cut = (rng.next() as usize % (len + 1)) & !1;
            assert_eq!(fold(sum(&d[..cut]) + sum(&d[cut..])), fold(sum(d)));
        }
    }

    #[test]
    fn pseudo_headers() {
        let src = Ipv4Addr::new(192, 168, 1, 10);
        let dst = Ipv4Addr::new(10, 0, 0, 1);
        let mut ph = [0u8; 12];
        ph[0..4].copy_from_slice(&src.octets());
        ph[4..8].copy_from_slice(&dst.octets());
        ph[9] = 6;
        ph[10..12].copy_from_slice(&1234u16.to_be_bytes());
        assert_eq!(fold(pseudo_v4(src, dst, 6, 1234)), fold(sum(&ph)));

        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "fe80::abcd:ef01:2345:6789".parse().unwrap();
        let mut ph6 = [0u8; 40];
        ph6[0..16].copy_from_slice(&s6.octets());
        ph6[16..32].copy_from_slice(&d6.octets());
        ph6[32..36].copy_from_slice(&0x0001_0203u32.to_be_bytes());
        ph6[39] = 58;
        assert_eq!(fold(pseudo_v6(s6, d6, 58, 0x0001_0203)), fold(sum(&ph6)));
    }

    /// Recomputes the checksum of `buf` with the checksum at `csum_at`
    /// (even offset) from scratch.
    fn full(buf: &mut [u8], csum_at: usize) -> u16 {
        buf[csum_at] = 0;
        buf[csum_at + 1] = 0;
        let c = finish(sum(buf));
        buf[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
        c
    }

    /// Incremental and full results must be equal, except that a buffer that
    /// is all zero apart from the checksum has full checksum 0xffff while
    /// eqn 3 yields 0x0000 (the same value in ones'-complement arithmetic).
    fn same(incremental: u16, full: u16, buf: &[u8], csum_at: usize) {
        let all_zero = buf
            .iter()
            .enumerate()
            .all(|(i, &b)| b == 0 || i == csum_at || i == csum_at + 1);
        if all_zero {
            assert!(incremental == 0 || incremental == 0xffff);
            assert_eq!(full, 0xffff);
        } else {
            assert_eq!(incremental, full, "buf {buf:02x?}");
        }
    }

    fn random_buf(rng: &mut Rng, buf: &mut [u8]) {
        let mode = rng.next() % 4;
        for b in buf.iter_mut() {
            *b = match mode {
                0 => 0,
                1 => 0xff,
                2 => [0u8, 0xff][(rng.next() & 1) as usize],
                _ => rng.next() as u8,
            };
        }
    }

    #[test]
    fn adjust16_matches_full() {
        let mut rng = Rng(42);
        let mut buf = [0u8; 24];
        for _ in 0..50_000 {
            random_buf(&mut rng, &mut buf);
            let csum_at = 2 * (rng.next() as usize % 12);
            let mut word_at = 2 * (rng.next() as usize % 12);
            if word_at == csum_at {
                word_at = (word_at + 2) % 24;
            }
            let before = full(&mut buf, csum_at);
            let old = u16::from_be_bytes([buf[word_at], buf[word_at + 1]]);
            let new = rng.edgy16();
            buf[word_at..word_at + 2].copy_from_slice(&new.to_be_bytes());
            let inc = adjust16(before, old, new);
            let after = full(&mut buf, csum_at);
            same(inc, after, &buf, csum_at);
            // The updated packet verifies (unless all zero, see `same`).
            buf[csum_at..csum_at + 2].copy_from_slice(&inc.to_be_bytes());
            if buf.iter().any(|&b| b != 0) {
                assert_eq!(fold(sum(&buf)), 0xffff);
            }
        }
    }

    #[test]
    fn adjust16_odd_offset_swapped() {
        let mut rng = Rng(7);
        let mut buf = [0u8; 21];
        for _ in 0..20_000 {
            random_buf(&mut rng, &mut buf);
            buf[0] = 0x45; // never all zero
            let csum_at = 10;
            let at = [1usize, 3, 5, 13, 15, 19][rng.next() as usize % 6];
            let before = full(&mut buf, csum_at);
            let old = u16::from_be_bytes([buf[at], buf[at + 1]]);
            let new = rng.edgy16();
            buf[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let inc = adjust16(before, old.swap_bytes(), new.swap_bytes());
            assert_eq!(inc, full(&mut buf, csum_at));
        }
    }

    #[test]
    fn adjust32_and_addr_match_full() {
        let mut rng = Rng(0xdead_beef);
        let mut buf = [0u8; 40];
        for i in 0..50_000 {
            random_buf(&mut rng, &mut buf);
            let csum_at = 2 * (rng.next() as usize % 4); // 0..8
            let before = full(&mut buf, csum_at);
            if i % 2 == 0 {
                // 32-bit value at an even offset in 8..40.
                let at = 8 + 2 * (rng.next() as usize % 15);
                let old = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
                let new = (u32::from(rng.edgy16()) << 16) | u32::from(rng.edgy16());
                buf[at..at + 4].copy_from_slice(&new.to_be_bytes());
                let inc = adjust32(before, old, new);
                let inc2 = adjust_addr(before, &old.to_be_bytes(), &new.to_be_bytes());
                let after = full(&mut buf, csum_at);
                same(inc, after, &buf, csum_at);
                same(inc2, after, &buf, csum_at);
            } else {
                // 16-byte address at offset 8 or 24.
                let at = if rng.next() & 1 == 0 { 8 } else { 24 };
                let mut old = [0u8; 16];
                old.copy_from_slice(&buf[at..at + 16]);
                let mut new = [0u8; 16];
                random_buf(&mut rng, &mut new);
                buf[at..at + 16].copy_from_slice(&new);
                let inc = adjust_addr(before, &old, &new);
                let after = full(&mut buf, csum_at);
                same(inc, after, &buf, csum_at);
            }
        }
    }

    #[test]
    fn adjust_edge_values() {
        // Exhaustive over old/new edge words and every checksum value that a
        // full computation can yield around them.
        let edges = [0u16, 1, 0x7fff, 0x8000, 0xfffe, 0xffff];
        for &other in &[0x0001u16, 0x1234, 0xfffe, 0xffff, 0x8000] {
            for &old in &edges {
                for &new in &edges {
                    let mut buf = [0u8; 6];
                    buf[0..2].copy_from_slice(&other.to_be_bytes());
                    buf[4..6].copy_from_slice(&old.to_be_bytes());
                    let before = full(&mut buf, 2);
                    buf[4..6].copy_from_slice(&new.to_be_bytes());
                    let after = full(&mut buf, 2);
                    assert_eq!(
                        adjust16(before, old, new),
                        after,
                        "{other:x} {old:x} {new:x}"
                    );
                    let a = adjust_addr(before, &old.to_be_bytes(), &new.to_be_bytes());
                    assert_eq!(a, after);
                }
            }
        }
        // Unequal lengths must not panic.
        let _ = adjust_addr(0x1234, &[1, 2, 3], &[4]);
        let _ = adjust_addr(0x1234, &[], &[4, 5, 6, 7, 8]);
    }
}
