//! `sluice`: boots the switch from its configuration file.
//!
//! Order matters: the whole configuration is parsed and validated before
//! anything touches a port; then EAL, the packet pool, the ports, the
//! per-worker state and the rings between workers are set up; workers are
//! launched on their lcores and the main lcore becomes the control thread.

mod control;
mod eal_args;
mod features;
mod lcore;
mod report;

use sluice_config::Config;
use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::WorkerStats;
use sluice_dataplane::worker::Worker;
use sluice_ffi::{Eal, Mempool, Port, PortConfig};

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: sluice --config FILE [--check] [-- EAL-ARGS...]

  --config FILE   the switch configuration (TOML)
  --check         validate the configuration and exit
  -- ARGS         extra arguments for the DPDK EAL, after the generated ones";

const RX_DESC: u16 = 1024;
const TX_DESC: u16 = 1024;
const RING_SIZE: u32 = 4096;
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

fn log(msg: impl AsRef<str>) {
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
    let cfg = match sluice_config::load(&args.config).and_then(|c| {
        features::check_supported(&c)?;
        Ok(c)
    }) {
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
    let descs = ports * w * (u32::from(RX_DESC) + u32::from(TX_DESC));
    let rings = w * w.saturating_sub(1) * RING_SIZE;
    let bursts = (w + 1) * (ports + w) * 4 * u32::from(cfg.dataplane.burst);
    let caches = (w + 1) * POOL_CACHE;
    (descs + rings + bursts + caches + 4096).next_power_of_two() - 1
}

fn run(cfg: &Config, args: &Args) -> Result<(), String> {
    let workers = cfg.dataplane.workers;
    let (eal_argv, warning) = eal_args::build(cfg, &args.eal_extra, &eal_args::allowed_cpus());
    if let Some(w) = warning {
        log(format!("warning: {w}"));
    }
    log(format!("EAL arguments: {}", eal_argv[1..].join(" ")));
    let eal = Eal::init(&eal_argv).map_err(|e| format!("EAL initialisation failed: {e}"))?;
    let lcores = eal.worker_lcores();
    if lcores.len() < usize::from(workers) {
        return Err(format!(
            "{workers} workers configured but EAL has only {} worker lcores (check dataplane.lcores / eal_args)",
            lcores.len()
        ));
    }
    let socket = eal.socket_id();
    let pool = Arc::new(Mempool::new("sluice_pkts", pool_size(cfg), POOL_CACHE, sluice_ffi::DEFAULT_DATA_ROOM, socket)
        .map_err(|e| format!("cannot create the packet pool: {e} (raise -m in eal_args or lower dataplane.mbufs)"))?);

    let mut ports = Vec::new();
    let mut macs = Vec::new();
    for itf in &cfg.interfaces {
        let name = eal_args::port_name(&itf.device);
        let port = Port::by_name(name)
            .map_err(|e| format!("interface {}: no DPDK port {name:?}: {e}", itf.name))?;
        let setup = port
            .configure(
                &PortConfig {
                    rx_queues: workers,
                    tx_queues: workers,
                    rx_desc: RX_DESC,
                    tx_desc: TX_DESC,
                    mtu: itf.mtu,
                    rss: workers > 1,
                    tx_cksum_offload: false,
                    socket,
                },
                &pool,
            )
            .map_err(|e| format!("interface {}: cannot configure port: {e}", itf.name))?;
        let mac = port
            .mac()
            .map_err(|e| format!("interface {}: {e}", itf.name))?;
        let info = port
            .info()
            .map_err(|e| format!("interface {}: {e}", itf.name))?;
        log(format!(
            "interface {} = port {} ({}), mac {}, {} queue(s), rss {}",
            itf.name,
            port.id(),
            info.driver,
            mac.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            workers,
            if setup.rss {
                "on"
            } else {
                "off (packets are handed to their owning worker in software)"
            }
        ));
        ports.push(port);
        macs.push(mac);
    }

    let shared = Arc::new(Shared::new(cfg, &macs, workers));
    let stats: Vec<Arc<WorkerStats>> = (0..workers)
        .map(|_| Arc::new(WorkerStats::default()))
        .collect();
    let stop = control::stop_on_signals()?;
    let control = control::Control::bind(&cfg.control.socket, cfg.control.metrics)?;

    // Rings between every ordered pair of workers.
    let n = usize::from(workers);
    let mut to: Vec<Vec<Option<sluice_ffi::RingProducer>>> =
        (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut from: Vec<Vec<sluice_ffi::RingConsumer>> = (0..n).map(|_| Vec::new()).collect();
    for (a, to_a) in to.iter_mut().enumerate() {
        for (b, from_b) in from.iter_mut().enumerate() {
            if a != b {
                let (p, c) = sluice_ffi::mbuf_ring(&format!("sl_rd_{a}_{b}"), RING_SIZE, socket)
                    .map_err(|e| format!("cannot create ring {a}->{b}: {e}"))?;
                to_a[b] = Some(p);
                from_b.push(c);
            }
        }
    }

    for port in &ports {
        port.start()
            .map_err(|e| format!("cannot start port {}: {e}", port.id()))?;
    }
    // Each worker's own RX/TX queue on every port, taken after the ports are
    // started (start refuses while queue handles are alive) and all before
    // any worker is launched. The handles go down with their Lcore at the
    // end of its run, so they are gone once eal.wait_all() returns and the
    // ports can be stopped.
    let mut queues = Vec::with_capacity(n);
    for w in 0..workers {
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        for port in &ports {
            let err = |e: sluice_ffi::Error| format!("worker {w}: port {}: {e}", port.id());
            rx.push(port.rx_queue(w).map_err(err)?);
            tx.push(port.tx_queue(w).map_err(err)?);
        }
        queues.push((rx, tx));
    }
    let announce = announcements(&shared);
    for ((w, lcore_id), (rx, tx)) in lcores.iter().take(n).enumerate().zip(queues) {
        let worker = Worker::new(
            w as u16,
            shared.clone(),
            stats[w].clone(),
            cfg.dataplane.sessions_per_worker,
        );
        let lc = lcore::Lcore {
            worker,
            rx,
            tx,
            burst: usize::from(cfg.dataplane.burst),
            adaptive: matches!(cfg.dataplane.poll, sluice_config::Poll::Adaptive),
            pool: pool.clone(),
            to: std::mem::take(&mut to[w]),
            from: std::mem::take(&mut from[w]),
            stop: stop.clone(),
            announce: if w == 0 { announce.clone() } else { Vec::new() },
        };
        if let Err(e) = eal.launch(*lcore_id, move || lc.run()) {
            // Workers already running must stop before the EAL can go.
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            eal.wait_all();
            return Err(format!("cannot launch worker {w} on lcore {lcore_id}: {e}"));
        }
    }
    log(format!(
        "running: {} workers, {} virtual servers, control socket {}",
        workers,
        shared.services.len(),
        cfg.control.socket.display()
    ));

    let started = std::time::Instant::now();
    let view = report::View {
        shared: shared.clone(),
        stats: stats.clone(),
        ports: ports.clone(),
        started,
        now_ms: Box::new(move || started.elapsed().as_millis() as u32),
    };
    control.run(&view, &stop);

    log("stopping: waiting for workers to finish their burst");
    for (lcore, rc) in eal.wait_all() {
        if rc != 0 {
            log(format!("lcore {lcore} exited with {rc}"));
        }
    }
    for port in &ports {
        port.stop().ok();
    }
    println!("{}", view.stats());
    for port in &ports {
        port.close();
    }
    drop(view);
    drop(pool);
    drop(eal);
    log("stopped");
    Ok(())
}

/// Addresses worker 0 announces by gratuitous ARP at start: each interface
/// address on its port, VIPs and SNAT addresses on every port they are reachable from.
fn announcements(shared: &Shared) -> Vec<(u16, std::net::Ipv4Addr)> {
    let mut out = Vec::new();
    for (i, p) in shared.ports.iter().enumerate() {
        for (a, _) in &p.addresses {
            out.push((i as u16, *a));
        }
    }
    for vs in &shared.services {
        for (i, _) in shared.ports.iter().enumerate() {
            if shared
                .routes
                .connected(vs.vip)
                .is_none_or(|r| usize::from(r.port) == i)
            {
                out.push((i as u16, vs.vip));
            }
        }
    }
    for s in &shared.snat_addrs {
        if let Some(r) = shared.routes.connected(*s) {
            out.push((r.port, *s));
        }
    }
    out.sort_by_key(|(p, a)| (*p, u32::from(*a)));
    out.dedup();
    out
}
