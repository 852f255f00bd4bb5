//! EAL lifecycle, lcores, launching work on lcores, time.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{libc_errno, Error, Result};
use crate::sys;

/// `rte_lcore_id()` of a thread that is not an EAL lcore.
pub const LCORE_ID_ANY: u32 = u32::MAX;

/// Set by the first `Eal::init` call, never cleared: DPDK cannot be
/// initialised twice in one process.
static INIT_ATTEMPTED: AtomicBool = AtomicBool::new(false);
/// True between a successful `rte_eal_init` and the `Eal` drop.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Whether `rte_pdump_init` succeeded (undone before EAL cleanup).
static PDUMP: AtomicBool = AtomicBool::new(false);
/// Mempools and rings that still own DPDK memory (including leaked ones).
static LIVE_OBJECTS: AtomicUsize = AtomicUsize::new(0);

/// Whether the EAL is initialised and not yet cleaned up.
#[inline]
pub(crate) fn running() -> bool {
    RUNNING.load(Ordering::Acquire)
}

/// Records that a DPDK object owning DPDK memory was created.
pub(crate) fn object_created() {
    LIVE_OBJECTS.fetch_add(1, Ordering::AcqRel);
}

/// Records that such an object was freed.
pub(crate) fn object_freed() {
    LIVE_OBJECTS.fetch_sub(1, Ordering::AcqRel);
}

/// The calling thread's `rte_errno`.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int through the shim; no preconditions.
    unsafe { sys::sluice_errno() }
}

/// The DPDK version string, e.g. `"DPDK 22.11.11"`.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string
    // and works before EAL initialisation.
    let p = unsafe { sys::rte_version() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null static NUL-terminated string (see above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The calling thread's lcore id, or [`LCORE_ID_ANY`] on a non-EAL thread.
#[inline]
pub fn lcore_id() -> u32 {
    // SAFETY: reads the per-thread lcore id through the shim; valid on any
    // thread, before or after EAL initialisation.
    unsafe { sys::sluice_lcore_id() }
}

/// The CPU time-stamp counter.
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC is available on every x86_64 CPU and has no memory
        // effects (this is exactly what rte_rdtsc does).
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: rte_rdtsc through the shim; no preconditions.
        unsafe { sys::sluice_rdtsc() }
    }
}

/// TSC ticks per second as measured by the EAL (0 before `Eal::init`).
pub fn tsc_hz() -> u64 {
    // SAFETY: rte_get_tsc_hz reads a global set during EAL init; it returns 0
    // before that and has no other preconditions.
    unsafe { sys::sluice_tsc_hz() }
}

/// The initialised DPDK environment abstraction layer.
///
/// Only one may exist per process, and `Eal::init` may only be called once:
/// a second call fails with `EALREADY` even after the first `Eal` is dropped.
/// It must outlive every mempool, mbuf, ring and port use (see the crate
/// docs). It is neither `Send` nor `Sync`: launching work on lcores is only
/// allowed from the main lcore, i.e. the thread that called `init`.
///
/// Drop waits for all worker lcores, then calls `rte_eal_cleanup` (skipped,
/// leaving the DPDK memory mapped, while mempools or rings still exist).
#[derive(Debug)]
pub struct Eal {
    _not_send_sync: PhantomData<*const ()>,
}

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

/// `lcore_function_t` that runs a boxed closure passed by `Eal::launch`.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<Job>` leaked by `Eal::launch` for exactly this
    // invocation; EAL calls the function once, so ownership is taken back once.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // Unwinding out of an `extern "C"` function would abort the process; a
    // panicking job instead reports i32::MIN (the panic hook has already
    // printed the message).
    catch_unwind(AssertUnwindSafe(job)).unwrap_or(i32::MIN)
}

impl Eal {
    /// Initialises DPDK with the given command line (`args[0]` is the program
    /// name, the rest are EAL options such as `-l 0,1 --vdev net_null0`).
    ///
    /// PMDs are shared-library plugins: EAL `dlopen`s every driver in its
    /// compiled-in plugin directory (`RTE_EAL_PMD_PATH`, on Debian 12
    /// `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`). If that directory is
    /// missing and the `SLUICE_DPDK_PMD_DIR` environment variable names a
    /// directory, `-d <dir>` is added so drivers are still found. Explicit
    /// `-d` options in `args` are passed through untouched.
    pub fn init(args: &[String]) -> Result<Eal> {
        const OP: &str = "rte_eal_init";
        if INIT_ATTEMPTED.swap(true, Ordering::AcqRel) {
            return Err(Error::new(
                OP,
                libc_errno::EALREADY,
                "EAL already initialised in this process",
            ));
        }
        let mut args: Vec<String> = args.to_vec();
        if args.is_empty() {
            args.push("sluice".to_owned());
        }
        if let Some(dir) = plugin_dir_fallback(&args) {
            args.push("-d".to_owned());
            args.push(dir);
        }
        let mut cstrings = Vec::with_capacity(args.len());
        for a in &args {
            match CString::new(a.as_str()) {
                Ok(c) => cstrings.push(c),
                Err(_) => {
                    return Err(Error::invalid(
                        OP,
                        format!("argument {a:?} contains a NUL byte"),
                    ))
                }
            }
        }
        let argc = c_int::try_from(cstrings.len())
            .map_err(|_| Error::invalid(OP, "too many arguments"))?;
        // EAL may keep pointers into argv (and getopt permutes it), so both
        // the strings and the array live for the rest of the process.
        let argv: &'static mut [*mut c_char] = Vec::leak(
            cstrings
                .into_iter()
                .map(CString::into_raw)
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect(),
        );
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a
        // NULL, all leaked so they outlive EAL; INIT_ATTEMPTED guarantees this
        // is the only rte_eal_init call in the process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(Error::from_rte_errno(OP));
        }
        RUNNING.store(true, Ordering::Release);
        Ok(Eal {
            _not_send_sync: PhantomData,
        })
    }

    /// Lets DPDK's packet-capture tool (`dpdk-dumpcap`, a secondary process)
    /// capture on this primary's ports (`rte_pdump_init`). Fails where EAL
    /// runs without shared files (`--no-shconf`, `--in-memory`, `--no-huge`):
    /// no secondary process can attach then.
    pub fn enable_capture(&self) -> Result<()> {
        const OP: &str = "rte_pdump_init";
        // SAFETY: EAL is initialised (self exists) and this is the main lcore;
        // rte_pdump_init registers a multi-process handler and allocates its
        // state, once (PDUMP is set only on success).
        let ret = unsafe { sys::rte_pdump_init() };
        if ret < 0 {
            return Err(Error::from_rte_errno(OP));
        }
        PDUMP.store(true, Ordering::Release);
        Ok(())
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: EAL is initialised (self exists); plain getter.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// All enabled lcores except the main one, ascending.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = u32::MAX; // -1: start from the first lcore
        loop {
            // SAFETY: EAL is initialised; rte_get_next_lcore accepts any index
            // and returns RTE_MAX_LCORE when there are no more lcores.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
            if i >= sys::RTE_MAX_LCORE {
                break;
            }
            out.push(i);
        }
        out
    }

    /// Runs `f` on worker lcore `lcore` (`rte_eal_remote_launch`). Fails with
    /// `EINVAL` if `lcore` is not a worker lcore and `EBUSY` if it is still
    /// running a previous job (collect it with [`Eal::wait_all`] first).
    ///
    /// A panic inside `f` is caught and reported as return value `i32::MIN`.
    pub fn launch<F: FnOnce() -> i32 + Send + 'static>(&self, lcore: u32, f: F) -> Result<()> {
        const OP: &str = "rte_eal_remote_launch";
        if !self.worker_lcores().contains(&lcore) {
            return Err(Error::invalid(
                OP,
                format!("lcore {lcore} is not a worker lcore"),
            ));
        }
        let job: Box<Job> = Box::new(Box::new(f));
        let arg = Box::into_raw(job).cast::<c_void>();
        // SAFETY: called on the main lcore (Eal is !Send and created there);
        // `trampoline` matches lcore_function_t and takes ownership of `arg`
        // iff the launch succeeds.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if ret < 0 {
            // SAFETY: the launch failed, so the job was not handed to the lcore
            // and `arg` is still the unique owner of the leaked box.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            return Err(Error::from_code(OP, ret));
        }
        Ok(())
    }

    /// Waits for every worker lcore (`rte_eal_wait_lcore`) and returns
    /// `(lcore, return value)` for each, ascending. Lcores that were not
    /// running anything report 0.
    pub fn wait_all(&self) -> Vec<(u32, i32)> {
        self.worker_lcores()
            .into_iter()
            .map(|lcore| {
                // SAFETY: main lcore, valid worker id; blocks until the job
                // (if any) has finished.
                let ret = unsafe { sys::rte_eal_wait_lcore(lcore) };
                (lcore, ret)
            })
            .collect()
    }

    /// NUMA socket of the calling lcore (`rte_socket_id`).
    pub fn socket_id(&self) -> i32 {
        // SAFETY: plain getter reading a thread-local; EAL is initialised.
        unsafe { sys::rte_socket_id() as i32 }
    }

    /// Number of enabled lcores, main included.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: plain getter; EAL is initialised.
        unsafe { sys::rte_lcore_count() }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: main lcore; waits until every worker is idle so no launched
        // job can still be touching DPDK state.
        unsafe { sys::rte_eal_mp_wait_lcore() };
        RUNNING.store(false, Ordering::Release);
        if PDUMP.swap(false, Ordering::AcqRel) {
            // SAFETY: main lcore, workers idle; undoes the successful
            // rte_pdump_init of `enable_capture`.
            unsafe { sys::rte_pdump_uninit() };
        }
        if LIVE_OBJECTS.load(Ordering::Acquire) == 0 {
            // SAFETY: no mempool or ring (hence no mbuf) exists any more, all
            // workers are idle and `running()` is now false, so Port methods
            // refuse to touch ethdev state.
            unsafe { sys::rte_eal_cleanup() };
        }
    }
}

/// `Some(dir)` if EAL's compiled-in plugin directory does not exist, no `-d`
/// was given and `SLUICE_DPDK_PMD_DIR` names an existing directory.
fn plugin_dir_fallback(args: &[String]) -> Option<String> {
    let has_d = args.iter().skip(1).any(|a| a.starts_with("-d"));
    if has_d || std::path::Path::new(PMD_PATH).is_dir() {
        return None;
    }
    let dir = std::env::var("SLUICE_DPDK_PMD_DIR").ok()?;
    std::path::Path::new(&dir).is_dir().then_some(dir)
}

/// EAL's compiled-in plugin directory (RTE_EAL_PMD_PATH).
const PMD_PATH: &str = match sys::RTE_EAL_PMD_PATH.to_str() {
    Ok(s) => s,
    Err(_) => "",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string() {
        let v = version();
        assert!(v.starts_with("DPDK "), "{v}");
    }

    #[test]
    fn lcore_id_outside_eal() {
        assert_eq!(lcore_id(), LCORE_ID_ANY);
    }

    #[test]
    fn tsc_advances() {
        let a = tsc();
        let b = tsc();
        assert!(b >= a);
    }

    #[test]
    fn pmd_path_is_set() {
        assert!(PMD_PATH.contains("pmds"), "{PMD_PATH}");
        // Explicit -d wins, no fallback.
        let args = ["x".to_owned(), "-d".to_owned(), "/tmp".to_owned()];
        assert_eq!(plugin_dir_fallback(&args), None);
    }
}
