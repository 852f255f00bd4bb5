//! One probe of one target, per check kind.
//!
//! Every probe answers with a short text either way: what it saw on
//! success, the reason on failure. The texts end up in the transition log
//! line and in sluicectl, so they name the symptom ("connection refused",
//! "status 503"), not the code path.

mod http;
mod icmp;
mod script;
mod tcp;
mod udp;

use super::Target;
use sluice_config::CheckKind;

use std::io;
use std::time::Duration;
use tokio::time::{self, Instant};

/// Linux errno values the probes name (no libc crate in this binary).
const ECONNREFUSED: i32 = 111;
const EHOSTDOWN: i32 = 112;
const EHOSTUNREACH: i32 = 113;
const ENETUNREACH: i32 = 101;
const EAGAIN: i32 = 11;
const ENOMEM: i32 = 12;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
const ENOBUFS: i32 = 105;
const EADDRNOTAVAIL: i32 = 99;

/// Why a probe did not pass.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// What the member did or did not do: refused, silent, a wrong answer.
    Member(String),
    /// The switch could not make the probe (no socket or local port of its
    /// own: too many open files, no memory, no free port): it says nothing
    /// of the member, so it marks nobody down.
    Local(String),
}

impl From<String> for Failure {
    fn from(reason: String) -> Failure {
        Failure::Member(reason)
    }
}

/// A failure to get a socket, bind it, or run a program: local when the
/// switch ran out of something (descriptors, memory), else the member's, or
/// the check's (a source address no longer the switch's does not pass over:
/// it marks the member down rather than freezing its state).
pub(super) fn setup_failure(what: &str, e: &io::Error) -> Failure {
    let text = format!("{what}: {}", io_reason(e));
    match e.raw_os_error() {
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM | EAGAIN) => Failure::Local(text),
        _ => Failure::Member(text),
    }
}

/// A failure of connect(2): local when no local port was left, else the
/// member's answer.
pub(super) fn connect_failure(e: &io::Error) -> Failure {
    match e.raw_os_error() {
        Some(EADDRNOTAVAIL | EAGAIN) => Failure::Local(format!("connect: {}", io_reason(e))),
        _ => Failure::Member(io_reason(e)),
    }
}

/// The result of one bounded probe.
#[derive(Debug)]
pub(super) struct Outcome {
    /// The probe's text either way: what it saw, or why it failed.
    pub result: Result<String, String>,
    /// The failure was the switch's own (see [`Failure::Local`]).
    pub local: bool,
    pub latency: Duration,
}

/// Runs one probe, bounded by the check's timeout. Dropping the probe at
/// the timeout closes its sockets and kills a script (`kill_on_drop`).
pub(super) async fn check(target: &Target) -> Outcome {
    let began = Instant::now();
    let timeout = target.check.timeout;
    let (result, local) = match time::timeout(timeout, probe(target)).await {
        Ok(Ok(text)) => (Ok(text), false),
        Ok(Err(Failure::Member(text))) => (Err(text), false),
        Ok(Err(Failure::Local(text))) => (Err(text), true),
        // Duration's Debug reads "1s", "500ms", "1.5s".
        Err(_) => (Err(format!("timeout after {timeout:?}")), false),
    };
    Outcome {
        result,
        local,
        latency: began.elapsed(),
    }
}

/// One probe of the target's check kind, unbounded.
async fn probe(target: &Target) -> Result<String, Failure> {
    match &target.check.kind {
        CheckKind::Tcp => tcp::probe(target).await,
        CheckKind::Http {
            path,
            host,
            expect_status,
            expect_body,
        } => {
            let want = http::Expect {
                status: expect_status,
                body: expect_body.as_deref(),
            };
            http::probe(target, path, host.as_deref(), want).await
        }
        CheckKind::Udp { send, expect } => {
            udp::probe(target, send.as_deref(), expect.as_deref()).await
        }
        CheckKind::Icmp => icmp::probe(target).await,
        CheckKind::Script { command } => script::probe(target, command).await,
    }
}

/// Short reason for a socket error.
fn io_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(ECONNREFUSED) => "connection refused".to_string(),
        Some(EHOSTUNREACH) => "no route to host".to_string(),
        Some(EHOSTDOWN) => "host unreachable".to_string(),
        Some(ENETUNREACH) => "network unreachable".to_string(),
        _ => e.to_string(),
    }
}

/// Whether `needle` occurs in `hay` (an empty needle always does).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_or_ports_is_local() {
        // A source address gone is not passing over: the member goes down.
        let gone = io::Error::from_raw_os_error(EADDRNOTAVAIL);
        assert!(matches!(
            setup_failure("bind 10.20.0.1", &gone),
            Failure::Member(_)
        ));
        // No local port left for connect: ours.
        assert!(matches!(connect_failure(&gone), Failure::Local(_)));
        for errno in [EMFILE, ENFILE, ENOBUFS] {
            let e = io::Error::from_raw_os_error(errno);
            assert!(
                matches!(setup_failure("socket", &e), Failure::Local(_)),
                "{e}"
            );
        }
        let e = io::Error::from_raw_os_error(EMFILE);
        assert_eq!(
            setup_failure("socket", &e),
            Failure::Local("socket: Too many open files (os error 24)".to_string())
        );
        let refused = io::Error::from_raw_os_error(ECONNREFUSED);
        assert_eq!(
            setup_failure("connect", &refused),
            Failure::Member("connect: connection refused".to_string())
        );
    }

    #[test]
    fn socket_errors_have_short_reasons() {
        let refused = io::Error::from_raw_os_error(ECONNREFUSED);
        assert_eq!(io_reason(&refused), "connection refused");
        let unreach = io::Error::from_raw_os_error(ENETUNREACH);
        assert_eq!(io_reason(&unreach), "network unreachable");
        let other = io::Error::other("odd");
        assert_eq!(io_reason(&other), "odd");
    }

    #[test]
    fn substring_search() {
        assert!(contains(b"status: ok\n", b"ok"));
        assert!(!contains(b"status: fine", b"ok"));
        assert!(contains(b"", b""));
        assert!(!contains(b"o", b"ok"));
    }
}
