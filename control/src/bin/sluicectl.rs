//! `sluicectl`: asks a running sluice over its control socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_SOCKET: &str = "/run/sluice/sluice.sock";

const COMMANDS: &[(&str, &str)] = &[
    ("status", "version, uptime, ports and links"),
    ("stats", "per-port and per-worker counters, drops by reason"),
    ("virtual-servers", "virtual servers and their members"),
    (
        "members",
        "per member: role, state and since when, sessions, health check and its last result",
    ),
    (
        "ha",
        "[ready]: the addresses this node owns ([ha]); ready exits 0 only while the dataplane runs (keepalived's vrrp_script)",
    ),
    (
        "announce",
        "the VIP routes kept for the routing daemon ([announce]): each VIP, announced or withdrawn and why",
    ),
    (
        "drain",
        "withdraw every VIP route of this node ([announce]); sessions go on being served while traffic arrives",
    ),
    ("resume", "announce the VIP routes again after a drain"),
    ("neighbors", "the ARP table"),
    ("routes", "the route table"),
    ("metrics", "counters in Prometheus text format"),
    (
        "sessions",
        "[flush] [--virtual-server NAME] [--member ADDR[:PORT]] [--client ADDR] [--limit N|all]: list (or remove) sessions; the answer streams, and says so if it was cut short",
    ),
    (
        "member",
        "disable|enable|drain ADDR:PORT [--pool NAME], or weight ADDR:PORT N [--pool NAME]: until the next reload",
    ),
    (
        "reload",
        "read the configuration file again and apply it live (sessions stay); prints the generation and what changed",
    ),
];

fn usage() -> String {
    let mut s = String::from(
        "usage: sluicectl [--socket PATH | --config FILE] [--json] COMMAND\n\n\
         The socket defaults to the one named in --config's [control] section,\n\
         else /run/sluice/sluice.sock.\n\ncommands:\n",
    );
    for (c, h) in COMMANDS {
        s.push_str(&format!("  {c:<16} {h}\n"));
    }
    s
}

fn main() -> ExitCode {
    let mut socket = None;
    let mut command = None;
    let mut json = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket" | "-s" => socket = it.next(),
            "--json" => json = true,
            "--config" | "-c" => {
                let Some(file) = it.next() else {
                    eprint!("{}", usage());
                    return ExitCode::from(2);
                };
                match sluice_config::load(std::path::Path::new(&file)) {
                    Ok(cfg) => socket = Some(cfg.control.socket.display().to_string()),
                    Err(e) => {
                        eprintln!("sluicectl: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            "--help" | "-h" | "help" => {
                print!("{}", usage());
                return ExitCode::SUCCESS;
            }
            "member" | "sessions" | "ha" if command.is_none() => {
                // The rest of the line is the member command's own.
                let rest: Vec<String> = it.by_ref().collect();
                command = Some(format!("{a} {}", rest.join(" ")));
            }
            c if COMMANDS.iter().any(|(name, _)| *name == c) || c == "vs" || c == "arp" => {
                command = Some(c.to_string())
            }
            other => {
                eprintln!(
                    "sluicectl: unknown command or option {other:?}\n\n{}",
                    usage()
                );
                return ExitCode::from(2);
            }
        }
    }
    let Some(mut command) = command else {
        eprint!("{}", usage());
        return ExitCode::from(2);
    };
    if json {
        command.push_str(" --json");
    }
    let path = socket.unwrap_or_else(|| DEFAULT_SOCKET.to_string());
    match ask(&path, &command) {
        Ok(Answer::Done) => ExitCode::SUCCESS,
        Ok(Answer::Refused) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sluicectl: {path}: {e} (is sluice running?)");
            ExitCode::from(1)
        }
    }
}

/// How an answer ended.
enum Answer {
    Done,
    /// An error: the answer starts with one, or (a stream such as
    /// `sessions`) ends with one.
    Refused,
}

/// Sends `command` and copies the answer to stdout as it comes (`sessions`
/// may stream millions of lines); each read waits 5 s at most (30 s for
/// `sessions`, which scans whole tables between two lines).
fn ask(path: &str, command: &str) -> std::io::Result<Answer> {
    let streams = command.starts_with("sessions");
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(if streams { 30 } else { 5 })))?;
    s.write_all(format!("{command}\n").as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut stdout = std::io::stdout().lock();
    let (mut head, mut tail) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if head.len() < 16 {
            head.extend_from_slice(&chunk[..chunk.len().min(16 - head.len())]);
        }
        tail.extend_from_slice(chunk);
        if tail.len() > 4096 {
            tail.drain(..tail.len() - 1024);
        }
        stdout.write_all(chunk)?;
    }
    stdout.flush()?;
    if refused(&head, &tail) {
        return Ok(Answer::Refused);
    }
    if streams && !whole(&tail) {
        eprintln!("sluicectl: the answer ended before its last line: it is incomplete");
        return Ok(Answer::Refused);
    }
    Ok(Answer::Done)
}

/// Whether a `sessions` answer ended with the line that says it is whole.
fn whole(tail: &[u8]) -> bool {
    let tail = String::from_utf8_lossy(tail);
    let last = tail.trim_end().rsplit('\n').next().unwrap_or("");
    let words: Vec<&str> = last.split(' ').collect();
    let number = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    match words.as_slice() {
        [n, "sessions", "listed"] | ["flushed", n, "sessions"] => number(n),
        _ => last.ends_with("\"complete\":true}") || last.starts_with("{\"flushed\":"),
    }
}

/// Whether an answer says it failed: it starts with an error, its last
/// line is one, or a JSON stream says it is not complete.
fn refused(head: &[u8], tail: &[u8]) -> bool {
    let tail = String::from_utf8_lossy(tail);
    let last = tail.trim_end().rsplit('\n').next().unwrap_or("");
    head.starts_with(b"error:")
        || head.starts_with(b"{\"error\"")
        || last.starts_with("error:")
        || tail.contains("\"complete\":false")
}

#[cfg(test)]
mod tests {
    use super::refused;

    #[test]
    fn errors_at_either_end_are_refusals() {
        assert!(refused(b"error: no member", b"error: no member\n"));
        assert!(refused(b"{\"error\":\"x\"}", b"{\"error\":\"x\"}\n"));
        let cut = b"1.2.3.4:5 web ...\nerror: listing cut short: worker 1 did not answer\n";
        assert!(refused(b"client virtual_s", cut));
        assert!(refused(
            b"{\"sessions\":[{\"",
            b"}],\"complete\":false,\"error\":\"x\"}\n"
        ));
        assert!(!refused(b"{\"sessions\":[{\"", b"}],\"complete\":true}\n"));
        assert!(!refused(
            b"client virtual_s",
            b"1.2.3.4:5 web x y z established 0.1s\n"
        ));
    }

    #[test]
    fn a_stream_is_whole_only_with_its_last_line() {
        use super::whole;
        assert!(whole(
            b"1.2.3.4:5 web x y z established 0.1s\n2 sessions listed\n"
        ));
        assert!(whole(b"flushed 7 sessions\n"));
        assert!(whole(b"{\"a\":1}],\"complete\":true}\n"));
        assert!(whole(b"{\"flushed\":7}\n"));
        // Cut anywhere else: a row, half a row, an open JSON array.
        assert!(!whole(b"1.2.3.4:5 web x y z established 0.1s\n"));
        assert!(!whole(b"1.2.3.4:5 web x y z estab"));
        assert!(!whole(b"{\"sessions\":[{\"a\":1},"));
        assert!(!whole(b"x sessions listed\n"));
    }
}
