//! Which health checks run, for which members, and how their results reach
//! the workers.
//!
//! A member (address, port checked, check) is checked once however many
//! pools hold it; each result is written to the health word of every pool
//! member it stands for (`Shared::members`), which workers read when they
//! choose a member. Pools with `health_check = "none"` are never checked and
//! their members stay up.

use crate::health::{self, Target};
use sluice_config::{Config, HealthCheck, PoolCheck};
use sluice_dataplane::members::MemberStates;
use sluice_dataplane::shared::Shared;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// The checks to run and the member ids each one decides.
pub struct Plan {
    pub targets: Vec<Target>,
    /// `members[t]`: the member ids target t decides.
    pub members: Vec<Vec<u32>>,
    /// `target_of[member id]`: the target deciding it, if checked.
    pub target_of: Vec<Option<usize>>,
    /// Check name per member id ("none" when unchecked), for display.
    pub check_name: Vec<String>,
}

/// Builds the checks of every pool member.
pub fn plan(cfg: &Config, shared: &Shared) -> Plan {
    let default = Arc::new(health::default_check());
    let named: Vec<Arc<HealthCheck>> = cfg.health_checks.iter().cloned().map(Arc::new).collect();
    let mut plan = Plan {
        targets: Vec::new(),
        members: Vec::new(),
        target_of: vec![None; shared.members.len()],
        check_name: vec!["none".to_string(); shared.members.len()],
    };
    // (address, port, check index or usize::MAX for the default) -> target.
    let mut seen: HashMap<(Ipv4Addr, u16, usize), usize> = HashMap::new();
    for (p, pool) in cfg.pools.iter().enumerate() {
        let (check, key) = match pool.health_check {
            PoolCheck::Off => continue,
            PoolCheck::Default => (default.clone(), usize::MAX),
            PoolCheck::Named(i) => (named[i].clone(), i),
        };
        for (j, m) in pool.members.iter().enumerate() {
            let IpAddr::V4(addr) = m.address.ip() else {
                continue;
            };
            let id = shared.member_id(p, j);
            let port = check.port.unwrap_or(m.address.port());
            let t = *seen.entry((addr, port, key)).or_insert_with(|| {
                plan.targets.push(Target {
                    addr,
                    port,
                    source: source_for(shared, addr),
                    check: check.clone(),
                    label: format!("{addr}:{port} (pool {})", pool.name),
                });
                plan.members.push(Vec::new());
                plan.targets.len() - 1
            });
            plan.members[t].push(id);
            if let Some(slot) = plan.target_of.get_mut(id as usize) {
                *slot = Some(t);
                plan.check_name[id as usize] = check.name.clone();
            }
        }
    }
    plan
}

/// The switch's address on the link towards `member`, when that link has a
/// kernel interface: checks come from it, so members see the switch.
fn source_for(shared: &Shared, member: Ipv4Addr) -> Option<Ipv4Addr> {
    let hop = shared.routes.lookup(member)?;
    let port = shared.ports.get(usize::from(hop.port))?;
    port.kernel.then(|| shared.port_address(hop.port, member))
}

/// The callback that writes a target's result to its members' health words.
pub fn on_change(states: Arc<MemberStates>, members: Vec<Vec<u32>>) -> health::OnChange {
    Arc::new(move |t: usize, up: bool| {
        for id in members.get(t).into_iter().flatten() {
            states.set(*id, up);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[[interface]]
name = "ext"
device = "net_null0"
addresses = ["198.51.100.1/24"]
[[interface]]
name = "int"
device = "net_null1"
addresses = ["10.20.0.1/24"]
kernel = false
[health_check.web]
kind = "http"
port = 8081
[pool.a]
members = [{ address = "198.51.100.11:80" }, { address = "198.51.100.12:80" }]
[pool.b]
members = [{ address = "198.51.100.11:80" }, { address = "10.20.0.5:80" }]
[pool.c]
health_check = "web"
members = [{ address = "198.51.100.11:80" }]
[pool.d]
health_check = "none"
members = [{ address = "198.51.100.13:80" }]
"#;

    #[test]
    fn one_check_per_member_port_and_check() {
        let cfg = sluice_config::parse(CFG, "t.toml").unwrap();
        let shared = Shared::new(&cfg, &[[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]], 1);
        let p = plan(&cfg, &shared);
        let labels: Vec<&str> = p.targets.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "198.51.100.11:80 (pool a)",
                "198.51.100.12:80 (pool a)",
                "10.20.0.5:80 (pool b)",
                "198.51.100.11:8081 (pool c)",
            ]
        );
        // 198.51.100.11:80 with the default check decides pool a's and pool b's member.
        assert_eq!(
            p.members[0],
            [shared.member_id(0, 0), shared.member_id(1, 0)]
        );
        assert_eq!(p.target_of[shared.member_id(3, 0) as usize], None);
        assert_eq!(p.check_name[shared.member_id(2, 0) as usize], "web");
        assert_eq!(p.check_name[shared.member_id(3, 0) as usize], "none");
        // Sources: the interface address on the member's link, if it has a kernel interface.
        assert_eq!(p.targets[0].source, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(p.targets[2].source, None);
        let cb = on_change(shared.members.clone(), p.members.clone());
        cb(0, false);
        assert!(!shared.members.is_up(shared.member_id(0, 0)));
        assert!(!shared.members.is_up(shared.member_id(1, 0)));
        assert!(shared.members.is_up(shared.member_id(0, 1)));
        cb(0, true);
        assert!(shared.members.is_up(shared.member_id(1, 0)));
    }
}
