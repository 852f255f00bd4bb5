//! Single-producer / single-consumer mbuf rings between two lcores.

use std::cell::Cell;
use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::eal;
use crate::error::{Error, Result};
use crate::mbuf::Mbuf;
use crate::sys;

struct RingInner {
    ptr: NonNull<sys::rte_ring>,
}

// SAFETY: the ring is only reached through one RingProducer (enqueue) and
// one RingConsumer (dequeue), each !Sync with &mut methods, matching the
// RING_F_SP_ENQ | RING_F_SC_DEQ contract; rte_ring_count is a racy-safe read.
unsafe impl Send for RingInner {}
// SAFETY: see above.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Both halves are gone: nobody else touches the ring. Free the mbufs
        // still queued, then the ring.
        let mut buf = [std::ptr::null_mut::<sys::rte_mbuf>(); 64];
        loop {
            // SAFETY: valid ring, single consumer (us); `buf` has 64 slots.
            let n =
                unsafe { sys::sluice_ring_dequeue_burst(self.ptr.as_ptr(), buf.as_mut_ptr(), 64) };
            if n == 0 {
                break;
            }
            // SAFETY: the n dequeued pointers are owned mbufs that were
            // enqueued from `Mbuf`s (ownership transferred into the ring).
            unsafe { sys::sluice_pktmbuf_free_bulk(buf.as_mut_ptr(), n) };
        }
        // SAFETY: valid ring created by rte_ring_create, now empty and unused.
        unsafe { sys::rte_ring_free(self.ptr.as_ptr()) };
        eal::object_freed();
    }
}

/// The enqueue half of an [`mbuf_ring`]. `Send`, not `Sync`, not `Clone`.
pub struct RingProducer {
    ring: Arc<RingInner>,
    _not_sync: PhantomData<Cell<()>>,
}

/// The dequeue half of an [`mbuf_ring`]. `Send`, not `Sync`, not `Clone`.
pub struct RingConsumer {
    ring: Arc<RingInner>,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for RingProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingProducer")
            .field("ring", &self.ring.ptr)
            .finish()
    }
}

impl std::fmt::Debug for RingConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingConsumer")
            .field("ring", &self.ring.ptr)
            .finish()
    }
}

/// Creates a single-producer / single-consumer ring (`rte_ring_create` with
/// `RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ`) holding up to `size`
/// mbufs, on NUMA `socket`. `name` must be unique. The ring (and any mbufs
/// still in it) is freed when both halves have been dropped.
pub fn mbuf_ring(name: &str, size: u32, socket: i32) -> Result<(RingProducer, RingConsumer)> {
    const OP: &str = "rte_ring_create";
    if !eal::running() {
        return Err(Error::no_eal(OP));
    }
    let cname = CString::new(name).map_err(|_| Error::invalid(OP, "name contains NUL"))?;
    let flags = sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ | sys::RING_F_EXACT_SZ;
    // SAFETY: EAL running; valid C string (copied by DPDK); DPDK validates
    // size and flags.
    let p = unsafe { sys::rte_ring_create(cname.as_ptr(), size, socket, flags) };
    let ptr = NonNull::new(p).ok_or_else(|| Error::from_rte_errno(OP))?;
    eal::object_created();
    let ring = Arc::new(RingInner { ptr });
    Ok((
        RingProducer {
            ring: Arc::clone(&ring),
            _not_sync: PhantomData,
        },
        RingConsumer {
            ring,
            _not_sync: PhantomData,
        },
    ))
}

impl RingProducer {
    /// Moves packets from the front of `pkts` into the ring; the accepted
    /// ones are removed from the vector, the rest stay in order. Returns the
    /// accepted count. Never allocates.
    #[inline]
    pub fn enqueue_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let len = pkts.len();
        let n = u32::try_from(len).unwrap_or(u32::MAX);
        if n == 0 {
            return 0;
        }
        // SAFETY: we are the ring's only producer (&mut self, !Sync, !Clone).
        // The first n elements are owned mbufs laid out as `struct rte_mbuf *`
        // (Mbuf is transparent). The ring takes ownership of the first `sent`;
        // they are forgotten by shifting the remainder to the front.
        unsafe {
            let base = pkts.as_mut_ptr();
            let sent = sys::sluice_ring_enqueue_burst(
                self.ring.ptr.as_ptr(),
                base.cast::<*mut sys::rte_mbuf>(),
                n,
            ) as usize;
            pkts.set_len(0);
            std::ptr::copy(base.add(sent), base, len - sent);
            pkts.set_len(len - sent);
            sent
        }
    }

    /// Entries currently in the ring.
    pub fn len(&self) -> usize {
        ring_count(&self.ring)
    }

    /// Whether the ring is currently empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RingConsumer {
    /// Takes up to `min(max, out.capacity() - out.len())` packets from the
    /// ring and appends them to `out`; never allocates. Returns the count.
    #[inline]
    pub fn dequeue_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let len = out.len();
        let n = max.min(out.capacity() - len).min(u32::MAX as usize);
        if n == 0 {
            return 0;
        }
        // SAFETY: we are the ring's only consumer (&mut self, !Sync, !Clone).
        // `out` has room for n more elements of transparent `*mut rte_mbuf`;
        // the ring writes `got <= n` owned, non-null mbuf pointers (only Mbufs
        // are ever enqueued), which become elements with set_len.
        unsafe {
            let dst = out.as_mut_ptr().add(len).cast::<*mut sys::rte_mbuf>();
            let got =
                sys::sluice_ring_dequeue_burst(self.ring.ptr.as_ptr(), dst, n as u32) as usize;
            out.set_len(len + got);
            got
        }
    }

    /// Entries currently in the ring.
    pub fn len(&self) -> usize {
        ring_count(&self.ring)
    }

    /// Whether the ring is currently empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn ring_count(r: &RingInner) -> usize {
    // SAFETY: valid ring; rte_ring_count only reads the head/tail indices.
    unsafe { sys::sluice_ring_count(r.ptr.as_ptr()) as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_send<T: Send>() {}

    #[test]
    fn halves_are_send() {
        check_send::<RingProducer>();
        check_send::<RingConsumer>();
    }

    #[test]
    fn no_ring_without_eal() {
        assert!(mbuf_ring("r", 64, -1).is_err());
    }
}
