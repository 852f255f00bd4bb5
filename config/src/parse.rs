//! Section readers: TOML tables to typed structs, checking everything that
//! can be checked locally plus references to sections read earlier.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::error::ConfigError;
use crate::reader::{Ctx, Res, Tab};
use crate::types::*;
use crate::values::{
    loopback, parse_duration, parse_ifaddr, parse_ip, parse_listen_addr, parse_mac, parse_prefix,
    parse_socket_addr,
};
use crate::{announce, ha, net, vs};

const ROOT_KEYS: &[&str] = &[
    "dataplane",
    "control",
    "timeouts",
    "interface",
    "route",
    "neighbor",
    "health_check",
    "pool",
    "virtual_server",
    "ha",
    "announce",
];
const DATAPLANE_KEYS: &[&str] = &[
    "workers",
    "lcores",
    "eal_args",
    "sessions_per_worker",
    "burst",
    "mbufs",
    "poll",
    "file_prefix",
];
const CONTROL_KEYS: &[&str] = &["socket", "metrics", "http"];
const TIMEOUT_KEYS: &[&str] = &[
    "tcp_syn",
    "tcp_established",
    "tcp_fin",
    "tcp_close",
    "udp",
    "icmp",
];
const CHECK_KEYS: &[&str] = &[
    "kind",
    "interval",
    "timeout",
    "fall",
    "rise",
    "port",
    "path",
    "host",
    "expect_status",
    "expect_body",
    "send",
    "expect",
    "command",
];
const POOL_KEYS: &[&str] = &[
    "method",
    "health_check",
    "on_member_down",
    "maglev_table_size",
    "members",
];
const MEMBER_KEYS: &[&str] = &[
    "address",
    "weight",
    "backup",
    "max_connections",
    "slow_start",
    "enabled",
];
const CHECK_KINDS: &[(&str, &str)] = &[
    ("tcp", "tcp"),
    ("http", "http"),
    ("udp", "udp"),
    ("icmp", "icmp"),
    ("script", "script"),
];

/// Parses and validates a whole file.
pub(crate) fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let cx = Ctx::new(file, text);
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
        let line = cx.line(e.span()).unwrap_or(1);
        let msg = e.message().trim().replace('\n', "; ");
        cx.err_at(line, "", format!("TOML syntax error: {msg}"))
    })?;
    let root = Tab::open(&cx, String::new(), 1, doc.as_table(), ROOT_KEYS)?;
    let mut cfg = Config {
        file: file.to_string(),
        dataplane: opt_section(&root, "dataplane", DATAPLANE_KEYS, dataplane)?,
        control: opt_section(&root, "control", CONTROL_KEYS, control)?,
        timeouts: opt_section(&root, "timeouts", TIMEOUT_KEYS, timeouts)?,
        interfaces: Vec::new(),
        routes: Vec::new(),
        neighbors: Vec::new(),
        health_checks: Vec::new(),
        pools: Vec::new(),
        virtual_servers: Vec::new(),
        ha: Ha::default(),
        announce: None,
        lines: Default::default(),
    };
    cfg.interfaces = net::interfaces(&root)?;
    cfg.routes = net::routes(&root, &cfg.interfaces)?;
    cfg.neighbors = net::neighbors(&root, &cfg.interfaces)?;
    cfg.health_checks = health_checks(&root)?;
    cfg.pools = pools(&root, &cfg.health_checks)?;
    cfg.virtual_servers = vs::virtual_servers(&root, &cfg)?;
    if let Some(t) = root.sub("ha", ha::HA_KEYS)? {
        cfg.ha = ha::ha(&t, &cfg.interfaces)?;
    }
    if let Some(t) = root.sub("announce", announce::ANNOUNCE_KEYS)? {
        cfg.announce = Some(announce::announce(&t, &cfg.interfaces)?);
    }
    cfg.lines = cx.lines.take();
    Ok(cfg)
}

/// Reads an optional section, using `Default` when it is absent.
fn opt_section<T: Default>(
    root: &Tab,
    k: &str,
    allowed: &[&str],
    read: fn(&Tab) -> Res<T>,
) -> Res<T> {
    match root.sub(k, allowed)? {
        Some(t) => read(&t),
        None => Ok(T::default()),
    }
}

fn dataplane(t: &Tab) -> Res<Dataplane> {
    let d = Dataplane::default();
    let lcores = t.string("lcores")?;
    if lcores.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(t.err(
            "lcores",
            "must not be empty; remove the key to use the default mapping",
        ));
    }
    Ok(Dataplane {
        workers: t.int("workers", 1, 128)?.unwrap_or(d.workers),
        lcores,
        eal_args: t.strings("eal_args")?.unwrap_or_default(),
        sessions_per_worker: t
            .int("sessions_per_worker", 1, i64::from(i32::MAX))?
            .unwrap_or(d.sessions_per_worker),
        burst: t.int("burst", 1, 512)?.unwrap_or(d.burst),
        mbufs: t.int("mbufs", 1024, i64::from(u32::MAX))?,
        poll: t.choice("poll", Poll::SPELLINGS)?.unwrap_or(d.poll),
        file_prefix: file_prefix(t)?.unwrap_or(d.file_prefix),
    })
}

/// `file_prefix`: a name for a directory under /var/run/dpdk.
fn file_prefix(t: &Tab) -> Res<Option<String>> {
    let Some(p) = t.string("file_prefix")? else {
        return Ok(None);
    };
    let valid = (1..=32).contains(&p.len())
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(t.err(
            "file_prefix",
            format!(
                "invalid file prefix {p:?}: use 1 to 32 characters from A-Z, a-z, 0-9, '_' and '-'"
            ),
        ));
    }
    Ok(Some(p))
}

fn control(t: &Tab) -> Res<Control> {
    let socket = t.string("socket")?;
    if socket.as_deref() == Some("") {
        return Err(t.err("socket", "must not be empty"));
    }
    Ok(Control {
        socket: socket.map(Into::into).unwrap_or(Control::default().socket),
        metrics: t.parsed("metrics", parse_socket_addr)?,
        http: listen_addr(t, "http")?,
    })
}

/// A listener's address: a port (`9180` or `"9180"`, on 127.0.0.1) or
/// `"ip:port"`.
fn listen_addr(t: &Tab, k: &str) -> Res<Option<std::net::SocketAddr>> {
    match t.raw(k).and_then(|i| i.as_integer()) {
        Some(_) => Ok(t.int::<u16>(k, 1, 65535)?.map(loopback)),
        None => t.parsed(k, parse_listen_addr),
    }
}

fn timeouts(t: &Tab) -> Res<Timeouts> {
    let d = Timeouts::default();
    let get = |k: &str, dflt: Duration| Ok::<_, ConfigError>(t.duration(k)?.unwrap_or(dflt));
    Ok(Timeouts {
        tcp_syn: get("tcp_syn", d.tcp_syn)?,
        tcp_established: get("tcp_established", d.tcp_established)?,
        tcp_fin: get("tcp_fin", d.tcp_fin)?,
        tcp_close: get("tcp_close", d.tcp_close)?,
        udp: get("udp", d.udp)?,
        icmp: get("icmp", d.icmp)?,
    })
}

impl Tab<'_> {
    pub fn duration(&self, k: &str) -> Res<Option<Duration>> {
        self.parsed(k, parse_duration)
    }

    pub fn ip(&self, k: &str) -> Res<Option<IpAddr>> {
        self.parsed(k, parse_ip)
    }

    pub fn socket_addr(&self, k: &str) -> Res<Option<SocketAddr>> {
        self.parsed(k, parse_socket_addr)
    }

    pub fn mac(&self, k: &str) -> Res<Option<[u8; 6]>> {
        self.parsed(k, parse_mac)
    }

    pub fn prefixes(&self, k: &str) -> Res<Option<Vec<(Prefix, usize)>>> {
        self.list(k, parse_prefix)
    }

    pub fn ifaddrs(&self, k: &str) -> Res<Option<Vec<(IfAddr, usize)>>> {
        self.list(k, parse_ifaddr)
    }
}

fn health_checks(root: &Tab) -> Res<Vec<HealthCheck>> {
    let Some(section) = root.names("health_check")? else {
        return Ok(Vec::new());
    };
    section
        .named(CHECK_KEYS)?
        .into_iter()
        .map(|(name, t)| health_check(name, &t))
        .collect()
}

fn health_check(name: &str, t: &Tab) -> Res<HealthCheck> {
    if name == "none" {
        return Err(t.err_here(
            "\"none\" is reserved (a pool's health_check = \"none\" turns checking off); choose another name",
        ));
    }
    let kind_name = t.required("kind", t.choice("kind", CHECK_KINDS)?)?;
    let only = |keys: &[&str], kind: &str| -> Res<()> {
        if kind_name == kind {
            return Ok(());
        }
        let why = format!("is only valid for kind = {kind:?}");
        keys.iter().try_for_each(|k| t.refuse(k, &why))
    };
    only(&["path", "host", "expect_status", "expect_body"], "http")?;
    only(&["send", "expect"], "udp")?;
    only(&["command"], "script")?;
    let interval = t.duration("interval")?.unwrap_or(Duration::from_secs(2));
    let timeout = t.duration("timeout")?.unwrap_or(Duration::from_secs(1));
    if timeout > interval {
        let k = if t.has("timeout") {
            "timeout"
        } else {
            "interval"
        };
        return Err(t.err(
            k,
            format!("timeout ({timeout:?}) must not be longer than interval ({interval:?})"),
        ));
    }
    Ok(HealthCheck {
        name: name.to_string(),
        kind: check_kind(kind_name, t)?,
        interval,
        timeout,
        fall: t.int("fall", 1, 100)?.unwrap_or(4),
        rise: t.int("rise", 1, 100)?.unwrap_or(2),
        port: t.int("port", 0, 65535)?,
    })
}

fn check_kind(kind: &str, t: &Tab) -> Res<CheckKind> {
    Ok(match kind {
        "http" => {
            let path = t.string("path")?.unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                return Err(t.err("path", format!("{path:?} must start with \"/\"")));
            }
            CheckKind::Http {
                path,
                host: t.string("host")?,
                expect_status: expect_status(t)?,
                expect_body: t.string("expect_body")?,
            }
        }
        "udp" => CheckKind::Udp {
            send: t.string("send")?,
            expect: t.string("expect")?,
        },
        "script" => {
            let command = t.required("command", t.strings("command")?)?;
            if command.is_empty() || command[0].is_empty() {
                return Err(t.err(
                    "command",
                    "needs at least the program to run, e.g. [\"/usr/local/bin/check\"]",
                ));
            }
            CheckKind::Script { command }
        }
        "icmp" => CheckKind::Icmp,
        _ => CheckKind::Tcp,
    })
}

fn expect_status(t: &Tab) -> Res<Vec<u16>> {
    let Some(elems) = t.array("expect_status")? else {
        return Ok(vec![200]);
    };
    let path = t.key_path("expect_status");
    let mut out = Vec::new();
    for (v, line) in elems {
        let code = v.as_integer().ok_or_else(|| {
            t.cx.err_at(
                line,
                &path,
                "expected an array of integers (HTTP status codes)",
            )
        })?;
        crate::reader::check_range(code, 100, 599).map_err(|m| t.cx.err_at(line, &path, m))?;
        out.push(code as u16);
    }
    if out.is_empty() {
        return Err(t.err("expect_status", "must list at least one status code"));
    }
    Ok(out)
}

fn pools(root: &Tab, checks: &[HealthCheck]) -> Res<Vec<Pool>> {
    let Some(section) = root.names("pool")? else {
        return Ok(Vec::new());
    };
    section
        .named(POOL_KEYS)?
        .into_iter()
        .map(|(name, t)| pool(name, &t, checks))
        .collect()
}

fn pool(name: &str, t: &Tab, checks: &[HealthCheck]) -> Res<Pool> {
    let method = t
        .choice("method", Method::SPELLINGS)?
        .unwrap_or(Method::RoundRobin);
    let health_check = match t.str("health_check")? {
        None => PoolCheck::Default,
        Some("none") => PoolCheck::Off,
        Some(hc) => {
            PoolCheck::Named(checks.iter().position(|c| c.name == hc).ok_or_else(|| {
                let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
                t.err(
                    "health_check",
                    format!(
                        "no health_check named {hc:?} ({}; \"none\" turns checking off)",
                        defined(&names)
                    ),
                )
            })?)
        }
    };
    let on_member_down = t
        .choice("on_member_down", OnMemberDown::SPELLINGS)?
        .unwrap_or(OnMemberDown::Keep);
    let maglev_table_size = maglev_table_size(t)?;
    if !t.has("members") {
        return Err(
            t.err_here("missing required key \"members\"; a pool needs at least one member")
        );
    }
    let tabs = t.tables("members", MEMBER_KEYS)?;
    if tabs.is_empty() {
        return Err(t.err("members", "a pool needs at least one member"));
    }
    let mut members: Vec<Member> = Vec::with_capacity(tabs.len());
    for m in &tabs {
        let member = member(m)?;
        if let Some(i) = members.iter().position(|x| x.address == member.address) {
            let first = t.cx.line_of(&format!("{}[{i}]", t.key_path("members")));
            return Err(m.err(
                "address",
                format!(
                    "duplicate member {} (already listed at line {first})",
                    member.address
                ),
            ));
        }
        members.push(member);
    }
    let hashed = matches!(
        method,
        Method::SourceHash | Method::SourcePortHash | Method::Maglev
    );
    if hashed && members.len() >= maglev_table_size as usize {
        return Err(t.err(
            "members",
            format!(
                "{} members need a maglev_table_size above that (found {maglev_table_size})",
                members.len()
            ),
        ));
    }
    Ok(Pool {
        name: name.to_string(),
        method,
        health_check,
        on_member_down,
        maglev_table_size,
        members,
    })
}

/// `maglev_table_size`: a prime of at least 1021 (Maglev needs a prime
/// number of slots, and enough of them per member for weights to show).
fn maglev_table_size(t: &Tab) -> Res<u32> {
    let Some(n) = t.int("maglev_table_size", 1021, 16_777_259)? else {
        return Ok(DEFAULT_MAGLEV_TABLE_SIZE);
    };
    if !crate::values::is_prime(n) {
        let next = crate::values::next_prime(n).unwrap_or(DEFAULT_MAGLEV_TABLE_SIZE);
        return Err(t.err(
            "maglev_table_size",
            format!("{n} is not a prime number; the next prime is {next}"),
        ));
    }
    Ok(n)
}

fn member(t: &Tab) -> Res<Member> {
    let address = t.required("address", t.socket_addr("address")?)?;
    if address.ip().is_unspecified() || address.ip().is_multicast() {
        return Err(t.err(
            "address",
            format!("{} is not a usable member address", address.ip()),
        ));
    }
    Ok(Member {
        address,
        weight: t
            .int("weight", 0, i64::from(MAX_MEMBER_WEIGHT))?
            .unwrap_or(1),
        backup: t.bool("backup")?.unwrap_or(false),
        max_connections: t.int("max_connections", 1, i64::from(u32::MAX))?,
        slow_start: t.duration("slow_start")?,
        enabled: t.bool("enabled")?.unwrap_or(true),
    })
}

/// "defined: a, b" or "none defined", for dangling-reference messages.
pub(crate) fn defined(names: &[&str]) -> String {
    if names.is_empty() {
        "none defined".to_string()
    } else {
        format!("defined: {}", names.join(", "))
    }
}
