//! `sessions`: the one streamed answer. The switch gathers sessions from
//! the workers a slice at a time and sends each slice's rows as soon as
//! it has them ([`SessionsFrame::Rows`]); a whole answer ends with
//! [`SessionsFrame::End`], which says whether every worker answered. A
//! stream that stops before its end is incomplete, and `sluicectl` says so.

use super::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fmt::Write;
use std::net::IpAddr;

/// Sessions listed unless `--limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 1000;

/// Which sessions, and whether to remove them. A JSON request may leave
/// out any field: it then lists, unfiltered, at most [`DEFAULT_LIMIT`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionsQuery {
    pub flush: bool,
    pub virtual_server: Option<String>,
    pub member: Option<IpAddr>,
    pub member_port: Option<u16>,
    pub client: Option<IpAddr>,
    /// At most this many listed; `None` (`"limit": null`): all of them.
    pub limit: Option<usize>,
}

impl Default for SessionsQuery {
    fn default() -> Self {
        SessionsQuery {
            flush: false,
            virtual_server: None,
            member: None,
            member_port: None,
            client: None,
            limit: Some(DEFAULT_LIMIT),
        }
    }
}

/// One session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    pub client: String,
    pub virtual_server: String,
    pub vip: String,
    pub member: String,
    pub snat: String,
    pub state: String,
    pub idle_s: f64,
}

/// How a sessions answer ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum SessionsEnd {
    Listed {
        count: u64,
    },
    Flushed {
        count: u64,
    },
    /// A worker did not answer: `message` says which; `count` were listed.
    ListCut {
        count: u64,
        message: String,
    },
    FlushCut {
        count: u64,
        message: String,
    },
}

/// One piece of a sessions answer, a JSON line each on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", content = "data", rename_all = "snake_case")]
pub enum SessionsFrame {
    /// The request was refused before any session was looked at.
    Error(ApiError),
    Rows(Vec<SessionRow>),
    End(SessionsEnd),
}

impl SessionsEnd {
    /// Whether every worker answered.
    pub fn complete(&self) -> bool {
        matches!(
            self,
            SessionsEnd::Listed { .. } | SessionsEnd::Flushed { .. }
        )
    }
}

/// Renders a sessions stream as text or JSON, a frame at a time, so that
/// `sluicectl` prints each slice as it arrives. A listing's header comes
/// with its first frame, unless that frame is a refusal (the whole answer).
pub struct SessionsRender {
    json: bool,
    flush: bool,
    rows: u64,
    started: bool,
}

impl SessionsRender {
    pub fn new(query: &SessionsQuery, json: bool) -> SessionsRender {
        SessionsRender {
            json,
            flush: query.flush,
            rows: 0,
            started: false,
        }
    }

    /// What precedes the first frame: a listing's header.
    fn begin(&self) -> &'static str {
        match (self.flush, self.json) {
            (true, _) => "",
            (false, true) => "{\"sessions\":[",
            (false, false) => "client virtual_server vip member snat state idle\n",
        }
    }

    /// The text of one frame (after the header, if it is the first).
    pub fn frame(&mut self, frame: &SessionsFrame) -> String {
        let refusal = matches!(frame, SessionsFrame::Error(_));
        let mut o = self.start(refusal);
        o += &match frame {
            SessionsFrame::Error(e) if self.json => format!("{}\n", e.json()),
            SessionsFrame::Error(e) => e.text(),
            SessionsFrame::Rows(rows) => self.rows(rows),
            SessionsFrame::End(end) if self.json => format!("{}\n", end_json(end)),
            SessionsFrame::End(end) => end_text(end),
        };
        o
    }

    /// The header, the first time only (not before a refusal).
    fn start(&mut self, refusal: bool) -> String {
        let header = if self.started || refusal {
            ""
        } else {
            self.begin()
        };
        self.started = true;
        header.to_string()
    }

    fn rows(&mut self, rows: &[SessionRow]) -> String {
        let mut o = String::new();
        for r in rows {
            if self.json {
                let sep = if self.rows == 0 { "" } else { "," };
                let row = serde_json::to_string(r).unwrap_or_default();
                let _ = write!(o, "{sep}{row}");
            } else {
                let _ = writeln!(
                    o,
                    "{} {} {} {} {} {} {:.1}s",
                    r.client, r.virtual_server, r.vip, r.member, r.snat, r.state, r.idle_s
                );
            }
            self.rows += 1;
        }
        o
    }

    /// What closes a stream that stopped before its end (JSON stays parseable).
    pub fn abandon(&mut self) -> String {
        let close = match (self.flush, self.json) {
            (false, true) => {
                "],\"complete\":false,\"error\":\"the answer stopped before its end\"}\n"
            }
            _ => "",
        };
        self.start(false) + close
    }
}

fn end_text(end: &SessionsEnd) -> String {
    match end {
        SessionsEnd::Listed { count } => format!("{count} sessions listed\n"),
        SessionsEnd::Flushed { count } => format!("flushed {count} sessions\n"),
        SessionsEnd::ListCut { count, message } => {
            format!("error: {message}; {count} sessions listed\n")
        }
        SessionsEnd::FlushCut { count, message } => {
            format!("error: {message}; {count} sessions flushed\n")
        }
    }
}

/// The end of a JSON answer: closes the listing's array, or is the whole
/// answer of a flush.
fn end_json(end: &SessionsEnd) -> String {
    match end {
        SessionsEnd::Listed { .. } => "],\"complete\":true}".to_string(),
        SessionsEnd::ListCut { count, message } => format!(
            "],\"complete\":false,\"error\":{}}}",
            json!(format!("{message}; {count} sessions listed"))
        ),
        SessionsEnd::Flushed { count } => json!({ "flushed": count }).to_string(),
        SessionsEnd::FlushCut { count, message } => {
            json!({ "flushed": count, "error": message }).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> SessionRow {
        SessionRow {
            client: "10.0.0.2:40000".into(),
            virtual_server: "web".into(),
            vip: "10.20.0.100:80".into(),
            member: "10.20.0.11:80".into(),
            snat: "10.0.0.2:40000".into(),
            state: "established".into(),
            idle_s: 0.31,
        }
    }

    fn render(query: &SessionsQuery, json: bool, frames: &[SessionsFrame]) -> String {
        let mut r = SessionsRender::new(query, json);
        let mut out = String::new();
        for f in frames {
            out += &r.frame(f);
        }
        out
    }

    #[test]
    fn a_listing_renders_as_a_table_or_one_json_document() {
        let q = SessionsQuery::default();
        let frames = [
            SessionsFrame::Rows(vec![row(), row()]),
            SessionsFrame::End(SessionsEnd::Listed { count: 2 }),
        ];
        assert_eq!(
            render(&q, false, &frames),
            "client virtual_server vip member snat state idle\n\
             10.0.0.2:40000 web 10.20.0.100:80 10.20.0.11:80 10.0.0.2:40000 established 0.3s\n\
             10.0.0.2:40000 web 10.20.0.100:80 10.20.0.11:80 10.0.0.2:40000 established 0.3s\n\
             2 sessions listed\n"
        );
        let doc: serde_json::Value = serde_json::from_str(&render(&q, true, &frames)).unwrap();
        assert_eq!(doc["sessions"].as_array().unwrap().len(), 2);
        assert_eq!(doc["complete"], json!(true));
    }

    #[test]
    fn a_cut_answer_says_so_in_both_forms() {
        let q = SessionsQuery::default();
        let cut = SessionsEnd::ListCut {
            count: 1,
            message: "listing cut short: worker 1 did not answer within 2s".into(),
        };
        let frames = [
            SessionsFrame::Rows(vec![row()]),
            SessionsFrame::End(cut.clone()),
        ];
        let text = render(&q, false, &frames);
        assert!(text.ends_with(
            "\nerror: listing cut short: worker 1 did not answer within 2s; 1 sessions listed\n"
        ));
        let doc: serde_json::Value = serde_json::from_str(&render(&q, true, &frames)).unwrap();
        assert_eq!(doc["complete"], json!(false));
        assert!(doc["error"].as_str().unwrap().contains("worker 1"));
        assert!(!cut.complete());
        let flush = SessionsQuery {
            flush: true,
            ..Default::default()
        };
        let end = SessionsFrame::End(SessionsEnd::FlushCut {
            count: 1,
            message: "flush cut short: worker 1 did not answer within 2s".into(),
        });
        assert_eq!(
            render(&flush, false, std::slice::from_ref(&end)),
            "error: flush cut short: worker 1 did not answer within 2s; 1 sessions flushed\n"
        );
        // An abandoned JSON listing still parses, and says it is incomplete.
        let mut r = SessionsRender::new(&q, true);
        let partial = r.frame(&SessionsFrame::Rows(vec![row()])) + &r.abandon();
        let doc: serde_json::Value = serde_json::from_str(&partial).unwrap();
        assert_eq!(doc["complete"], json!(false));
        let mut nothing = SessionsRender::new(&q, true);
        let doc: serde_json::Value = serde_json::from_str(&nothing.abandon()).unwrap();
        assert_eq!(doc["sessions"], json!([]));
        // A refusal is the whole answer: no header before it.
        let busy = SessionsFrame::Error(ApiError::Busy {
            message: "another sessions request".into(),
        });
        assert_eq!(
            render(&q, false, &[busy]),
            "error: another sessions request\n"
        );
    }
}
