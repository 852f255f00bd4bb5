//! The narrow adapter between the pipeline and whatever holds the bytes.

/// A packet buffer the pipeline can read, rewrite, grow and shrink in place.
/// DPDK mbufs implement it in the daemon; [`VecBuf`] implements it for tests.
pub trait PacketBuf {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front; false if there is no headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false if the packet is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Grows the packet by `n` bytes at the end; false if there is no tailroom.
    fn append(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the end; false if the packet is shorter.
    fn trim(&mut self, n: usize) -> bool;
    /// What the NIC found of the IPv4 header checksum: good, bad, or `None`
    /// when it did not check (the pipeline then checks it itself).
    #[inline]
    fn ip_checksum_verified(&self) -> Option<bool> {
        None
    }
}

/// A heap buffer with DPDK-like headroom, for tests and benchmarks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// What a NIC would have said of the IPv4 header checksum.
    nic_ip_checksum: Option<bool>,
}

impl VecBuf {
    /// Headroom DPDK mbufs have by default (RTE_PKTMBUF_HEADROOM).
    pub const HEADROOM: usize = 128;
    const CAPACITY: usize = 2048;

    pub fn new(frame: &[u8]) -> VecBuf {
        let mut buf = vec![0u8; Self::HEADROOM + Self::CAPACITY.max(frame.len())];
        buf[Self::HEADROOM..Self::HEADROOM + frame.len()].copy_from_slice(frame);
        VecBuf {
            buf,
            start: Self::HEADROOM,
            end: Self::HEADROOM + frame.len(),
            nic_ip_checksum: None,
        }
    }

    /// The buffer as a NIC that checks IPv4 header checksums hands it over:
    /// `good` is its verdict.
    pub fn checked_by_nic(mut self, good: bool) -> VecBuf {
        self.nic_ip_checksum = Some(good);
        self
    }

    /// An empty buffer, as a freshly allocated mbuf is.
    pub fn empty() -> VecBuf {
        VecBuf::new(&[])
    }

    /// Replaces the contents, keeping the headroom (for benchmarks that reuse buffers).
    pub fn reset(&mut self, frame: &[u8]) {
        self.start = Self::HEADROOM;
        self.end = Self::HEADROOM + frame.len();
        self.buf[self.start..self.end].copy_from_slice(frame);
    }
}

// Inlined as the mbuf's are (`ffi`): the benchmarks count the pipeline's
// instructions, not calls to the test buffer.
impl PacketBuf for VecBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    #[inline]
    fn ip_checksum_verified(&self) -> Option<bool> {
        self.nic_ip_checksum
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn append(&mut self, n: usize) -> bool {
        if self.end + n > self.buf.len() {
            return false;
        }
        self.buf[self.end..self.end + n].fill(0);
        self.end += n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
}
