//! Why a request failed, as one enum: the message says what to do, the
//! `kind` (in JSON) is stable for scripts, and the exit code follows.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;

/// Why a reload was refused (`ApiError::ReloadRefused`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// The file does not parse or validate.
    Invalid,
    /// It changes what only a restart can change.
    NeedsRestart,
    /// It does not fit what was sized at boot.
    Capacity,
    /// A worker did not take the new snapshot in time.
    WorkerLate,
    /// A worker still runs the previous generation.
    Behind,
    /// The reload task failed (see the log).
    Aborted,
}

/// Why the switch did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApiError {
    /// The command line is malformed: a missing or bad argument.
    Usage { message: String, usage: String },
    /// No such command.
    UnknownCommand { command: String },
    /// The member, pool or virtual server named does not exist.
    NotFound { message: String },
    /// The command needs a section the configuration does not have.
    NotConfigured { message: String },
    /// The reload did not complete. For `invalid`, `needs_restart`,
    /// `capacity` and `behind` nothing changed; for `worker_late` the new
    /// configuration runs but a worker had not taken it in time; for
    /// `aborted` see the log.
    ReloadRefused {
        reason: RefusalKind,
        message: String,
    },
    /// `ha ready`: keepalived must not make this node master yet.
    NotReady { message: String },
    /// Another request holds what this one needs; try again.
    Busy { message: String },
    /// The request could not be read (not a command, not JSON, too long),
    /// or a typed request asks for what a command line could not (a
    /// weight above the highest).
    BadRequest { message: String },
    /// The switch took the request but its answer did not come, or came
    /// cut (sluicectl's own): it may be busy; the request may have run.
    NoAnswer { message: String },
    /// The switch could not write its answer (a bug: see its log).
    Internal { message: String },
    /// No switch answers on the control socket (sluicectl's own).
    Unreachable { socket: String, message: String },
}

impl ApiError {
    /// The stable name scripts test: the serde tag, so the typed answer
    /// and `--json` cannot name a kind differently.
    pub fn kind(&self) -> String {
        let tagged = serde_json::to_value(self).unwrap_or_default();
        tagged["kind"].as_str().unwrap_or("internal").to_string()
    }

    /// `sluicectl`'s exit code: 1 when the switch refused or failed the
    /// request, 3 when no switch answered (2 is sluicectl's own usage).
    pub fn exit_code(&self) -> u8 {
        match self {
            ApiError::Unreachable { .. } => 3,
            _ => 1,
        }
    }

    /// The text answer: `error: ...`, and the usage of a malformed command.
    pub fn text(&self) -> String {
        match self {
            ApiError::Usage { usage, .. } if !usage.is_empty() => {
                format!("error: {self}\n{usage}\n")
            }
            _ => format!("error: {self}\n"),
        }
    }

    /// The JSON answer: `{"error": message, "kind": kind}` and the details.
    pub fn json(&self) -> Value {
        let mut v = json!({ "error": self.to_string(), "kind": self.kind() });
        if let ApiError::ReloadRefused { reason, .. } = self {
            v["reason"] = json!(reason);
        }
        v
    }

    pub(super) fn usage(message: impl Into<String>, usage: &str) -> ApiError {
        ApiError::Usage {
            message: message.into(),
            usage: usage.to_string(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::UnknownCommand { command } => write!(f, "unknown command {command:?}"),
            ApiError::ReloadRefused { message, .. } => write!(f, "reload refused: {message}"),
            ApiError::NotReady { message } => write!(f, "not ready: {message}"),
            ApiError::Unreachable { socket, message } => {
                write!(f, "{socket}: {message} (is sluice running?)")
            }
            ApiError::Usage { message, .. }
            | ApiError::NotFound { message }
            | ApiError::NotConfigured { message }
            | ApiError::Busy { message }
            | ApiError::BadRequest { message }
            | ApiError::NoAnswer { message }
            | ApiError::Internal { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_the_kind_and_text_starts_with_error() {
        let e = ApiError::ReloadRefused {
            reason: RefusalKind::NeedsRestart,
            message: "cannot change without a restart: dataplane.workers".into(),
        };
        assert_eq!(
            e.json(),
            json!({"error": "reload refused: cannot change without a restart: dataplane.workers",
                   "kind": "reload_refused", "reason": "needs_restart"})
        );
        assert_eq!(
            e.text(),
            "error: reload refused: cannot change without a restart: dataplane.workers\n"
        );
        assert_eq!(e.exit_code(), 1);
        let u = ApiError::usage("weight \"x\" is not a number", "usage: member ...");
        assert_eq!(
            u.text(),
            "error: weight \"x\" is not a number\nusage: member ...\n"
        );
        let gone = ApiError::Unreachable {
            socket: "/run/sluice/sluice.sock".into(),
            message: "No such file or directory".into(),
        };
        assert_eq!(gone.exit_code(), 3);
    }
}
