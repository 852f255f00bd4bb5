//! ICMPv6 (RFC 4443, RFC 4861 message types).

use core::net::Ipv6Addr;

use super::checksum;
use super::{get_u16, get_u32, put_u16, put_u32, Error, Field, Rest, Result};

/// Length of the ICMPv6 header (type, code, checksum, 4 more bytes).
pub const HEADER_LEN: usize = 8;

const PROTO_ICMPV6: u8 = 58;

/// Destination unreachable code: port unreachable (RFC 4443 3.1).
pub const CODE_PORT_UNREACHABLE: u8 = 4;

/// Message types.
pub mod kind {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

mod field {
    use super::{Field, Rest};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const MTU: Field = 4..8;
    pub const REST: Field = 4..8;
    pub const DATA: Rest = 8..;
}

/// A read/write view of an ICMPv6 message.
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

    /// `Truncated` if shorter than 8 bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// MTU of a packet-too-big message (bytes 4..8).
    #[inline]
    pub fn mtu(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::MTU.start)
    }

    /// Bytes 8.. (echo data, the quoted packet of an error, or the target
    /// address and options of neighbor discovery).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Error messages are types 0..=127.
    #[inline]
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// Checks the checksum over the IPv6 pseudo header and the whole buffer
    /// (the buffer must be exactly the ICMPv6 message).
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let s = checksum::pseudo_v6(src, dst, PROTO_ICMPV6, b.len() as u32) + checksum::sum(b);
        checksum::fold(s) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[field::TYPE] = t;
    }

    #[inline]
    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }

    #[inline]
    pub fn set_checksum(&mut self, csum: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM.start, csum);
    }

    #[inline]
    pub fn set_echo_ident(&mut self, id: u16) {
        put_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, id);
    }

    #[inline]
    pub fn set_echo_seq_no(&mut self, seq: u16) {
        put_u16(self.buffer.as_mut(), field::ECHO_SEQNO.start, seq);
    }

    #[inline]
    pub fn set_mtu(&mut self, mtu: u32) {
        put_u32(self.buffer.as_mut(), field::MTU.start, mtu);
    }

    /// Bytes 4..8 as one big-endian word.
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        put_u32(self.buffer.as_mut(), field::REST.start, v);
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes the checksum over the IPv6 pseudo header and the whole
    /// buffer and stores it.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let s = checksum::pseudo_v6(src, dst, PROTO_ICMPV6, b.len() as u32) + checksum::sum(b);
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
    use super::super::ipv6;
    use super::super::samples::*;
    use super::*;

    #[test]
    fn echo_request_v6() {
        let ip = ipv6::Packet::new_checked(&ICMP_ECHO_V6[14..]).unwrap();
        let u = ip.upper_layer().unwrap();
        assert_eq!((u.protocol, u.offset), (58, 40));
        let p = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(p.msg_type(), kind::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 0x2a2b);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"abcdefghijklmnop");
        assert!(!p.is_error());
        assert!(p.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert!(!p.verify_checksum(ip.dst_addr(), Ipv6Addr::LOCALHOST));
        let mut b = [0u8; 24];
        b.copy_from_slice(ip.payload());
        let mut q = Packet::new_checked(&mut b[..]).unwrap();
        let stored = q.checksum();
        q.fill_checksum(ip.src_addr(), ip.dst_addr());
        assert_eq!(q.checksum(), stored);
    }

    #[test]
    fn packet_too_big() {
        let src: Ipv6Addr = "2001:db8::fe".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut b = [0u8; 56];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(kind::PACKET_TOO_BIG);
        p.set_code(0);
        p.set_rest_of_header(0);
        p.set_mtu(1280);
        p.data_mut().copy_from_slice(&TCP_V6_EXT[14..62]);
        p.fill_checksum(src, dst);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_error());
        assert_eq!(p.mtu(), 1280);
        assert!(p.verify_checksum(src, dst));
        let mut e = b;
        let mut q = Packet::new_unchecked(&mut e[..]);
        q.set_echo_ident(1);
        q.set_echo_seq_no(2);
        assert_eq!(q.mtu(), 0x0001_0002);
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&b[..n]).err(), Some(Error::Truncated));
        }
    }
}
