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
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The checks to run and the member ids each one decides.
#[derive(Clone)]
pub struct Plan {
    pub targets: Vec<Target>,
    /// `members[t]`: the member ids target t decides.
    pub members: Vec<Vec<u32>>,
    /// `target_of[member id]`: the target deciding it, if checked.
    pub target_of: Vec<Option<usize>>,
    /// Check name per member id ("none" when unchecked), for display.
    pub check_name: Vec<String>,
    /// Per member id: its slow-start duration, if it has one.
    pub slow_start: Vec<Option<Duration>>,
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
        slow_start: vec![None; shared.members.len()],
    };
    for (p, pool) in cfg.pools.iter().enumerate() {
        for (j, m) in pool.members.iter().enumerate() {
            if let Some(slot) = plan.slow_start.get_mut(shared.member_id(p, j) as usize) {
                *slot = m.slow_start;
            }
        }
    }
    // (address, port, check index or usize::MAX for the default, PROXY
    // header first) -> target.
    let mut seen: HashMap<(IpAddr, u16, usize, bool), usize> = HashMap::new();
    for (p, pool) in cfg.pools.iter().enumerate() {
        let proxy_local =
            (cfg.virtual_servers.iter()).any(|v| v.pool == p && v.proxy_protocol.is_some());
        let (check, key) = match pool.health_check {
            PoolCheck::Off => continue,
            PoolCheck::Default => (default.clone(), usize::MAX),
            PoolCheck::Named(i) => (named[i].clone(), i),
        };
        for (j, m) in pool.members.iter().enumerate() {
            let addr = m.address.ip();
            let id = shared.member_id(p, j);
            let port = check.port.unwrap_or(m.address.port());
            let t = *seen
                .entry((addr, port, key, proxy_local))
                .or_insert_with(|| {
                    plan.targets.push(Target {
                        addr,
                        port,
                        source: source_for(shared, addr),
                        check: check.clone(),
                        proxy_local,
                        label: format!("{} (pool {})", SocketAddr::new(addr, port), pool.name),
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
fn source_for(shared: &Shared, member: IpAddr) -> Option<IpAddr> {
    let (port, source) = match member {
        IpAddr::V4(m) => {
            let hop = shared.routes.lookup(m)?;
            (hop.port, IpAddr::V4(shared.port_address(hop.port, m)))
        }
        IpAddr::V6(m) => {
            let hop = shared.routes6.lookup(m)?;
            (hop.port, IpAddr::V6(shared.port_address6(hop.port, m)))
        }
    };
    shared
        .ports
        .get(usize::from(port))?
        .kernel
        .then_some(source)
}

/// One counter per member id for the life of the process: bumping it ends
/// any slow-start ramp running for that member (a newer health change, or a
/// reload that sets its weight).
pub type Ramps = Arc<[AtomicU64]>;

/// Ramp counters for `states`' member ids.
pub fn ramps(states: &MemberStates) -> Ramps {
    (0..states.len()).map(|_| AtomicU64::new(0)).collect()
}

/// Ends the slow start running for member `id`, if any.
pub fn end_ramp(ramps: &Ramps, id: u32) {
    if let Some(g) = ramps.get(id as usize) {
        g.fetch_add(1, Ordering::Relaxed);
    }
}

/// The callback that writes a target's result to its members' health words,
/// and starts the slow start of members that come back up.
pub fn on_change(states: Arc<MemberStates>, plan: &Plan, generations: Ramps) -> health::OnChange {
    let members = plan.members.clone();
    let slow = plan.slow_start.clone();
    Arc::new(move |t: usize, up: bool| {
        for &id in members.get(t).into_iter().flatten() {
            // A newer change ends any ramp still running for this member.
            let Some(counter) = generations.get(id as usize) else {
                continue;
            };
            let generation = counter.fetch_add(1, Ordering::Relaxed) + 1;
            states.set(id, up);
            let slow_start = slow.get(id as usize).copied().flatten();
            if let (true, Some(duration)) = (up, slow_start) {
                let ramp = SlowStart {
                    states: states.clone(),
                    generations: generations.clone(),
                    id,
                    generation,
                    duration,
                    started: tokio::time::Instant::now(),
                };
                ramp.step();
                tokio::spawn(ramp.run());
            }
        }
    })
}

/// The effective weight `elapsed` into a slow start of `duration` towards
/// `weight`: linear from 1 (a member is never fully starved while up).
pub fn ramp(weight: u32, elapsed: Duration, duration: Duration) -> u32 {
    if elapsed >= duration || weight == 0 {
        return weight;
    }
    let w = u128::from(weight) * elapsed.as_millis() / duration.as_millis().max(1);
    (w as u32).clamp(1, weight)
}

/// How often a slow start raises the effective weight.
const RAMP_STEP: Duration = Duration::from_millis(100);

/// One member's slow start, on the control thread. It ramps towards the
/// member's weight as it is at each step (the file's, or the one
/// `sluicectl member weight` set since, even mid-ramp).
struct SlowStart {
    states: Arc<MemberStates>,
    generations: Arc<[AtomicU64]>,
    id: u32,
    generation: u64,
    duration: Duration,
    started: tokio::time::Instant,
}

impl SlowStart {
    /// Sets the effective weight for now; false once the ramp is over.
    fn step(&self) -> bool {
        let elapsed = self.started.elapsed();
        let target = self.states.configured_weight(self.id);
        self.states
            .set_weight(self.id, ramp(target, elapsed, self.duration));
        elapsed < self.duration
    }

    async fn run(self) {
        loop {
            tokio::time::sleep(RAMP_STEP).await;
            if self.generations[self.id as usize].load(Ordering::Relaxed) != self.generation {
                return;
            }
            if !self.step() {
                return;
            }
        }
    }
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
        assert_eq!(
            p.targets[0].source,
            Some(std::net::Ipv4Addr::new(198, 51, 100, 1).into())
        );
        assert_eq!(p.targets[2].source, None);
    }

    const SLOW: &str = r#"
[[interface]]
name = "int"
device = "net_null0"
addresses = ["10.20.0.1/24"]
kernel = false
[pool.web]
members = [{ address = "10.20.0.11:80", weight = 10, slow_start = "300ms" }]
"#;

    #[tokio::test(start_paused = true)]
    async fn slow_start_ramps_to_the_weight_set_at_run_time() {
        let cfg = sluice_config::parse(SLOW, "t.toml").unwrap();
        let shared = Shared::new(&cfg, &[[2, 0, 0, 0, 0, 1]], 1);
        let p = plan(&cfg, &shared);
        let id = shared.member_id(0, 0);
        let t = p.target_of[id as usize].unwrap();
        let st = shared.members.clone();
        let change = on_change(st.clone(), &p, ramps(&st));
        // `sluicectl member weight 50`, then the member flaps.
        st.set_configured_weight(id, 50);
        change(t, false);
        change(t, true);
        assert!(st.weight(id) < 10, "ramping from 1: {}", st.weight(id));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(st.weight(id), 50, "the run-time weight, not the file's 10");
        // Changed again mid-ramp: the ramp goes on, towards the new weight.
        change(t, false);
        change(t, true);
        tokio::time::sleep(Duration::from_millis(120)).await;
        st.reweigh(id, 20);
        let now = st.weight(id);
        assert!((1..20).contains(&now), "still ramping: {now}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!((st.weight(id), st.configured_weight(id)), (20, 20));
    }

    #[test]
    fn slow_start_ramps_linearly_from_one() {
        let d = Duration::from_secs(10);
        assert_eq!(ramp(10, Duration::ZERO, d), 1);
        assert_eq!(ramp(10, Duration::from_secs(5), d), 5);
        assert_eq!(ramp(10, Duration::from_millis(9_999), d), 9);
        assert_eq!(ramp(10, d, d), 10);
        assert_eq!(ramp(1000, Duration::from_millis(1), d), 1);
        assert_eq!(ramp(0, Duration::ZERO, d), 0);
    }
}
