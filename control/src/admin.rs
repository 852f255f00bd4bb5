//! Runtime member control: `sluicectl member disable|enable|drain ADDR:PORT
//! [--pool NAME]` and `sluicectl member weight ADDR:PORT N [--pool NAME]`.
//! Changes go to the members' state words, which workers read when they
//! choose a member; they last until the next reload or restart (write them
//! to the configuration file to keep them).

use crate::live::Live;
use crate::log;
use sluice_control::api::{ApiError, MemberAction, MemberCommand};
use std::collections::BTreeMap;

/// Applies `cmd` to every member it names; one line per member changed.
pub fn apply(live: &Live, cmd: &MemberCommand) -> Result<Vec<String>, ApiError> {
    // A JSON request is not parsed from a command line: check it here too.
    let action = (cmd.action.checked()).map_err(|message| ApiError::BadRequest { message })?;
    let states = &live.shared.members;
    let (addr, pool) = (cmd.member.as_str(), cmd.pool.as_deref());
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
        return Err(ApiError::NotFound {
            message: format!("no member {addr}{scope}"),
        });
    }
    let mut done = Vec::new();
    for (id, name) in matched {
        let what = match action {
            MemberAction::Enable | MemberAction::Disable => {
                let on = action == MemberAction::Enable;
                states.set_enabled(id, on);
                if on { "enabled" } else { "disabled" }.to_string()
            }
            MemberAction::Drain | MemberAction::Weight(0) => {
                states.set_configured_weight(id, 0);
                "draining (weight 0)".to_string()
            }
            // A slow start in progress goes on, towards the new weight.
            MemberAction::Weight(n) => {
                states.reweigh(id, n);
                format!("weight {n}")
            }
        };
        log(format!("admin: {name} {what}"));
        done.push(format!("{name} {what}"));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pools `web` (m11, m12) and `api` (m11), a virtual server each.
    fn cfg() -> String {
        crate::testing::web_config(
            r#"{ address = "10.20.0.11:80" }, { address = "10.20.0.12:80" }"#,
            r#"[pool.api]
members = [{ address = "10.20.0.11:80" }]
[[virtual_server]]
name = "api"
address = "10.20.0.101:80"
protocol = "tcp"
pool = "api"
"#,
        )
    }

    fn cmd(action: MemberAction, member: &str, pool: Option<&str>) -> MemberCommand {
        MemberCommand {
            action,
            member: member.into(),
            pool: pool.map(Into::into),
        }
    }

    #[test]
    fn a_member_is_changed_in_every_pool_that_has_it_or_in_the_one_named() {
        let running = crate::testing::running(&cfg(), 1);
        let live = running.live();
        let done = apply(&live, &cmd(MemberAction::Disable, "10.20.0.11:80", None)).unwrap();
        assert_eq!(
            done,
            vec![
                "member 10.20.0.11:80 (pool web) disabled",
                "member 10.20.0.11:80 (pool api) disabled"
            ]
        );
        let states = &live.shared.members;
        let id = |pool: &str| {
            let vs = live
                .shared
                .servers()
                .find(|(_, v)| v.pool == pool)
                .unwrap()
                .1;
            vs.members
                .iter()
                .find(|m| m.addr().to_string() == "10.20.0.11:80")
                .unwrap()
                .id
        };
        assert!(!states.is_enabled(id("web")) && !states.is_enabled(id("api")));
        let web = Some("web");
        let done = apply(&live, &cmd(MemberAction::Weight(5), "10.20.0.11:80", web)).unwrap();
        assert_eq!(done, vec!["member 10.20.0.11:80 (pool web) weight 5"]);
        assert_eq!(states.configured_weight(id("web")), 5);
        assert_ne!(states.configured_weight(id("api")), 5);
        let e = apply(
            &live,
            &cmd(MemberAction::Drain, "10.20.0.12:80", Some("api")),
        )
        .unwrap_err();
        assert_eq!(e.text(), "error: no member 10.20.0.12:80 in pool api\n");
        assert_eq!(e.kind(), "not_found");
    }

    #[test]
    fn a_typed_weight_above_the_files_highest_changes_nothing() {
        let running = crate::testing::running(&cfg(), 1);
        let live = running.live();
        let before: Vec<u32> = (0..3)
            .map(|id| live.shared.members.configured_weight(id))
            .collect();
        let e = apply(
            &live,
            &cmd(MemberAction::Weight(4_000_000_000), "10.20.0.11:80", None),
        )
        .unwrap_err();
        assert_eq!(e.text(), "error: weight 4000000000 is above 1000\n");
        let after: Vec<u32> = (0..3)
            .map(|id| live.shared.members.configured_weight(id))
            .collect();
        assert_eq!(before, after);
        assert!(apply(
            &live,
            &cmd(MemberAction::Weight(1000), "10.20.0.11:80", None)
        )
        .is_ok());
    }
}
