//! The control socket's protocol. A client writes one line: a JSON
//! [`Request`] (what `sluicectl` sends), or a command line as a person
//! types it (`members`, `--json stats`). The switch answers a JSON request
//! with one JSON [`Answer`] line (`sessions`: one [`SessionsFrame`] line
//! each), and a command line with the rendered text or JSON.

use super::error::ApiError;
use super::{command, Answer, Request};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How a request was written, and so how its answer goes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// A JSON request: one JSON [`Answer`] line (frames, for `sessions`).
    Typed,
    /// A command line: the answer rendered as text, or as JSON (`--json`).
    Text { json: bool },
}

/// A request as read from the socket.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub request: Request,
    pub form: Form,
}

/// What one request line asks for; a refusal comes with the form its
/// answer takes.
pub fn read_request(line: &str) -> Result<Incoming, (ApiError, Form)> {
    let line = line.trim();
    if line.starts_with('{') {
        return match serde_json::from_str(line) {
            Ok(request) => Ok(Incoming {
                request,
                form: Form::Typed,
            }),
            Err(e) => {
                let message = format!("not a request: {e}");
                Err((ApiError::BadRequest { message }, Form::Typed))
            }
        };
    }
    let mut words: Vec<&str> = line.split_whitespace().collect();
    let form = Form::Text {
        json: words.contains(&"--json"),
    };
    words.retain(|w| *w != "--json");
    match command::parse(&words) {
        Ok(request) => Ok(Incoming { request, form }),
        Err(e) => Err((e, form)),
    }
}

/// `answer` in the form its request was written in.
pub fn answer_in(form: Form, answer: &Answer) -> String {
    match form {
        Form::Typed => json_line(answer),
        Form::Text { json } => rendered(answer, json),
    }
}

/// A request, an answer or a frame as one JSON line. Every field is a
/// number, a string, a list or a map of those, so writing cannot fail; if
/// it did, the line would be an `internal` error.
pub fn json_line<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string(value).unwrap_or_else(|e| {
        let message = format!("the answer could not be written: {e}");
        let e: Answer = Err(ApiError::Internal { message });
        serde_json::to_string(&e).unwrap_or_default()
    });
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

/// An answer line or a frame line read back.
pub fn read_line<T: DeserializeOwned>(line: &str) -> Result<T, ApiError> {
    serde_json::from_str(line).map_err(|e| ApiError::NoAnswer {
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
            Ok(Incoming {
                request: Request::Members,
                form: Form::Typed
            })
        );
        assert_eq!(
            read_request("stats --json\n"),
            Ok(Incoming {
                request: Request::Stats,
                form: Form::Text { json: true }
            })
        );
        let (e, form) = read_request("\u{fffd}\u{fffd} garbage\n").unwrap_err();
        assert_eq!(form, Form::Text { json: false });
        assert!(answer_in(form, &Err(e)).starts_with("error: unknown command"));
        let (e, form) = read_request("{\"command\":\"reboot\"}").unwrap_err();
        assert_eq!((e.kind(), form), ("bad_request".to_string(), Form::Typed));
        assert!(answer_in(form, &Err(e)).starts_with("{\"Err\":{\"kind\":\"bad_request\""));
    }

    #[test]
    fn a_sessions_request_may_leave_fields_out() {
        let typed = |line: &str| match read_request(line) {
            Ok(Incoming {
                request: Request::Sessions(q),
                form: Form::Typed,
            }) => q,
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
            read_request(line).map(|i| i.request),
            Ok(Request::Member(MemberCommand {
                action: MemberAction::Disable,
                member: "10.20.0.11:8080".into(),
                pool: None,
            }))
        );
    }

    #[test]
    fn an_answer_comes_back_as_it_left() {
        let a: Answer = Ok(Reply::Reloaded(Reloaded {
            generation: 4,
            changes: vec!["pool web added".into()],
        }));
        assert_eq!(read_line::<Answer>(&json_line(&a)), Ok(a.clone()));
        assert_eq!(
            rendered(&a, false),
            "reloaded: generation 4\n  pool web added\n"
        );
        let e: Answer = Err(ApiError::NotFound {
            message: "no member 10.0.0.9:80".into(),
        });
        assert_eq!(read_line::<Answer>(&json_line(&e)), Ok(e.clone()));
        assert!(json_line(&a).starts_with("{\"Ok\":"));
        assert!(json_line(&e).starts_with("{\"Err\":"));
        assert_eq!(rendered(&e, false), "error: no member 10.0.0.9:80\n");
    }
}
