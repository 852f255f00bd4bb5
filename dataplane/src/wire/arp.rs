//! ARP for Ethernet/IPv4 (RFC 826).

use core::net::Ipv4Addr;

use super::{get_mac, get_u16, put_u16, Error, Field, Mac, Result};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// Hardware type Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type IPv4.
pub const PTYPE_IPV4: u16 = 0x0800;

/// ARP operations.
pub mod op {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

mod field {
    use super::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn ip_at(buf: &[u8], f: Field) -> Ipv4Addr {
    let b = &buf[f];
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
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

    /// `Truncated` if shorter than 28 bytes; `Malformed` unless
    /// htype 1, ptype 0x0800, hlen 6, plen 4.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != PTYPE_IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE.start)
    }

    #[inline]
    pub fn protocol_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PTYPE.start)
    }

    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    #[inline]
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER.start)
    }

    #[inline]
    pub fn sender_hw(&self) -> Mac {
        get_mac(self.buffer.as_ref(), field::SHA.start)
    }

    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::SPA)
    }

    #[inline]
    pub fn target_hw(&self) -> Mac {
        get_mac(self.buffer.as_ref(), field::THA.start)
    }

    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes htype 1, ptype 0x0800, hlen 6, plen 4.
    pub fn fill_header(&mut self) {
        let b = self.buffer.as_mut();
        put_u16(b, field::HTYPE.start, HTYPE_ETHERNET);
        put_u16(b, field::PTYPE.start, PTYPE_IPV4);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    #[inline]
    pub fn set_operation(&mut self, op: u16) {
        put_u16(self.buffer.as_mut(), field::OPER.start, op);
    }

    #[inline]
    pub fn set_sender_hw(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&mac);
    }

    #[inline]
    pub fn set_sender_ip(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&ip.octets());
    }

    #[inline]
    pub fn set_target_hw(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&mac);
    }

    #[inline]
    pub fn set_target_ip(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&ip.octets());
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

    fn arp_bytes() -> &'static [u8] {
        &ARP_REQUEST[14..]
    }

    #[test]
    fn parse_request() {
        let p = Packet::new_checked(arp_bytes()).unwrap();
        assert_eq!(p.operation(), op::REQUEST);
        assert_eq!(p.sender_hw(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(192, 168, 122, 10));
        assert_eq!(p.target_hw(), [0; 6]);
        assert_eq!(p.target_ip(), Ipv4Addr::new(192, 168, 122, 1));
    }

    #[test]
    fn errors() {
        for n in 0..PACKET_LEN {
            assert_eq!(
                Packet::new_checked(&arp_bytes()[..n]).err(),
                Some(Error::Truncated)
            );
        }
        for (at, v) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = [0u8; PACKET_LEN];
            b.copy_from_slice(&arp_bytes()[..PACKET_LEN]);
            b[at] = v;
            assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        }
    }

    #[test]
    fn build_reply() {
        let mut b = [0u8; PACKET_LEN];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_header();
        p.set_operation(op::REPLY);
        p.set_sender_hw([0x02, 0, 0, 0, 0, 1]);
        p.set_sender_ip(Ipv4Addr::new(192, 168, 122, 1));
        p.set_target_hw([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        p.set_target_ip(Ipv4Addr::new(192, 168, 122, 10));
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), op::REPLY);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(192, 168, 122, 1));
        assert_eq!(p.target_hw(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(
            &b[..8],
            &[0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02][..]
        );
    }
}
