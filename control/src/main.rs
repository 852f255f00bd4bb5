//! `sluice`: boots the switch from its configuration file.
//!
//! Order matters: the whole configuration is parsed and validated before
//! anything touches a port; then EAL, the packet pool, the ports, the
//! per-worker state and the rings between workers are set up; workers are
//! launched on their lcores and the main lcore becomes the control thread.

mod admin;
mod announce;
mod boot;
mod clock;
mod control;
mod eal_args;
mod exception;
mod ha;
mod health;
mod json;
mod lcore;
mod loads;
mod mailbox;
mod members;
mod prom;
mod reload;
mod report;
mod sessions;
#[cfg(test)]
mod testing;

use boot::{Ports, Rings, KERNEL_RING_SIZE, RING_SIZE, RX_DESC, TAP_DESC, TX_DESC};
use clock::Clock;
use sluice_config::Config;
use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::WorkerStats;
use sluice_ffi::{Eal, Mempool};

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const USAGE: &str = "usage: sluice --config FILE [--check] [-- EAL-ARGS...]

  --config FILE   the switch configuration (TOML)
  --check         validate the configuration and exit
  -- ARGS         extra arguments for the DPDK EAL, with dataplane.eal_args
                  before the generated device arguments (devices they add
                  are probed first)

Signals: SIGTERM or SIGINT stop the switch (workers finish their burst);
SIGHUP reloads the configuration file, as `sluicectl reload` does.";

const POOL_CACHE: u32 = 256;

struct Args {
    config: PathBuf,
    check: bool,
    eal_extra: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut config, mut check, mut eal_extra) = (None, false, Vec::new());
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "-c" => config = Some(it.next().ok_or("--config needs a file")?),
            "--check" => check = true,
            "--help" | "-h" => return Err(String::new()),
            "--" => eal_extra.extend(it.by_ref()),
            other => match other.strip_prefix("--config=") {
                Some(f) => config = Some(f.to_string()),
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    Ok(Args {
        config: PathBuf::from(config.ok_or("--config FILE is required")?),
        check,
        eal_extra,
    })
}

pub(crate) fn log(msg: impl AsRef<str>) {
    eprintln!("sluice: {}", msg.as_ref());
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("sluice: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cfg = match sluice_config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!(
            "{}: configuration OK ({} interfaces, {} pools, {} virtual servers, {} workers)",
            args.config.display(),
            cfg.interfaces.len(),
            cfg.pools.len(),
            cfg.virtual_servers.len(),
            cfg.dataplane.workers
        );
        return ExitCode::SUCCESS;
    }
    match run(&cfg, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::from(1)
        }
    }
}

/// Packet buffers needed: every descriptor of every queue filled, bursts in
/// flight, the rings between workers and the per-lcore caches, with slack.
fn pool_size(cfg: &Config) -> u32 {
    if let Some(n) = cfg.dataplane.mbufs {
        return n;
    }
    let w = u32::from(cfg.dataplane.workers);
    let ports = cfg.interfaces.len() as u32;
    let taps = cfg
        .interfaces
        .iter()
        .filter(|i| i.kernel_interface.is_some())
        .count() as u32;
    let descs = ports * w * (u32::from(RX_DESC) + u32::from(TX_DESC))
        + ports * u32::from(TX_DESC)
        + taps * 2 * u32::from(TAP_DESC);
    let rings = w * w.saturating_sub(1) * RING_SIZE + w * KERNEL_RING_SIZE;
    let bursts = (w + 2) * (ports + w + 1) * 4 * u32::from(cfg.dataplane.burst);
    let caches = (w + 2) * POOL_CACHE;
    (descs + rings + bursts + caches + 4096).next_power_of_two() - 1
}

fn run(cfg: &Config, args: &Args) -> Result<(), String> {
    // Before anything else: a second sluice or a stray file is refused
    // without touching a port.
    let socket_path = control::SocketPath::claim(&cfg.control.socket)?;
    open_files();
    let (eal_argv, warning) = eal_args::build(cfg, &args.eal_extra, &eal_args::allowed_cpus());
    if let Some(w) = warning {
        log(format!("warning: {w}"));
    }
    log(format!("EAL arguments: {}", eal_argv[1..].join(" ")));
    let eal = Eal::init(&eal_argv).map_err(|e| format!("EAL initialisation failed: {e}"))?;
    let needed = usize::from(eal_args::service_lcores(cfg));
    let lcores = eal.worker_lcores();
    if lcores.len() < needed {
        return Err(format!(
            "{needed} lcores needed besides the main one ({} workers{}) but EAL has {} (check dataplane.lcores / eal_args)",
            cfg.dataplane.workers,
            if eal_args::exception_path(cfg) { " and the exception path" } else { "" },
            lcores.len()
        ));
    }
    match eal_args::without_shared_files(&eal_argv) {
        Some(arg) => log(format!(
            "packet capture with dpdk-dumpcap unavailable: EAL runs {arg}, and a secondary process needs hugepages and EAL's shared files"
        )),
        None => match eal.enable_capture() {
            Ok(()) => log(format!(
                "packet capture: dpdk-dumpcap --file-prefix={} -i PORT",
                cfg.dataplane.file_prefix
            )),
            Err(e) => log(format!("packet capture with dpdk-dumpcap unavailable: {e}")),
        },
    }
    match sluice_ffi::transparent_hugepages().as_deref() {
        Some("always" | "madvise") => {}
        other => log(format!(
            "warning: session tables on 4 KB pages: transparent huge pages are {} (echo madvise > /sys/kernel/mm/transparent_hugepage/enabled)",
            other.unwrap_or("not in this kernel")
        )),
    }
    let socket = eal.socket_id();
    let pool = Arc::new(Mempool::new("sluice_pkts", pool_size(cfg), POOL_CACHE, sluice_ffi::DEFAULT_DATA_ROOM, socket)
        .map_err(|e| format!("cannot create the packet pool: {e} (raise -m in eal_args or lower dataplane.mbufs)"))?);
    let ports = boot::configure_ports(cfg, &pool, socket)?;
    let shared = Arc::new(Shared::new(cfg, &ports.macs, cfg.dataplane.workers));
    let stop = control::stop_on_signals()?;
    let rings = boot::rings(cfg.dataplane.workers, eal_args::exception_path(cfg), socket)?;
    for port in ports.all() {
        port.start()
            .map_err(|e| format!("cannot start port {}: {e}", port.id()))?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the control thread's runtime: {e}"))?;
    if eal_args::exception_path(cfg) {
        rt.block_on(exception::netlink::configure(cfg, &ports.macs))
            .map_err(|e| e.to_string())?;
    }
    let clock = Clock::start();
    let running = launch(
        &eal, &lcores, cfg, &ports, &pool, &shared, rings, clock, &stop,
    )?;
    log(format!(
        "running: {} workers, {} virtual servers, control socket {}",
        cfg.dataplane.workers,
        shared.services.len(),
        cfg.control.socket.display()
    ));
    let view = Arc::new(control_view(
        cfg,
        &args.config,
        &shared,
        &ports,
        running,
        clock,
    ));
    let served = rt.block_on(async {
        let live = view.live();
        reload::run_checks(&view, &live.shared, &live.plan, &|i| live.health[i].clone());
        let folds = tokio::spawn(loads::run(view.clone()));
        let owner = (cfg.ha.vip_ownership == sluice_config::VipOwnership::Kernel).then(|| {
            let view = view.clone();
            tokio::spawn(async move {
                let e = ha::ownership::follow(view).await;
                log(format!("ha: {e}; the addresses owned now stay owned"));
            })
        });
        let sync = view.sync.is_some().then(|| {
            let view = view.clone();
            tokio::spawn(async move {
                let e = ha::sync::run(view).await;
                log(format!("ha: {e}; sessions are not synchronised"));
            })
        });
        let routes = {
            let view = view.clone();
            tokio::spawn(async move {
                let e = announce::run(view).await;
                log(format!("announce: {e}"));
            })
        };
        let served = control::serve(&socket_path, cfg.control.metrics, view.clone(), &stop).await;
        routes.abort();
        announce::withdraw_all(&view).await;
        health::lock(&view.reload.checks).stop();
        folds.abort();
        owner.inspect(|o| o.abort());
        sync.inspect(|s| s.abort());
        served
    });
    // Whatever ended the control thread, the lcores must stop before the EAL goes.
    stop.store(true, Ordering::Relaxed);
    drop(rt);
    shutdown(&eal, &ports, &view);
    served
}

/// Raises the open-file limit to the hard one: health checks hold a socket
/// each while they probe. Logs what it is, and warns when it is low.
fn open_files() {
    match sluice_ffi::raise_open_files_limit() {
        Ok(n) if n < 4096 => log(format!(
            "warning: open files limited to {n}: health checks that cannot get a socket count as local errors (raise LimitNOFILE / ulimit -n)"
        )),
        Ok(n) => log(format!("open files: up to {n}")),
        Err(e) => log(format!("warning: cannot raise the open-file limit: {e}")),
    }
}

/// What `launch` leaves for the control thread.
struct Running {
    stats: Vec<Arc<WorkerStats>>,
    mailboxes: Vec<sessions::Mailbox>,
    reload: Vec<reload::WorkerChannel>,
    kernel: exception::Counters,
    /// Session synchronisation's ends, when configured.
    sync: Option<ha::sync::Link>,
}

/// Takes every lcore's queues and launches the workers and the exception
/// path. On failure the lcores already running are stopped.
#[allow(clippy::too_many_arguments)]
fn launch(
    eal: &Eal,
    lcores: &[u32],
    cfg: &Config,
    ports: &Ports,
    pool: &Arc<Mempool>,
    shared: &Arc<Shared>,
    mut rings: Rings,
    clock: Clock,
    stop: &Arc<AtomicBool>,
) -> Result<Running, String> {
    let workers = cfg.dataplane.workers;
    let port_index = boot::PortMap::of(&ports.wire);
    let stats: Vec<Arc<WorkerStats>> = (0..workers)
        .map(|_| Arc::new(WorkerStats::new(shared.vs_capacity())))
        .collect();
    // Queue handles are taken after the ports are started (start refuses
    // while handles are alive) and all before any lcore is launched; each
    // goes down with its lcore's state at the end of its run.
    let mut jobs: Vec<Box<dyn FnOnce() -> i32 + Send>> = Vec::new();
    let mut mailboxes = Vec::new();
    let mut reloads = Vec::new();
    let announce = boot::announcements(shared);
    let (sync, mut sync_ends) = match &cfg.ha.sync {
        Some(s) => {
            let (link, ends) = ha::sync::Link::new(workers, &s.peers);
            (Some(link), ends.into_iter().map(Some).collect())
        }
        None => (None, (0..workers).map(|_| None).collect::<Vec<_>>()),
    };
    for w in 0..workers {
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        for port in &ports.wire {
            let err = |e: sluice_ffi::Error| format!("worker {w}: port {}: {e}", port.id());
            rx.push(port.rx_queue(w).map_err(err)?);
            tx.push(port.tx_queue(w).map_err(err)?);
        }
        let i = usize::from(w);
        let (control_end, worker_end) = sessions::mailbox();
        mailboxes.push(control_end);
        let (reload_control, reload_worker) = reload::channel();
        reloads.push(reload_control);
        let (to, from) = (
            std::mem::take(&mut rings.to[i]),
            std::mem::take(&mut rings.from[i]),
        );
        let kernel = rings.to_kernel[i].take();
        let from_kernel = if w == 0 {
            rings.from_kernel.take()
        } else {
            None
        };
        let (shared, stats, pool) = (shared.clone(), stats[i].clone(), pool.clone());
        let (port_index, stop) = (port_index.clone(), stop.clone());
        let announce = if w == 0 { announce.clone() } else { Vec::new() };
        let sync = sync_ends[i].take();
        let dp = &cfg.dataplane;
        let (burst, sessions) = (usize::from(dp.burst), dp.sessions_per_worker);
        let adaptive = matches!(dp.poll, sluice_config::Poll::Adaptive);
        jobs.push(Box::new(move || {
            let lc = lcore::Lcore {
                // Built here, on the worker's own lcore: see `lcore::worker`.
                worker: lcore::worker(w, shared, stats, sessions),
                rx,
                tx,
                burst,
                adaptive,
                pool,
                to,
                from,
                kernel,
                from_kernel,
                port_index,
                inspect: worker_end,
                reload: reload_worker,
                sync,
                clock,
                stop,
                announce,
            };
            lc.run()
        }));
    }
    let mut kernel = vec![None; ports.wire.len()];
    if let Some(to_wire) = rings.to_wire {
        let (exc, counters) =
            exception_lcore(ports, rings.from_workers, to_wire, port_index, stop)?;
        kernel = counters;
        jobs.push(Box::new(move || exc.run()));
    }
    for (job, lcore_id) in jobs.into_iter().zip(lcores) {
        if let Err(e) = eal.launch(*lcore_id, job) {
            // Lcores already running must stop before the EAL can go.
            stop.store(true, Ordering::Relaxed);
            eal.wait_all();
            return Err(format!("cannot launch lcore {lcore_id}: {e}"));
        }
    }
    Ok(Running {
        stats,
        mailboxes,
        reload: reloads,
        kernel,
        sync,
    })
}

/// The exception path's lcore state: each tap's queues, the rings from the
/// workers and the ring to worker 0.
fn exception_lcore(
    ports: &Ports,
    from_workers: Vec<sluice_ffi::RingConsumer>,
    to_wire: sluice_ffi::RingProducer,
    port_index: boot::PortMap,
    stop: &Arc<AtomicBool>,
) -> Result<(exception::ExceptionLcore, exception::Counters), String> {
    let mut links = Vec::new();
    let mut counters = Vec::new();
    for (wire, tap) in ports.wire.iter().zip(&ports.taps) {
        let Some(tap) = tap else {
            links.push(None);
            counters.push(None);
            continue;
        };
        let err = |e: sluice_ffi::Error| format!("exception path: port {}: {e}", wire.id());
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
        port_index,
        stop: stop.clone(),
    };
    Ok((lcore, counters))
}

fn control_view(
    cfg: &Config,
    path: &std::path::Path,
    shared: &Arc<Shared>,
    ports: &Ports,
    running: Running,
    clock: Clock,
) -> report::View {
    let plan = members::plan(cfg, shared);
    for t in plan.targets.iter().filter(|t| t.source.is_none()) {
        log(format!(
            "warning: health checks of {} leave from the host's own addresses: no kernel interface on the switch's link towards it",
            t.label
        ));
    }
    let health = health::statuses(plan.targets.len(), clock.now_ms());
    let live = report::Live {
        config: cfg.clone(),
        shared: shared.clone(),
        plan,
        health,
    };
    let reload = reload::Channels {
        workers: running.reload,
        checks: std::sync::Mutex::new(health::Checks::default()),
        gate: tokio::sync::Mutex::new(()),
        sessions_per_worker: cfg.dataplane.sessions_per_worker,
        ramps: members::ramps(&shared.members),
    };
    report::View::new(
        live,
        running.stats,
        ports.wire.clone(),
        clock,
        running.kernel,
        running.mailboxes,
        reload,
        path.to_path_buf(),
        running.sync,
    )
}

/// Waits for the lcores, stops the ports, prints the final counters.
fn shutdown(eal: &Eal, ports: &Ports, view: &report::View) {
    log("stopping: waiting for workers to finish their burst");
    for (lcore, rc) in eal.wait_all() {
        if rc != 0 {
            log(format!("lcore {lcore} exited with {rc}"));
        }
    }
    for port in ports.all() {
        port.stop().ok();
    }
    println!("{}", view.stats());
    for port in ports.all() {
        port.close();
    }
    log("stopped");
}
