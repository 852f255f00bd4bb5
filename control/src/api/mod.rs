//! The control API. A client asks with one [`Request`]; the switch answers
//! with one [`Reply`] or one [`ApiError`] (`sessions` answers with a stream
//! of [`SessionsFrame`]s). The transport only (de)serialises: `sluicectl`
//! sends the request as a JSON line and renders the typed answer itself,
//! as text ([`Reply::text`]) or JSON ([`Reply::json`]); a person typing a
//! command line on the socket (`socat - UNIX:/run/sluice/sluice.sock`)
//! gets the same text, rendered by the switch from the same value. The
//! Prometheus exposition and the status page are built from these types
//! too, never from a second reading of the counters.

mod announce;
mod command;
mod error;
mod ha;
mod members;
mod metrics;
mod net;
mod overview;
mod reload;
mod servers;
mod sessions;
mod stats;
mod status;
pub mod wire;

pub use announce::{Announce, AnnounceSummary, RouteState};
pub use command::{parse, USAGE};
pub use error::{ApiError, RefusalKind};
pub use ha::{HaStatus, Owned, PeerReport, SyncReport};
pub use members::{HealthCounts, MemberAction, MemberCommand, MemberRow};
pub use metrics::{Family, Kind, Metrics, Sample};
pub use net::{Neighbor, NeighborState, Route};
pub use overview::{History, Overview, Point, ServerRate, WorkerRate};
pub use reload::Reloaded;
pub use servers::{ServerMember, VirtualServer};
pub use sessions::{
    SessionRow, SessionsEnd, SessionsFrame, SessionsQuery, SessionsRender, DEFAULT_LIMIT,
};
pub use stats::{
    DropCount, KernelCounters, NicCounters, PortCounters, PortPackets, ServerCounters, Stats,
    WorkerCounters,
};
pub use status::{PortStatus, Status};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Everything a client can ask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// Version, uptime, ports and links.
    Status,
    /// Per-port and per-worker counters, drops by reason, per server.
    Stats,
    VirtualServers,
    /// One row per (virtual server, member): state, health, weights.
    Members,
    Neighbors,
    Routes,
    /// The Prometheus families.
    Metrics,
    /// What the status page shows: status, servers, members, drops, rates.
    Overview,
    /// Disable, enable, drain or reweigh a member until the next reload.
    Member(MemberCommand),
    /// List or flush sessions (a streamed answer).
    Sessions(SessionsQuery),
    /// Read the configuration file again and apply it live.
    Reload,
    /// What this node of a pair owns, session synchronisation.
    Ha,
    /// Whether keepalived may make this node master.
    HaReady,
    /// The VIP routes kept for the routing daemon.
    Announce,
    /// Withdraw every VIP route (`[announce]`).
    Drain,
    /// Announce them again.
    Resume,
}

/// Every answer but a stream of sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "data", rename_all = "snake_case")]
pub enum Reply {
    Status(Status),
    Stats(Stats),
    VirtualServers(Vec<VirtualServer>),
    Members(Vec<MemberRow>),
    Neighbors(Vec<Neighbor>),
    Routes(Vec<Route>),
    Metrics(Metrics),
    Overview(Box<Overview>),
    /// What an administrative command did, one line per change.
    Done(Vec<String>),
    Reloaded(Reloaded),
    Ha(HaStatus),
    Ready,
    Announce(Announce),
}

/// An answer as it travels.
pub type Answer = Result<Reply, ApiError>;

impl Reply {
    /// The text `sluicectl` prints.
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) => s.text(),
            Reply::Stats(s) => s.text(),
            Reply::VirtualServers(v) => servers::text(v),
            Reply::Members(rows) => members::text(rows),
            Reply::Neighbors(n) => net::neighbors_text(n),
            Reply::Routes(r) => net::routes_text(r),
            Reply::Metrics(m) => m.exposition(),
            Reply::Overview(o) => o.text(),
            Reply::Done(lines) => lines.iter().map(|l| format!("ok: {l}\n")).collect(),
            Reply::Reloaded(r) => r.text(),
            Reply::Ha(h) => h.text(),
            Reply::Ready => "ready\n".to_string(),
            Reply::Announce(a) => a.text(),
        }
    }

    /// The JSON `sluicectl --json` prints: the value itself, untagged.
    pub fn json(&self) -> Value {
        let value = match self {
            Reply::Status(s) => serde_json::to_value(s),
            Reply::Stats(s) => serde_json::to_value(s),
            Reply::VirtualServers(v) => serde_json::to_value(v),
            Reply::Members(rows) => serde_json::to_value(rows),
            Reply::Neighbors(n) => serde_json::to_value(n),
            Reply::Routes(r) => serde_json::to_value(r),
            Reply::Metrics(m) => Ok(m.samples_json()),
            Reply::Overview(o) => serde_json::to_value(o),
            Reply::Done(lines) => Ok(json!({ "ok": lines })),
            Reply::Reloaded(r) => serde_json::to_value(r),
            Reply::Ha(h) => serde_json::to_value(h),
            Reply::Ready => Ok(json!({ "ok": ["ready"] })),
            Reply::Announce(a) => serde_json::to_value(a),
        };
        // Every field is a number, a string, a list or a map of those.
        value.unwrap_or_else(|e| {
            let message = format!("the answer could not be written: {e}");
            ApiError::Internal { message }.json()
        })
    }
}

/// What `sluicectl` exits with: 0 when the switch did what was asked.
pub fn exit_code(answer: &Answer) -> u8 {
    match answer {
        Ok(_) => 0,
        Err(e) => e.exit_code(),
    }
}

/// A MAC address as `ip link` writes it.
pub fn mac(m: [u8; 6]) -> String {
    let hex: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(":")
}

/// Lists of `(name, count)` kept in their order, written as a JSON map:
/// counters read in the order the switch defines them.
mod ordered_map {
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, n) in v {
            m.serialize_entry(k, n)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, u64)>, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = Vec<(String, u64)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of counters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(entry) = a.next_entry()? {
                    v.push(entry);
                }
                Ok(v)
            }
        }
        d.deserialize_map(Ordered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_travels_as_one_json_object_and_comes_back_the_same() {
        let requests = [
            Request::Status,
            Request::Member(MemberCommand {
                action: MemberAction::Weight(7),
                member: "10.0.0.1:80".into(),
                pool: Some("web".into()),
            }),
            Request::Sessions(SessionsQuery {
                flush: true,
                limit: None,
                ..Default::default()
            }),
        ];
        for r in requests {
            let line = serde_json::to_string(&r).unwrap();
            assert!(line.starts_with("{\"command\":"), "{line}");
            assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        }
    }

    #[test]
    fn counters_keep_their_order_through_json() {
        #[derive(Serialize, Deserialize)]
        struct C(#[serde(with = "ordered_map")] Vec<(String, u64)>);
        let v = C(vec![("zeta".into(), 1), ("alpha".into(), 2)]);
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(text, r#"{"zeta":1,"alpha":2}"#);
        assert_eq!(serde_json::from_str::<C>(&text).unwrap().0, v.0);
    }
}
