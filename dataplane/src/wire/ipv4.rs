//! IPv4 header (RFC 791).

use core::net::Ipv4Addr;

use super::checksum;
use super::{get_u16, put_u16, Error, Field, Result};

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// IP protocol numbers.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    pub const IPV6_ICMP: u8 = 58;
    /// VRRP (RFC 9568).
    pub const VRRP: u8 = 112;
}

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn addr_at(buf: &[u8], f: Field) -> Ipv4Addr {
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

    /// Buffer shorter than 20 bytes: `Truncated`; version != 4 or ihl < 5 or
    /// header length > total length: `Malformed`; total length > buffer:
    /// `Truncated`. A buffer longer than the total length (Ethernet padding)
    /// is fine.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 || self.header_len() < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        let total = usize::from(self.total_len());
        if self.header_len() > total {
            return Err(Error::Malformed);
        }
        if total > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The whole DSCP/ECN byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    #[inline]
    fn flg_off(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLG_OFF.start)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flg_off() & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flg_off() & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flg_off() & OFFSET_MASK) << 3
    }

    /// MF set or offset nonzero.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flg_off() & (FLAG_MF | OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        addr_at(self.buffer.as_ref(), field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr_at(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Options: bytes 20..header_len.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// The payload, header_len..total_len (Ethernet padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// True if the header checksum is valid.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        let (b, hl) = (self.buffer.as_ref(), self.header_len());
        // A header without options, nearly every one: ten words, unrolled.
        let sum = match b.first_chunk::<20>() {
            Some(h) if hl == 20 => checksum::sum20(h),
            _ => checksum::sum(&b[..hl]),
        };
        checksum::fold(sum) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes version 4 and IHL = `len / 4`.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0f);
    }

    /// Sets DSCP (6 bits), keeps ECN.
    #[inline]
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (dscp << 2) | (*b & 0x03);
    }

    /// Sets ECN (2 bits), keeps DSCP.
    #[inline]
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & !0x03) | (ecn & 0x03);
    }

    /// Sets the whole DSCP/ECN byte.
    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = tos;
    }

    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        put_u16(self.buffer.as_mut(), field::IDENT.start, ident);
    }

    /// Sets DF, MF and the fragment offset (in bytes; the low 3 bits are
    /// dropped).
    #[inline]
    pub fn set_flags_frag(&mut self, dont_frag: bool, more: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more {
            v |= FLAG_MF;
        }
        put_u16(self.buffer.as_mut(), field::FLG_OFF.start, v);
    }

    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    #[inline]
    pub fn set_protocol(&mut self, proto: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = proto;
    }

    #[inline]
    pub fn set_checksum(&mut self, csum: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM.start, csum);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::finish(checksum::sum(&self.buffer.as_ref()[..hl]));
        self.set_checksum(c);
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[MIN_HEADER_LEN..hl]
    }

    /// The payload, header_len..total_len.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let tl = usize::from(self.total_len());
        &mut self.buffer.as_mut()[hl..tl]
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

    #[test]
    fn syn_header() {
        let p = Packet::new_checked(&TCP_SYN_V4[14..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.tos(), 0);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), proto::TCP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(93, 184, 216, 34));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 40);
        assert!(p.options().is_empty());
    }

    #[test]
    fn padding_excluded() {
        // The ARP-sized minimum frame: the ICMP echo is not padded, but a
        // 60-byte frame carrying a 40-byte TCP ACK would be. Emulate padding.
        let mut buf = [0u8; 80];
        let n = TCP_SYN_V4.len() - 14;
        buf[..n].copy_from_slice(&TCP_SYN_V4[14..]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 40);
    }

    #[test]
    fn errors() {
        let ip = &TCP_SYN_V4[14..];
        for n in 0..ip.len() {
            assert_eq!(
                Packet::new_checked(&ip[..n]).err(),
                Some(Error::Truncated),
                "{n}"
            );
        }
        let mut b = [0u8; 60];
        b.copy_from_slice(ip);
        b[0] = 0x65; // version 6
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        b[0] = 0x44; // ihl 4
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        b[0] = 0x4f; // ihl 15 = 60 bytes, total 60: ok
        assert!(Packet::new_checked(&b[..]).is_ok());
        b[3] = 59; // header longer than total length
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        b[0] = 0x45;
        b[3] = 61; // total length beyond buffer
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
        b[3] = 60;
        b[11] ^= 1;
        assert!(!Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn build_and_fragments() {
        let mut b = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_header_len(24);
        p.set_dscp(46);
        p.set_ecn(2);
        p.set_total_len(28);
        p.set_ident(0xbeef);
        p.set_flags_frag(false, true, 1480);
        p.set_ttl(3);
        p.set_protocol(proto::UDP);
        p.set_src_addr(Ipv4Addr::new(10, 0, 0, 1));
        p.set_dst_addr(Ipv4Addr::new(10, 0, 0, 2));
        p.options_mut().copy_from_slice(&[0x94, 0x04, 0x00, 0x00]);
        p.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 2);
        assert_eq!(p.tos(), 46 << 2 | 2);
        assert_eq!(p.ident(), 0xbeef);
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment());
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert!(p.verify_checksum());
        // Last fragment: MF clear but offset nonzero.
        let mut b2 = b;
        let mut q = Packet::new_unchecked(&mut b2[..]);
        q.set_flags_frag(true, false, 8 * 0x1fff);
        assert!(q.is_fragment());
        assert!(q.dont_frag());
        assert_eq!(q.frag_offset(), 65528);
        q.set_flags_frag(true, false, 0);
        assert!(!q.is_fragment());
        q.set_tos(0);
        assert_eq!(q.dscp(), 0);
    }

    #[test]
    fn incremental_ttl_and_addr_match_fill() {
        let mut b = [0u8; 60];
        b.copy_from_slice(&TCP_SYN_V4[14..]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        // TTL decrement: TTL is the high byte of the word at 8.
        let old = u16::from_be_bytes([p.ttl(), p.protocol()]);
        p.set_ttl(p.ttl() - 1);
        let new = u16::from_be_bytes([p.ttl(), p.protocol()]);
        let c = checksum::adjust16(p.checksum(), old, new);
        p.set_checksum(c);
        assert!(p.verify_checksum());
        let old_dst = p.dst_addr();
        let new_dst = Ipv4Addr::new(10, 1, 2, 3);
        p.set_dst_addr(new_dst);
        let c = checksum::adjust_addr(p.checksum(), &old_dst.octets(), &new_dst.octets());
        p.set_checksum(c);
        assert!(p.verify_checksum());
        let inc = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), inc);
    }
}
