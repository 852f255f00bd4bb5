//! What a running switch can take from a changed file without a restart.
//!
//! The EAL, the ports, their queues and the workers are built once at boot
//! from `[dataplane]`, `[control]`, `[[interface]]` (and the kernel
//! interfaces, routes and static neighbours configured with them) and
//! `[ha]`; a reload that changes any of those is refused naming the keys. Everything else
//! (virtual servers, pools, members, checks, timeouts) applies live.

use crate::types::Config;

/// The keys of `new` that differ from `running` and need a restart, in file
/// order of sections; empty when the change can be applied live.
pub fn restart_keys(running: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut differs = |key: String, same: bool| {
        if !same {
            keys.push(key);
        }
    };
    let (a, b) = (&running.dataplane, &new.dataplane);
    differs("dataplane.workers".into(), a.workers == b.workers);
    differs("dataplane.lcores".into(), a.lcores == b.lcores);
    differs("dataplane.eal_args".into(), a.eal_args == b.eal_args);
    differs(
        "dataplane.sessions_per_worker".into(),
        a.sessions_per_worker == b.sessions_per_worker,
    );
    differs("dataplane.burst".into(), a.burst == b.burst);
    differs("dataplane.mbufs".into(), a.mbufs == b.mbufs);
    differs("dataplane.poll".into(), a.poll == b.poll);
    differs(
        "dataplane.file_prefix".into(),
        a.file_prefix == b.file_prefix,
    );
    differs(
        "control.socket".into(),
        running.control.socket == new.control.socket,
    );
    differs(
        "control.metrics".into(),
        running.control.metrics == new.control.metrics,
    );
    if running.interfaces.len() != new.interfaces.len() {
        differs("interface".into(), false);
    } else {
        for (i, (a, b)) in running.interfaces.iter().zip(&new.interfaces).enumerate() {
            let key = |k: &str| format!("interface[{i}].{k}");
            differs(key("name"), a.name == b.name);
            differs(key("device"), a.device == b.device);
            differs(key("addresses"), a.addresses == b.addresses);
            differs(key("mtu"), a.mtu == b.mtu);
            differs(
                key("kernel_interface"),
                a.kernel_interface == b.kernel_interface,
            );
        }
    }
    differs("route".into(), running.routes == new.routes);
    differs("neighbor".into(), running.neighbors == new.neighbors);
    differs("ha".into(), running.ha == new.ha);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[dataplane]
workers = 2
[[interface]]
name = "ext"
device = "net_null0"
addresses = ["198.51.100.1/24"]
[[interface]]
name = "int"
device = "net_null1"
addresses = ["10.20.0.1/24"]
[pool.web]
members = [{ address = "10.20.0.11:80" }]
[[virtual_server]]
name = "web"
address = "198.51.100.10:80"
protocol = "tcp"
pool = "web"
forwarding = "dest_nat"
"#;

    fn parse(text: &str) -> Config {
        crate::parse(text, "t.toml").expect("valid")
    }

    #[test]
    fn pools_and_servers_change_live() {
        let running = parse(BASE);
        let more = BASE.replace(
            r#"members = [{ address = "10.20.0.11:80" }]"#,
            r#"members = [{ address = "10.20.0.11:80" }, { address = "10.20.0.12:80" }]"#,
        ) + "[timeouts]\ntcp_established = \"1m\"\n";
        assert!(restart_keys(&running, &parse(&more)).is_empty());
    }

    #[test]
    fn workers_devices_and_addresses_need_a_restart() {
        let running = parse(BASE);
        let changed = BASE
            .replace("workers = 2", "workers = 1")
            .replace("net_null1", "net_null9")
            .replace("198.51.100.1/24", "198.51.100.2/24");
        assert_eq!(
            restart_keys(&running, &parse(&changed)),
            [
                "dataplane.workers",
                "interface[0].addresses",
                "interface[1].device"
            ]
        );
    }
}
