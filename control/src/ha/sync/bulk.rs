//! A bulk sync to a peer that (re)joined: every confirmed session of every
//! worker, read a slice at a time through the session mailboxes (as
//! `sluicectl sessions` reads them, so the workers never stop), sent in
//! datagrams marked as bulk, then the count sent.

use super::SyncContext;
use super::{codec, send, Setup};
use sluice_dataplane::conntrack::flag;
use sluice_dataplane::inspect::{Inspect, SessionFilter};
use sluice_dataplane::sync::{SyncOp, SyncRecord};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// How long a bulk sync waits for a `sluicectl sessions` request to finish.
const GATE_WAIT: Duration = Duration::from_secs(10);
/// Matches a worker returns per slice at most.
const SLICE_ROWS: usize = 1024;
/// Pause between slices: keeps a bulk sync of a million sessions under
/// the peer's rate for sync datagrams (`KernelClass::Sync`).
const PACE: Duration = Duration::from_millis(2);

/// Sends every confirmed session to `peer`, then the end of the bulk sync.
pub(super) async fn serve(
    view: Arc<SyncContext>,
    sock: Arc<UdpSocket>,
    setup: Arc<Setup>,
    peer: IpAddr,
) {
    let mut seq = 0u32;
    let mut out = Vec::with_capacity(codec::MAX_DATAGRAM);
    let sent = match tokio::time::timeout(GATE_WAIT, view.sessions.gate.lock()).await {
        Ok(_gate) => dump(&view, &sock, &setup, peer, &mut seq, &mut out).await,
        Err(_) => {
            crate::log(format!(
                "ha: bulk sync to {peer}: the session mailboxes stayed busy for {GATE_WAIT:?}; sending none"
            ));
            0
        }
    };
    seq = seq.wrapping_add(1);
    let count = u32::try_from(sent).unwrap_or(u32::MAX);
    codec::encode_bulk_end(setup.node, seq, count, setup.key.as_deref(), &mut out);
    let _ = sock.send_to(&out, (peer, setup.port)).await;
    view.link.status().done_serving(peer, sent);
    crate::log(format!("ha: bulk sync to {peer}: {sent} sessions sent"));
}

async fn dump(
    view: &SyncContext,
    sock: &UdpSocket,
    setup: &Setup,
    peer: IpAddr,
    seq: &mut u32,
    out: &mut Vec<u8>,
) -> u64 {
    let mut sent = 0u64;
    let mut records = Vec::with_capacity(SLICE_ROWS);
    for (w, mb) in view.sessions.mailboxes.iter().enumerate() {
        let mut cursor = 0;
        while cursor != u32::MAX {
            let slice = Inspect {
                filter: SessionFilter::default(),
                flush: false,
                cursor,
                found: Vec::with_capacity(SLICE_ROWS),
                removed: 0,
            };
            let Some(done) = crate::sessions::ask(mb, slice).await else {
                crate::log(format!(
                    "ha: bulk sync to {peer}: worker {w} did not answer; its sessions are not sent"
                ));
                break;
            };
            cursor = done.cursor;
            let (live, now) = (view.running.live(), view.running.clock.now_ms() as u32);
            records.clear();
            for v in done.found.iter().filter(|v| v.state & flag::CONFIRMED != 0) {
                let (Some(session), Some(vs)) = (v.session(), live.shared.service(v.vs)) else {
                    continue;
                };
                records.push(SyncRecord {
                    op: SyncOp::Update,
                    session,
                    mode: vs.forwarding,
                    idle_ms: now.wrapping_sub(v.last_seen),
                });
            }
            send(sock, setup, seq, out, &records, true, Some(peer)).await;
            sent += records.len() as u64;
            if !records.is_empty() {
                tokio::time::sleep(PACE).await;
            }
        }
    }
    sent
}
