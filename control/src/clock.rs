//! One clock for the whole process: 64-bit milliseconds since boot, from the
//! TSC, with the same epoch on every lcore and the control thread, so ages
//! computed by one thread are right in another and nothing wraps.

/// Copyable handle on the process clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: u64,
    cycles_per_ms: u64,
}

impl Clock {
    /// Starts the clock at 0 now (call once, after EAL initialisation).
    pub fn start() -> Clock {
        Clock {
            start: sluice_ffi::tsc(),
            cycles_per_ms: (sluice_ffi::tsc_hz() / 1000).max(1),
        }
    }

    /// Milliseconds since the clock started.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        sluice_ffi::tsc().saturating_sub(self.start) / self.cycles_per_ms
    }
}
