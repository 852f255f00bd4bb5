//! Transparent hugepages for the workers' large tables (session entries and
//! index): 2 MB pages instead of 4 KB ones cut the TLB misses of a lookup in
//! a table of a million sessions. The kernel backs a region with huge pages
//! at first touch once it is advised (`madvise(MADV_HUGEPAGE)`) and THP is
//! `always` or `madvise`; otherwise 4 KB pages are used.

use std::os::raw::{c_int, c_void};

const MADV_HUGEPAGE: c_int = 14;
const PAGE: usize = 4096;
const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

extern "C" {
    fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
}

/// Advises the kernel to back `[addr, addr + len)` with transparent huge
/// pages; call it before the memory is first touched. The range is shrunk to
/// whole 4 KB pages. Returns false if the kernel refused the advice.
pub fn advise_hugepages(addr: usize, len: usize) -> bool {
    let start = addr.next_multiple_of(PAGE);
    let end = (addr + len) & !(PAGE - 1);
    if end <= start {
        return true;
    }
    // SAFETY: madvise with MADV_HUGEPAGE only changes how the kernel backs
    // the pages of an existing mapping; it never reads or writes the memory
    // and fails with an error (ENOMEM, EINVAL) for a range that is not
    // mapped. The range lies within an allocation the caller owns.
    unsafe { madvise(start as *mut c_void, end - start, MADV_HUGEPAGE) == 0 }
}

/// The kernel's transparent-hugepage mode (`always`, `madvise` or `never`),
/// or `None` when the kernel has none.
pub fn transparent_hugepages() -> Option<String> {
    let text = std::fs::read_to_string(THP_ENABLED).ok()?;
    let start = text.find('[')? + 1;
    let end = text[start..].find(']')? + start;
    Some(text[start..end].to_string())
}
