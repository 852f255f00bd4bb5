//! The EAL command line sluice generates from the configuration.

use sluice_config::Config;

/// Whether a device spec names a PCI device ("0000:3b:00.0") rather than a vdev.
pub fn is_pci(device: &str) -> bool {
    let name = device.split(',').next().unwrap_or("");
    let parts: Vec<&str> = name.split([':', '.']).collect();
    (parts.len() == 4 || parts.len() == 3)
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The ethdev name DPDK gives the device: the spec up to its first comma.
pub fn port_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

/// The vdev spec with what sluice needs added: af_packet gets one queue pair
/// per worker (its sockets share a fanout group, so every queue pair it has
/// receives traffic and must be polled).
pub fn vdev_spec(device: &str, workers: u16) -> String {
    if port_name(device).starts_with("net_af_packet") && !device.contains("qpairs=") {
        format!("{device},qpairs={workers}")
    } else {
        device.to_string()
    }
}

/// The ethdev name of the exception path's tap port of interface `i`.
pub fn tap_port_name(i: usize) -> String {
    format!("net_tap_sl{i}")
}

/// Whether any interface has a kernel interface (the exception path runs).
pub fn exception_path(cfg: &Config) -> bool {
    cfg.interfaces.iter().any(|i| i.kernel_interface.is_some())
}

/// Lcores sluice needs besides the main (control) lcore: one per worker,
/// plus one serving the exception path when it runs.
pub fn service_lcores(cfg: &Config) -> u16 {
    cfg.dataplane.workers + u16::from(exception_path(cfg))
}

/// CPUs this process may run on (from /proc/self/status), ascending.
pub fn allowed_cpus() -> Vec<u32> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("0")
        .trim()
        .to_string();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let mut ends = part.split('-').map(|s| s.trim().parse::<u32>());
        match (ends.next(), ends.next()) {
            (Some(Ok(a)), Some(Ok(b))) => cpus.extend(a..=b),
            (Some(Ok(a)), None) => cpus.push(a),
            _ => {}
        }
    }
    if cpus.is_empty() {
        cpus.push(0);
    }
    cpus
}

/// `--lcores` value: lcore 0 is the main (control) lcore, 1..=lcores the
/// workers (and the exception path's lcore), each on its own CPU while there
/// are enough, else wrapping around. Returns the mapping and whether it
/// oversubscribes CPUs.
pub fn lcore_map(lcores: u16, cpus: &[u32]) -> (String, bool) {
    let n = usize::from(lcores) + 1;
    let map: Vec<String> = (0..n)
        .map(|l| format!("{l}@{}", cpus[l % cpus.len()]))
        .collect();
    (map.join(","), n > cpus.len())
}

/// The full EAL argument vector (argv[0] included).
pub fn build(cfg: &Config, extra: &[String], cpus: &[u32]) -> (Vec<String>, Option<String>) {
    let dp = &cfg.dataplane;
    let mut args = vec!["sluice".to_string()];
    let mut warning = None;
    match &dp.lcores {
        Some(l) => args.extend(["--lcores".to_string(), l.clone()]),
        None => {
            let lcores = service_lcores(cfg);
            let (map, over) = lcore_map(lcores, cpus);
            if over {
                warning = Some(format!(
                    "{} lcores on {} CPU(s): lcores share CPUs ({map}); use poll = \"adaptive\" or more CPUs",
                    lcores + 1,
                    cpus.len()
                ));
            }
            args.extend(["--lcores".to_string(), map]);
        }
    }
    let user: Vec<&String> = dp.eal_args.iter().chain(extra.iter()).collect();
    // The user's arguments come before the interfaces' devices, so devices
    // they add (a bond's members, a spare port) are probed first. Port ids
    // then do not follow `[[interface]]` order, which the daemon never
    // assumes (`boot::PortMap`); tests/e2e/operate.sh relies on this.
    args.extend(user.iter().map(|a| a.to_string()));
    let mut any_pci = false;
    for itf in &cfg.interfaces {
        if is_pci(&itf.device) {
            any_pci = true;
            args.extend(["-a".to_string(), itf.device.clone()]);
        } else {
            args.extend(["--vdev".to_string(), vdev_spec(&itf.device, dp.workers)]);
        }
    }
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        if let Some(k) = &itf.kernel_interface {
            args.extend([
                "--vdev".to_string(),
                format!("{},iface={k}", tap_port_name(i)),
            ]);
        }
    }
    if !any_pci {
        args.push("--no-pci".to_string());
    }
    // With hugepages EAL keeps its shared files under the file prefix, so
    // DPDK's tools attach as secondary processes (dpdk-dumpcap). Without
    // hugepages no secondary can attach: keep the files out of the way.
    let has = |opt: &str| user.iter().any(|a| a.starts_with(opt));
    if !has("--file-prefix") {
        // DPDK's tools (dpdk-telemetry.py -f PREFIX) find the instance by it.
        args.push(format!("--file-prefix={}", dp.file_prefix));
    }
    if has("--no-huge") && !has("--proc-type") && !has("--in-memory") && !has("--no-shconf") {
        args.push("--no-shconf".to_string());
    }
    (args, warning)
}

/// The EAL argument that keeps secondary processes (DPDK's tools) from
/// attaching, if any.
pub fn without_shared_files(args: &[String]) -> Option<&str> {
    args.iter()
        .map(String::as_str)
        .find(|a| matches!(*a, "--no-shconf" | "--in-memory" | "--no-huge"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_or_vdev() {
        assert!(is_pci("0000:3b:00.0"));
        assert!(is_pci("3b:00.1"));
        assert!(!is_pci("net_af_packet0,iface=lb-ext"));
        assert_eq!(port_name("net_af_packet0,iface=lb-ext"), "net_af_packet0");
        assert_eq!(
            vdev_spec("net_af_packet0,iface=x", 2),
            "net_af_packet0,iface=x,qpairs=2"
        );
        assert_eq!(
            vdev_spec("net_af_packet0,iface=x,qpairs=4", 2),
            "net_af_packet0,iface=x,qpairs=4"
        );
        assert_eq!(vdev_spec("net_null0", 2), "net_null0");
    }

    #[test]
    fn lcores_wrap_when_cpus_are_few() {
        assert_eq!(
            lcore_map(2, &[0, 1, 2, 3]),
            ("0@0,1@1,2@2".to_string(), false)
        );
        assert_eq!(lcore_map(2, &[0, 1]), ("0@0,1@1,2@0".to_string(), true));
        assert_eq!(lcore_map(1, &[5]), ("0@5,1@5".to_string(), true));
    }

    /// A one-interface configuration with these `[dataplane]` keys.
    fn config(dataplane: &str) -> sluice_config::Config {
        let text = format!(
            r#"
[dataplane]
{dataplane}
[[interface]]
name = "ext"
device = "net_af_packet0,iface=lb-ext"
addresses = ["198.51.100.1/24"]
[pool.p]
members = [{{ address = "198.51.100.20:80" }}]
[[virtual_server]]
name = "v"
address = "198.51.100.10:80"
protocol = "tcp"
pool = "p"
forwarding = "dest_nat"
"#
        );
        sluice_config::parse(&text, "t.toml").unwrap()
    }

    #[test]
    fn generated_command_line() {
        let cfg = config("workers = 2\neal_args = [\"--no-huge\", \"-m\", \"512\"]");
        let (args, warn) = build(&cfg, &["--log-level=7".to_string()], &[0, 1]);
        assert!(warn.is_some());
        assert_eq!(
            args,
            [
                "sluice",
                "--lcores",
                "0@0,1@1,2@0,3@1",
                "--no-huge",
                "-m",
                "512",
                "--log-level=7",
                "--vdev",
                "net_af_packet0,iface=lb-ext,qpairs=2",
                "--vdev",
                "net_tap_sl0,iface=sluice-ext",
                "--no-pci",
                "--file-prefix=sluice",
                "--no-shconf",
            ]
        );
    }

    #[test]
    fn hugepages_keep_the_shared_files_dpdk_tools_need() {
        let cfg = config("eal_args = [\"-m\", \"256\"]");
        let (args, _) = build(&cfg, &[], &[0, 1, 2]);
        assert!(args.contains(&"--file-prefix=sluice".to_string()));
        assert_eq!(without_shared_files(&args), None, "{args:?}");
        let (args, _) = build(&cfg, &["--no-huge".to_string()], &[0, 1, 2]);
        assert!(args.contains(&"--no-shconf".to_string()));
        assert!(without_shared_files(&args).is_some());
    }
}
