//! Everything the control thread's answers read: the running switch and a
//! handle on each task and channel that serves it. Built once at boot
//! (`launch`); each task gets the parts it needs, never the whole.

use crate::announce;
use crate::exception;
use crate::ha::sync::Link;
use crate::live::Running;
use crate::reload::Reloader;
use crate::sessions::Sessions;
use sluice_control::api::{History, Point};
use sluice_ffi::Port;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

pub struct View {
    pub running: Arc<Running>,
    /// The DPDK ports, for their links and NIC counters.
    pub ports: Vec<Port>,
    /// Exception-path counters per interface (None without a kernel interface).
    pub kernel: exception::Counters,
    pub sessions: Arc<Sessions>,
    pub reloader: Arc<Reloader>,
    /// Session synchronisation with the peers (`[ha] sync_peers`).
    pub sync: Option<Arc<Link>>,
    /// The VIP routes for the routing daemon (`[announce]`), and draining.
    pub announce: Arc<announce::State>,
    /// Rates of the last minutes, for the status page.
    pub rates: Rates,
}

/// The last [`Rates::KEPT`] points of rates, oldest first.
#[derive(Default)]
pub struct Rates {
    points: Mutex<VecDeque<Point>>,
}

impl Rates {
    /// Points kept: ten minutes at [`Rates::INTERVAL_S`].
    pub const KEPT: usize = 120;
    /// Seconds between two readings of the counters.
    pub const INTERVAL_S: u64 = 5;

    pub fn push(&self, p: Point) {
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        if points.len() == Self::KEPT {
            points.pop_front();
        }
        points.push_back(p);
    }

    pub fn history(&self) -> History {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        History {
            interval_s: Self::INTERVAL_S,
            points: points.iter().cloned().collect(),
        }
    }
}
