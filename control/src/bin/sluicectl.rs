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
    ("neighbors", "the ARP table"),
    ("routes", "the route table"),
    ("metrics", "counters in Prometheus text format"),
    (
        "sessions",
        "[flush] [--virtual-server NAME] [--member ADDR[:PORT]] [--client ADDR] [--limit N]: list (or remove) sessions",
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
            "member" | "sessions" if command.is_none() => {
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
        Ok(answer) => {
            print!("{answer}");
            if answer.starts_with("error:") || answer.starts_with("{\"error\"") {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("sluicectl: {path}: {e} (is sluice running?)");
            ExitCode::from(1)
        }
    }
}

fn ask(path: &str, command: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{command}\n").as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
