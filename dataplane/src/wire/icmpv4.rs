//! ICMPv4 (RFC 792, RFC 1191).

use super::checksum;
use super::{get_u16, put_u16, put_u32, Error, Field, Rest, Result};

/// Length of the ICMP header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;

/// Message types.
pub mod kind {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
}

/// Destination-unreachable code "fragmentation needed and DF set".
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Destination-unreachable code "port unreachable".
pub const CODE_PORT_UNREACHABLE: u8 = 3;

mod field {
    use super::{Field, Rest};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const MTU: Field = 6..8;
    pub const REST: Field = 4..8;
    pub const DATA: Rest = 8..;
}

/// A read/write view of an ICMPv4 message.
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

    /// Next-hop MTU of a fragmentation-needed message (bytes 6..8).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::MTU.start)
    }

    /// Bytes 8.. (echo data, or the quoted packet of an error).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Destination unreachable, time exceeded or parameter problem.
    #[inline]
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            kind::DEST_UNREACHABLE | kind::TIME_EXCEEDED | kind::PARAM_PROBLEM
        )
    }

    /// True if the checksum over the whole buffer is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
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
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        put_u16(self.buffer.as_mut(), field::MTU.start, mtu);
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

    /// Computes the checksum over the whole buffer and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref()));
        self.set_checksum(c);
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
    use super::super::{ipv4, udp};
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn echo_request() {
        let p = Packet::new_checked(&ICMP_ECHO_V4[34..]).unwrap();
        assert_eq!(p.msg_type(), kind::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 0x1c46);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data().len(), 56);
        assert!(!p.is_error());
        assert!(p.verify_checksum());
        // Turn it into a reply incrementally: type is the high byte of word 0.
        let mut b = [0u8; 64];
        b.copy_from_slice(&ICMP_ECHO_V4[34..]);
        let mut q = Packet::new_checked(&mut b[..]).unwrap();
        q.set_msg_type(kind::ECHO_REPLY);
        let c = checksum::adjust16(q.checksum(), 0x0800, 0x0000);
        q.set_checksum(c);
        assert!(q.verify_checksum());
        q.fill_checksum();
        assert_eq!(q.checksum(), c);
    }

    #[test]
    fn dest_unreachable_quote() {
        let p = Packet::new_checked(&ICMP_UNREACH_V4[34..]).unwrap();
        assert_eq!(p.msg_type(), kind::DEST_UNREACHABLE);
        assert_eq!(p.code(), CODE_PORT_UNREACHABLE);
        assert!(p.is_error());
        assert!(p.verify_checksum());
        // The quote is a full IPv4 header plus the whole UDP datagram.
        let inner = ipv4::Packet::new_checked(p.data()).unwrap();
        assert_eq!(inner.protocol(), ipv4::proto::UDP);
        assert_eq!(inner.src_addr(), Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(inner.dst_addr(), Ipv4Addr::new(192, 168, 1, 1));
        assert!(inner.verify_checksum());
        let u = udp::Packet::new_checked(inner.payload()).unwrap();
        assert_eq!(u.dst_port(), 53);
        assert_eq!(u.src_port(), 53000);
        // A router quoting only 8 bytes of the datagram: the inner IPv4
        // view reports truncation (total length says more).
        assert_eq!(
            ipv4::Packet::new_checked(&p.data()[..28]).err(),
            Some(Error::Truncated)
        );
        let outer = ipv4::Packet::new_checked(&ICMP_UNREACH_V4[14..]).unwrap();
        assert_eq!(outer.protocol(), ipv4::proto::ICMP);
        assert!(outer.verify_checksum());
    }

    #[test]
    fn frag_needed_build() {
        let mut b = [0u8; 36];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(kind::DEST_UNREACHABLE);
        p.set_code(CODE_FRAG_NEEDED);
        p.set_rest_of_header(0xdead_beef);
        p.set_next_hop_mtu(1400);
        p.data_mut().copy_from_slice(&ICMP_UNREACH_V4[42..70]);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.next_hop_mtu(), 1400);
        assert_eq!(p.echo_ident(), 0xdead);
        assert!(p.verify_checksum());
        assert!(p.is_error());
        let mut e = b;
        let mut q = Packet::new_unchecked(&mut e[..]);
        q.set_echo_ident(5);
        q.set_echo_seq_no(6);
        assert_eq!((q.echo_ident(), q.echo_seq_no()), (5, 6));
        assert!(!q.verify_checksum());
    }

    #[test]
    fn errors() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&ICMP_ECHO_V4[34..34 + n]).err(),
                Some(Error::Truncated)
            );
        }
        let p = Packet::new_checked(&ICMP_ECHO_V4[34..42]).unwrap();
        assert!(p.data().is_empty());
        assert!(!p.verify_checksum());
        // Truncated outer IPv4 (total length says 84).
        assert_eq!(
            ipv4::Packet::new_checked(&ICMP_ECHO_V4[14..90]).err(),
            Some(Error::Truncated)
        );
    }
}
