//! Ethernet II frames and VLAN (802.1Q / 802.1ad) tag walking.

use super::{get_mac, get_u16, put_u16, Error, Field, Mac, Rest, Result};

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// The shortest frame on the wire, without its FCS: shorter ones are padded.
pub const MIN_FRAME_LEN: usize = 60;
/// Length of one VLAN tag (TCI + inner ethertype).
pub const VLAN_TAG_LEN: usize = 4;

/// The broadcast address ff:ff:ff:ff:ff:ff.
pub const BROADCAST: Mac = [0xff; 6];

/// Well-known ethertypes.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use super::{Field, Rest};
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
}

/// True for group addresses (including broadcast): I/G bit set.
#[inline]
pub fn is_multicast(m: &Mac) -> bool {
    m[0] & 0x01 != 0
}

/// True for ff:ff:ff:ff:ff:ff.
#[inline]
pub fn is_broadcast(m: &Mac) -> bool {
    *m == BROADCAST
}

/// Result of [`l3_offset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Info {
    /// Ethertype after all VLAN tags.
    pub ethertype: u16,
    /// Offset of the L3 header from the frame start.
    pub l3_offset: usize,
    /// VLAN id (12 bits) of the outermost tag, `None` if untagged.
    pub vlan: Option<u16>,
}

fn is_vlan_tpid(t: u16) -> bool {
    t == ethertype::VLAN || t == ethertype::QINQ
}

/// Walks up to two VLAN tags (0x8100 / 0x88a8). Returns the inner ethertype,
/// the offset of the L3 header from the frame start, and the outermost VLAN
/// id (None if untagged).
///
/// Errors: `Truncated` if the frame ends inside the header or a tag;
/// `Malformed` if a third tag follows two tags.
pub fn l3_offset(frame: &[u8]) -> Result<L2Info> {
    if frame.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    let mut ethertype = get_u16(frame, field::ETHERTYPE.start);
    let mut offset = HEADER_LEN;
    let mut vlan = None;
    for _ in 0..2 {
        if !is_vlan_tpid(ethertype) {
            break;
        }
        if frame.len() < offset + VLAN_TAG_LEN {
            return Err(Error::Truncated);
        }
        let tci = get_u16(frame, offset);
        if vlan.is_none() {
            vlan = Some(tci & 0x0fff);
        }
        ethertype = get_u16(frame, offset + 2);
        offset += VLAN_TAG_LEN;
    }
    if is_vlan_tpid(ethertype) {
        return Err(Error::Malformed);
    }
    Ok(L2Info {
        ethertype,
        l3_offset: offset,
        vlan,
    })
}

/// A read/write view of an Ethernet II frame (untagged layout; use
/// [`l3_offset`] for tagged frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer and checks its length.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// `Truncated` if shorter than [`HEADER_LEN`].
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> Mac {
        get_mac(self.buffer.as_ref(), field::DESTINATION.start)
    }

    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> Mac {
        get_mac(self.buffer.as_ref(), field::SOURCE.start)
    }

    /// The ethertype field at offset 12 (a TPID if the frame is tagged).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// Everything after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Mac) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: Mac) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr);
    }

    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        put_u16(self.buffer.as_mut(), field::ETHERTYPE.start, ethertype);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples::*;
    use super::*;

    #[test]
    fn arp_frame() {
        let f = Frame::new_checked(&ARP_REQUEST[..]).unwrap();
        assert_eq!(f.dst_addr(), BROADCAST);
        assert_eq!(f.src_addr(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.payload().len(), ARP_REQUEST.len() - HEADER_LEN);
        assert!(is_multicast(&f.dst_addr()));
        assert!(is_broadcast(&f.dst_addr()));
        assert!(!is_multicast(&f.src_addr()));
        assert!(is_multicast(&[0x01, 0x00, 0x5e, 0, 0, 1]));
        let info = l3_offset(&ARP_REQUEST).unwrap();
        assert_eq!(
            info,
            L2Info {
                ethertype: ethertype::ARP,
                l3_offset: 14,
                vlan: None
            }
        );
    }

    #[test]
    fn vlan_frame() {
        let f = Frame::new_checked(&VLAN_UDP[..]).unwrap();
        assert_eq!(f.ethertype(), ethertype::VLAN);
        let info = l3_offset(&VLAN_UDP).unwrap();
        assert_eq!(info.ethertype, ethertype::IPV4);
        assert_eq!(info.l3_offset, 18);
        assert_eq!(info.vlan, Some(100));
    }

    #[test]
    fn qinq_frame() {
        let info = l3_offset(&QINQ_UDP).unwrap();
        assert_eq!(info.ethertype, ethertype::IPV4);
        assert_eq!(info.l3_offset, 22);
        assert_eq!(info.vlan, Some(200));
    }

    #[test]
    fn truncated_and_malformed() {
        assert_eq!(
            Frame::new_checked(&ARP_REQUEST[..13]),
            Err(Error::Truncated)
        );
        assert_eq!(l3_offset(&ARP_REQUEST[..13]), Err(Error::Truncated));
        assert_eq!(l3_offset(&[]), Err(Error::Truncated));
        // Tag header cut.
        assert_eq!(l3_offset(&VLAN_UDP[..17]), Err(Error::Truncated));
        assert_eq!(l3_offset(&QINQ_UDP[..21]), Err(Error::Truncated));
        // Exactly the tags, no L3 bytes: fine, the L3 view reports truncation.
        assert_eq!(l3_offset(&QINQ_UDP[..22]).unwrap().l3_offset, 22);
        // Three tags.
        let mut triple = QINQ_UDP;
        triple[20] = 0x81;
        triple[21] = 0x00;
        assert_eq!(l3_offset(&triple), Err(Error::Malformed));
    }

    #[test]
    fn setters_roundtrip() {
        let mut buf = ARP_REQUEST;
        let mut f = Frame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr([1, 2, 3, 4, 5, 6]);
        f.set_src_addr([7, 8, 9, 10, 11, 12]);
        f.set_ethertype(ethertype::IPV6);
        f.payload_mut()[0] = 0xaa;
        assert_eq!(f.dst_addr(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src_addr(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(f.ethertype(), ethertype::IPV6);
        assert_eq!(f.payload()[0], 0xaa);
        assert_eq!(&f.as_ref()[..6], &[1, 2, 3, 4, 5, 6]);
        let inner = f.into_inner();
        assert_eq!(inner[14], 0xaa);
    }
}
