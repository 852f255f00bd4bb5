//! Packet buffer pools and owned packet buffers.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::eal;
use crate::error::{Error, Result};
use crate::sys;

/// Headroom DPDK reserves in front of the packet data of a fresh mbuf.
pub const HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;
/// Default `data_room` for [`Mempool::new`]: 2048 bytes of packet plus
/// [`HEADROOM`] (`RTE_MBUF_DEFAULT_BUF_SIZE`).
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// The DPDK mempool behind a [`Mempool`]; shared with ports configured to
/// receive into it.
pub(crate) struct PoolInner {
    ptr: NonNull<sys::rte_mempool>,
    data_room: u16,
}

// SAFETY: rte_mempool is a thread-safe (multi-producer / multi-consumer)
// allocator; the pointer is only used through DPDK's MT-safe entry points.
unsafe impl Send for PoolInner {}
// SAFETY: as above; no method mutates Rust-visible state.
unsafe impl Sync for PoolInner {}

impl PoolInner {
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }

    fn in_use(&self) -> u32 {
        // SAFETY: valid pool pointer; the count is a racy but memory-safe read.
        unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Mbufs still in use would return to freed memory: leak the pool
        // instead (it stays counted as live, so rte_eal_cleanup is skipped).
        if self.in_use() == 0 {
            // SAFETY: no mbuf of this pool is outstanding, no port references
            // it (ports hold an Arc<PoolInner>), and this is the last owner.
            unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
            eal::object_freed();
        }
    }
}

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`).
///
/// `Clone` hands out another handle to the same pool (a reference count).
/// Dropping the last handle frees the pool with `rte_mempool_free`, unless mbufs from it
/// are still in use or a port configured with it has not been closed; then
/// the pool is deliberately leaked (freed memory must never be reached).
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("ptr", &self.inner.ptr)
            .field("data_room", &self.inner.data_room)
            .finish()
    }
}

impl Mempool {
    /// Creates a pool of `n` mbufs with a per-lcore cache of `cache` entries,
    /// each with a buffer of `data_room` bytes *including* the headroom
    /// ([`DEFAULT_DATA_ROOM`] is the usual choice), on NUMA `socket`
    /// ([`crate::SOCKET_ID_ANY`] for any). `name` must be unique.
    pub fn new(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool> {
        const OP: &str = "rte_pktmbuf_pool_create";
        if !eal::running() {
            return Err(Error::no_eal(OP));
        }
        let cname = CString::new(name).map_err(|_| Error::invalid(OP, "name contains NUL"))?;
        // SAFETY: EAL is running, the name is a valid C string copied by DPDK;
        // all sizes are plain integers validated by DPDK.
        let p =
            unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        let ptr = NonNull::new(p).ok_or_else(|| Error::from_rte_errno(OP))?;
        eal::object_created();
        Ok(Mempool {
            inner: Arc::new(PoolInner { ptr, data_room }),
        })
    }

    pub(crate) fn inner(&self) -> &Arc<PoolInner> {
        &self.inner
    }

    /// Allocates one reset mbuf (empty, headroom [`HEADROOM`]).
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: valid pool; rte_pktmbuf_alloc is MT-safe and returns either
        // NULL or a fresh, exclusively owned, single-segment mbuf.
        let p = unsafe { sys::sluice_pktmbuf_alloc(self.inner.as_ptr()) };
        NonNull::new(p).map(Mbuf)
    }

    /// Allocates `n` mbufs at once and appends them to `out`; all or nothing.
    /// Like the bursts, it never grows `out`: fails if the spare capacity is
    /// smaller than `n`.
    pub fn alloc_bulk(&self, out: &mut Vec<Mbuf>, n: usize) -> bool {
        let Ok(count) = u32::try_from(n) else {
            return false;
        };
        if out.capacity() - out.len() < n {
            return false;
        }
        let len = out.len();
        // SAFETY: `out` has room for `n` more elements after `len`; Mbuf is a
        // transparent NonNull<rte_mbuf>, so the spare capacity is a valid
        // `*mut rte_mbuf` array of length n. On success all n entries are
        // written with fresh non-null mbufs before set_len.
        unsafe {
            let dst = out.as_mut_ptr().add(len).cast::<*mut sys::rte_mbuf>();
            if sys::sluice_pktmbuf_alloc_bulk(self.inner.as_ptr(), dst, count) != 0 {
                return false;
            }
            out.set_len(len + n);
        }
        true
    }

    /// Mbufs currently free in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: valid pool pointer; racy but memory-safe read.
        unsafe { sys::rte_mempool_avail_count(self.inner.as_ptr()) }
    }

    /// Mbufs currently allocated (in mbufs, rings or NIC queues).
    pub fn in_use(&self) -> u32 {
        self.inner.in_use()
    }

    /// Size of each mbuf's buffer, headroom included.
    pub fn data_room(&self) -> u16 {
        self.inner.data_room
    }
}

/// Which L4 checksum the NIC should compute on transmit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Csum {
    /// No L4 checksum offload.
    None,
    /// TCP checksum.
    Tcp,
    /// UDP checksum.
    Udp,
}

/// An owned packet buffer (a single-segment `rte_mbuf`). Dropping it returns
/// it to its pool (`rte_pktmbuf_free`).
///
/// `#[repr(transparent)]` over the C pointer, so a `Vec<Mbuf>`'s buffer is a
/// `struct rte_mbuf *` array that the burst functions fill in place.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the unique owner of its rte_mbuf (refcount 1, never
// shared); freeing it from another thread is fine since mempools are MT-safe.
unsafe impl Send for Mbuf {}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("ptr", &self.0)
            .field("len", &self.len())
            .field("port", &self.port())
            .finish()
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it goes back to its pool exactly once.
        unsafe { sys::sluice_pktmbuf_free(self.0.as_ptr()) };
    }
}

impl Mbuf {
    /// Returns every mbuf of `mbufs` to its pool in one call
    /// (`rte_pktmbuf_free_bulk`) and leaves `mbufs` empty.
    pub fn free_bulk(mbufs: &mut Vec<Mbuf>) {
        let n = mbufs.len();
        let Ok(count) = u32::try_from(n) else {
            mbufs.clear();
            return;
        };
        if n == 0 {
            return;
        }
        // SAFETY: `Mbuf` is repr(transparent) over a non-null rte_mbuf
        // pointer, so the buffer is an array of `n` valid pointers, each the
        // unique owner of its mbuf. Length 0 is set first so no `Drop` runs:
        // ownership passes to rte_pktmbuf_free_bulk, which frees each exactly
        // once (segments included); `count` is `n`.
        unsafe {
            mbufs.set_len(0);
            let ptrs = mbufs.as_mut_ptr().cast::<*mut sys::rte_mbuf>();
            sys::rte_pktmbuf_free_bulk(ptrs, count);
        }
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: the pointer is valid and uniquely owned by self for its
        // whole lifetime; shared access follows from &self.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: valid and uniquely owned; exclusive access from &mut self.
        unsafe { self.0.as_mut() }
    }

    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        let m = self.raw();
        // data_off <= buf_len is a DPDK invariant, so this stays inside the
        // buffer allocation.
        m.buf_addr
            .cast::<u8>()
            .wrapping_add(usize::from(m.data_off))
    }

    /// The packet bytes (the first segment, which is the whole packet since
    /// only single-segment mbufs are used).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let len = usize::from(self.raw().data_len);
        // SAFETY: [buf_addr + data_off, + data_len) lies inside the mbuf's
        // buffer (DPDK invariant) and is owned by this mbuf; the borrow of
        // self prevents concurrent mutation.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), len) }
    }

    /// The packet bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.raw().data_len);
        // SAFETY: as in `data`, and &mut self gives exclusive access (the mbuf
        // is direct with refcount 1: it was never cloned or attached).
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), len) }
    }

    /// Packet length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// Whether the packet has no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Grows the packet by `n` bytes at the front (into the headroom); the new
    /// bytes are uninitialised garbage to be overwritten. False (and nothing
    /// changed) if the headroom is too small.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: exclusively owned valid mbuf; rte_pktmbuf_prepend checks the
        // headroom and leaves the mbuf unchanged on failure.
        !unsafe { sys::sluice_pktmbuf_prepend(self.0.as_ptr(), n) }.is_null()
    }

    /// Removes `n` bytes from the front. False (nothing changed) if `n` is
    /// larger than the packet.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: exclusively owned valid mbuf; rte_pktmbuf_adj checks the
        // length and leaves the mbuf unchanged on failure.
        !unsafe { sys::sluice_pktmbuf_adj(self.0.as_ptr(), n) }.is_null()
    }

    /// Grows the packet by `n` bytes at the end (into the tailroom); the new
    /// bytes are uninitialised garbage to be overwritten. False if the
    /// tailroom is too small.
    #[inline]
    pub fn append(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: exclusively owned valid mbuf; rte_pktmbuf_append checks the
        // tailroom and leaves the mbuf unchanged on failure.
        !unsafe { sys::sluice_pktmbuf_append(self.0.as_ptr(), n) }.is_null()
    }

    /// Removes `n` bytes from the end. False if `n` is larger than the packet.
    #[inline]
    pub fn trim(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: exclusively owned valid mbuf; rte_pktmbuf_trim checks the
        // length and leaves the mbuf unchanged on failure.
        unsafe { sys::sluice_pktmbuf_trim(self.0.as_ptr(), n) == 0 }
    }

    /// Bytes available in front of the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    /// Bytes available after the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len)
            .saturating_sub(usize::from(m.data_off))
            .saturating_sub(usize::from(m.data_len))
    }

    /// Port the packet was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Sets the port the packet counts as received on (a frame the exception
    /// path hands to a worker for transmission names its wire port here).
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.raw_mut().port = port;
    }

    /// What the NIC found of the IPv4 header checksum: `Some(true)` good,
    /// `Some(false)` bad, `None` not checked (`RTE_MBUF_F_RX_IP_CKSUM_*`).
    #[inline]
    pub fn ip_checksum(&self) -> Option<bool> {
        let flags = self.raw().ol_flags & u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK);
        if flags == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD) {
            Some(true)
        } else if flags == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD) {
            Some(false)
        } else {
            None
        }
    }

    /// The NIC's RSS hash, if it computed one (`RTE_MBUF_F_RX_RSS_HASH`).
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) != 0 {
            // SAFETY: every variant of the hash union is plain integers, so
            // reading `rss` is valid for any bit pattern.
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }

    /// Prefetches the first cache line of packet data.
    #[inline]
    pub fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is baseline on x86_64; a prefetch never faults and has
        // no architectural effect (same as rte_prefetch0).
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                self.data_ptr().cast::<i8>(),
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: rte_prefetch0 through the shim never faults.
        unsafe {
            sys::sluice_prefetch0(self.data_ptr().cast());
        }
    }

    /// Requests IP / TCP / UDP checksum offload on transmit: sets `l2_len`
    /// (Ethernet header incl. VLAN tags, max 127), `l3_len` (IP header incl.
    /// options / extension headers, max 511) and the `RTE_MBUF_F_TX_*` flags.
    /// `ipv4` requests the IPv4 header checksum (the field must be 0); for
    /// IPv6 there is none. For `Tcp` / `Udp` the L4 checksum field must hold
    /// the pseudo-header checksum (DPDK's `rte_ipv4_phdr_cksum` convention).
    /// Only valid on a port whose [`crate::PortSetup::tx_cksum_offload`] is true.
    #[inline]
    pub fn set_tx_cksum_offload(&mut self, l2_len: u8, l3_len: u16, ipv4: bool, l4: L4Csum) {
        let m = self.raw_mut();
        let mut flags = m.ol_flags & !TX_CKSUM_FLAGS;
        flags |= if ipv4 {
            sys::RTE_MBUF_F_TX_IPV4 | sys::RTE_MBUF_F_TX_IP_CKSUM
        } else {
            sys::RTE_MBUF_F_TX_IPV6
        };
        flags |= match l4 {
            L4Csum::None => 0,
            L4Csum::Tcp => sys::RTE_MBUF_F_TX_TCP_CKSUM,
            L4Csum::Udp => sys::RTE_MBUF_F_TX_UDP_CKSUM,
        };
        m.ol_flags = flags;
        // SAFETY: tx_offload is a plain u64 overlaying the l2_len/l3_len/...
        // bit-fields; any bit pattern is valid.
        let old = unsafe { m.__bindgen_anon_3.tx_offload };
        m.__bindgen_anon_3.tx_offload = (old & !TX_L2_L3_MASK)
            | (u64::from(l2_len) & 0x7f)
            | ((u64::from(l3_len) & 0x1ff) << 7);
    }

    /// Clears every transmit offload request set by
    /// [`Mbuf::set_tx_cksum_offload`] (flags and header lengths).
    #[inline]
    pub fn clear_tx_offload(&mut self) {
        let m = self.raw_mut();
        m.ol_flags &= !TX_CKSUM_FLAGS;
        m.__bindgen_anon_3.tx_offload = 0;
    }

    /// The mbuf's transmit offload flags (`ol_flags` `RTE_MBUF_F_TX_*` bits
    /// used by the checksum offload).
    pub fn tx_offload_flags(&self) -> u64 {
        self.raw().ol_flags & TX_CKSUM_FLAGS
    }

    /// `(l2_len, l3_len)` as set by [`Mbuf::set_tx_cksum_offload`].
    pub fn tx_header_lens(&self) -> (u8, u16) {
        // SAFETY: plain u64 view of the bit-field union; any bit pattern is
        // valid.
        let v = unsafe { self.raw().__bindgen_anon_3.tx_offload };
        ((v & 0x7f) as u8, ((v >> 7) & 0x1ff) as u16)
    }
}

/// `l2_len` (7 bits) and `l3_len` (9 bits) in `rte_mbuf::tx_offload`.
const TX_L2_L3_MASK: u64 = 0xffff;

/// The ol_flags bits the checksum offload API owns.
const TX_CKSUM_FLAGS: u64 = sys::RTE_MBUF_F_TX_L4_MASK
    | sys::RTE_MBUF_F_TX_IP_CKSUM
    | sys::RTE_MBUF_F_TX_IPV4
    | sys::RTE_MBUF_F_TX_IPV6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbuf_is_a_pointer() {
        assert_eq!(
            std::mem::size_of::<Mbuf>(),
            std::mem::size_of::<*mut sys::rte_mbuf>()
        );
        assert_eq!(
            std::mem::align_of::<Mbuf>(),
            std::mem::align_of::<*mut sys::rte_mbuf>()
        );
        assert_eq!(
            std::mem::size_of::<Option<Mbuf>>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn constants() {
        assert_eq!(HEADROOM, 128);
        assert_eq!(DEFAULT_DATA_ROOM, 2048 + 128);
        assert_eq!(
            TX_CKSUM_FLAGS,
            (3 << 52) | (1 << 54) | (1 << 55) | (1 << 56)
        );
    }

    #[test]
    fn no_pool_without_eal() {
        let e = Mempool::new("x", 64, 0, DEFAULT_DATA_ROOM, -1).unwrap_err();
        assert_eq!(e.code, crate::error::libc_errno::ENODEV);
    }

    fn check_send<T: Send>() {}
    fn check_send_sync<T: Send + Sync>() {}

    #[test]
    fn auto_traits() {
        check_send::<Mbuf>();
        check_send_sync::<Mempool>();
    }
}
