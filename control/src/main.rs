//! `sluice`: boots the switch from its configuration file.
//!
//! Order matters: the whole configuration is parsed and validated before
//! anything touches a port; then EAL, the packet pool, the ports, the
//! per-worker state and the rings between workers are set up; workers are
//! launched on their lcores and the main lcore becomes the control thread.

mod admin;
mod announce;
mod boot;
mod channels;
mod clock;
mod dispatch;
mod eal_args;
mod exception;
mod ha;
mod health;
mod launch;
mod lcore;
mod live;
mod loads;
mod members;
mod reload;
mod server;
mod sessions;
mod start_error;
#[cfg(test)]
mod testing;
mod view;

use boot::{Ports, KERNEL_RING_SIZE, RING_SIZE, RX_DESC, TAP_DESC, TX_DESC};
use clock::Clock;
use sluice_config::Config;
use sluice_dataplane::shared::Shared;
use sluice_ffi::{Eal, Mempool};
use start_error::StartError;
use view::View;

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

fn run(cfg: &Config, args: &Args) -> Result<(), StartError> {
    // Before anything else: a second sluice or a stray file is refused
    // without touching a port.
    let socket_path = server::SocketPath::claim(&cfg.control.socket)?;
    open_files();
    let (eal, lcores) = start_eal(cfg, args)?;
    let socket = eal.socket_id();
    let pool = Arc::new(
        Mempool::new(
            "sluice_pkts",
            pool_size(cfg),
            POOL_CACHE,
            sluice_ffi::DEFAULT_DATA_ROOM,
            socket,
        )
        .map_err(StartError::PacketPool)?,
    );
    let ports = boot::configure_ports(cfg, &pool, socket)?;
    let shared = Arc::new(Shared::new(cfg, &ports.macs, cfg.dataplane.workers));
    let stop = server::stop_on_signals()?;
    let rings = boot::rings(cfg.dataplane.workers, eal_args::exception_path(cfg), socket)?;
    for port in ports.all() {
        (port.start()).map_err(|error| StartError::PortStart {
            port: port.id(),
            error,
        })?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    if eal_args::exception_path(cfg) {
        rt.block_on(exception::netlink::configure(cfg, &ports.macs))
            .map_err(|e| StartError::KernelInterfaces(Box::new(e)))?;
    }
    let launch = launch::Launch {
        eal: &eal,
        lcores: &lcores,
        cfg,
        ports: &ports,
        pool: &pool,
        shared: &shared,
        clock: Clock::start(),
        stop: &stop,
    };
    let started = launch.run(rings)?;
    log(format!(
        "running: {} workers, {} virtual servers, control socket {}",
        cfg.dataplane.workers,
        shared.services.len(),
        cfg.control.socket.display()
    ));
    let view = Arc::new(launch.view(&args.config, started));
    let listeners = server::Listeners {
        socket: &socket_path,
        metrics: cfg.control.metrics,
        http: cfg.control.http,
    };
    let served = rt.block_on(control_thread(cfg, listeners, view.clone(), &stop));
    // Whatever ended the control thread, the lcores must stop before the EAL goes.
    stop.store(true, Ordering::Relaxed);
    drop(rt);
    shutdown(&eal, &ports, &view);
    served
}

/// EAL up with the arguments of `[dataplane]` and the command line, and
/// the lcores it gives the workers and the exception path.
fn start_eal(cfg: &Config, args: &Args) -> Result<(Eal, Vec<u32>), StartError> {
    let (eal_argv, warning) = eal_args::build(cfg, &args.eal_extra, &eal_args::allowed_cpus());
    if let Some(w) = warning {
        log(format!("warning: {w}"));
    }
    log(format!("EAL arguments: {}", eal_argv[1..].join(" ")));
    let eal = Eal::init(&eal_argv).map_err(StartError::Eal)?;
    let needed = usize::from(eal_args::service_lcores(cfg));
    let lcores = eal.worker_lcores();
    if lcores.len() < needed {
        return Err(StartError::TooFewLcores {
            needed,
            have: lcores.len(),
            workers: cfg.dataplane.workers,
            exception: eal_args::exception_path(cfg),
        });
    }
    announce_capture(cfg, &eal, &eal_argv);
    warn_on_small_pages();
    Ok((eal, lcores))
}

/// Logs how to capture packets with dpdk-dumpcap, or why it cannot.
fn announce_capture(cfg: &Config, eal: &Eal, eal_argv: &[String]) {
    match eal_args::without_shared_files(eal_argv) {
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
}

/// Warns when the session tables will sit on 4 KB pages.
fn warn_on_small_pages() {
    match sluice_ffi::transparent_hugepages().as_deref() {
        Some("always" | "madvise") => {}
        other => log(format!(
            "warning: session tables on 4 KB pages: transparent huge pages are {} (echo madvise > /sys/kernel/mm/transparent_hugepage/enabled)",
            other.unwrap_or("not in this kernel")
        )),
    }
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

/// The control thread: health checks, the tasks of `[ha]` and
/// `[announce]`, the member loads and the rates, and the listeners, until
/// a signal stops it; then the VIP routes are withdrawn.
async fn control_thread(
    cfg: &Config,
    listeners: server::Listeners<'_>,
    view: Arc<View>,
    stop: &AtomicBool,
) -> Result<(), StartError> {
    let (running, reloader) = (&view.running, &view.reloader);
    let live = running.live();
    reload::run_checks(running, reloader, &live.shared, &live.plan, &|i| {
        live.health[i].clone()
    });
    let mut tasks = vec![
        tokio::spawn(loads::run(running.clone())),
        tokio::spawn(dispatch::history::run(view.clone())),
    ];
    if cfg.ha.vip_ownership == sluice_config::VipOwnership::Kernel {
        let follow = ha::ownership::follow(running.clone(), reloader.clone());
        tasks.push(tokio::spawn(async move {
            let e = follow.await;
            log(format!("ha: {e}; the addresses owned now stay owned"));
        }));
    }
    if let Some(link) = &view.sync {
        let context = ha::sync::SyncContext {
            running: running.clone(),
            link: link.clone(),
            sessions: view.sessions.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let e = ha::sync::run(Arc::new(context)).await;
            log(format!("ha: {e}; sessions are not synchronised"));
        }));
    }
    let routes = announce::run(running.clone(), view.announce.clone());
    tasks.push(tokio::spawn(async move {
        let e = routes.await;
        log(format!("announce: {e}"));
    }));
    let served = server::serve(listeners, view.clone(), stop).await;
    for t in &tasks {
        t.abort();
    }
    announce::withdraw_all(running).await;
    health::lock(&reloader.checks).stop();
    served
}

/// Waits for the lcores, stops the ports, prints the final counters.
fn shutdown(eal: &Eal, ports: &Ports, view: &View) {
    log("stopping: waiting for workers to finish their burst");
    for (lcore, rc) in eal.wait_all() {
        if rc != 0 {
            log(format!("lcore {lcore} exited with {rc}"));
        }
    }
    for port in ports.all() {
        port.stop().ok();
    }
    println!(
        "{}",
        dispatch::model::stats(view, &view.running.live()).text()
    );
    for port in ports.all() {
        port.close();
    }
    log("stopped");
}
