//! Runtime member control: `sluicectl member disable|enable|drain ADDR:PORT
//! [--pool NAME]` and `sluicectl member weight ADDR:PORT N [--pool NAME]`.
//! Changes go to the members' state words, which workers read when they
//! choose a member; they last until the next restart (write them to the
//! configuration file to keep them).

use crate::log;
use crate::report::View;
use std::collections::BTreeMap;

const USAGE: &str = "usage: member disable|enable|drain ADDR:PORT [--pool NAME] | member weight ADDR:PORT N [--pool NAME]";

/// What to do to the matched members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Enable(bool),
    Weight(u32),
}

/// Runs one `member ...` request; the answer is one line per member changed,
/// or a line starting with `error:`.
pub fn member(view: &View, args: &[&str]) -> String {
    match parse(args) {
        Ok((action, addr, pool)) => apply(view, action, addr, pool),
        Err(e) => format!("error: {e}\n{USAGE}\n"),
    }
}

fn parse<'a>(args: &[&'a str]) -> Result<(Action, &'a str, Option<&'a str>), String> {
    let (pool, rest) = match args.iter().position(|a| *a == "--pool") {
        Some(i) => {
            let name = args.get(i + 1).ok_or("--pool needs a pool name")?;
            let mut rest = args[..i].to_vec();
            rest.extend_from_slice(&args[i + 2..]);
            (Some(*name), rest)
        }
        None => (None, args.to_vec()),
    };
    let action = match (rest.first().copied(), rest.len()) {
        (Some("disable"), 2) => Action::Enable(false),
        (Some("enable"), 2) => Action::Enable(true),
        (Some("drain"), 2) => Action::Weight(0),
        (Some("weight"), 3) => {
            let n: u32 = rest[2]
                .parse()
                .map_err(|_| format!("weight {:?} is not a number", rest[2]))?;
            if n > 1000 {
                return Err(format!("weight {n} is above 1000"));
            }
            Action::Weight(n)
        }
        _ => return Err("unknown member command".to_string()),
    };
    Ok((action, rest[1], pool))
}

fn apply(view: &View, action: Action, addr: &str, pool: Option<&str>) -> String {
    let live = view.live();
    let states = &live.shared.members;
    // A pool's member appears once per virtual server using the pool.
    let mut matched: BTreeMap<u32, String> = BTreeMap::new();
    for (_, vs) in live.shared.servers() {
        if pool.is_some_and(|p| p != vs.pool) {
            continue;
        }
        for m in vs.members.iter().filter(|m| m.addr().to_string() == addr) {
            matched.insert(m.id, format!("member {addr} (pool {})", vs.pool));
        }
    }
    if matched.is_empty() {
        let scope = pool.map_or(String::new(), |p| format!(" in pool {p}"));
        return format!("error: no member {addr}{scope}\n");
    }
    let mut out = String::new();
    for (id, name) in matched {
        let what = match action {
            Action::Enable(on) => {
                states.set_enabled(id, on);
                if on { "enabled" } else { "disabled" }.to_string()
            }
            Action::Weight(0) => {
                states.set_configured_weight(id, 0);
                "draining (weight 0)".to_string()
            }
            // A slow start in progress goes on, towards the new weight.
            Action::Weight(n) => {
                states.reweigh(id, n);
                format!("weight {n}")
            }
        };
        log(format!("admin: {name} {what}"));
        out.push_str(&format!("ok: {name} {what}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_refuses_the_rest() {
        assert_eq!(
            parse(&["disable", "10.0.0.1:80"]),
            Ok((Action::Enable(false), "10.0.0.1:80", None))
        );
        assert_eq!(
            parse(&["enable", "10.0.0.1:80", "--pool", "web"]),
            Ok((Action::Enable(true), "10.0.0.1:80", Some("web")))
        );
        assert_eq!(
            parse(&["--pool", "web", "drain", "10.0.0.1:80"]),
            Ok((Action::Weight(0), "10.0.0.1:80", Some("web")))
        );
        assert_eq!(
            parse(&["weight", "10.0.0.1:80", "7"]),
            Ok((Action::Weight(7), "10.0.0.1:80", None))
        );
        assert!(parse(&["weight", "10.0.0.1:80", "x"]).is_err());
        assert!(parse(&["weight", "10.0.0.1:80", "1001"]).is_err());
        assert!(parse(&["disable"]).is_err());
        assert!(parse(&["disable", "10.0.0.1:80", "--pool"]).is_err());
        assert!(parse(&["reboot", "10.0.0.1:80"]).is_err());
    }
}
