//! `sluicectl sessions [flush] [--virtual-server NAME] [--member ADDR[:PORT]]
//! [--client ADDR] [--limit N|all]`: gathers sessions from the workers that
//! own them, a bounded slice per request, without stopping them, and
//! streams the answer as the slices come: a table of a million sessions per
//! worker lists and flushes completely. A whole answer ends with a line
//! that says so (`N sessions listed`, `flushed N sessions`, JSON
//! `"complete": true`); should a worker not answer a slice in time, it ends
//! with why instead (text: `error: ... cut short`; JSON: `"complete":
//! false` and an `error`). sluicectl exits 1 unless the answer ended whole.

use crate::report::View;
use sluice_dataplane::conntrack;
use sluice_dataplane::inspect::{Inspect, SessionFilter, SessionView};
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::TryRecvError;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

const USAGE: &str = "usage: sessions [flush] [--virtual-server NAME] [--member ADDR[:PORT]] [--client ADDR] [--limit N|all]";
/// Sessions listed unless `--limit` says otherwise.
const DEFAULT_LIMIT: usize = 1000;
/// How long a worker may take to answer one slice, and a client to take
/// one chunk of the answer.
const WORKER_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for the one before it to finish.
const GATE_WAIT: Duration = Duration::from_secs(5);
/// Matches a worker returns per slice at most.
const SLICE_ROWS: usize = 1024;

/// The control thread's ends of one worker's session mailbox: slices of
/// the table out and back.
pub type Mailbox = crate::mailbox::Mailbox<Inspect, Inspect>;

/// The worker's ends.
pub type WorkerMailbox = crate::mailbox::WorkerEnd<Inspect, Inspect>;

/// A session mailbox pair.
pub fn mailbox() -> (Mailbox, WorkerMailbox) {
    crate::mailbox::mailbox()
}

struct Request {
    filter: SessionFilter,
    flush: bool,
    limit: usize,
}

fn parse(view: &View, args: &[&str]) -> Result<Request, String> {
    let mut r = Request {
        filter: SessionFilter::default(),
        flush: false,
        limit: DEFAULT_LIMIT,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().copied().ok_or(format!("{a} needs a value"));
        match *a {
            "flush" => r.flush = true,
            "--virtual-server" => {
                let name = value()?;
                let i = view.live().shared.slot_of(name);
                r.filter.vs = Some(i.ok_or(format!("no virtual server {name:?}"))?);
            }
            "--member" => {
                let m = value()?;
                if let Ok(sa) = m.parse::<SocketAddr>() {
                    r.filter.member = Some(sa.ip());
                    r.filter.member_port = Some(sa.port());
                } else {
                    let ip: IpAddr = m.parse().map_err(|_| format!("bad member {m:?}"))?;
                    r.filter.member = Some(ip);
                }
            }
            "--client" => {
                let c = value()?;
                let ip: IpAddr = c.parse().map_err(|_| format!("bad client {c:?}"))?;
                r.filter.client = Some(ip);
            }
            "--limit" => {
                let n = value()?;
                r.limit = match n {
                    "all" => usize::MAX,
                    n => n.parse().map_err(|_| format!("bad limit {n:?}"))?,
                };
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(r)
}

/// Where an answer goes, a chunk at a time, each write bounded in time.
struct Out<'a, W> {
    w: &'a mut W,
    json: bool,
}

impl<W: AsyncWrite + Unpin> Out<'_, W> {
    async fn put(&mut self, text: &str) -> std::io::Result<()> {
        tokio::time::timeout(WRITE_TIMEOUT, self.w.write_all(text.as_bytes()))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }
}

/// Serves one `sessions ...` request, writing the answer to `w` as it is
/// gathered.
pub async fn stream<W: AsyncWrite + Unpin>(
    view: &View,
    args: &[&str],
    json: bool,
    w: &mut W,
) -> std::io::Result<()> {
    let mut out = Out { w, json };
    let req = match parse(view, args) {
        Ok(r) => r,
        Err(e) if json => return out.put(&crate::control::error_json(&e)).await,
        Err(e) => return out.put(&format!("error: {e}\n{USAGE}\n")).await,
    };
    // One sessions request at a time: each mailbox holds one slice. A
    // request does not wait long for another: it holds a client slot.
    let Ok(_gate) = tokio::time::timeout(GATE_WAIT, view.sessions_gate.lock()).await else {
        let busy =
            format!("another sessions request has been running for over {GATE_WAIT:?}; try again");
        return match out.json {
            true => out.put(&crate::control::error_json(&busy)).await,
            false => out.put(&format!("error: {busy}\n")).await,
        };
    };
    if req.flush {
        flush(view, &req, &mut out).await
    } else {
        list(view, &req, &mut out).await
    }
}

/// Removes the matching sessions, worker by worker, slice by slice.
async fn flush<W: AsyncWrite + Unpin>(
    view: &View,
    req: &Request,
    out: &mut Out<'_, W>,
) -> std::io::Result<()> {
    let mut removed = 0u64;
    let mut cut = None;
    'workers: for (w, mb) in view.mailboxes.iter().enumerate() {
        let mut cursor = 0;
        while cursor != u32::MAX {
            let slice = Inspect {
                filter: req.filter,
                flush: true,
                cursor,
                found: Vec::new(),
                removed: 0,
            };
            let Some(done) = ask(mb, slice).await else {
                cut = Some(w);
                break 'workers;
            };
            cursor = done.cursor;
            removed += u64::from(done.removed);
        }
    }
    crate::log(format!("admin: {removed} sessions flushed"));
    let text = match (cut, out.json) {
        (None, false) => format!("flushed {removed} sessions\n"),
        (None, true) => format!("{}\n", serde_json::json!({ "flushed": removed })),
        (Some(w), false) => format!(
            "error: flush cut short: worker {w} did not answer within {WORKER_TIMEOUT:?}; {removed} sessions flushed\n"
        ),
        (Some(w), true) => format!(
            "{}\n",
            serde_json::json!({
                "flushed": removed,
                "error": format!("flush cut short: worker {w} did not answer within {WORKER_TIMEOUT:?}"),
            })
        ),
    };
    out.put(&text).await
}

/// Lists the matching sessions, up to the limit, writing each slice's rows
/// as soon as they arrive.
async fn list<W: AsyncWrite + Unpin>(
    view: &View,
    req: &Request,
    out: &mut Out<'_, W>,
) -> std::io::Result<()> {
    out.put(if out.json {
        "{\"sessions\":["
    } else {
        "client virtual_server vip member snat state idle\n"
    })
    .await?;
    let mut listed = 0usize;
    let mut cut = None;
    'workers: for (w, mb) in view.mailboxes.iter().enumerate() {
        let mut cursor = 0;
        while cursor != u32::MAX && listed < req.limit {
            let room = (req.limit - listed).min(SLICE_ROWS);
            let slice = Inspect {
                filter: req.filter,
                flush: false,
                cursor,
                found: Vec::with_capacity(room),
                removed: 0,
            };
            let Some(done) = ask(mb, slice).await else {
                cut = Some(w);
                break 'workers;
            };
            cursor = done.cursor;
            let mut chunk = String::new();
            let (live, now) = (view.live(), view.clock.now_ms() as u32);
            for s in &done.found {
                let r = row(&live, now, s);
                if out.json {
                    let sep = if listed == 0 { "" } else { "," };
                    let _ = write!(chunk, "{sep}{}", r.json());
                } else {
                    let _ = writeln!(
                        chunk,
                        "{} {} {} {} {} {} {:.1}s",
                        r.client, r.virtual_server, r.vip, r.member, r.snat, r.state, r.idle_s
                    );
                }
                listed += 1;
            }
            out.put(&chunk).await?;
        }
    }
    let why = cut.map(|w| format!("listing cut short: worker {w} did not answer within {WORKER_TIMEOUT:?}; {listed} sessions listed"));
    // The last line says the answer is whole (sluicectl checks it is there).
    let end = match (out.json, why) {
        (true, None) => "],\"complete\":true}\n".to_string(),
        (true, Some(e)) => format!(
            "],\"complete\":false,\"error\":{}}}\n",
            serde_json::json!(e)
        ),
        (false, None) => format!("{listed} sessions listed\n"),
        (false, Some(e)) => format!("error: {e}\n"),
    };
    out.put(&end).await
}

/// Sends one slice to a worker and waits for its answer.
pub(crate) async fn ask(mb: &Mailbox, slice: Inspect) -> Option<Inspect> {
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

/// One session as `sluicectl sessions` shows it.
struct Row {
    client: String,
    virtual_server: String,
    vip: String,
    member: String,
    snat: String,
    state: &'static str,
    idle_s: f64,
}

impl Row {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "client": self.client, "virtual_server": self.virtual_server, "vip": self.vip,
            "member": self.member, "snat": self.snat, "state": self.state, "idle_s": self.idle_s,
        })
    }
}

fn row(live: &crate::report::Live, now: u32, s: &SessionView) -> Row {
    Row {
        client: s.client.to_string(),
        virtual_server: live
            .shared
            .service(s.vs)
            .map_or("?".to_string(), |v| v.name.clone()),
        vip: s.vip.to_string(),
        member: s.member.to_string(),
        snat: s.snat.to_string(),
        state: conntrack::state_name(s.state, s.proto),
        idle_s: f64::from(now.wrapping_sub(s.last_seen)) / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[[interface]]
name = "int"
device = "net_null0"
addresses = ["10.20.0.1/24"]
kernel = false
[pool.web]
members = [{ address = "10.20.0.11:80" }]
[[virtual_server]]
name = "web"
address = "10.20.0.100:80"
protocol = "tcp"
pool = "web"
"#;

    /// A view of two workers: worker 0 answers every slice with one
    /// session and the end of its table; worker 1 never answers.
    fn view(worker0: WorkerMailbox, mailboxes: Vec<Mailbox>) -> View {
        std::thread::spawn(move || {
            let (requests, replies) = worker0;
            while let Ok(mut req) = requests.recv() {
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
                if replies.send(req).is_err() {
                    return;
                }
            }
        });
        crate::testing::view(CFG, 2, mailboxes)
    }

    #[tokio::test]
    async fn a_worker_that_does_not_answer_cuts_the_answer_short_and_it_says_so() {
        let (mb0, end0) = mailbox();
        let (mb1, _silent) = mailbox();
        let view = view(end0, vec![mb0, mb1]);
        let mut out = Vec::new();
        stream(&view, &["--limit", "all"], false, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");

        assert!(lines[1].starts_with("10.0.0.2:40000 web 10.20.0.100:80 10.20.0.11:80 "));
        assert_eq!(
            lines[2],
            "error: listing cut short: worker 1 did not answer within 2s; 1 sessions listed"
        );
        let mut out = Vec::new();
        stream(&view, &["--limit", "all"], true, &mut out)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["sessions"].as_array().unwrap().len(), &v["complete"]),
            (1, &serde_json::json!(false))
        );
        assert!(v["error"]
            .as_str()
            .unwrap()
            .contains("worker 1 did not answer"));
        let mut out = Vec::new();
        stream(&view, &["flush"], false, &mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "error: flush cut short: worker 1 did not answer within 2s; 1 sessions flushed\n"
        );
    }
}
