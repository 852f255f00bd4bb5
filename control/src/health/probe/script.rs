//! Script check: run a program, exit status 0 means healthy.
//!
//! The program learns its target from SLUICE_MEMBER_ADDR and
//! SLUICE_MEMBER_PORT. It gets no stdin and its output is discarded, so a
//! chatty script cannot block on a pipe nobody reads.
//!
//! Each script runs in a process group of its own, and the whole group is
//! killed when the probe ends: at the check's timeout (the probe future is
//! dropped) or once the script exited, so what a script started (`sh -c
//! 'curl ...; test ...'` forks its commands) never outlives it. tokio reaps
//! the script itself, so no zombie is left; its orphans go to init.

use super::{setup_failure, Failure};
use crate::health::Target;

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use tokio::process::Command;

pub(super) async fn probe(target: &Target, command: &[String]) -> Result<String, Failure> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| "empty command".to_string())?;
    let mut child = Command::new(program)
        .args(args)
        .env("SLUICE_MEMBER_ADDR", target.addr.to_string())
        .env("SLUICE_MEMBER_PORT", target.port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| setup_failure(&format!("cannot run {program}"), &e))?;
    let _group = child.id().map(Group);
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for {program}: {e}"))?;
    Ok(judge(status)?)
}

/// A script's process group, killed when the probe is done with it (or is
/// dropped at its timeout).
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        if let Err(e) = sluice_ffi::kill_process_group(self.0) {
            crate::log(format!(
                "health: cannot kill script process group {}: {e}",
                self.0
            ));
        }
    }
}

fn judge(status: ExitStatus) -> Result<String, String> {
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok("exit 0".to_string()),
        (Some(code), _) => Err(format!("exit status {code}")),
        (None, Some(signal)) => Err(format!("killed by signal {signal}")),
        (None, None) => Err(status.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use crate::health::{test_target, Target};
    use sluice_config::CheckKind;
    use std::path::Path;
    use std::time::Duration;
    use tokio::time::{self, Instant};

    fn sh(script: &str, port: u16, timeout: Duration) -> Target {
        let command = ["/bin/sh", "-c", script].map(str::to_string).to_vec();
        test_target(port, CheckKind::Script { command }, timeout)
    }

    async fn result(script: &str) -> Result<String, String> {
        check(&sh(script, 9, Duration::from_secs(2))).await.result
    }

    #[tokio::test]
    async fn exit_status_decides() {
        assert_eq!(result("exit 0").await, Ok("exit 0".to_string()));
        assert_eq!(result("exit 3").await, Err("exit status 3".to_string()));
        assert_eq!(
            result("kill -TERM $$").await,
            Err("killed by signal 15".to_string())
        );
        let missing = check(&test_target(
            9,
            CheckKind::Script {
                command: vec!["/nonexistent/check".to_string()],
            },
            Duration::from_secs(1),
        ))
        .await;
        assert!(missing
            .result
            .unwrap_err()
            .starts_with("cannot run /nonexistent/check"));
    }

    #[tokio::test]
    async fn target_reaches_the_environment() {
        let test = r#"test "$SLUICE_MEMBER_ADDR:$SLUICE_MEMBER_PORT" = 127.0.0.1:9"#;
        assert_eq!(result(test).await, Ok("exit 0".to_string()));
    }

    /// `sleep NAP` processes running (not the shell whose script names it).
    fn running(nap: &str) -> usize {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let want = format!("sleep\0{nap}\0");
        dir.flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .filter(|c| c.ends_with(want.as_bytes()))
            .count()
    }

    async fn gone(word: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        while running(word) > 0 && Instant::now() < deadline {
            time::sleep(Duration::from_millis(10)).await;
        }
        running(word) == 0
    }

    /// What an operator writes: the shell forks `sleep` and waits for it.
    #[tokio::test]
    async fn timeout_kills_what_the_script_started() {
        let nap = format!("5.{}2", std::process::id());
        let script = format!("sleep {nap}; true");
        let outcome = check(&sh(&script, 9, Duration::from_millis(200))).await;
        assert_eq!(outcome.result, Err("timeout after 200ms".to_string()));
        assert!(gone(&nap).await, "sleep {nap} outlived its script");
        // And a script that exits leaves nothing running behind it either.
        let nap = format!("5.{}3", std::process::id());
        let script = format!("sleep {nap} & exit 0");
        let outcome = check(&sh(&script, 9, Duration::from_secs(2))).await;
        assert_eq!(outcome.result, Ok("exit 0".to_string()));
        assert!(gone(&nap).await, "sleep {nap} outlived its script");
    }

    #[tokio::test]
    async fn timeout_kills_and_reaps_the_child() {
        let pid_file =
            std::env::temp_dir().join(format!("sluice-health-{}.pid", std::process::id()));
        let script = format!("echo $$ > {}; sleep 5; true", pid_file.display());
        let began = Instant::now();
        let outcome = check(&sh(&script, 9, Duration::from_millis(200))).await;
        assert_eq!(outcome.result, Err("timeout after 200ms".to_string()));
        assert!(began.elapsed() < Duration::from_secs(1));

        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let _ = std::fs::remove_file(&pid_file);
        // Gone from /proc once reaped; a zombie would stay listed.
        let proc = format!("/proc/{}", pid.trim());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Path::new(&proc).exists() && Instant::now() < deadline {
            time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!Path::new(&proc).exists(), "{proc} still exists");
    }
}
