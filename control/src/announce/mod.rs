//! `[announce]`: scale-out behind ECMP routers. One host route per VIP in
//! a kernel routing table of Sluice's own (`table`, protocol 249,
//! "sluice"), present while one of the VIP's virtual servers has a usable
//! member, the node owns the VIP and is not draining; the node's routing
//! daemon (BIRD, FRR) exports that table to the routers. The task
//! (`run`) compares what should be announced with what is, every
//! [`TICK`], and changes only the difference, logging each change; routes
//! a previous run left are replaced at start and every route is removed at
//! a clean exit (`withdraw_all`). `sluicectl drain` / `resume` set the
//! node's draining flag; `sluicectl announce` reports.

mod kernel;

pub use kernel::KernelError;

use crate::live::Running;
use crate::log;
use sluice_control::api::{Announce, ApiError, RouteState};
use sluice_dataplane::shared::Shared;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How often the wanted routes are compared with the installed ones: a
/// member going down withdraws its VIP within this, plus the netlink call.
pub const TICK: Duration = Duration::from_millis(25);

/// The routing protocol number Sluice's routes carry ("sluice" in
/// `packaging/rt_protos.d/sluice.conf`), so that routes of other origins
/// in the table are never touched and the daemon can select them.
pub const PROTOCOL: u8 = 249;

/// Whether this node announces, and what it did last.
#[derive(Debug, Default)]
pub struct State {
    draining: AtomicBool,
    report: Mutex<Vec<Wanted>>,
    changes: std::sync::atomic::AtomicU64,
}

impl State {
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn report(&self) -> Vec<Wanted> {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One VIP's route as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub vip: IpAddr,
    /// The kernel interface the route names: the one towards the VIP's
    /// prefix, else the first kernel interface.
    pub link: String,
    pub announced: bool,
    /// Why it is or is not announced.
    pub why: &'static str,
}

/// Every VIP's route as it should be now (one per VIP, several virtual
/// servers on a VIP announce it if any of them may).
pub fn wanted(shared: &Shared, cfg: &sluice_config::Config, draining: bool) -> Vec<Wanted> {
    let mut vips: BTreeMap<IpAddr, bool> = BTreeMap::new();
    for (_, vs) in shared.servers().filter(|(_, v)| !v.retired) {
        let usable = vs.members.iter().any(|m| m.available(&shared.members));
        *vips.entry(vs.vip).or_default() |= usable;
    }
    let mut out = Vec::new();
    for (vip, usable) in vips {
        let Some(link) = link_of(shared, cfg, vip) else {
            continue;
        };
        let (announced, why) = match (draining, shared.owns(vip), usable) {
            (true, _, _) => (false, "the node is draining"),
            (false, false, _) => (false, "the node does not own the VIP (ha)"),
            (false, true, false) => (false, "no usable member"),
            (false, true, true) => (true, "a usable member"),
        };
        out.push(Wanted {
            vip,
            link,
            announced,
            why,
        });
    }
    out
}

/// The kernel interface a VIP's route names.
fn link_of(shared: &Shared, cfg: &sluice_config::Config, vip: IpAddr) -> Option<String> {
    let port = match vip {
        IpAddr::V4(a) => shared.routes.lookup(a).map(|h| h.port),
        IpAddr::V6(a) => shared.routes6.lookup(a).map(|h| h.port),
    };
    let kernel = |i: usize| cfg.interfaces.get(i)?.kernel_interface.clone();
    port.and_then(|p| kernel(usize::from(p))).or_else(|| {
        cfg.interfaces
            .iter()
            .find_map(|i| i.kernel_interface.clone())
    })
}

/// Keeps the routes as [`wanted`] says, until the task is aborted.
pub async fn run(view: std::sync::Arc<Running>, state: std::sync::Arc<State>) -> KernelError {
    let mut kernel = match kernel::Kernel::connect() {
        Ok(k) => k,
        Err(e) => return e,
    };
    let mut table = None;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let live = view.live();
        let now = live.config.announce.as_ref().map(|a| a.table);
        if now != table {
            // At start, and when a reload changes the table: what Sluice
            // left in the old one goes, the new one starts empty of ours.
            for t in table.iter().chain(now.iter()) {
                if let Err(e) = kernel.flush(*t).await {
                    return e;
                }
            }
            table = now;
        }
        let Some(t) = table else {
            continue;
        };
        let wanted = wanted(&live.shared, &live.config, state.draining());
        let changed = match kernel.apply(t, &wanted).await {
            Ok(n) => n,
            Err(e) => return e,
        };
        state.changes.fetch_add(changed, Ordering::Relaxed);
        *state.report.lock().unwrap_or_else(|e| e.into_inner()) = wanted;
    }
}

/// Removes every route of this node (a clean exit: the routers stop
/// sending before the dataplane stops).
pub async fn withdraw_all(view: &Running) {
    let Some(a) = view.live().config.announce.clone() else {
        return;
    };
    match kernel::Kernel::connect() {
        Ok(mut k) => match k.flush(a.table).await {
            Ok(()) => log(format!(
                "announce: every route withdrawn from table {}",
                a.table
            )),
            Err(e) => log(format!("announce: {e}")),
        },
        Err(e) => log(format!("announce: {e}")),
    }
}

/// `sluicectl drain` and `sluicectl resume`.
pub fn set_draining(view: &Running, state: &State, draining: bool) -> Result<String, ApiError> {
    if view.live().config.announce.is_none() {
        return Err(not_configured());
    }
    let was = state.draining.swap(draining, Ordering::Relaxed);
    let what = if draining {
        "draining: every route withdrawn"
    } else {
        "announcing again"
    };
    if was != draining {
        log(format!("announce: {what} (sluicectl)"));
    }
    Ok(what.to_string())
}

/// What `announce`, `drain` and `resume` answer without `[announce]`.
fn not_configured() -> ApiError {
    ApiError::NotConfigured {
        message: "no [announce] section: nothing is announced".into(),
    }
}

/// `sluicectl announce`.
pub fn report(view: &Running, state: &State) -> Result<Announce, ApiError> {
    let live = view.live();
    let table = live
        .config
        .announce
        .as_ref()
        .ok_or_else(not_configured)?
        .table;
    let routes = state.report().into_iter().map(|w| RouteState {
        vip: w.vip,
        link: w.link,
        announced: w.announced,
        why: w.why.to_string(),
    });
    Ok(Announce {
        table,
        draining: state.draining(),
        changes: state.changes.load(Ordering::Relaxed),
        routes: routes.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const CFG: &str = r#"
[[interface]]
name = "ext"
device = "net_null0"
addresses = ["198.51.100.1/24", "2001:db8:1::1/64"]
[[interface]]
name = "int"
device = "net_null1"
addresses = ["10.20.0.1/24", "fd00:20::1/64"]
[[route]]
destination = "0.0.0.0/0"
gateway = "198.51.100.254"
[pool.web]
members = [{ address = "10.20.0.11:80" }, { address = "10.20.0.12:80" }]
[pool.dns]
members = [{ address = "10.20.0.31:53" }]
[pool.web6]
members = [{ address = "[fd00:20::11]:80" }]
[[virtual_server]]
name = "web"
address = "198.51.100.10:80"
protocol = "tcp"
pool = "web"
[[virtual_server]]
name = "dns"
address = "198.51.100.10:53"
protocol = "udp"
pool = "dns"
[[virtual_server]]
name = "far"
address = "203.0.113.10:80"
protocol = "tcp"
pool = "web"
[[virtual_server]]
name = "web6"
address = "[2001:db8:1::10]:80"
protocol = "tcp"
pool = "web6"
[announce]
table = 100
"#;

    fn setup() -> (sluice_config::Config, Arc<Shared>) {
        let cfg = sluice_config::parse(CFG, "t.toml").unwrap();
        let shared = Arc::new(Shared::new(
            &cfg,
            &[[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]],
            1,
        ));
        (cfg, shared)
    }

    fn state(w: &[Wanted]) -> Vec<(String, &str, bool)> {
        w.iter()
            .map(|w| (w.vip.to_string(), w.link.as_str(), w.announced))
            .collect()
    }

    #[test]
    fn one_route_per_vip_while_a_server_on_it_has_a_usable_member() {
        let (cfg, shared) = setup();
        let all = vec![
            ("198.51.100.10".to_string(), "sluice-ext", true),
            ("203.0.113.10".to_string(), "sluice-ext", true),
            ("2001:db8:1::10".to_string(), "sluice-ext", true),
        ];
        assert_eq!(state(&wanted(&shared, &cfg, false)), all);
        // web's members down: the VIP stays, dns on it still has one.
        for m in 0..2 {
            shared.members.set_enabled(shared.member_id(0, m), false);
        }
        let w = wanted(&shared, &cfg, false);
        assert!(w[0].announced, "dns keeps 198.51.100.10");
        assert!(!w[1].announced, "far has only web's members");
        assert_eq!(w[1].why, "no usable member");
        // dns's member down too: the VIP goes.
        shared.members.set_enabled(shared.member_id(1, 0), false);
        assert!(!wanted(&shared, &cfg, false)[0].announced);
        // Draining withdraws everything, whatever the members.
        shared.members.set_enabled(shared.member_id(1, 0), true);
        let drained = wanted(&shared, &cfg, true);
        assert!(drained
            .iter()
            .all(|w| !w.announced && w.why == "the node is draining"));
    }

    #[test]
    fn drain_and_resume_need_the_section_and_are_reported() {
        let view = crate::testing::running(CFG, 1);
        let state = State::default();
        assert_eq!(
            set_draining(&view, &state, true).as_deref(),
            Ok("draining: every route withdrawn")
        );
        assert!(state.draining());
        let summary = report(&view, &state).unwrap().summary();
        assert!(summary.text().starts_with("announce: draining, table 100"));
        assert_eq!(
            set_draining(&view, &state, false).as_deref(),
            Ok("announcing again")
        );
        assert!(!report(&view, &state).unwrap().draining);
        let plain = CFG.replace("[announce]\ntable = 100\n", "");
        let view = crate::testing::running(&plain, 1);
        let refused = set_draining(&view, &state, true).unwrap_err();
        assert_eq!(refused.kind(), "not_configured");
        assert!(refused.text().starts_with("error: no [announce] section"));
        assert_eq!(report(&view, &state).unwrap_err().kind(), "not_configured");
    }
}
