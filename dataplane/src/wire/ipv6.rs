//! IPv6 header (RFC 8200) and extension-header walking.

use core::net::Ipv6Addr;

use super::{get_u16, get_u32, put_u16, put_u32, Error, Field, Result};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Maximum number of extension headers [`Packet::upper_layer`] walks.
pub const MAX_EXT_HEADERS: usize = 8;

/// Next-header values of extension headers and pseudo-protocols.
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    /// IPv6 in IPv6 (RFC 2473), and GRE (RFC 7676).
    pub const IPV6: u8 = 41;
    pub const GRE: u8 = 47;
    /// VRRP (RFC 9568).
    pub const VRRP: u8 = 112;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// The link-local address of a port with MAC `mac` (modified EUI-64, RFC
/// 4291), the one the port's kernel interface makes for itself too.
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ])
}

/// The solicited-node multicast address of `ip` (RFC 4291 2.7.1).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet multicast MAC of IPv6 multicast address `ip` (RFC 2464).
pub fn multicast_mac(ip: Ipv6Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// Result of [`Packet::upper_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upper {
    /// Upper-layer protocol (next header after the extension headers); may
    /// also be ESP (50) or No Next Header (59).
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// A fragment header was seen that marks a real fragment (M flag set or
    /// offset nonzero). Atomic fragments (RFC 6946: M = 0, offset 0) do not
    /// count.
    pub fragment: bool,
    /// A fragment header with nonzero offset was seen; `offset` then points
    /// at fragment data, not at an upper-layer header.
    pub non_first_fragment: bool,
    /// The identification of the fragment header of a real fragment (0
    /// when `fragment` is false).
    pub ident: u32,
}

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn addr_at(buf: &[u8], f: Field) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&buf[f]);
    Ipv6Addr::from(o)
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

    /// `Truncated` if shorter than 40 bytes or than 40 + payload length;
    /// `Malformed` if the version is not 6. Longer buffers (padding) are
    /// fine.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        addr_at(self.buffer.as_ref(), field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr_at(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Bytes 40..40+payload_len (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Walks extension headers (hop-by-hop 0, routing 43, fragment 44,
    /// destination options 60, AH 51). Returns the upper-layer protocol and
    /// its offset from the start of the IPv6 header, and whether a fragment
    /// header with nonzero offset was seen. ESP (50) and No Next Header (59)
    /// are returned as the upper protocol. Bounds-checked; at most 8
    /// headers (else Malformed).
    ///
    /// Walking stops at a non-first fragment: what follows its fragment
    /// header is fragment data. Hop-by-hop anywhere but first is
    /// `Malformed`; an extension header running past the payload is
    /// `Truncated`. Safe to call without `check_len`.
    pub fn upper_layer(&self) -> Result<Upper> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let end = HEADER_LEN + usize::from(self.payload_len());
        if end > buf.len() {
            return Err(Error::Truncated);
        }
        self.walk(end)
    }

    /// The walk of [`Packet::upper_layer`] over a packet quoted in an
    /// ICMPv6 error, which ends where the quote does (its payload length
    /// tells what was sent, not what was quoted).
    pub fn quoted_upper_layer(&self) -> Result<Upper> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        self.walk(buf.len().min(HEADER_LEN + usize::from(self.payload_len())))
    }

    /// The extension header walk, within the first `end` bytes.
    fn walk(&self, end: usize) -> Result<Upper> {
        let buf = self.buffer.as_ref();
        let mut nh = self.next_header();
        let mut offset = HEADER_LEN;
        let mut fragment = false;
        let mut non_first_fragment = false;
        let mut ident = 0;
        let mut count = 0;
        loop {
            let hdr_len = match nh {
                next_header::HOP_BY_HOP | next_header::ROUTING | next_header::DEST_OPTS => {
                    if nh == next_header::HOP_BY_HOP && offset != HEADER_LEN {
                        return Err(Error::Malformed);
                    }
                    if offset + 2 > end {
                        return Err(Error::Truncated);
                    }
                    (usize::from(buf[offset + 1]) + 1) * 8
                }
                next_header::AH => {
                    if offset + 2 > end {
                        return Err(Error::Truncated);
                    }
                    (usize::from(buf[offset + 1]) + 2) * 4
                }
                next_header::FRAGMENT => 8,
                _ => break,
            };
            if count == MAX_EXT_HEADERS {
                return Err(Error::Malformed);
            }
            count += 1;
            if offset + hdr_len > end {
                return Err(Error::Truncated);
            }
            let next = buf[offset];
            if nh == next_header::FRAGMENT {
                let off_flags = get_u16(buf, offset + 2);
                let frag_off = off_flags & 0xfff8;
                let more = off_flags & 0x0001 != 0;
                if frag_off != 0 || more {
                    fragment = true;
                    ident = get_u32(buf, offset + 4);
                }
                if frag_off != 0 {
                    non_first_fragment = true;
                    offset += hdr_len;
                    nh = next;
                    break;
                }
            }
            offset += hdr_len;
            nh = next;
        }
        Ok(Upper {
            protocol: nh,
            offset,
            fragment,
            non_first_fragment,
            ident,
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_ver_tc_flow(&mut self, v: u32) {
        put_u32(self.buffer.as_mut(), field::VER_TC_FLOW.start, v);
    }

    /// Sets the version nibble (normally 6).
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[0];
        *b = (*b & 0x0f) | (version << 4);
    }

    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let v = (self.ver_tc_flow() & !0x0ff0_0000) | (u32::from(tc) << 20);
        self.set_ver_tc_flow(v);
    }

    /// Sets the 20-bit flow label (higher bits ignored).
    #[inline]
    pub fn set_flow_label(&mut self, label: u32) {
        let v = (self.ver_tc_flow() & !0x000f_ffff) | (label & 0x000f_ffff);
        self.set_ver_tc_flow(v);
    }

    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    #[inline]
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = nh;
    }

    #[inline]
    pub fn set_hop_limit(&mut self, hl: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hl;
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
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

    fn ip() -> &'static [u8] {
        &TCP_V6_EXT[14..]
    }

    #[test]
    fn header_fields() {
        let p = Packet::new_checked(ip()).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(usize::from(p.payload_len()), ip().len() - 40);
        assert_eq!(p.next_header(), next_header::HOP_BY_HOP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        let u = p.upper_layer().unwrap();
        assert_eq!(
            u,
            Upper {
                protocol: next_header::TCP,
                offset: 56,
                fragment: false,
                non_first_fragment: false,
                ident: 0,
            }
        );
    }

    #[test]
    fn errors() {
        for n in 0..ip().len() {
            assert_eq!(
                Packet::new_checked(&ip()[..n]).err(),
                Some(Error::Truncated)
            );
        }
        let mut b = [0u8; 96];
        b[..ip().len()].copy_from_slice(ip());
        b[0] = 0x46;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
    }

    /// Builds an IPv6 header with `nh` and the given extension bytes.
    fn with_ext(nh: u8, ext: &[u8], buf: &mut [u8; 128]) -> usize {
        let n = HEADER_LEN + ext.len();
        buf[..HEADER_LEN].copy_from_slice(&ip()[..HEADER_LEN]);
        buf[HEADER_LEN..n].copy_from_slice(ext);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_next_header(nh);
        p.set_payload_len(ext.len() as u16);
        n
    }

    #[test]
    fn a_quote_is_walked_to_where_it_ends() {
        let mut buf = [0u8; 128];
        // Destination options, then 4 bytes of TCP; the header claims the
        // 1,000 bytes that were sent.
        let n = with_ext(60, &[6, 0, 1, 4, 0, 0, 0, 0, 0x9c, 0x40, 0, 80], &mut buf);
        let mut p = Packet::new_unchecked(&mut buf[..n]);
        p.set_payload_len(1000);
        assert_eq!(p.upper_layer(), Err(Error::Truncated));
        let u = p.quoted_upper_layer().unwrap();
        assert_eq!((u.protocol, u.offset, u.fragment), (6, 48, false));
        // An extension header the quote cuts is not guessed at.
        let q = Packet::new_unchecked(&buf[..HEADER_LEN + 4]);
        assert_eq!(q.quoted_upper_layer(), Err(Error::Truncated));
    }

    #[test]
    fn ext_chain_errors() {
        let mut buf = [0u8; 128];
        // Hop-by-hop whose length runs past the payload.
        let n = with_ext(0, &[6, 1, 0, 0, 0, 0, 0, 0], &mut buf);
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.upper_layer(), Err(Error::Truncated));
        // Only one byte of an extension header.
        let n = with_ext(60, &[6], &mut buf);
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.upper_layer(), Err(Error::Truncated));
        // Hop-by-hop after destination options.
        let n = with_ext(
            60,
            &[0, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0],
            &mut buf,
        );
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.upper_layer(), Err(Error::Malformed));
        // Nine destination-options headers.
        let mut ext = [0u8; 72];
        for (i, h) in ext.chunks_mut(8).enumerate() {
            h.copy_from_slice(&[if i == 8 { 59 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        let n = with_ext(60, &ext, &mut buf);
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.upper_layer(), Err(Error::Malformed));
        // Eight are fine.
        let n = with_ext(60, &ext[8..], &mut buf);
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let u = p.upper_layer().unwrap();
        assert_eq!((u.protocol, u.offset), (next_header::NO_NEXT, 40 + 64));
        // Unchecked, too short: no panic.
        let p = Packet::new_unchecked(&buf[..39]);
        assert_eq!(p.upper_layer(), Err(Error::Truncated));
        let p = Packet::new_unchecked(&buf[..50]);
        assert_eq!(p.upper_layer(), Err(Error::Truncated));
    }

    #[test]
    fn fragments_ah_esp() {
        let mut buf = [0u8; 128];
        // First fragment (offset 0, M=1) then UDP.
        let n = with_ext(
            44,
            &[17, 0, 0x00, 0x01, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0],
            &mut buf,
        );
        let u = Packet::new_checked(&buf[..n])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(
            (u.protocol, u.offset, u.fragment, u.non_first_fragment),
            (17, 48, true, false)
        );
        // Non-first fragment (offset 185*8) with a routing header that must
        // not be parsed: the fragment data starts with garbage.
        let n = with_ext(
            43,
            &[
                44, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0x05, 0xc8, 0, 0, 0, 7, 0xff, 0xff,
            ],
            &mut buf,
        );
        let u = Packet::new_checked(&buf[..n])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(
            (u.protocol, u.offset, u.fragment, u.non_first_fragment),
            (6, 56, true, true)
        );
        // Atomic fragment: not a fragment.
        let n = with_ext(44, &[58, 0, 0, 0, 0, 0, 0, 1], &mut buf);
        let u = Packet::new_checked(&buf[..n])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(
            (u.protocol, u.offset, u.fragment, u.non_first_fragment),
            (58, 48, false, false)
        );
        // Truncated fragment header.
        let n = with_ext(44, &[58, 0, 0, 0], &mut buf);
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.upper_layer(), Err(Error::Truncated));
        // AH (payload len 4 => (4+2)*4 = 24 bytes) then ESP.
        let mut ext = [0u8; 24];
        ext[0] = 50;
        ext[1] = 4;
        let n = with_ext(51, &ext, &mut buf);
        let u = Packet::new_checked(&buf[..n])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!((u.protocol, u.offset), (next_header::ESP, 64));
        // No extension headers.
        let n = with_ext(17, &[], &mut buf);
        let u = Packet::new_checked(&buf[..n])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!((u.protocol, u.offset, u.fragment), (17, 40, false));
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 48];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version(6);
        p.set_traffic_class(0xb8);
        p.set_flow_label(0xfffff);
        p.set_payload_len(8);
        p.set_next_header(17);
        p.set_hop_limit(255);
        p.set_src_addr(Ipv6Addr::LOCALHOST);
        p.set_dst_addr(Ipv6Addr::UNSPECIFIED);
        p.payload_mut().copy_from_slice(&[9; 8]);
        assert_eq!(&b[..4], &[0x6b, 0x8f, 0xff, 0xff]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0xfffff);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.src_addr(), Ipv6Addr::LOCALHOST);
        assert_eq!(p.dst_addr(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(p.payload(), &[9; 8]);
    }
}
