//! What the control thread needs of the operating system beyond the
//! standard library: killing a whole process group (a health-check script
//! and everything it started) and raising the open-file limit.

use std::io;
use std::os::raw::c_int;

const SIGKILL: c_int = 9;
const RLIMIT_NOFILE: c_int = 7;

#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}

extern "C" {
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn getrlimit(resource: c_int, rlim: *mut Rlimit) -> c_int;
    fn setrlimit(resource: c_int, rlim: *const Rlimit) -> c_int;
}

/// Sends SIGKILL to every process of process group `pgid`. A group with
/// no process left is not an error.
pub fn kill_process_group(pgid: u32) -> io::Result<()> {
    let Ok(pgid) = c_int::try_from(pgid) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    if pgid <= 1 {
        // 0 would be our own group, 1 init's: never what is meant.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a
    // negative pid names the process group -pid, which is > 1 here.
    let rc = unsafe { kill(-pgid, SIGKILL) };
    match rc {
        0 => Ok(()),
        _ => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(3) => Ok(()), // ESRCH: all gone
            e => Err(e),
        },
    }
}

/// The open-file limit (soft, hard).
pub fn open_files_limit() -> io::Result<(u64, u64)> {
    let mut r = Rlimit { cur: 0, max: 0 };
    // SAFETY: getrlimit(2) writes one `struct rlimit` (two unsigned longs on
    // Linux, laid out as `Rlimit`) to a pointer to a live local.
    let rc = unsafe { getrlimit(RLIMIT_NOFILE, &mut r) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((r.cur, r.max))
}

/// Raises the soft open-file limit to the hard one (a process may, without
/// privilege); returns the limit in force afterwards.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let (cur, max) = open_files_limit()?;
    if cur >= max {
        return Ok(cur);
    }
    let r = Rlimit { cur: max, max };
    // SAFETY: setrlimit(2) only reads one `struct rlimit` from a pointer to
    // a live local.
    let rc = unsafe { setrlimit(RLIMIT_NOFILE, &r) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sleep NAP` processes running (not the shell whose script names it).
    fn running(nap: &str) -> usize {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let want = format!("sleep\0{nap}\0");
        dir.flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .filter(|c| c.ends_with(want.as_bytes()))
            .count()
    }

    #[test]
    fn kills_a_group_and_refuses_our_own_or_inits() {
        use std::os::unix::process::CommandExt;
        let nap = format!("30.{}1", std::process::id());
        let mut leader = std::process::Command::new("/bin/sh")
            .args(["-c", &format!("sleep {nap} & sleep {nap}")])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(running(&nap), 2);
        kill_process_group(pgid).unwrap();
        let status = leader.wait().unwrap();
        assert!(!status.success());
        for _ in 0..100 {
            if running(&nap) == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(running(&nap), 0, "the backgrounded child went too");
        kill_process_group(pgid).expect("an empty group is not an error");
        assert!(kill_process_group(0).is_err());
        assert!(kill_process_group(1).is_err());
    }

    #[test]
    fn the_soft_limit_rises_to_the_hard_one() {
        let (_, max) = open_files_limit().unwrap();
        assert_eq!(raise_open_files_limit().unwrap(), max);
        assert_eq!(open_files_limit().unwrap(), (max, max));
    }
}
