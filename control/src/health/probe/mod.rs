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

/// The result of one bounded probe.
#[derive(Debug)]
pub(super) struct Outcome {
    pub result: Result<String, String>,
    pub latency: Duration,
}

/// Runs one probe, bounded by the check's timeout. Dropping the probe at
/// the timeout closes its sockets and kills a script (`kill_on_drop`).
pub(super) async fn check(target: &Target) -> Outcome {
    let began = Instant::now();
    let timeout = target.check.timeout;
    let result = match time::timeout(timeout, probe(target)).await {
        Ok(result) => result,
        // Duration's Debug reads "1s", "500ms", "1.5s".
        Err(_) => Err(format!("timeout after {timeout:?}")),
    };
    Outcome {
        result,
        latency: began.elapsed(),
    }
}

/// One probe of the target's check kind, unbounded.
async fn probe(target: &Target) -> Result<String, String> {
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
