//! TCP header (RFC 9293) and MSS clamping.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::{get_u16, get_u32, put_u16, put_u32, Error, Field, Result};

/// Length of a TCP header without options.
pub const MIN_HEADER_LEN: usize = 20;

const PROTO_TCP: u8 = 6;

/// Flag bits of byte 13.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Option kinds.
pub mod option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WSCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMP: u8 = 8;
}

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// A read/write view of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if shorter than 20 bytes or than the header length;
    /// `Malformed` if the data offset is below 5.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    #[inline(always)]
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    #[inline(always)]
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset * 4).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The eight flag bits (see [`flags`]).
    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    #[inline]
    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline]
    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// Option bytes, 20..header_len.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Segment data after the header (to the end of the buffer).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// The MSS option value, if present and the options parse.
    pub fn mss(&self) -> Option<u16> {
        let buf = self.buffer.as_ref();
        find_mss(buf).map(|at| get_u16(buf, at))
    }

    fn pseudo_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        checksum::pseudo_v4(src, dst, PROTO_TCP, self.buffer.as_ref().len() as u16)
    }

    fn pseudo_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u32 {
        checksum::pseudo_v6(src, dst, PROTO_TCP, self.buffer.as_ref().len() as u32)
    }

    /// Checks the checksum over the IPv4 pseudo header and the whole buffer
    /// (the buffer must be exactly the TCP segment).
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let s = self.pseudo_v4(src, dst) + checksum::sum(self.buffer.as_ref());
        checksum::fold(s) == 0xffff
    }

    /// Like [`Self::verify_checksum_v4`] with the IPv6 pseudo header.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let s = self.pseudo_v6(src, dst) + checksum::sum(self.buffer.as_ref());
        checksum::fold(s) == 0xffff
    }
}

/// Walks the option list of the TCP header in `buf` and returns the offset
/// (from the TCP header start) of the MSS value. `None` if there is no MSS
/// option, if there is more than one, or if the options are malformed
/// (bad lengths, running past the header, MSS length != 4). Never panics.
fn find_mss(buf: &[u8]) -> Option<usize> {
    let off = usize::from(*buf.get(field::DATA_OFF)? >> 4) * 4;
    if off < MIN_HEADER_LEN || off > buf.len() {
        return None;
    }
    let opts = &buf[MIN_HEADER_LEN..off];
    let mut i = 0;
    let mut found = None;
    while i < opts.len() {
        match opts[i] {
            option::END => break,
            option::NOP => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind == option::MSS {
                    if len != 4 || found.is_some() {
                        return None;
                    }
                    found = Some(MIN_HEADER_LEN + i + 2);
                }
                i += len;
            }
        }
    }
    found
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        put_u16(self.buffer.as_mut(), field::SRC_PORT.start, port);
    }

    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        put_u16(self.buffer.as_mut(), field::DST_PORT.start, port);
    }

    #[inline]
    pub fn set_seq_number(&mut self, seq: u32) {
        put_u32(self.buffer.as_mut(), field::SEQ_NUM.start, seq);
    }

    #[inline]
    pub fn set_ack_number(&mut self, ack: u32) {
        put_u32(self.buffer.as_mut(), field::ACK_NUM.start, ack);
    }

    /// Sets the data offset to `len / 4`; keeps the low nibble of byte 12.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (((len / 4) as u8) << 4) | (*b & 0x0f);
    }

    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    #[inline]
    pub fn set_window_len(&mut self, win: u16) {
        put_u16(self.buffer.as_mut(), field::WIN_SIZE.start, win);
    }

    #[inline]
    pub fn set_checksum(&mut self, csum: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM.start, csum);
    }

    #[inline]
    pub fn set_urgent_at(&mut self, at: u16) {
        put_u16(self.buffer.as_mut(), field::URGENT.start, at);
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[MIN_HEADER_LEN..hl]
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    /// Finds the MSS option and, if it is larger than `mss`, lowers it and
    /// adjusts the TCP checksum incrementally. Returns Some(old) when
    /// changed. Malformed options -> None, no change.
    ///
    /// Works for MSS options at odd offsets (after a lone NOP). Does not
    /// look at the SYN flag. Never panics, even on an unchecked view.
    pub fn clamp_mss(&mut self, mss: u16) -> Option<u16> {
        let buf = self.buffer.as_mut();
        let at = find_mss(buf)?;
        let old = get_u16(buf, at);
        if old <= mss {
            return None;
        }
        put_u16(buf, at, mss);
        let csum = get_u16(buf, field::CHECKSUM.start);
        let csum = if at % 2 == 0 {
            checksum::adjust16(csum, old, mss)
        } else {
            checksum::adjust16(csum, old.swap_bytes(), mss.swap_bytes())
        };
        put_u16(buf, field::CHECKSUM.start, csum);
        Some(old)
    }

    /// Computes the checksum over the IPv4 pseudo header and the whole
    /// buffer (the buffer must be exactly the TCP segment) and stores it.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let s = self.pseudo_v4(src, dst) + checksum::sum(self.buffer.as_ref());
        self.set_checksum(checksum::finish(s));
    }

    /// Like [`Self::fill_checksum_v4`] with the IPv6 pseudo header.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let s = self.pseudo_v6(src, dst) + checksum::sum(self.buffer.as_ref());
        self.set_checksum(checksum::finish(s));
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples::*;
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 100);
    const DST: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

    fn seg() -> [u8; 40] {
        let mut b = [0u8; 40];
        b.copy_from_slice(&TCP_SYN_V4[34..]);
        b
    }

    #[test]
    fn syn_fields() {
        let b = seg();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 54321);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 0x1a2b_3c4d);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), flags::SYN);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options().len(), 20);
        assert_eq!(&p.options()[..4], &[2, 4, 0x05, 0xb4]);
        assert!(p.payload().is_empty());
        assert_eq!(p.mss(), Some(1460));
        assert!(p.verify_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(SRC, Ipv4Addr::new(93, 184, 216, 35)));
        let stored = p.checksum();
        let mut c = b;
        let mut q = Packet::new_checked(&mut c[..]).unwrap();
        q.fill_checksum_v4(SRC, DST);
        assert_eq!(q.checksum(), stored);
    }

    #[test]
    fn errors() {
        let b = seg();
        for n in 0..b.len() {
            assert_eq!(Packet::new_checked(&b[..n]).err(), Some(Error::Truncated));
        }
        let mut m = b;
        m[12] = 0x40;
        assert_eq!(Packet::new_checked(&m[..]).err(), Some(Error::Malformed));
        m[12] = 0x00;
        assert_eq!(Packet::new_checked(&m[..]).err(), Some(Error::Malformed));
        m[12] = 0xf0;
        assert_eq!(Packet::new_checked(&m[..]).err(), Some(Error::Truncated));
    }

    #[test]
    fn clamp() {
        let mut b = seg();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.clamp_mss(1460), None);
        assert_eq!(p.clamp_mss(1500), None);
        assert_eq!(p.clamp_mss(1400), Some(1460));
        assert_eq!(p.mss(), Some(1400));
        assert!(p.verify_checksum_v4(SRC, DST));
        assert_eq!(p.clamp_mss(1400), None);
        let inc = p.checksum();
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(p.checksum(), inc);
    }

    #[test]
    fn clamp_odd_offset_and_all_values() {
        // NOP, MSS at option offset 1 (odd), NOP NOP, SACK-permitted,
        // END + padding; 32-byte header.
        let mut b = [0u8; 36];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_header_len(32);
        p.set_flags(flags::SYN);
        p.options_mut()
            .copy_from_slice(&[1, 2, 4, 0xff, 0xff, 1, 4, 2, 0, 0, 0, 0]);
        p.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..5000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let old = match i % 4 {
                0 => 0xffff,
                1 => (rng >> 16) as u16,
                _ => rng as u16,
            };
            let new = (rng >> 32) as u16;
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            p.set_seq_number(rng as u32);
            let mut o = [0u8; 12];
            o.copy_from_slice(p.options());
            o[3..5].copy_from_slice(&old.to_be_bytes());
            p.options_mut().copy_from_slice(&o);
            p.fill_checksum_v4(SRC, DST);
            let r = p.clamp_mss(new);
            assert!(p.verify_checksum_v4(SRC, DST));
            if old > new {
                assert_eq!(r, Some(old));
                assert_eq!(p.mss(), Some(new));
            } else {
                assert_eq!(r, None);
                assert_eq!(p.mss(), Some(old));
            }
            let inc = p.checksum();
            p.fill_checksum_v4(SRC, DST);
            assert_eq!(inc, p.checksum());
        }
    }

    #[test]
    fn clamp_malformed_options() {
        let base = seg();
        let cases: [&[u8]; 6] = [
            // MSS with length 3.
            &[2, 3, 0x05, 0xb4, 1, 1, 1, 1],
            // Zero-length option before MSS.
            &[8, 0, 2, 4, 0x05, 0xb4, 1, 1],
            // Option running past the header after MSS.
            &[2, 4, 0x05, 0xb4, 1, 1, 3, 9],
            // Kind without length byte at the end.
            &[2, 4, 0x05, 0xb4, 1, 1, 1, 3],
            // Two MSS options.
            &[2, 4, 0x05, 0xb4, 2, 4, 0x05, 0xb4],
            // No MSS at all.
            &[1, 1, 4, 2, 0, 2, 4, 0xff],
        ];
        for opts in cases {
            let mut b = [0u8; 28];
            b[..20].copy_from_slice(&base[..20]);
            b[20..].copy_from_slice(opts);
            b[12] = 0x70;
            let before = b;
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            assert_eq!(p.clamp_mss(536), None, "{opts:?}");
            assert_eq!(b, before);
        }
        // Unchecked garbage: no panic.
        let mut g = [0xffu8; 21];
        assert_eq!(Packet::new_unchecked(&mut g[..]).clamp_mss(1), None);
        let mut g = [0u8; 5];
        assert_eq!(Packet::new_unchecked(&mut g[..]).clamp_mss(1), None);
        // END stops parsing: garbage after it is padding.
        let mut b = [0u8; 28];
        b[..20].copy_from_slice(&base[..20]);
        b[20..].copy_from_slice(&[2, 4, 0x05, 0xb4, 0, 0xff, 0xff, 0xff]);
        b[12] = 0x70;
        assert_eq!(
            Packet::new_checked(&mut b[..]).unwrap().clamp_mss(536),
            Some(1460)
        );
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 24];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(443);
        p.set_dst_port(50000);
        p.set_seq_number(0xffff_fffe);
        p.set_ack_number(7);
        p.set_header_len(20);
        p.set_flags(flags::ACK | flags::PSH);
        p.set_window_len(512);
        p.set_urgent_at(3);
        p.payload_mut().copy_from_slice(b"ping");
        p.fill_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 443);
        assert_eq!(p.dst_port(), 50000);
        assert_eq!(p.seq_number(), 0xffff_fffe);
        assert_eq!(p.ack_number(), 7);
        assert_eq!(p.flags(), flags::ACK | flags::PSH);
        assert_eq!(p.window_len(), 512);
        assert_eq!(p.urgent_at(), 3);
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST));
    }
}
