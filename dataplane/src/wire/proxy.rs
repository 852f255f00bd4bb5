//! The PROXY protocol version 2 header (HAProxy's `proxy-protocol.txt`,
//! section 2.2): what a member reading it learns of the connection the
//! switch passes on, the client's address and port and the VIP's, in front
//! of the client's first byte. Binary, fixed length per family.

/// The 12 bytes every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];

/// Version 2 (high nibble) and the command: PROXY (a relayed connection)
/// or LOCAL (the sender's own, a health check: addresses to be ignored).
const V2_PROXY: u8 = 0x21;
const V2_LOCAL: u8 = 0x20;
/// Address family and transport: TCP over IPv4, TCP over IPv6, unspecified.
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;
const UNSPEC: u8 = 0x00;

/// Bytes before the address block.
const FIXED: usize = 16;

/// The length of a PROXY header for a connection of IPv6 (`v6`) or IPv4:
/// the fixed part and two addresses and two ports.
#[inline]
pub const fn len(v6: bool) -> usize {
    match v6 {
        true => FIXED + 2 * 16 + 4,
        false => FIXED + 2 * 4 + 4,
    }
}

/// The LOCAL header a health check sends first: no addresses, so the
/// member takes the connection for what it is (the switch's own).
pub const LOCAL: [u8; FIXED] = {
    let mut h = [0u8; FIXED];
    let mut i = 0;
    while i < SIGNATURE.len() {
        h[i] = SIGNATURE[i];
        i += 1;
    }
    h[12] = V2_LOCAL;
    h[13] = UNSPEC;
    h
};

/// Writes the PROXY header of a TCP connection from `src` to `dst` (each
/// an address in network order, 4 or 16 bytes, and a port) into the first
/// [`len`] bytes of `out`; returns that length. Panics if `out` is shorter
/// or the addresses are of different families (the caller's bug).
pub fn write(out: &mut [u8], src: (&[u8], u16), dst: (&[u8], u16)) -> usize {
    let v6 = src.0.len() == 16;
    assert_eq!(src.0.len(), dst.0.len(), "one family");
    let n = len(v6);
    let out = &mut out[..n];
    out[..12].copy_from_slice(&SIGNATURE);
    out[12] = V2_PROXY;
    out[13] = if v6 { TCP6 } else { TCP4 };
    out[14..16].copy_from_slice(&((n - FIXED) as u16).to_be_bytes());
    let a = src.0.len();
    out[FIXED..FIXED + a].copy_from_slice(src.0);
    out[FIXED + a..FIXED + 2 * a].copy_from_slice(dst.0);
    out[FIXED + 2 * a..FIXED + 2 * a + 2].copy_from_slice(&src.1.to_be_bytes());
    out[FIXED + 2 * a + 2..n].copy_from_slice(&dst.1.to_be_bytes());
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of section 2.2, written out by hand: TCP over IPv4 from
    /// 192.0.2.7:40000 to 198.51.100.10:80.
    #[test]
    fn an_ipv4_header_byte_by_byte() {
        let mut out = [0xee; 40];
        let n = write(
            &mut out,
            (&[192, 0, 2, 7], 40000),
            (&[198, 51, 100, 10], 80),
        );
        let want: [u8; 28] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x11, 0x00, 0x0c, // v2 PROXY, TCP4, 12 bytes follow
            192, 0, 2, 7, 198, 51, 100, 10, // source, destination
            0x9c, 0x40, 0x00, 0x50, // 40000, 80
        ];
        assert_eq!(n, 28);
        assert_eq!(out[..n], want);
        assert_eq!(out[n], 0xee, "nothing written past the header");
    }

    #[test]
    fn an_ipv6_header_carries_36_address_bytes() {
        let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
        src[0] = 0x20;
        src[15] = 7;
        dst[0] = 0x20;
        dst[15] = 0x10;
        let mut out = [0u8; 64];
        let n = write(&mut out, (&src, 1), (&dst, 443));
        assert_eq!(n, 52);
        assert_eq!(out[12..16], [0x21, 0x21, 0x00, 36]);
        assert_eq!(out[16..32], src);
        assert_eq!(out[32..48], dst);
        assert_eq!(out[48..52], [0, 1, 0x01, 0xbb]);
    }

    #[test]
    fn local_has_no_addresses() {
        assert_eq!(LOCAL[..12], SIGNATURE);
        assert_eq!(LOCAL[12..], [0x20, 0x00, 0x00, 0x00]);
    }
}
