//! What a running switch can take from a changed file without a restart.
//!
//! The EAL, the ports, their queues and the workers are built once at boot
//! from `[dataplane]`, `[control]`, `[[interface]]` (and the kernel
//! interfaces, routes and static neighbours configured with them) and
//! `[ha]`; a reload that changes any of those is refused naming the keys. Everything else
//! (virtual servers, pools, members, checks, timeouts) applies live.

use crate::types::{Config, Control, Dataplane, Interface};

/// The keys of `new` that differ from `running` and need a restart, in file
/// order of sections; empty when the change can be applied live.
///
/// Every section is taken apart field by field, without `..`: a field
/// added to the configuration does not compile until it is named here,
/// as restart-only or as live.
pub fn restart_keys(running: &Config, new: &Config) -> Vec<String> {
    let Config {
        file: _,
        dataplane,
        control,
        timeouts: _,
        interfaces,
        routes,
        neighbors,
        health_checks: _,
        pools: _,
        virtual_servers: _,
        ha,
        announce: _,
        lines: _,
    } = running;
    let mut keys = dataplane_keys(dataplane, &new.dataplane);
    keys.extend(control_keys(control, &new.control));
    keys.extend(interface_keys(interfaces, &new.interfaces));
    let mut differs = |key: &str, same: bool| {
        if !same {
            keys.push(key.to_string());
        }
    };
    differs("route", *routes == new.routes);
    differs("neighbor", *neighbors == new.neighbors);
    differs("ha", *ha == new.ha);
    keys
}

/// The EAL, the queues, the pool and the session tables are sized from
/// every key of `[dataplane]`.
fn dataplane_keys(a: &Dataplane, b: &Dataplane) -> Vec<String> {
    let Dataplane {
        workers,
        lcores,
        eal_args,
        sessions_per_worker,
        burst,
        mbufs,
        poll,
        file_prefix,
    } = a;
    let fields = [
        ("workers", *workers == b.workers),
        ("lcores", *lcores == b.lcores),
        ("eal_args", *eal_args == b.eal_args),
        (
            "sessions_per_worker",
            *sessions_per_worker == b.sessions_per_worker,
        ),
        ("burst", *burst == b.burst),
        ("mbufs", *mbufs == b.mbufs),
        ("poll", *poll == b.poll),
        ("file_prefix", *file_prefix == b.file_prefix),
    ];
    changed("dataplane.", &fields)
}

/// The listeners are bound once, at boot.
fn control_keys(a: &Control, b: &Control) -> Vec<String> {
    let Control {
        socket,
        metrics,
        http,
    } = a;
    let fields = [
        ("socket", *socket == b.socket),
        ("metrics", *metrics == b.metrics),
        ("http", *http == b.http),
    ];
    changed("control.", &fields)
}

/// Ports, their addresses and their kernel interfaces are set up at boot.
fn interface_keys(a: &[Interface], b: &[Interface]) -> Vec<String> {
    if a.len() != b.len() {
        return vec!["interface".to_string()];
    }
    let mut keys = Vec::new();
    for (i, (a, b)) in a.iter().zip(b).enumerate() {
        let Interface {
            name,
            device,
            addresses,
            mtu,
            kernel_interface,
        } = a;
        let fields = [
            ("name", *name == b.name),
            ("device", *device == b.device),
            ("addresses", *addresses == b.addresses),
            ("mtu", *mtu == b.mtu),
            ("kernel_interface", *kernel_interface == b.kernel_interface),
        ];
        keys.extend(changed(&format!("interface[{i}]."), &fields));
    }
    keys
}

/// The keys, each with `prefix`, whose values differ.
fn changed(prefix: &str, fields: &[(&str, bool)]) -> Vec<String> {
    (fields.iter())
        .filter(|(_, same)| !same)
        .map(|(key, _)| format!("{prefix}{key}"))
        .collect()
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
    fn the_control_listeners_need_a_restart() {
        let running = parse(BASE);
        let with = |line: &str| {
            parse(&BASE.replace("[dataplane]", &format!("[control]\n{line}\n[dataplane]")))
        };
        assert_eq!(
            restart_keys(&running, &with("http = 9180")),
            ["control.http"]
        );
        assert_eq!(
            restart_keys(&running, &with("metrics = \"127.0.0.1:9911\"")),
            ["control.metrics"]
        );
        // A bare port, as a number or a string, is 127.0.0.1's.
        assert_eq!(
            with("http = 9180").control.http,
            with("http = \"127.0.0.1:9180\"").control.http
        );
        assert_eq!(
            with("http = \"9180\"").control.http,
            with("http = 9180").control.http
        );
        assert_eq!(
            with("http = \"[::1]:9180\"")
                .control
                .http
                .map(|a| a.to_string()),
            Some("[::1]:9180".to_string())
        );
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
