//! What session synchronisation has done, per peer: the counters and the
//! bulk-sync progress `sluicectl ha` shows and `ha ready` waits for.

use super::codec::CodecError;
use super::{BULK_ASK_EVERY, BULK_WAIT};
use sluice_control::api::{PeerReport, SyncReport};
use std::net::IpAddr;
use std::time::Instant;

/// Where the bulk sync from one peer stands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bulk {
    /// Asked for (last at `asked`), nothing received yet.
    Waiting { since: Instant, asked: Instant },
    /// Sessions arriving (the last at `last`).
    Receiving { got: u64, last: Instant },
    /// Finished: `sent` is what the peer said it sent (`None`: its end
    /// never came, the transfer stopped for [`BULK_WAIT`]).
    Done { got: u64, sent: Option<u32> },
    /// The peer did not answer within [`BULK_WAIT`]: it is down, this
    /// node starts without its sessions.
    Silent,
}

impl std::fmt::Display for Bulk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bulk::Waiting { since, .. } => {
                write!(
                    f,
                    "asked {:.1}s ago, no answer yet",
                    since.elapsed().as_secs_f64()
                )
            }
            Bulk::Receiving { got, .. } => write!(f, "receiving, {got} sessions so far"),
            Bulk::Done { got, sent: Some(s) } => write!(f, "done, {got} of {s} sessions"),
            Bulk::Done { got, sent: None } => {
                write!(f, "stopped after {got} sessions (its end never came)")
            }
            Bulk::Silent => write!(
                f,
                "peer silent for {}s, started without it",
                BULK_WAIT.as_secs()
            ),
        }
    }
}

/// One configured peer.
#[derive(Debug)]
pub struct Peer {
    pub addr: IpAddr,
    /// Its node_id, once heard from.
    pub node: Option<u8>,
    pub received_datagrams: u64,
    pub received_sessions: u64,
    /// Datagrams refused: not authenticated by our key, or malformed.
    pub unauthenticated: u64,
    pub malformed: u64,
    pub last_heard: Option<Instant>,
    pub bulk: Bulk,
    /// A bulk sync to it is running.
    pub serving: bool,
    /// Bulk syncs sent to it, and sessions in the last one.
    pub bulks_served: u64,
    pub last_bulk_sent: u64,
}

/// Everything the sync task counts.
#[derive(Debug)]
pub struct Status {
    pub peers: Vec<Peer>,
    /// Datagrams and sessions sent (to every peer each).
    pub sent_datagrams: u64,
    pub sent_sessions: u64,
    /// Datagrams from addresses that are not configured peers, and the last such sender.
    pub not_peer: u64,
    pub not_peer_last: Option<IpAddr>,
    /// Peers' records dropped: too many waiting for one worker.
    pub backlog_full: u64,
}

impl Status {
    pub fn new(peers: &[IpAddr]) -> Status {
        let now = Instant::now();
        Status {
            peers: peers
                .iter()
                .map(|a| Peer {
                    addr: *a,
                    node: None,
                    received_datagrams: 0,
                    received_sessions: 0,
                    unauthenticated: 0,
                    malformed: 0,
                    last_heard: None,
                    bulk: Bulk::Waiting {
                        since: now,
                        asked: now,
                    },
                    serving: false,
                    bulks_served: 0,
                    last_bulk_sent: 0,
                })
                .collect(),
            sent_datagrams: 0,
            sent_sessions: 0,
            not_peer: 0,
            not_peer_last: None,
            backlog_full: 0,
        }
    }

    fn peer(&mut self, addr: IpAddr) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|p| p.addr == addr)
    }

    pub fn sent(&mut self, _to: Option<IpAddr>, datagrams: u64, sessions: u64) {
        self.sent_datagrams += datagrams;
        self.sent_sessions += sessions;
    }

    /// Peers to ask for a bulk sync now; moves the ones that waited too
    /// long on (silent, or a transfer whose end never came).
    pub fn bulk_due(&mut self, now: Instant, at_start: bool) -> Vec<IpAddr> {
        let mut due = Vec::new();
        for p in &mut self.peers {
            match p.bulk {
                Bulk::Waiting { since, .. } if now.duration_since(since) >= BULK_WAIT => {
                    crate::log(format!(
                        "ha: no bulk sync from {} within {}s: starting without its sessions",
                        p.addr,
                        BULK_WAIT.as_secs()
                    ));
                    p.bulk = Bulk::Silent;
                }
                Bulk::Waiting { since, asked }
                    if at_start || now.duration_since(asked) >= BULK_ASK_EVERY =>
                {
                    p.bulk = Bulk::Waiting { since, asked: now };
                    due.push(p.addr);
                }
                Bulk::Receiving { got, last } if now.duration_since(last) >= BULK_WAIT => {
                    crate::log(format!(
                        "ha: bulk sync from {} stopped after {got} sessions",
                        p.addr
                    ));
                    p.bulk = Bulk::Done { got, sent: None };
                }
                _ => {}
            }
        }
        due
    }

    pub fn not_peer(&mut self, from: IpAddr) {
        self.not_peer += 1;
        self.not_peer_last = Some(from);
    }

    pub fn refused(&mut self, from: IpAddr, e: CodecError) {
        if let Some(p) = self.peer(from) {
            match e {
                CodecError::Unauthenticated => p.unauthenticated += 1,
                _ => p.malformed += 1,
            }
        }
    }

    pub fn heard(&mut self, from: IpAddr, node: u8) {
        if let Some(p) = self.peer(from) {
            p.node = Some(node);
            p.last_heard = Some(Instant::now());
            p.received_datagrams += 1;
        }
    }

    pub fn received(&mut self, from: IpAddr, sessions: u64, bulk: bool) {
        let Some(p) = self.peer(from) else {
            return;
        };
        p.received_sessions += sessions;
        if !bulk {
            return;
        }
        let now = Instant::now();
        p.bulk = match p.bulk {
            Bulk::Waiting { .. } | Bulk::Silent | Bulk::Done { .. } => Bulk::Receiving {
                got: sessions,
                last: now,
            },
            Bulk::Receiving { got, .. } => Bulk::Receiving {
                got: got + sessions,
                last: now,
            },
        };
    }

    /// The end of a bulk sync from `from`; returns the sessions it brought.
    pub fn bulk_end(&mut self, from: IpAddr, sent: u32) -> u64 {
        let Some(p) = self.peer(from) else {
            return 0;
        };
        let got = match p.bulk {
            Bulk::Receiving { got, .. } => got,
            _ => 0,
        };
        p.bulk = Bulk::Done {
            got,
            sent: Some(sent),
        };
        got
    }

    /// Marks a bulk sync to `to` as running; false if one already is.
    pub fn start_serving(&mut self, to: IpAddr) -> bool {
        match self.peer(to) {
            Some(p) if !p.serving => {
                p.serving = true;
                true
            }
            _ => false,
        }
    }

    pub fn done_serving(&mut self, to: IpAddr, sent: u64) {
        if let Some(p) = self.peer(to) {
            p.serving = false;
            p.bulks_served += 1;
            p.last_bulk_sent = sent;
        }
    }

    /// `sluicectl ha` lines about the peers.
    /// What `sluicectl ha` shows (the workers' counters are the caller's).
    pub fn report(&self) -> SyncReport {
        let peers = self.peers.iter().map(|p| PeerReport {
            address: p.addr.to_string(),
            node_id: p.node,
            received_sessions: p.received_sessions,
            received_datagrams: p.received_datagrams,
            last_heard_s: p.last_heard.map(|t| t.elapsed().as_secs_f64()),
            unauthenticated: p.unauthenticated,
            malformed: p.malformed,
            bulk: p.bulk.to_string(),
            bulk_done: matches!(p.bulk, Bulk::Done { .. } | Bulk::Silent),
            bulks_served: p.bulks_served,
            last_bulk_sent: p.last_bulk_sent,
        });
        SyncReport {
            sent_sessions: self.sent_sessions,
            sent_datagrams: self.sent_datagrams,
            not_peer_dropped: self.not_peer,
            not_peer_last: self.not_peer_last.map(|a| a.to_string()),
            backlog_dropped: self.backlog_full,
            peers: peers.collect(),
            workers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bulk_sync_goes_from_asked_to_done_or_silent() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let mut s = Status::new(&[a, b]);
        let t0 = Instant::now();
        assert_eq!(s.bulk_due(t0, true), vec![a, b]);
        assert!(s
            .bulk_due(t0 + Duration::from_millis(500), false)
            .is_empty());
        assert_eq!(
            s.bulk_due(t0 + Duration::from_millis(1100), false),
            vec![a, b]
        );
        s.received(a, 40, true);
        s.received(a, 2, false);
        assert!(matches!(s.peers[0].bulk, Bulk::Receiving { got: 40, .. }));
        assert_eq!(s.bulk_end(a, 40), 40);
        assert_eq!(
            s.peers[0].bulk,
            Bulk::Done {
                got: 40,
                sent: Some(40)
            }
        );
        assert_eq!(s.peers[0].received_sessions, 42);
        assert!(s.bulk_due(t0 + BULK_WAIT, false).is_empty());
        assert_eq!(s.peers[1].bulk, Bulk::Silent, "b never answered");
    }
}
