//! Command lines (`members`, `member drain 10.0.0.1:80 --pool web`, ...)
//! as requests: what `sluicectl` sends, and what a person typing on the
//! control socket is answered.

use super::error::ApiError;
use super::members::{MemberAction, MemberCommand};
use super::sessions::SessionsQuery;
use super::Request;
use std::net::{IpAddr, SocketAddr};

/// The commands and what they do, for `sluicectl --help`.
pub const USAGE: &[(&str, &str)] = &[
    ("status", "version, uptime, ports and links"),
    ("stats", "per-port and per-worker counters, drops by reason"),
    ("virtual-servers", "virtual servers and their members"),
    (
        "members",
        "per member: role, state and since when, sessions, health check and its last result",
    ),
    (
        "ha",
        "[ready]: the addresses this node owns ([ha]); ready exits 0 only while the dataplane runs (keepalived's vrrp_script)",
    ),
    (
        "announce",
        "the VIP routes kept for the routing daemon ([announce]): each VIP, announced or withdrawn and why",
    ),
    (
        "drain",
        "withdraw every VIP route of this node ([announce]); sessions go on being served while traffic arrives",
    ),
    ("resume", "announce the VIP routes again after a drain"),
    ("neighbors", "the ARP table"),
    ("routes", "the route table"),
    ("metrics", "counters in Prometheus text format"),
    (
        "overview",
        "what the status page shows: status, members, drops (with --json, the rates of the last minutes too)",
    ),
    (
        "sessions",
        "[flush] [--virtual-server NAME] [--member ADDR[:PORT]] [--client ADDR] [--limit N|all]: list (or remove) sessions; the answer streams, and says so if it was cut short",
    ),
    (
        "member",
        "disable|enable|drain ADDR:PORT [--pool NAME], or weight ADDR:PORT N [--pool NAME]: until the next reload",
    ),
    (
        "reload",
        "read the configuration file again and apply it live (sessions stay); prints the generation and what changed",
    ),
];

const MEMBER_USAGE: &str = "usage: member disable|enable|drain ADDR:PORT [--pool NAME] | member weight ADDR:PORT N [--pool NAME]";
const SESSIONS_USAGE: &str = "usage: sessions [flush] [--virtual-server NAME] [--member ADDR[:PORT]] [--client ADDR] [--limit N|all]";

/// The request a command line asks for.
pub fn parse(words: &[&str]) -> Result<Request, ApiError> {
    let Some((first, args)) = words.split_first() else {
        return Err(ApiError::UnknownCommand {
            command: String::new(),
        });
    };
    let plain = |r: Request| match args {
        [] => Ok(r),
        _ => Err(ApiError::usage(
            format!("{first} takes no arguments (got {:?})", args.join(" ")),
            "",
        )),
    };
    match *first {
        "status" => plain(Request::Status),
        "stats" => plain(Request::Stats),
        "virtual-servers" | "vs" => plain(Request::VirtualServers),
        "members" => plain(Request::Members),
        "neighbors" | "arp" => plain(Request::Neighbors),
        "routes" => plain(Request::Routes),
        "metrics" => plain(Request::Metrics),
        "overview" => plain(Request::Overview),
        "reload" => plain(Request::Reload),
        "announce" => plain(Request::Announce),
        "drain" => plain(Request::Drain),
        "resume" => plain(Request::Resume),
        "ha" => match args {
            [] => Ok(Request::Ha),
            ["ready"] => Ok(Request::HaReady),
            _ => Err(ApiError::usage(
                format!("unknown ha command {:?} (ha, ha ready)", args.join(" ")),
                "",
            )),
        },
        "member" => member(args).map_err(|m| ApiError::usage(m, MEMBER_USAGE)),
        "sessions" => sessions(args).map_err(|m| ApiError::usage(m, SESSIONS_USAGE)),
        _ => Err(ApiError::UnknownCommand {
            command: words.join(" "),
        }),
    }
}

fn member(args: &[&str]) -> Result<Request, String> {
    let (pool, rest) = match args.iter().position(|a| *a == "--pool") {
        Some(i) => {
            let name = args.get(i + 1).ok_or("--pool needs a pool name")?;
            let mut rest = args[..i].to_vec();
            rest.extend_from_slice(&args[i + 2..]);
            (Some(name.to_string()), rest)
        }
        None => (None, args.to_vec()),
    };
    let action = match (rest.first().copied(), rest.len()) {
        (Some("disable"), 2) => MemberAction::Disable,
        (Some("enable"), 2) => MemberAction::Enable,
        (Some("drain"), 2) => MemberAction::Drain,
        (Some("weight"), 3) => {
            let n: u32 = rest[2]
                .parse()
                .map_err(|_| format!("weight {:?} is not a number", rest[2]))?;
            MemberAction::Weight(n).checked()?
        }
        _ => return Err("unknown member command".to_string()),
    };
    Ok(Request::Member(MemberCommand {
        action,
        member: rest[1].to_string(),
        pool,
    }))
}

fn sessions(args: &[&str]) -> Result<Request, String> {
    let mut q = SessionsQuery::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().copied().ok_or(format!("{a} needs a value"));
        match *a {
            "flush" => q.flush = true,
            "--virtual-server" => q.virtual_server = Some(value()?.to_string()),
            "--member" => {
                let m = value()?;
                if let Ok(sa) = m.parse::<SocketAddr>() {
                    (q.member, q.member_port) = (Some(sa.ip()), Some(sa.port()));
                } else {
                    q.member = Some(m.parse().map_err(|_| format!("bad member {m:?}"))?);
                }
            }
            "--client" => {
                let c = value()?;
                let ip: IpAddr = c.parse().map_err(|_| format!("bad client {c:?}"))?;
                q.client = Some(ip);
            }
            "--limit" => {
                q.limit = match value()? {
                    "all" => None,
                    n => Some(n.parse().map_err(|_| format!("bad limit {n:?}"))?),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Request::Sessions(q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(words: &[&str]) -> Result<(MemberAction, String, Option<String>), ApiError> {
        match parse(&[&["member"], words].concat())? {
            Request::Member(m) => Ok((m.action, m.member, m.pool)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn member_commands_parse_in_every_form_and_the_rest_is_refused() {
        let m = |a, addr: &str, pool: Option<&str>| Ok((a, addr.into(), pool.map(Into::into)));
        assert_eq!(
            member(&["disable", "10.0.0.1:80"]),
            m(MemberAction::Disable, "10.0.0.1:80", None)
        );
        assert_eq!(
            member(&["enable", "10.0.0.1:80", "--pool", "web"]),
            m(MemberAction::Enable, "10.0.0.1:80", Some("web"))
        );
        assert_eq!(
            member(&["--pool", "web", "drain", "10.0.0.1:80"]),
            m(MemberAction::Drain, "10.0.0.1:80", Some("web"))
        );
        assert_eq!(
            member(&["weight", "10.0.0.1:80", "7"]),
            m(MemberAction::Weight(7), "10.0.0.1:80", None)
        );
        for bad in [
            &["weight", "10.0.0.1:80", "x"][..],
            &["weight", "10.0.0.1:80", "1001"],
            &["disable"],
            &["disable", "10.0.0.1:80", "--pool"],
            &["reboot", "10.0.0.1:80"],
        ] {
            let e = member(bad).unwrap_err();
            assert_eq!(e.kind(), "usage", "{bad:?}");
            assert!(e.text().contains(MEMBER_USAGE), "{bad:?}");
        }
    }

    #[test]
    fn sessions_filters_parse_and_bad_values_are_named() {
        let q = match parse(&[
            "sessions",
            "flush",
            "--member",
            "10.0.0.1:80",
            "--client",
            "2001:db8::1",
            "--limit",
            "all",
        ]) {
            Ok(Request::Sessions(q)) => q,
            other => panic!("{other:?}"),
        };
        assert!(q.flush);
        assert_eq!(q.member_port, Some(80));
        assert_eq!(q.client, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(q.limit, None);
        let e = parse(&["sessions", "--limit", "many"]).unwrap_err();
        assert_eq!(e.to_string(), "bad limit \"many\"");
        assert_eq!(
            parse(&["sessions"]),
            Ok(Request::Sessions(SessionsQuery::default()))
        );
    }

    #[test]
    fn unknown_words_are_unknown_commands_and_extra_words_are_refused() {
        let e = parse(&["reboot", "now"]).unwrap_err();
        assert_eq!(e.text(), "error: unknown command \"reboot now\"\n");
        assert_eq!(parse(&["vs"]), Ok(Request::VirtualServers));
        assert_eq!(parse(&["ha", "ready"]), Ok(Request::HaReady));
        assert_eq!(parse(&["stats", "now"]).unwrap_err().kind(), "usage");
        assert_eq!(parse(&[]).unwrap_err().kind(), "unknown_command");
    }
}
