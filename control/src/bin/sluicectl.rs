//! `sluicectl`: asks a running sluice over its control socket. The command
//! line becomes a typed request (`api::parse`), sent as JSON; the typed
//! answer comes back and is printed as text or, with `--json`, as JSON.
//! Exit codes: 0 done; 1 the request was refused (by the switch, or here
//! for a bad argument; its `kind` in JSON) or the switch took it and did
//! not answer in time; 2 no command, or a first word that is no command or
//! option; 3 no switch listens on the socket.

use sluice_control::api::{self, wire, Answer, ApiError, Request, SessionsFrame, SessionsRender};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_SOCKET: &str = "/run/sluice/sluice.sock";
/// How long each read waits: `sessions` scans whole tables between two lines.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
const STREAM_WAIT: Duration = Duration::from_secs(30);

fn usage() -> String {
    let mut s = String::from(
        "usage: sluicectl [--socket PATH | --config FILE] [--json] COMMAND\n\n\
         The socket defaults to the one named in --config's [control] section,\n\
         else /run/sluice/sluice.sock.\n\ncommands:\n",
    );
    for (c, h) in api::USAGE {
        s.push_str(&format!("  {c:<16} {h}\n"));
    }
    s.push_str(
        "\nexit: 0 done, 1 refused or failed (JSON names its kind), 2 no or unknown command, 3 no switch\n",
    );
    s
}

/// What the command line asks.
struct Args {
    socket: String,
    json: bool,
    request: Request,
}

fn parse_args() -> Result<Args, ExitCode> {
    let (mut socket, mut json, mut words) = (None, false, Vec::new());
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            // Options may come before or after the command.
            "--socket" | "-s" => {
                let Some(path) = it.next() else {
                    eprint!("sluicectl: --socket needs a path\n\n{}", usage());
                    return Err(ExitCode::from(2));
                };
                socket = Some(path);
            }
            "--json" => json = true,
            "--config" | "-c" => {
                let Some(file) = it.next() else {
                    eprint!("{}", usage());
                    return Err(ExitCode::from(2));
                };
                match sluice_config::load(std::path::Path::new(&file)) {
                    Ok(cfg) => socket = Some(cfg.control.socket.display().to_string()),
                    Err(e) => {
                        eprintln!("sluicectl: {e}");
                        return Err(ExitCode::from(2));
                    }
                }
            }
            "--help" | "-h" | "help" if words.is_empty() => {
                print!("{}", usage());
                return Err(ExitCode::SUCCESS);
            }
            _ => words.push(a),
        }
    }
    if words.is_empty() {
        eprint!("{}", usage());
        return Err(ExitCode::from(2));
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let request = match api::parse(&words) {
        Ok(r) => r,
        Err(ApiError::UnknownCommand { command }) => {
            eprintln!(
                "sluicectl: unknown command or option {command:?}\n\n{}",
                usage()
            );
            return Err(ExitCode::from(2));
        }
        Err(e) => {
            // A malformed argument of a known command: refused as the
            // switch would refuse it (exit 1), without asking it.
            print!("{}", render_error(&e, json));
            return Err(ExitCode::from(e.exit_code()));
        }
    };
    Ok(Args {
        socket: socket.unwrap_or_else(|| DEFAULT_SOCKET.to_string()),
        json,
        request,
    })
}

fn render_error(e: &ApiError, json: bool) -> String {
    wire::rendered(&Err(e.clone()), json)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let outcome = match &args.request {
        Request::Sessions(q) => sessions(&args, SessionsRender::new(q, args.json)),
        _ => ask(&args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Output(e)) => {
            eprintln!("sluicectl: cannot print the answer: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Connect(e)) => report(&args, ApiError::Unreachable {
            socket: args.socket.clone(),
            message: e.to_string(),
        }),
        Err(Failure::Answer(e)) => report(&args, ApiError::NoAnswer {
            message: format!(
                "{}: the switch took the request but did not answer ({e}); it may be busy, and the request may have run",
                args.socket
            ),
        }),
    }
}

/// An error of sluicectl's own: on stderr, and as JSON with --json.
fn report(args: &Args, e: ApiError) -> ExitCode {
    if args.json {
        println!("{}", e.json());
    }
    eprintln!("sluicectl: {e}");
    ExitCode::from(e.exit_code())
}

/// Why no whole answer was printed.
enum Failure {
    /// No switch took the request.
    Connect(std::io::Error),
    /// The switch took it; its answer did not come (in time), or stopped.
    Answer(std::io::Error),
    /// The answer came but could not be written out (a closed pipe).
    Output(std::io::Error),
}

/// Sends the request; the answer, line by line.
fn connect(args: &Args, wait: Duration) -> Result<BufReader<UnixStream>, Failure> {
    let mut s = UnixStream::connect(&args.socket).map_err(Failure::Connect)?;
    let sent = (s.set_read_timeout(Some(wait)))
        .and_then(|()| s.write_all(wire::json_line(&args.request).as_bytes()))
        .and_then(|()| s.shutdown(std::net::Shutdown::Write));
    sent.map_err(Failure::Answer)?;
    Ok(BufReader::new(s))
}

/// One request, one answer, printed.
fn ask(args: &Args) -> Result<u8, Failure> {
    let mut line = String::new();
    let got = connect(args, ANSWER_WAIT)?.read_line(&mut line);
    if got.map_err(Failure::Answer)? == 0 {
        return Err(Failure::Answer(std::io::ErrorKind::UnexpectedEof.into()));
    }
    let answer: Answer = wire::read_line(&line).unwrap_or_else(Err);
    print!("{}", wire::rendered(&answer, args.json));
    Ok(api::exit_code(&answer))
}

/// A sessions answer, printed a slice at a time as it streams; whole only
/// if its end came.
fn sessions(args: &Args, mut render: SessionsRender) -> Result<u8, Failure> {
    let mut answer = connect(args, STREAM_WAIT)?;
    let out = Failure::Output;
    let mut stdout = std::io::stdout().lock();
    let mut line = String::new();
    let mut started = false;
    loop {
        line.clear();
        match answer.read_line(&mut line) {
            Ok(0) if !started => {
                return Err(Failure::Answer(std::io::ErrorKind::UnexpectedEof.into()))
            }
            Err(e) if !started => return Err(Failure::Answer(e)),
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let frame = match wire::read_line(&line) {
            Ok(f) => f,
            Err(e) => SessionsFrame::Error(e),
        };
        started = true;
        stdout
            .write_all(render.frame(&frame).as_bytes())
            .map_err(out)?;
        match frame {
            SessionsFrame::Rows(_) => continue,
            SessionsFrame::End(end) => return Ok(if end.complete() { 0 } else { 1 }),
            SessionsFrame::Error(e) => return Ok(e.exit_code()),
        }
    }
    stdout.write_all(render.abandon().as_bytes()).map_err(out)?;
    stdout.flush().map_err(out)?;
    eprintln!("sluicectl: the answer ended before its last line: it is incomplete");
    Ok(1)
}
