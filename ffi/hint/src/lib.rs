//! CPU hints for the packet path. The only thing here is prefetch: the
//! intrinsic is `unsafe` to call only because of its target-feature contract,
//! which every x86_64 CPU satisfies (SSE is part of the baseline ABI).

#![no_std]

/// Starts loading the cache line holding `value` into all cache levels.
/// It never faults, whatever the address, and has no other effect.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, so the target-feature
    // requirement of `_mm_prefetch` always holds; prefetch does not dereference
    // the pointer architecturally and cannot fault.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Prefetches the cache line at byte `offset` of `slice`, if it is in bounds.
#[inline(always)]
pub fn prefetch_at<T>(slice: &[T], index: usize) {
    if let Some(v) = slice.get(index) {
        prefetch(v);
    }
}
