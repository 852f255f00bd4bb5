//! UDP header (RFC 768).

use core::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::{get_u16, put_u16, Error, Field, Result};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

const PROTO_UDP: u8 = 17;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// A read/write view of a UDP datagram.
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

    /// `Truncated` if shorter than 8 bytes or than the length field;
    /// `Malformed` if the length field is below 8.
    pub fn check_len(&self) -> Result<()> {
        let buf_len = self.buffer.as_ref().len();
        if buf_len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > buf_len {
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

    /// The length field (header + data).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Bytes 8..len.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// The datagram per the length field, clamped to the buffer.
    fn datagram(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..usize::from(self.len()).min(b.len())]
    }

    /// Checks the checksum over the IPv4 pseudo header and bytes 0..len.
    /// A checksum of 0 means "none" and verifies.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let s =
            checksum::pseudo_v4(src, dst, PROTO_UDP, self.len()) + checksum::sum(self.datagram());
        checksum::fold(s) == 0xffff
    }

    /// Checks the checksum over the IPv6 pseudo header and bytes 0..len.
    /// The checksum is mandatory in IPv6: 0 does not verify.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let s = checksum::pseudo_v6(src, dst, PROTO_UDP, u32::from(self.len()))
            + checksum::sum(self.datagram());
        checksum::fold(s) == 0xffff
    }
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
    pub fn set_len(&mut self, len: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    #[inline]
    pub fn set_checksum(&mut self, csum: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM.start, csum);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }

    /// Computes the checksum over the IPv4 pseudo header and bytes 0..len
    /// and stores it; a computed 0 is stored as 0xffff.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let s =
            checksum::pseudo_v4(src, dst, PROTO_UDP, self.len()) + checksum::sum(self.datagram());
        self.set_checksum(nonzero(checksum::finish(s)));
    }

    /// Like [`Self::fill_checksum_v4`] with the IPv6 pseudo header.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let s = checksum::pseudo_v6(src, dst, PROTO_UDP, u32::from(self.len()))
            + checksum::sum(self.datagram());
        self.set_checksum(nonzero(checksum::finish(s)));
    }
}

#[inline]
fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
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
    const DST: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);

    fn dgram() -> &'static [u8] {
        &UDP_DNS_V4[34..]
    }

    #[test]
    fn dns_query() {
        let p = Packet::new_checked(dgram()).unwrap();
        assert_eq!(p.src_port(), 53000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(usize::from(p.len()), dgram().len());
        assert_eq!(p.payload().len(), dgram().len() - 8);
        // DNS id 0xabcd, RD, one question for example.com.
        assert_eq!(&p.payload()[..4], &[0xab, 0xcd, 0x01, 0x00]);
        assert_eq!(&p.payload()[12..20], b"\x07example");
        assert!(p.verify_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(SRC, Ipv4Addr::new(8, 8, 4, 4)));
        let mut b = [0u8; 64];
        let n = dgram().len();
        b[..n].copy_from_slice(dgram());
        let mut q = Packet::new_checked(&mut b[..n]).unwrap();
        let stored = q.checksum();
        q.fill_checksum_v4(SRC, DST);
        assert_eq!(q.checksum(), stored);
        q.set_checksum(0);
        assert!(q.verify_checksum_v4(SRC, Ipv4Addr::new(1, 1, 1, 1)));
    }

    #[test]
    fn errors() {
        for n in 0..dgram().len() {
            assert_eq!(
                Packet::new_checked(&dgram()[..n]).err(),
                Some(Error::Truncated)
            );
        }
        let mut b = [0u8; 64];
        let n = dgram().len();
        b[..n].copy_from_slice(dgram());
        b[4] = 0;
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..n]).err(), Some(Error::Malformed));
        b[5] = 8;
        let p = Packet::new_checked(&b[..n]).unwrap();
        assert!(p.payload().is_empty());
        // Trailing bytes beyond the length field are ignored.
        b[5] = n as u8;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), n - 8);
        assert!(p.verify_checksum_v4(SRC, DST));
    }

    #[test]
    fn computed_zero_sent_as_ffff() {
        // Find a payload word that makes the checksum compute to 0.
        let mut b = [0u8; 10];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(10);
        let s = checksum::pseudo_v4(SRC, DST, 17, 10) + checksum::sum(&[0, 1, 0, 2, 0, 10]);
        // Need fold(s + w) == 0xffff: w = !fold(s).
        let w = !checksum::fold(s);
        p.payload_mut().copy_from_slice(&w.to_be_bytes());
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum_v4(SRC, DST));
        let s6 = Ipv6Addr::LOCALHOST;
        p.fill_checksum_v6(s6, s6);
        assert!(p.verify_checksum_v6(s6, s6));
        assert_ne!(p.checksum(), 0);
    }
}
