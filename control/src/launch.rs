//! Launching the lcores: every worker's queues, rings and channels handed
//! to its lcore, the exception path's to its own; then the view the control
//! thread answers from, holding the control thread's ends.

use crate::boot::{self, Ports, Rings};
use crate::channels::{mailbox, ReloadMailbox, SessionsMailbox};
use crate::clock::Clock;
use crate::ha::sync::Link;
use crate::lcore::{self, Lcore, Queues, WorkerChannels, WorkerRings};
use crate::live::{Live, Running};
use crate::reload::Reloader;
use crate::sessions::Sessions;
use crate::start_error::StartError;
use crate::view::View;
use crate::{exception, health, log, members};
use sluice_config::Config;
use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::WorkerStats;
use sluice_ffi::{Eal, Mempool};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the lcores are launched with.
pub struct Launch<'a> {
    pub eal: &'a Eal,
    /// The lcores to use, workers first, then the exception path's.
    pub lcores: &'a [u32],
    pub cfg: &'a Config,
    pub ports: &'a Ports,
    pub pool: &'a Arc<Mempool>,
    pub shared: &'a Arc<Shared>,
    pub clock: Clock,
    pub stop: &'a Arc<AtomicBool>,
}

/// The control thread's ends of what was launched.
pub struct Started {
    stats: Vec<Arc<WorkerStats>>,
    sessions: Vec<SessionsMailbox>,
    reload: Vec<ReloadMailbox>,
    kernel: exception::Counters,
    /// Session synchronisation's ends, when configured.
    sync: Option<Link>,
}

/// Per worker, what its job takes.
type Job = Box<dyn FnOnce() -> i32 + Send>;

impl Launch<'_> {
    /// Takes every lcore's queues and launches the workers and the
    /// exception path. On failure the lcores already running are stopped.
    pub fn run(&self, mut rings: Rings) -> Result<Started, StartError> {
        let workers = self.cfg.dataplane.workers;
        let stats: Vec<Arc<WorkerStats>> = (0..workers)
            .map(|_| Arc::new(WorkerStats::new(self.shared.vs_capacity())))
            .collect();
        let (sync, mut sync_ends) = match &self.cfg.ha.sync {
            Some(s) => {
                let (link, ends) = Link::new(workers, &s.peers);
                (Some(link), ends.into_iter().map(Some).collect())
            }
            None => (None, (0..workers).map(|_| None).collect::<Vec<_>>()),
        };
        // Queue handles are taken after the ports are started (start refuses
        // while handles are alive) and all before any lcore is launched; each
        // goes down with its lcore's state at the end of its run.
        let mut jobs: Vec<Job> = Vec::new();
        let (mut sessions, mut reload) = (Vec::new(), Vec::new());
        for w in 0..workers {
            let (inspect_control, inspect) = mailbox();
            let (reload_control, reload_worker) = mailbox();
            sessions.push(inspect_control);
            reload.push(reload_control);
            let channels = WorkerChannels {
                inspect,
                reload: reload_worker,
                sync: sync_ends[usize::from(w)].take(),
            };
            jobs.push(self.worker(w, &stats, &mut rings, channels)?);
        }
        let mut kernel = vec![None; self.ports.wire.len()];
        if let Some(to_wire) = rings.to_wire.take() {
            let from_workers = std::mem::take(&mut rings.from_workers);
            let (exc, counters) = self.exception_lcore(from_workers, to_wire)?;
            kernel = counters;
            jobs.push(Box::new(move || exc.run()));
        }
        for (job, lcore_id) in jobs.into_iter().zip(self.lcores) {
            if let Err(e) = self.eal.launch(*lcore_id, job) {
                // Lcores already running must stop before the EAL can go.
                self.stop.store(true, Ordering::Relaxed);
                self.eal.wait_all();
                return Err(StartError::Launch {
                    lcore: *lcore_id,
                    error: e,
                });
            }
        }
        Ok(Started {
            stats,
            sessions,
            reload,
            kernel,
            sync,
        })
    }

    /// Worker `w`'s job: its queues and rings taken now, its state built
    /// on its own lcore.
    fn worker(
        &self,
        w: u16,
        stats: &[Arc<WorkerStats>],
        rings: &mut Rings,
        channels: WorkerChannels,
    ) -> Result<Job, StartError> {
        let i = usize::from(w);
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        for port in &self.ports.wire {
            let err = |error| StartError::Queue {
                lcore: format!("worker {w}"),
                port: port.id(),
                error,
            };
            rx.push(port.rx_queue(w).map_err(err)?);
            tx.push(port.tx_queue(w).map_err(err)?);
        }
        let worker_rings = WorkerRings {
            to: std::mem::take(&mut rings.to[i]),
            from: std::mem::take(&mut rings.from[i]),
            kernel: rings.to_kernel[i].take(),
            from_kernel: if w == 0 {
                rings.from_kernel.take()
            } else {
                None
            },
        };
        let (shared, stats, pool) = (self.shared.clone(), stats[i].clone(), self.pool.clone());
        let port_index = boot::PortMap::of(&self.ports.wire);
        let (stop, clock) = (self.stop.clone(), self.clock);
        let announce = if w == 0 {
            boot::announcements(&shared)
        } else {
            Vec::new()
        };
        let dp = &self.cfg.dataplane;
        let (burst, sessions) = (usize::from(dp.burst), dp.sessions_per_worker);
        let adaptive = matches!(dp.poll, sluice_config::Poll::Adaptive);
        Ok(Box::new(move || {
            let lc = Lcore {
                // Built here, on the worker's own lcore: see `lcore::worker`.
                worker: lcore::worker(w, shared, stats, sessions),
                queues: Queues { rx, tx },
                rings: worker_rings,
                channels,
                burst,
                adaptive,
                pool,
                port_index,
                clock,
                stop,
                announce,
            };
            lc.run()
        }))
    }

    /// The exception path's lcore state: each tap's queues, the rings from
    /// the workers and the ring to worker 0.
    fn exception_lcore(
        &self,
        from_workers: Vec<sluice_ffi::RingConsumer>,
        to_wire: sluice_ffi::RingProducer,
    ) -> Result<(exception::ExceptionLcore, exception::Counters), StartError> {
        let mut links = Vec::new();
        let mut counters = Vec::new();
        for (wire, tap) in self.ports.wire.iter().zip(&self.ports.taps) {
            let Some(tap) = tap else {
                links.push(None);
                counters.push(None);
                continue;
            };
            let err = |error| StartError::Queue {
                lcore: "exception path".to_string(),
                port: wire.id(),
                error,
            };
            let c = Arc::new(exception::LinkCounters::default());
            links.push(Some(exception::Link {
                tap_rx: tap.rx_queue(0).map_err(err)?,
                tap_tx: tap.tx_queue(0).map_err(err)?,
                wire_port: wire.id(),
                counters: c.clone(),
            }));
            counters.push(Some(c));
        }
        let lcore = exception::ExceptionLcore {
            links,
            from_workers,
            to_wire,
            port_index: boot::PortMap::of(&self.ports.wire),
            stop: self.stop.clone(),
        };
        Ok((lcore, counters))
    }

    /// The control thread's view of what was launched, its health checks
    /// planned (not started).
    pub fn view(&self, path: &std::path::Path, started: Started) -> View {
        let (cfg, shared) = (self.cfg, self.shared);
        let plan = members::plan(cfg, shared);
        for t in plan.targets.iter().filter(|t| t.source.is_none()) {
            log(format!(
                "warning: health checks of {} leave from the host's own addresses: no kernel interface on the switch's link towards it",
                t.label
            ));
        }
        let health = health::statuses(plan.targets.len(), self.clock.now_ms());
        let live = Live {
            config: cfg.clone(),
            shared: shared.clone(),
            plan,
            health,
        };
        let reloader = Reloader {
            config_path: path.to_path_buf(),
            workers: started.reload,
            checks: std::sync::Mutex::new(health::Checks::default()),
            gate: tokio::sync::Mutex::new(()),
            sessions_per_worker: cfg.dataplane.sessions_per_worker,
            ramps: members::ramps(&shared.members),
        };
        View {
            running: Arc::new(Running::new(live, started.stats, self.clock)),
            ports: self.ports.wire.clone(),
            kernel: started.kernel,
            sessions: Arc::new(Sessions::new(started.sessions)),
            reloader: Arc::new(reloader),
            sync: started.sync.map(Arc::new),
            announce: Default::default(),
            rates: Default::default(),
        }
    }
}
