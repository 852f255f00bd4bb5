//! `members` and `member ...`: each member's state as the switch decides
//! it, and the administrative commands that change it.

use serde::{Deserialize, Serialize};
use sluice_config::MAX_MEMBER_WEIGHT;
use std::fmt::Write;

/// One member of one virtual server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRow {
    pub virtual_server: String,
    pub pool: String,
    /// ADDR:PORT.
    pub member: String,
    /// `primary` or `backup`.
    pub role: String,
    /// `up`, `down`, `disabled`, `draining` or `removed`, in that precedence
    /// (a removed member, or any member of a removed server, is `removed`).
    pub state: String,
    /// Seconds since its health last changed.
    pub since_s: u64,
    pub sessions: u64,
    /// The health check's name, `none` without one.
    pub check: String,
    pub latency_ms: Option<f64>,
    /// The configured weight, and the one in effect (slow start, drain).
    pub weight: u32,
    pub effective_weight: u32,
    pub limit: Option<u32>,
    /// The last check's result.
    pub last: Option<String>,
    /// Whether it passes its health check (an unchecked member does).
    pub healthy: bool,
    /// Checks made, failed, and not made for the switch's own reason (no socket).
    pub checks: Option<HealthCounts>,
    /// Its virtual server was removed by a reload and drains.
    pub server_removed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCounts {
    pub checks: u64,
    pub failures: u64,
    pub local_errors: u64,
}

/// What `member ...` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberAction {
    Enable,
    Disable,
    /// Weight 0: no new sessions, the open ones go on.
    Drain,
    Weight(u32),
}

impl MemberAction {
    /// The action, unless it is a weight above the file's highest.
    pub fn checked(self) -> Result<MemberAction, String> {
        match self {
            MemberAction::Weight(n) if n > MAX_MEMBER_WEIGHT => {
                Err(format!("weight {n} is above {MAX_MEMBER_WEIGHT}"))
            }
            a => Ok(a),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCommand {
    pub action: MemberAction,
    /// ADDR:PORT, as the pool names it.
    pub member: String,
    /// Only in this pool (else in every pool that has it).
    pub pool: Option<String>,
}

/// The `members` table.
pub fn text(rows: &[MemberRow]) -> String {
    let mut o = String::from(
        "virtual_server pool member role state since sessions check latency weight effective limit last\n",
    );
    for r in rows {
        let latency = r
            .latency_ms
            .map_or("-".to_string(), |l| format!("{l:.1}ms"));
        let limit = r.limit.map_or("-".to_string(), |l| l.to_string());
        let _ = writeln!(
            o,
            "{} {} {} {} {} {}s {} {} {latency} {} {} {limit} {}",
            r.virtual_server,
            r.pool,
            r.member,
            r.role,
            r.state,
            r.since_s,
            r.sessions,
            r.check,
            r.weight,
            r.effective_weight,
            r.last.as_deref().unwrap_or("-"),
        );
    }
    o
}
