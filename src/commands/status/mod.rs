//! `nftban status`: ask the daemon, print for people (a table on a
//! terminal, the stable plain form otherwise) or JSON, once or, with
//! `--watch`, again and again until interrupted.

#[cfg(test)]
mod golden;
pub mod plain;
pub mod table;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::client::{ask, ask_brief};
use crate::cli::ConfigArg;
use crate::control::protocol::{JailStatus, Status};
use crate::control::Request;

pub use plain::{format_all, format_jail};

/// ANSI: cursor home, then clear the screen. Only ever sent to a terminal.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// `nftban status [JAIL] [--json] [--watch --interval DUR]`.
pub fn status(jail: Option<String>, json: bool, watch: Option<Duration>, c: &ConfigArg) -> anyhow::Result<u8> {
    let terminal = std::io::stdout().is_terminal();
    let Some(every) = watch else {
        out!("{}", render(jail.as_deref(), json, terminal, true, c)?)?;
        return Ok(0);
    };
    anyhow::ensure!(
        !every.is_zero(),
        "--interval: at least 1s (durations are whole seconds)"
    );
    let mut out = std::io::stdout().lock();
    loop {
        // The daemon may be restarting (a reload, an upgrade): say so and
        // keep watching rather than end.
        let block = render(jail.as_deref(), json, terminal, false, c)
            .unwrap_or_else(|e| format!("nftban: cannot get the status: {e:#} (trying again)\n"));
        let written = if terminal && !json {
            let title = format!(
                "every {}: nftban status{} (Ctrl-C to stop)\n\n",
                crate::config::format_duration(every),
                jail.as_deref().map(|j| format!(" {j}")).unwrap_or_default()
            );
            write!(out, "{CLEAR}{title}{block}")
        } else if json {
            write!(out, "{block}")
        } else {
            // A pipe: one block per refresh, a blank line between.
            writeln!(out, "{block}")
        };
        match written.and_then(|()| out.flush()) {
            Ok(()) => {}
            // `status --watch | head`: the reader is done.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
            Err(e) => return Err(e.into()),
        }
        std::thread::sleep(every);
    }
}

/// One answer, as it is printed. With `--json` under `--watch`, one line
/// per answer (JSON lines); without `--watch`, pretty-printed as ever.
fn render(jail: Option<&str>, json: bool, terminal: bool, pretty: bool, c: &ConfigArg) -> anyhow::Result<String> {
    // The overview for people shows no list of bans: none is asked for.
    let request = Request::Status {
        jail: jail.map(str::to_string),
        brief: jail.is_none() && !json,
    };
    Ok(match jail {
        Some(_) => {
            let st: JailStatus = ask(c, &request)?;
            if json {
                json_text(&st, pretty)?
            } else {
                format_jail(&st)
            }
        }
        None => {
            let st: Status = ask_brief(c, request)?;
            if json {
                json_text(&st, pretty)?
            } else if terminal {
                table::render(&st)
            } else {
                format_all(&st)
            }
        }
    })
}

/// JSON text with its newline: pretty, or on one line (JSON lines).
fn json_text<T: serde::Serialize>(value: &T, pretty: bool) -> anyhow::Result<String> {
    let text = match pretty {
        true => serde_json::to_string_pretty(value)?,
        false => serde_json::to_string(value)?,
    };
    Ok(text + "\n")
}
