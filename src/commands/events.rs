//! `nftban events`: follow bans, unbans and expiries as they happen, from
//! the daemon's control socket, until interrupted. One line per event for
//! people, or with `--json` the daemon's JSON lines as they come (the
//! format of docs/cli.md, "nftban events").
//!
//! A reload restarts the daemon, which closes the connection: the command
//! says so on stderr and connects again (events meanwhile are not seen),
//! for as long as [`RECONNECT`]; a daemon gone for longer is an error.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use crate::cli::ConfigArg;
use crate::config::{config_path, socket_of};
use crate::control::client::subscribe;
use crate::control::Request;
use crate::events::Event;

/// How long a daemon that went away (reload, restart) is waited for.
const RECONNECT: Duration = Duration::from_secs(30);

/// Follow the events of `jail` (all when `None`); `json`: print them as
/// the daemon sends them.
pub fn events(json: bool, jail: Option<String>, c: &ConfigArg) -> anyhow::Result<u8> {
    let socket = socket_of(&config_path(c.config.as_deref()));
    let request = Request::Events { jail };
    let mut gone: Option<Instant> = None;
    let mut started = false;
    loop {
        let (answer, reader) = match subscribe(&socket, &request) {
            Ok(r) => r,
            // The first time, or past the wait: the error as any client's.
            Err(e) if gone.is_none_or(|t| t.elapsed() >= RECONNECT) => return Err(e.into()),
            Err(_) => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        if !answer.ok {
            anyhow::bail!(
                "{}",
                answer.error.unwrap_or_else(|| "the daemon refused the request".into())
            );
        }
        match gone.take() {
            Some(_) => eprintln!("nftban events: connected again to {}", socket.display()),
            None if !started => {
                // On stderr: stdout holds only events. Once this is said,
                // the daemon has subscribed this client.
                let of = match &request {
                    Request::Events { jail: Some(j) } => format!(" of jail {j}"),
                    _ => String::new(),
                };
                eprintln!(
                    "nftban events: following bans, unbans and expiries{of} from {} (Ctrl-C to stop)",
                    socket.display()
                );
                started = true;
            }
            None => {}
        }
        if !print(reader, json)? {
            return Ok(0);
        }
        eprintln!(
            "nftban events: the daemon closed the connection (a reload or a stop); connecting again to {}",
            socket.display()
        );
        gone = Some(Instant::now());
    }
}

/// Print each event `reader` gives until the daemon closes it (`true`),
/// or stdout is closed (`false`: `nftban events | head` is done).
fn print(reader: impl BufRead, json: bool) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    for line in reader.lines() {
        // A broken connection is the daemon going away, like its close.
        let Ok(line) = line else { return Ok(true) };
        let shown = if json {
            line
        } else {
            // An event of a newer kind than this CLI knows: as it came.
            serde_json::from_str::<Event>(&line).map_or(line, |e| e.human())
        };
        // stdout is line-buffered: each event shows as it happens.
        match writeln!(out, "{shown}") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}
