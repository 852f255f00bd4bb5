//! `sluicectl`: asks a running sluice over its control socket. The command
//! line becomes a typed request (`api::parse`), sent as JSON; the typed
//! answer comes back and is printed as text or, with `--json`, as JSON.
//! Exit codes: 0 done; 1 the switch refused or failed the request (its
//! `kind` in JSON); 2 sluicectl's own command line is wrong; 3 no switch
//! answers on the socket.

use sluice_control::api::{self, wire, ApiError, Request, SessionsFrame, SessionsRender};
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
        "\nexit: 0 done, 1 refused or failed (JSON names its kind), 2 bad command line, 3 no switch\n",
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
            "--socket" | "-s" if words.is_empty() => socket = it.next(),
            "--json" => json = true,
            "--config" | "-c" if words.is_empty() => {
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
            // A malformed argument of a known command: the error as the
            // switch would word it (JSON with --json), and the exit code of
            // a bad command line, for nothing was asked.
            print!("{}", render_error(&e, json));
            return Err(ExitCode::from(2));
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
        Err(e) => {
            let e = ApiError::Unreachable {
                socket: args.socket.clone(),
                message: e.to_string(),
            };
            eprintln!("sluicectl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Sends the request; the answer, line by line.
fn connect(args: &Args, wait: Duration) -> std::io::Result<BufReader<UnixStream>> {
    let mut s = UnixStream::connect(&args.socket)?;
    s.set_read_timeout(Some(wait))?;
    s.write_all(wire::request_line(&args.request).as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    Ok(BufReader::new(s))
}

/// One request, one answer, printed.
fn ask(args: &Args) -> std::io::Result<u8> {
    let mut line = String::new();
    connect(args, ANSWER_WAIT)?.read_line(&mut line)?;
    let answer = wire::read_answer(&line).unwrap_or_else(Err);
    print!("{}", wire::rendered(&answer, args.json));
    Ok(api::exit_code(&answer))
}

/// A sessions answer, printed a slice at a time as it streams; whole only
/// if its end came.
fn sessions(args: &Args, mut render: SessionsRender) -> std::io::Result<u8> {
    let mut answer = connect(args, STREAM_WAIT)?;
    let mut stdout = std::io::stdout().lock();
    let mut line = String::new();
    let mut started = false;
    loop {
        line.clear();
        if answer.read_line(&mut line)? == 0 {
            break;
        }
        let frame = match wire::read_frame(&line) {
            Ok(f) => f,
            Err(e) => SessionsFrame::Error(e),
        };
        let refusal = matches!(frame, SessionsFrame::Error(_));
        if !started && !refusal {
            stdout.write_all(render.begin().as_bytes())?;
        }
        started = true;
        stdout.write_all(render.frame(&frame).as_bytes())?;
        match frame {
            SessionsFrame::Rows(_) => continue,
            SessionsFrame::End(end) => return Ok(if end.complete() { 0 } else { 1 }),
            SessionsFrame::Error(e) => return Ok(e.exit_code()),
        }
    }
    stdout.write_all(render.abandon().as_bytes())?;
    stdout.flush()?;
    eprintln!("sluicectl: the answer ended before its last line: it is incomplete");
    Ok(1)
}
