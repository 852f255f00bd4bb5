//! The control socket's protocol. A client writes one line: a JSON
//! [`Request`] (what `sluicectl` sends), or a command line as a person
//! types it (`members`, `--json stats`). The switch answers a JSON request
//! with one JSON [`Answer`] line (`sessions`: one [`SessionsFrame`] line
//! each), and a command line with the rendered text or JSON.

use super::error::ApiError;
use super::sessions::SessionsFrame;
use super::{command, Answer, Request};

/// A request as read from the socket.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A JSON request: the answer goes back typed.
    Typed(Request),
    /// A command line: the answer goes back rendered, as JSON if asked.
    Command { request: Request, json: bool },
}

/// What one request line asks for.
pub fn read_request(line: &str) -> Result<Incoming, (ApiError, bool)> {
    let line = line.trim();
    if line.starts_with('{') {
        return serde_json::from_str(line)
            .map(Incoming::Typed)
            .map_err(|e| {
                let message = format!("not a request: {e}");
                (ApiError::BadRequest { message }, true)
            });
    }
    let mut words: Vec<&str> = line.split_whitespace().collect();
    let json = words.contains(&"--json");
    words.retain(|w| *w != "--json");
    match command::parse(&words) {
        Ok(request) => Ok(Incoming::Command { request, json }),
        Err(e) => Err((e, json)),
    }
}

/// A JSON request line.
pub fn request_line(r: &Request) -> String {
    let mut s = serde_json::to_string(r).unwrap_or_default();
    s.push('\n');
    s
}

/// An answer as one JSON line.
pub fn answer_line(a: &Answer) -> String {
    let mut s = serde_json::to_string(a).unwrap_or_else(|e| {
        let e = ApiError::Internal {
            message: format!("the answer could not be written: {e}"),
        };
        serde_json::to_string(&Err::<(), _>(e)).unwrap_or_default()
    });
    s.push('\n');
    s
}

/// A sessions frame as one JSON line.
pub fn frame_line(f: &SessionsFrame) -> String {
    let mut s = serde_json::to_string(f).unwrap_or_default();
    s.push('\n');
    s
}

/// An answer rendered for a person (or `--json` for a script).
pub fn rendered(a: &Answer, json: bool) -> String {
    match (a, json) {
        (Ok(r), false) => r.text(),
        (Ok(r), true) => format!("{}\n", r.json()),
        (Err(e), false) => e.text(),
        (Err(e), true) => format!("{}\n", e.json()),
    }
}

/// An answer line read back.
pub fn read_answer(line: &str) -> Result<Answer, ApiError> {
    read_line(line)
}

/// A sessions frame read back.
pub fn read_frame(line: &str) -> Result<SessionsFrame, ApiError> {
    read_line(line)
}

fn read_line<T: serde::de::DeserializeOwned>(line: &str) -> Result<T, ApiError> {
    serde_json::from_str(line).map_err(|e| ApiError::BadRequest {
        message: format!(
            "the switch's answer is not understood ({e}): is sluicectl the same version as sluice?"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MemberAction, MemberCommand, Reloaded, Reply, SessionsQuery};

    #[test]
    fn json_lines_are_typed_and_command_lines_are_text() {
        assert_eq!(
            read_request("{\"command\":\"members\"}\n"),
            Ok(Incoming::Typed(Request::Members))
        );
        assert_eq!(
            read_request("stats --json\n"),
            Ok(Incoming::Command {
                request: Request::Stats,
                json: true
            })
        );
        let (e, json) = read_request("\u{fffd}\u{fffd} garbage\n").unwrap_err();
        assert!(!json);
        assert!(e.text().starts_with("error: unknown command"));
        let (e, _) = read_request("{\"command\":\"reboot\"}").unwrap_err();
        assert_eq!(e.kind(), "bad_request");
    }

    #[test]
    fn a_sessions_request_may_leave_fields_out() {
        let typed = |line: &str| match read_request(line) {
            Ok(Incoming::Typed(Request::Sessions(q))) => q,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(typed(r#"{"command":"sessions"}"#), SessionsQuery::default());
        assert_eq!(typed(r#"{"command":"sessions"}"#).limit, Some(1000));
        let q = typed(r#"{"command":"sessions","client":"198.51.100.2","limit":null}"#);
        assert_eq!(
            (q.client, q.limit, q.flush),
            (Some([198, 51, 100, 2].into()), None, false)
        );
    }

    #[test]
    fn the_readmes_request_line_is_a_member_command() {
        let line = r#"{"command":"member","action":"disable","member":"10.20.0.11:8080"}"#;
        assert_eq!(
            read_request(line),
            Ok(Incoming::Typed(Request::Member(MemberCommand {
                action: MemberAction::Disable,
                member: "10.20.0.11:8080".into(),
                pool: None,
            })))
        );
    }

    #[test]
    fn an_answer_comes_back_as_it_left() {
        let a: Answer = Ok(Reply::Reloaded(Reloaded {
            generation: 4,
            changes: vec!["pool web added".into()],
        }));
        assert_eq!(read_answer(&answer_line(&a)), Ok(a.clone()));
        assert_eq!(
            rendered(&a, false),
            "reloaded: generation 4\n  pool web added\n"
        );
        let e: Answer = Err(ApiError::NotFound {
            message: "no member 10.0.0.9:80".into(),
        });
        assert_eq!(read_answer(&answer_line(&e)), Ok(e.clone()));
        assert!(answer_line(&a).starts_with("{\"Ok\":"));
        assert!(answer_line(&e).starts_with("{\"Err\":"));
        assert_eq!(rendered(&e, false), "error: no member 10.0.0.9:80\n");
    }
}
