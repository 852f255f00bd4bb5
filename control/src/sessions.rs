//! `sluicectl sessions [flush] [--virtual-server NAME] [--member ADDR[:PORT]]
//! [--client ADDR] [--limit N]`: gathers sessions from the workers that own
//! them, a bounded slice per request, without stopping them.

use crate::report::View;
use sluice_dataplane::conntrack;
use sluice_dataplane::inspect::{Inspect, SessionFilter};
use sluice_dataplane::session::Session4;
use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::mpsc::TryRecvError;
use std::time::Duration;

const USAGE: &str = "usage: sessions [flush] [--virtual-server NAME] [--member ADDR[:PORT]] [--client ADDR] [--limit N]";
/// Sessions listed unless `--limit` says otherwise.
const DEFAULT_LIMIT: usize = 1000;
/// How long a worker may take to answer one slice.
const WORKER_TIMEOUT: Duration = Duration::from_secs(2);

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
                if let Ok(sa) = m.parse::<SocketAddrV4>() {
                    r.filter.member = Some(u32::from(*sa.ip()));
                    r.filter.member_port = Some(sa.port());
                } else {
                    let ip: Ipv4Addr = m.parse().map_err(|_| format!("bad member {m:?}"))?;
                    r.filter.member = Some(u32::from(ip));
                }
            }
            "--client" => {
                let c = value()?;
                let ip: Ipv4Addr = c.parse().map_err(|_| format!("bad client {c:?}"))?;
                r.filter.client = Some(u32::from(ip));
            }
            "--limit" => {
                let n = value()?;
                r.limit = n.parse().map_err(|_| format!("bad limit {n:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(r)
}

/// Serves one `sessions ...` request.
pub async fn run(view: &View, args: &[&str], json: bool) -> String {
    let fail = |e: String| {
        if json {
            crate::control::error_json(&e)
        } else {
            format!("error: {e}\n{USAGE}\n")
        }
    };
    let req = match parse(view, args) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    // One sessions request at a time: each mailbox holds one slice.
    let _gate = view.sessions_gate.lock().await;
    let mut found = Vec::new();
    let mut removed = 0;
    for (w, mb) in view.mailboxes.iter().enumerate() {
        let mut cursor = 0;
        while cursor != u32::MAX && found.len() < req.limit {
            let room = (req.limit - found.len()).min(1024);
            let slice = Inspect {
                filter: req.filter,
                flush: req.flush,
                cursor,
                found: Vec::with_capacity(if req.flush { 0 } else { room }),
                removed: 0,
            };
            let Some(done) = ask(mb, slice).await else {
                return fail(format!(
                    "worker {w} did not answer within {WORKER_TIMEOUT:?}"
                ));
            };
            cursor = done.cursor;
            removed += done.removed;
            found.extend(done.found);
        }
    }
    if req.flush {
        crate::log(format!("admin: {removed} sessions flushed"));
        return match json {
            true => format!("{}\n", serde_json::json!({ "flushed": removed })),
            false => format!("flushed {removed} sessions\n"),
        };
    }
    let rows: Vec<Row> = found.iter().map(|s| row(view, s)).collect();
    if json {
        return format!(
            "{}\n",
            serde_json::Value::Array(rows.iter().map(Row::json).collect())
        );
    }
    let mut o = String::from("client virtual_server vip member snat state idle\n");
    for r in rows {
        let _ = writeln!(
            o,
            "{} {} {} {} {} {} {:.1}s",
            r.client, r.virtual_server, r.vip, r.member, r.snat, r.state, r.idle_s
        );
    }
    o
}

/// Sends one slice to a worker and waits for its answer.
async fn ask(mb: &Mailbox, slice: Inspect) -> Option<Inspect> {
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

fn row(view: &View, s: &Session4) -> Row {
    let now = view.clock.now_ms() as u32;
    let ep = |a: u32, p: u16| format!("{}:{p}", Ipv4Addr::from(a));
    Row {
        client: ep(s.client, s.cport),
        virtual_server: view
            .live()
            .shared
            .service(s.vs)
            .map_or("?".to_string(), |v| v.name.clone()),
        vip: ep(s.vip, s.vport),
        member: ep(s.member, s.mport),
        snat: ep(s.snat, s.sport),
        state: conntrack::state_name(s.state, s.proto),
        idle_s: f64::from(now.wrapping_sub(s.last_seen)) / 1000.0,
    }
}
