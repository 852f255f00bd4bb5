//! The running configuration and the workers' counters, as every task of
//! the control thread reads them. The configuration is replaced as a
//! whole (a reload, a change of owned addresses); readers hold the one
//! they took for as long as they need it.

use crate::clock::Clock;
use crate::health::Statuses;
use crate::members::Plan;
use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::WorkerStats;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// One configuration as the control thread runs it.
pub struct Live {
    pub config: sluice_config::Config,
    pub shared: Arc<Shared>,
    /// The health checks and what they decide.
    pub plan: Plan,
    /// Health of each check target (`plan.targets`).
    pub health: Statuses,
}

/// The switch as it runs: its configuration, its workers' counters, its clock.
pub struct Running {
    live: RwLock<Arc<Live>>,
    /// Each worker's counters (each written by its worker only).
    pub stats: Vec<Arc<WorkerStats>>,
    pub clock: Clock,
    pub started: Instant,
}

impl Running {
    pub fn new(live: Live, stats: Vec<Arc<WorkerStats>>, clock: Clock) -> Running {
        Running {
            live: RwLock::new(Arc::new(live)),
            stats,
            clock,
            started: Instant::now(),
        }
    }

    /// The running configuration.
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `live` the running configuration (once every worker took it).
    pub fn replace_live(&self, live: Live) -> Arc<Live> {
        let mut slot = self.live.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, Arc::new(live))
    }

    /// Sessions of virtual-server slot `slot`, summed over the workers.
    pub fn vs_sessions(&self, slot: u16) -> u64 {
        self.vs_counter(usize::from(slot), |s| &s.vs_sessions)
    }

    /// A per-virtual-server counter of slot `i`, summed over the workers.
    pub fn vs_counter(&self, i: usize, which: impl Fn(&WorkerStats) -> &[AtomicU64]) -> u64 {
        (self.stats.iter())
            .filter_map(|s| which(s).get(i))
            .map(|c| c.load(Relaxed))
            .sum()
    }

    /// The first worker whose running generation is not `generation`.
    pub fn lagging_worker(&self, generation: u64) -> Option<u16> {
        (self.stats.iter())
            .position(|s| s.generation.load(Relaxed) != generation)
            .map(|w| w as u16)
    }
}
