//! `ha`: what this node of a pair owns, session synchronisation, and
//! whether it is ready to be master (`ha ready`, keepalived's check).

use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HaStatus {
    pub node_id: Option<u8>,
    /// `config` or `kernel`.
    pub vip_ownership: String,
    /// What the dataplane owns from the kernel interfaces.
    pub owned: Vec<Owned>,
    pub session_sync: Option<SyncReport>,
    pub ready: bool,
    /// Why not, when not.
    pub not_ready: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owned {
    pub address: String,
    pub interface: String,
}

/// What session synchronisation has done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    pub sent_sessions: u64,
    pub sent_datagrams: u64,
    /// Datagrams from addresses that are not configured peers, and the last sender.
    pub not_peer_dropped: u64,
    pub not_peer_last: Option<String>,
    /// Peers' records dropped: too many waiting for one worker.
    pub backlog_dropped: u64,
    pub peers: Vec<PeerReport>,
    /// The workers' counters, summed: queued, installed, refused by reason...
    #[serde(with = "super::ordered_map")]
    pub workers: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    pub address: String,
    /// Its node_id, once heard from.
    pub node_id: Option<u8>,
    pub received_sessions: u64,
    pub received_datagrams: u64,
    pub last_heard_s: Option<f64>,
    pub unauthenticated: u64,
    pub malformed: u64,
    /// Where the bulk sync from it stands.
    pub bulk: String,
    pub bulk_done: bool,
    pub bulks_served: u64,
    pub last_bulk_sent: u64,
}

impl HaStatus {
    pub fn text(&self) -> String {
        let owned: Vec<String> = (self.owned.iter())
            .map(|o| format!("{} on {}", o.address, o.interface))
            .collect();
        let mut o = format!(
            "node {}, vip_ownership {}\nowns: {}\n",
            self.node_id.map_or("-".into(), |n| n.to_string()),
            self.vip_ownership,
            if owned.is_empty() {
                "nothing".into()
            } else {
                owned.join(", ")
            },
        );
        match &self.session_sync {
            Some(s) => o.push_str(&s.text()),
            None => o.push_str("session sync: not configured\n"),
        }
        let ready = match &self.not_ready {
            Some(why) => format!("no ({why})"),
            None => "yes".into(),
        };
        let _ = writeln!(o, "ready: {ready}");
        o
    }
}

impl SyncReport {
    fn text(&self) -> String {
        let mut o = format!(
            "session sync: sent {} sessions in {} datagrams; from non-peers {} datagrams dropped{}; backlog drops {}\n",
            self.sent_sessions,
            self.sent_datagrams,
            self.not_peer_dropped,
            self.not_peer_last.as_ref().map_or(String::new(), |a| format!(" (last {a})")),
            self.backlog_dropped,
        );
        for p in &self.peers {
            let _ = writeln!(
                o,
                "peer {} node {}: received {} sessions in {} datagrams, last {}; refused {} unauthenticated, {} malformed; bulk from it: {}; bulk syncs to it: {} (last {} sessions)",
                p.address,
                p.node_id.map_or("?".into(), |n| n.to_string()),
                p.received_sessions,
                p.received_datagrams,
                p.last_heard_s.map_or("never".into(), |s| format!("{s:.1}s ago")),
                p.unauthenticated,
                p.malformed,
                p.bulk,
                p.bulks_served,
                p.last_bulk_sent,
            );
        }
        let counters: Vec<String> = (self.workers.iter())
            .filter(|(k, n)| *n > 0 || !k.starts_with("refused_"))
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(o, "workers: {}", counters.join(", "));
        o
    }
}
