//! Error type shared by all wrappers.

use std::ffi::CStr;
use std::fmt;

use crate::sys;

/// A failed DPDK call: which operation, the (positive) errno-style code and
/// DPDK's description of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The DPDK function (or wrapper operation) that failed.
    pub op: &'static str,
    /// Positive errno / rte_errno value.
    pub code: i32,
    /// Human-readable description (`rte_strerror` or a wrapper message).
    pub message: String,
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with an explicit message.
    pub(crate) fn new(op: &'static str, code: i32, message: impl Into<String>) -> Error {
        Error {
            op,
            code: code.abs(),
            message: message.into(),
        }
    }

    /// An error described by `rte_strerror(code)`; `code` may be negative
    /// (DPDK's `-errno` return convention).
    pub(crate) fn from_code(op: &'static str, code: i32) -> Error {
        let code = code.checked_abs().unwrap_or(i32::MAX);
        Error {
            op,
            code,
            message: strerror(code),
        }
    }

    /// An error from the calling thread's `rte_errno`.
    pub(crate) fn from_rte_errno(op: &'static str) -> Error {
        Error::from_code(op, crate::eal::rte_errno())
    }

    /// `Ok(ret)` for `ret >= 0`, else the error for `-ret`.
    pub(crate) fn check(op: &'static str, ret: i32) -> Result<i32> {
        if ret < 0 {
            Err(Error::from_code(op, ret))
        } else {
            Ok(ret)
        }
    }

    /// The EAL is not (or no longer) running.
    pub(crate) fn no_eal(op: &'static str) -> Error {
        Error::new(op, libc_errno::ENODEV, "the DPDK EAL is not running")
    }

    /// An invalid argument rejected by the wrapper itself.
    pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> Error {
        Error::new(op, libc_errno::EINVAL, message)
    }
}

/// errno values used by the wrappers themselves (Linux numbering).
pub(crate) mod libc_errno {
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const EALREADY: i32 = 114;
}

/// `rte_strerror`, which also knows DPDK's own codes (E_RTE_SECONDARY, ...).
pub(crate) fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a pointer to a static
    // string or to a per-thread buffer; both stay valid until the next call on
    // this thread, and the text is copied out immediately.
    let p = unsafe { sys::rte_strerror(code) };
    if p.is_null() {
        return format!("error {code}");
    }
    // SAFETY: non-null, NUL-terminated, valid until the next call (see above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.op, self.message, self.code)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_format() {
        let e = Error::new("rte_eth_dev_start", -22, "Invalid argument");
        assert_eq!(e.code, 22);
        assert_eq!(e.to_string(), "rte_eth_dev_start: Invalid argument (22)");
    }

    #[test]
    fn from_code_uses_strerror() {
        let e = Error::from_code("op", -12); // ENOMEM
        assert_eq!(e.code, 12);
        assert!(e.message.to_lowercase().contains("memory"), "{}", e.message);
        assert!(Error::check("op", 3).is_ok());
        assert_eq!(Error::check("op", -19).unwrap_err().code, 19);
        // i32::MIN must not overflow.
        assert_eq!(Error::from_code("op", i32::MIN).code, i32::MAX);
    }
}
