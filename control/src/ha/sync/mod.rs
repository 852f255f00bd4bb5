//! Session synchronisation, the control thread's half (`[ha] sync_peers`):
//! one UDP socket on this node's address of the sync interface, port
//! `sync_port`. Every few milliseconds the workers' queued changes are
//! batched into datagrams to every peer; datagrams from the peers are
//! decoded (and authenticated with `sync_key`) and their records handed to
//! the worker that owns each session, by the same function as its packets.
//! At start the node asks each peer for a bulk sync and is not ready
//! (`sluicectl ha ready`) until every peer has sent one or stayed silent
//! for [`BULK_WAIT`].

mod bulk;
pub mod codec;
pub mod link;
pub mod status;

use crate::live::Running;
use crate::sessions::Sessions;
use codec::{Datagram, Message};
use link::{ControlEnd, INSTALL_BATCH};
use sluice_dataplane::sync::SyncRecord;
use sluice_dataplane::worker::AnySession;
use status::{Bulk, Status};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// How often the workers' changes are gathered and sent.
const SEND_EVERY: Duration = Duration::from_millis(10);
/// How long a starting node waits for a silent peer's bulk sync before it
/// counts as having none to give (the peer is down: this node starts alone).
pub const BULK_WAIT: Duration = Duration::from_secs(5);
/// How often a bulk request is repeated while unanswered.
const BULK_ASK_EVERY: Duration = Duration::from_secs(1);
/// Peers' records waiting for a worker's channel at most, per worker.
const BACKLOG: usize = 64 * INSTALL_BATCH;
/// Receive buffer asked of the kernel: a bulk sync arrives fast.
const RECV_BUFFER: usize = 8 << 20;

/// What the sync task shares with the control socket (`sluicectl ha`).
pub struct Link {
    ends: Mutex<Vec<ControlEnd>>,
    pub status: Mutex<Status>,
}

impl Link {
    /// The link for `workers` workers, and each worker's ends.
    pub fn new(workers: u16, peers: &[IpAddr]) -> (Link, Vec<link::WorkerEnd>) {
        let (ends, workers): (Vec<_>, Vec<_>) = (0..workers).map(|_| link::pair()).unzip();
        let link = Link {
            ends: Mutex::new(ends),
            status: Mutex::new(Status::new(peers)),
        };
        (link, workers)
    }

    pub fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ends(&self) -> MutexGuard<'_, Vec<ControlEnd>> {
        self.ends.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why the sync task stopped.
#[derive(Debug)]
pub enum SyncError {
    /// The sync interface has no address of the peers' family.
    NoLocalAddress { interface: String },
    Socket {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::NoLocalAddress { interface } => write!(
                f,
                "session sync: interface {interface:?} has no address of the peers' family"
            ),
            SyncError::Socket { addr, error } => write!(
                f,
                "session sync: cannot use UDP {addr}: {error} (is the kernel interface up with that address?)"
            ),
        }
    }
}

/// What the task needs of the configuration, read once (`[ha]` is fixed
/// until a restart).
pub(crate) struct Setup {
    pub node: u8,
    pub peers: Vec<IpAddr>,
    pub port: u16,
    pub key: Option<Vec<u8>>,
}

/// What the sync task works with.
pub struct SyncContext {
    pub running: Arc<Running>,
    pub link: Arc<Link>,
    /// The session mailboxes, for bulk syncs to the peers.
    pub sessions: Arc<Sessions>,
}

/// Runs session synchronisation until the control thread stops; returns
/// only on an error that stops it.
pub async fn run(view: Arc<SyncContext>) -> SyncError {
    let link = &view.link;
    let (setup, local) = match setup(&view.running) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let sock = match socket(local) {
        Ok(s) => Arc::new(s),
        Err(error) => return SyncError::Socket { addr: local, error },
    };
    let setup = Arc::new(setup);
    crate::log(format!(
        "ha: session sync on {local} with {}",
        setup
            .peers
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut task = Task {
        view: view.clone(),
        sock: sock.clone(),
        setup: setup.clone(),
        seq: 0,
        out: Vec::with_capacity(codec::MAX_DATAGRAM),
        backlog: vec![Vec::new(); view.running.stats.len()],
        spare: Vec::new(),
    };
    task.ask_bulk(link, true).await;
    let mut tick = tokio::time::interval(SEND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                task.send_changes(link).await;
                task.install_backlog(link);
                task.ask_bulk(link, false).await;
            }
            got = sock.recv_from(&mut buf) => match got {
                Ok((n, from)) => task.receive(link, &buf[..n], from).await,
                Err(e) => crate::log(format!("ha: session sync receive: {e}")),
            }
        }
    }
}

/// This node's setup and the address to bind on the sync interface.
fn setup(view: &Running) -> Result<(Setup, SocketAddr), SyncError> {
    let live = view.live();
    let cfg = &live.config;
    let s = cfg
        .ha
        .sync
        .as_ref()
        .expect("the sync task runs only with sync_peers");
    let itf = &cfg.interfaces[s.interface];
    let v4 = s.peers[0].is_ipv4();
    let local = itf
        .addresses
        .iter()
        .map(|a| a.addr)
        .find(|a| a.is_ipv4() == v4)
        .ok_or_else(|| SyncError::NoLocalAddress {
            interface: itf.name.clone(),
        })?;
    let setup = Setup {
        node: cfg.ha.node_id.unwrap_or(0),
        peers: s.peers.clone(),
        port: s.port,
        key: s.key.as_ref().map(|k| k.as_bytes().to_vec()),
    };
    Ok((setup, SocketAddr::new(local, s.port)))
}

fn socket(local: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    // Best effort: a smaller buffer only drops more of a fast bulk sync.
    let _ = s.set_recv_buffer_size(RECV_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&local.into())?;
    UdpSocket::from_std(s.into())
}

struct Task {
    view: Arc<SyncContext>,
    sock: Arc<UdpSocket>,
    setup: Arc<Setup>,
    seq: u32,
    out: Vec<u8>,
    /// Peers' records waiting for each worker's channel.
    backlog: Vec<Vec<SyncRecord>>,
    /// Emptied batches back from the workers, for reuse.
    spare: Vec<Vec<SyncRecord>>,
}

impl Task {
    /// Sends every worker's queued changes to every peer.
    async fn send_changes(&mut self, link: &Link) {
        let full: Vec<Vec<SyncRecord>> = link
            .ends()
            .iter()
            .filter_map(|e| e.out.try_recv().ok())
            .collect();
        for mut records in full {
            let (datagrams, sessions) = self.send_records(&records, false, None).await;
            link.status().sent(None, datagrams, sessions);
            records.clear();
            // Back to the worker it came from is not needed: any worker's
            // spare channel takes it, the first with room.
            let ends = link.ends();
            let mut back = Some(records);
            for e in ends.iter() {
                match e.empties.try_send(back.take().expect("still held")) {
                    Ok(()) => break,
                    Err(std::sync::mpsc::TrySendError::Full(r)) => back = Some(r),
                    Err(std::sync::mpsc::TrySendError::Disconnected(r)) => back = Some(r),
                }
            }
        }
    }

    /// Sends `records` in datagrams to every peer; returns the datagrams
    /// and sessions sent (to each).
    async fn send_records(
        &mut self,
        records: &[SyncRecord],
        bulk: bool,
        to: Option<IpAddr>,
    ) -> (u64, u64) {
        let d = send(
            &self.sock,
            &self.setup,
            &mut self.seq,
            &mut self.out,
            records,
            bulk,
            to,
        )
        .await;
        (d, records.len() as u64)
    }

    /// Asks the peers whose bulk sync is due (all of them `at_start`).
    async fn ask_bulk(&mut self, link: &Link, at_start: bool) {
        let due = link.status().bulk_due(Instant::now(), at_start);
        for peer in due {
            self.seq = self.seq.wrapping_add(1);
            codec::encode_bulk_request(
                self.setup.node,
                self.seq,
                self.setup.key.as_deref(),
                &mut self.out,
            );
            let _ = self.sock.send_to(&self.out, (peer, self.setup.port)).await;
        }
    }

    /// One datagram from `from`.
    async fn receive(&mut self, link: &Link, buf: &[u8], from: SocketAddr) {
        let peer = from.ip();
        if !self.setup.peers.contains(&peer) {
            link.status().not_peer(peer);
            return;
        }
        let d = match codec::decode(buf, self.setup.key.as_deref()) {
            Ok(d) => d,
            Err(e) => {
                link.status().refused(peer, e);
                return;
            }
        };
        let Datagram { node, message, .. } = d;
        link.status().heard(peer, node);
        match message {
            Message::Sessions { records, bulk } => {
                link.status().received(peer, records.len() as u64, bulk);
                self.route(records);
                self.install_backlog(link);
            }
            Message::BulkRequest => {
                if link.status().start_serving(peer) {
                    crate::log(format!("ha: bulk sync to {peer} requested"));
                    let view = self.view.clone();
                    let (sock, setup) = (self.sock.clone(), self.setup.clone());
                    tokio::spawn(async move { bulk::serve(view, sock, setup, peer).await });
                }
            }
            Message::BulkEnd { sent } => {
                let got = link.status().bulk_end(peer, sent);
                crate::log(format!(
                    "ha: bulk sync from {peer} done: {got} of {sent} sessions received"
                ));
            }
        }
    }

    /// Queues each record for the worker that owns its session.
    fn route(&mut self, records: Vec<SyncRecord>) {
        let live = self.view.running.live();
        let workers = self.backlog.len();
        for r in records {
            let w = match (workers, r.session) {
                (1, _) => 0,
                (_, AnySession::V4(s)) => usize::from(live.shared.client_owner_of(s.client)),
                (_, AnySession::V6(s)) => usize::from(live.shared.client_owner_of(s.client)),
            };
            let Some(q) = self.backlog.get_mut(w) else {
                continue;
            };
            if q.len() < BACKLOG {
                q.push(r);
            } else {
                self.view.link.status().backlog_full += 1;
            }
        }
    }

    /// Hands waiting records to their workers, a batch per free slot.
    fn install_backlog(&mut self, link: &Link) {
        let ends = link.ends();
        for (w, end) in ends.iter().enumerate() {
            while let Ok(b) = end.installed.try_recv() {
                self.spare.push(b);
            }
            let q = &mut self.backlog[w];
            while !q.is_empty() {
                let n = q.len().min(INSTALL_BATCH);
                let mut batch = self
                    .spare
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(INSTALL_BATCH));
                batch.extend(q.drain(..n));
                match end.install.try_send(batch) {
                    Ok(()) => {}
                    Err(std::sync::mpsc::TrySendError::Full(mut b))
                    | Err(std::sync::mpsc::TrySendError::Disconnected(mut b)) => {
                        // Back to the front of the queue, in order.
                        b.append(q);
                        std::mem::swap(q, &mut b);
                        self.spare.push(b);
                        break;
                    }
                }
            }
        }
    }
}

/// Sends `records` in datagrams (sequence numbers from `seq`), to `to` or
/// to every peer; returns the datagrams sent to each.
async fn send(
    sock: &UdpSocket,
    setup: &Setup,
    seq: &mut u32,
    out: &mut Vec<u8>,
    records: &[SyncRecord],
    bulk: bool,
    to: Option<IpAddr>,
) -> u64 {
    let (mut at, mut datagrams) = (0, 0);
    while at < records.len() {
        *seq = seq.wrapping_add(1);
        let key = setup.key.as_deref();
        let n = codec::encode_sessions(setup.node, *seq, &records[at..], bulk, key, out);
        for peer in setup.peers.iter().filter(|p| to.is_none_or(|t| t == **p)) {
            // A datagram the kernel cannot take now is lost like one the
            // link loses: refreshes and the next change make up for it.
            let _ = sock.send_to(out, (*peer, setup.port)).await;
        }
        at += n;
        datagrams += 1;
    }
    datagrams
}

/// Whether the node may be master as far as synchronisation goes: every
/// peer's bulk sync done, or the peer silent for [`BULK_WAIT`].
pub fn ready(link: &Link) -> Result<(), String> {
    let s = link.status();
    match s
        .peers
        .iter()
        .find(|p| matches!(p.bulk, Bulk::Waiting { .. } | Bulk::Receiving { .. }))
    {
        Some(p) => Err(format!(
            "bulk sync from {} not finished ({})",
            p.addr, p.bulk
        )),
        None => Ok(()),
    }
}
