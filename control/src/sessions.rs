//! `sluicectl sessions [flush] [--virtual-server NAME] [--member ADDR[:PORT]]
//! [--client ADDR] [--limit N|all]`: gathers sessions from the workers that
//! own them, a bounded slice per request, without stopping them, and
//! streams the answer as the slices come: a table of a million sessions per
//! worker lists and flushes completely. A whole answer ends with a line
//! that says so (`N sessions listed`, `flushed N sessions`, JSON
//! `"complete": true`); should a worker not answer a slice in time, it ends
//! with why instead (text: `error: ... cut short`; JSON: `"complete":
//! false` and an `error`). sluicectl exits 1 unless the answer ended whole.

use crate::channels::SessionsMailbox;
use crate::live::{Live, Running};
use sluice_control::api::{ApiError, SessionRow, SessionsEnd, SessionsFrame, SessionsQuery};
use sluice_dataplane::conntrack;
use sluice_dataplane::inspect::{Inspect, SessionFilter, SessionView};
use std::sync::mpsc::TryRecvError;
use std::time::Duration;

/// How long a worker may take to answer one slice.
const WORKER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request waits for the one before it to finish.
const GATE_WAIT: Duration = Duration::from_secs(5);
/// Matches a worker returns per slice at most.
const SLICE_ROWS: usize = 1024;

/// Every worker's session mailbox, and the gate that lets one request
/// (a listing, a flush, a bulk sync) use them at a time.
pub struct Sessions {
    pub mailboxes: Vec<SessionsMailbox>,
    pub gate: tokio::sync::Mutex<()>,
}

impl Sessions {
    pub fn new(mailboxes: Vec<SessionsMailbox>) -> Sessions {
        Sessions {
            mailboxes,
            gate: tokio::sync::Mutex::new(()),
        }
    }
}

/// Where an answer goes, a frame at a time (the transport bounds each
/// write in time).
pub trait FrameSink {
    fn put(
        &mut self,
        frame: SessionsFrame,
    ) -> impl std::future::Future<Output = std::io::Result<()>>;
}

/// The filter a query names, its virtual server looked up by name.
fn filter(live: &Live, q: &SessionsQuery) -> Result<SessionFilter, ApiError> {
    let mut f = SessionFilter::default();
    if let Some(name) = &q.virtual_server {
        let slot = live
            .shared
            .slot_of(name)
            .ok_or_else(|| ApiError::NotFound {
                message: format!("no virtual server {name:?}"),
            })?;
        f.vs = Some(slot);
    }
    f.member = q.member;
    f.member_port = q.member_port;
    f.client = q.client;
    Ok(f)
}

/// Serves one sessions request, handing each slice's rows to `out` as
/// they are gathered.
pub async fn stream(
    running: &Running,
    sessions: &Sessions,
    q: &SessionsQuery,
    out: &mut impl FrameSink,
) -> std::io::Result<()> {
    let filter = match filter(&running.live(), q) {
        Ok(f) => f,
        Err(e) => return out.put(SessionsFrame::Error(e)).await,
    };
    // One sessions request at a time: each mailbox holds one slice. A
    // request does not wait long for another: it holds a client slot.
    let Ok(_gate) = tokio::time::timeout(GATE_WAIT, sessions.gate.lock()).await else {
        let message =
            format!("another sessions request has been running for over {GATE_WAIT:?}; try again");
        return out
            .put(SessionsFrame::Error(ApiError::Busy { message }))
            .await;
    };
    let end = if q.flush {
        flush(sessions, filter).await
    } else {
        list(
            running,
            sessions,
            filter,
            q.limit.unwrap_or(usize::MAX),
            out,
        )
        .await?
    };
    out.put(SessionsFrame::End(end)).await
}

/// Removes the matching sessions, worker by worker, slice by slice.
async fn flush(sessions: &Sessions, filter: SessionFilter) -> SessionsEnd {
    let mut removed = 0u64;
    for (w, mb) in sessions.mailboxes.iter().enumerate() {
        let mut cursor = 0;
        while cursor != u32::MAX {
            let slice = Inspect {
                filter,
                flush: true,
                cursor,
                found: Vec::new(),
                removed: 0,
            };
            let Some(done) = ask(mb, slice).await else {
                crate::log(format!(
                    "admin: {removed} sessions flushed (worker {w} did not answer)"
                ));
                return SessionsEnd::FlushCut {
                    count: removed,
                    message: format!(
                        "flush cut short: worker {w} did not answer within {WORKER_TIMEOUT:?}"
                    ),
                };
            };
            cursor = done.cursor;
            removed += u64::from(done.removed);
        }
    }
    crate::log(format!("admin: {removed} sessions flushed"));
    SessionsEnd::Flushed { count: removed }
}

/// Lists the matching sessions, up to `limit`, each slice's rows as soon
/// as they arrive.
async fn list(
    running: &Running,
    sessions: &Sessions,
    filter: SessionFilter,
    limit: usize,
    out: &mut impl FrameSink,
) -> std::io::Result<SessionsEnd> {
    let mut listed = 0usize;
    for (w, mb) in sessions.mailboxes.iter().enumerate() {
        let mut cursor = 0;
        while cursor != u32::MAX && listed < limit {
            let room = (limit - listed).min(SLICE_ROWS);
            let slice = Inspect {
                filter,
                flush: false,
                cursor,
                found: Vec::with_capacity(room),
                removed: 0,
            };
            let Some(done) = ask(mb, slice).await else {
                return Ok(SessionsEnd::ListCut {
                    count: listed as u64,
                    message: format!(
                        "listing cut short: worker {w} did not answer within {WORKER_TIMEOUT:?}"
                    ),
                });
            };
            cursor = done.cursor;
            let (live, now) = (running.live(), running.clock.now_ms() as u32);
            let rows: Vec<SessionRow> = done.found.iter().map(|s| row(&live, now, s)).collect();
            listed += rows.len();
            out.put(SessionsFrame::Rows(rows)).await?;
        }
    }
    Ok(SessionsEnd::Listed {
        count: listed as u64,
    })
}

/// Sends one slice to a worker and waits for its answer.
pub(crate) async fn ask(mb: &SessionsMailbox, slice: Inspect) -> Option<Inspect> {
    {
        let rx = mb.from_worker.lock().ok()?;
        // A late answer to a request given up on earlier is stale.
        while rx.try_recv().is_ok() {}
    }
    mb.to_worker.try_send(slice).ok()?;
    let start = tokio::time::Instant::now();
    loop {
        match mb.from_worker.lock().ok()?.try_recv() {
            Ok(done) => return Some(done),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        if start.elapsed() > WORKER_TIMEOUT {
            return None;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn row(live: &Live, now: u32, s: &SessionView) -> SessionRow {
    SessionRow {
        client: s.client.to_string(),
        virtual_server: live
            .shared
            .service(s.vs)
            .map_or("?".to_string(), |v| v.name.clone()),
        vip: s.vip.to_string(),
        member: s.member.to_string(),
        snat: s.snat.to_string(),
        state: conntrack::state_name(s.state, s.proto).to_string(),
        idle_s: f64::from(now.wrapping_sub(s.last_seen)) / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two workers: worker 0 answers every slice with one session and the
    /// end of its table; worker 1 never answers.
    fn two_workers() -> (Running, Sessions, crate::channels::SessionsWorkerEnd) {
        let (mb0, worker0): (SessionsMailbox, crate::channels::SessionsWorkerEnd) =
            crate::channels::mailbox();
        let (mb1, silent) = crate::channels::mailbox();
        std::thread::spawn(move || {
            while let Ok(mut req) = worker0.requests.recv() {
                let s = sluice_dataplane::session::Session4 {
                    client: 0x0a00_0002,
                    vip: 0x0a14_0064,
                    member: 0x0a14_000b,
                    snat: 0x0a00_0002,
                    cport: 40000,
                    vport: 80,
                    mport: 80,
                    sport: 40000,
                    ..Default::default()
                };
                if req.found.capacity() > 0 {
                    req.found.push((&s).into());
                }
                req.removed = 1;
                req.cursor = u32::MAX;
                if worker0.replies.send(req).is_err() {
                    return;
                }
            }
        });
        (
            crate::testing::running(
                &crate::testing::web_config(r#"{ address = "10.20.0.11:80" }"#, ""),
                2,
            ),
            Sessions::new(vec![mb0, mb1]),
            silent,
        )
    }

    impl FrameSink for Vec<SessionsFrame> {
        async fn put(&mut self, frame: SessionsFrame) -> std::io::Result<()> {
            self.push(frame);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_worker_that_does_not_answer_cuts_the_answer_short_and_it_says_so() {
        let (running, sessions, _silent) = two_workers();
        let all = SessionsQuery {
            limit: None,
            ..Default::default()
        };
        let mut out = Vec::new();
        stream(&running, &sessions, &all, &mut out).await.unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        let SessionsFrame::Rows(rows) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (&rows[0].client, &rows[0].virtual_server, &rows[0].member),
            (
                &"10.0.0.2:40000".to_string(),
                &"web".to_string(),
                &"10.20.0.11:80".to_string()
            )
        );
        assert_eq!(
            out[1],
            SessionsFrame::End(SessionsEnd::ListCut {
                count: 1,
                message: "listing cut short: worker 1 did not answer within 2s".into()
            })
        );
        let mut out = Vec::new();
        let flush = SessionsQuery {
            flush: true,
            ..Default::default()
        };
        stream(&running, &sessions, &flush, &mut out).await.unwrap();
        assert_eq!(
            out,
            vec![SessionsFrame::End(SessionsEnd::FlushCut {
                count: 1,
                message: "flush cut short: worker 1 did not answer within 2s".into()
            })]
        );
    }

    #[tokio::test]
    async fn an_unknown_virtual_server_is_refused_before_any_worker_is_asked() {
        let (running, sessions, _silent) = two_workers();
        let q = SessionsQuery {
            virtual_server: Some("nope".into()),
            ..Default::default()
        };
        let mut out = Vec::new();
        stream(&running, &sessions, &q, &mut out).await.unwrap();
        assert!(
            matches!(&out[..], [SessionsFrame::Error(e)] if e.kind() == "not_found"),
            "{out:?}"
        );
    }
}
