//! Why the switch did not start: one variant per step of the boot order
//! (`main.rs`), each message naming what to change. Nothing here is
//! reached once the switch runs; `sluice` prints the message and exits 1.

use sluice_ffi::Error as DpdkError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug)]
pub enum StartError {
    /// The control socket's directory cannot be made.
    SocketDirectory { dir: PathBuf, error: io::Error },
    /// A file that is not a socket sits where the control socket goes.
    NotASocket(PathBuf),
    /// Another process answers on the control socket.
    SocketInUse(PathBuf),
    /// Binding the control socket failed at `step`.
    SocketBind {
        path: PathBuf,
        step: &'static str,
        error: io::Error,
    },
    /// A TCP listener of `[control]` (`metrics`, `http`).
    Listen {
        what: &'static str,
        addr: SocketAddr,
        error: io::Error,
    },
    /// SIGINT, SIGTERM or SIGHUP cannot be handled.
    Signals(io::Error),
    /// EAL refused its arguments or the machine.
    Eal(DpdkError),
    /// Fewer lcores than workers (and the exception path) need.
    TooFewLcores {
        needed: usize,
        have: usize,
        workers: u16,
        exception: bool,
    },
    /// The packet buffer pool.
    PacketPool(DpdkError),
    /// No DPDK port of the name an interface's device gives.
    NoPort {
        interface: String,
        name: String,
        error: DpdkError,
    },
    /// An interface's DPDK port: not configurable, no MAC.
    Port {
        interface: String,
        step: &'static str,
        error: DpdkError,
    },
    /// The DPDK tap behind an interface's kernel interface.
    KernelPort {
        kernel: String,
        port: String,
        error: DpdkError,
    },
    /// A ring between two lcores.
    Ring { ring: String, error: DpdkError },
    /// A port that was configured does not start.
    PortStart { port: u16, error: DpdkError },
    /// An lcore's queue of a port.
    Queue {
        lcore: String,
        port: u16,
        error: DpdkError,
    },
    /// An lcore that does not take its job.
    Launch { lcore: u32, error: DpdkError },
    /// The control thread's runtime.
    Runtime(io::Error),
    /// The kernel interfaces of the exception path (netlink's error: the
    /// exception path's module sits below this one).
    KernelInterfaces(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use StartError::*;
        match self {
            SocketDirectory { dir, error } => write!(f, "cannot create {}: {error}", dir.display()),
            NotASocket(p) => write!(
                f,
                "{} exists and is not a socket: refusing to replace it (remove it or set [control].socket)",
                p.display()
            ),
            SocketInUse(p) => write!(
                f,
                "control socket {} is in use: is another sluice running?",
                p.display()
            ),
            SocketBind { path, step, error } => {
                write!(f, "cannot {step} for control socket {}: {error}", path.display())
            }
            Listen { what, addr, error } => write!(f, "cannot listen for {what} on {addr}: {error}"),
            Signals(e) => write!(f, "cannot handle signals: {e}"),
            Eal(e) => write!(f, "EAL initialisation failed: {e}"),
            TooFewLcores { needed, have, workers, exception } => write!(
                f,
                "{needed} lcores needed besides the main one ({workers} workers{}) but EAL has {have} (check dataplane.lcores / eal_args)",
                if *exception { " and the exception path" } else { "" }
            ),
            PacketPool(e) => write!(
                f,
                "cannot create the packet pool: {e} (raise -m in eal_args or lower dataplane.mbufs)"
            ),
            NoPort { interface, name, error } => {
                write!(f, "interface {interface}: no DPDK port {name:?}: {error}")
            }
            Port { interface, step, error } => write!(f, "interface {interface}: {step}: {error}"),
            KernelPort { kernel, port, error } => {
                write!(f, "kernel interface {kernel} ({port}): {error}")
            }
            Ring { ring, error } => write!(f, "cannot create ring {ring}: {error}"),
            PortStart { port, error } => write!(f, "cannot start port {port}: {error}"),
            Queue { lcore, port, error } => write!(f, "{lcore}: port {port}: {error}"),
            Launch { lcore, error } => write!(f, "cannot launch lcore {lcore}: {error}"),
            Runtime(e) => write!(f, "cannot start the control thread's runtime: {e}"),
            KernelInterfaces(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}
