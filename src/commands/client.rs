//! `ban`, `unban`, `reload`: ask the daemon over its control socket and
//! print the answer for people (or JSON for scripts).

use std::io::{BufRead, Write as _};

use crate::cli::ConfigArg;
use crate::config::{config_path, format_duration, parse_duration, socket_of};
use crate::control::client::call;
use crate::control::protocol::{BanResult, UnbanResult};
use crate::control::{Request, Response};
use std::time::Duration;

fn socket(c: &ConfigArg) -> std::path::PathBuf {
    socket_of(&config_path(c.config.as_deref()))
}

pub(super) fn ask<T: serde::de::DeserializeOwned>(c: &ConfigArg, req: &Request) -> anyhow::Result<T> {
    answered(call(&socket(c), req)?)
}

/// [`ask`] a `status` with `brief`: see [`brief_or_not`].
pub(super) fn ask_brief<T: serde::de::DeserializeOwned>(c: &ConfigArg, req: Request) -> anyhow::Result<T> {
    answered(brief_or_not(|r| call(&socket(c), r), req)?)
}

/// Ask `req` with `call`; a daemon from before the `status` request's
/// `brief` (started before nftban was upgraded, not restarted since)
/// refuses the field, and is asked again without it.
fn brief_or_not<E>(call: impl FnMut(&Request) -> Result<Response, E>, req: Request) -> Result<Response, E> {
    let without_brief = |req: &mut Request| match req {
        Request::Status { brief, .. } => std::mem::take(brief),
        _ => false,
    };
    Ok(or_without(call, req, "brief", without_brief)?.0)
}

/// The report of an answer, or its error.
fn answered<T: serde::de::DeserializeOwned>(resp: Response) -> anyhow::Result<T> {
    if !resp.ok {
        anyhow::bail!(
            "{}",
            resp.error.unwrap_or_else(|| "the daemon refused the request".into())
        );
    }
    Ok(resp.data()?)
}

/// Addresses per request. `nftban ban -` of a million addresses goes as
/// 100 requests, so the daemon never holds more than one chunk (its
/// request, parsed list and answer) and the client three (see
/// [`pipelined`]), however long the list (docs/performance.md, "Memory").
const CHUNK: usize = crate::control::protocol::BAN_CHUNK;

/// Hand the addresses of `args` to `send` in chunks of [`CHUNK`], each
/// checked before it goes, with whether more chunks follow (the protocol's
/// `more`: the daemon logs the whole command as one). `-` among the
/// arguments means: read addresses from stdin, one or more per line (blank
/// lines and `#` comments skipped), streamed rather than read whole. A
/// full chunk goes once the next address is read, as only then is it known
/// not to be the last. An invalid address stops the reading: the chunks
/// before it were already sent (the daemon logs them once they have had no
/// follower for a while), and the error says how many addresses that was.
/// With no address at all, one empty chunk is sent, for the daemon's own
/// error.
fn in_chunks(args: Vec<String>, mut send: impl FnMut(Vec<String>, bool) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut chunk: Vec<String> = Vec::new();
    let mut sent = 0usize;
    let mut add = |a: String, chunk: &mut Vec<String>, sent: &mut usize| -> anyhow::Result<()> {
        if let Err(e) = crate::address::parse_net(&a) {
            let before = if *sent > 0 {
                format!(" ({} addresses before it were sent already)", *sent)
            } else {
                String::new()
            };
            anyhow::bail!("`{a}`: {e}{before}");
        }
        if chunk.len() >= CHUNK {
            *sent += chunk.len();
            send(std::mem::take(chunk), true)?;
        }
        chunk.push(a);
        Ok(())
    };
    for a in args {
        if a == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let t = line.split('#').next().unwrap_or("");
                for word in t.split_whitespace() {
                    add(word.to_string(), &mut chunk, &mut sent)?;
                }
            }
        } else {
            add(a, &mut chunk, &mut sent)?;
        }
    }
    send(chunk, false)
}

/// A bulk command in three stages that overlap: a thread reads and checks
/// the addresses ([`in_chunks`]), this one asks the daemon chunk by chunk
/// (`ask`), and a third reads and prints each answer (`show`). So the
/// daemon works on a chunk while the client reads the next one and prints
/// the last one, instead of waiting while the client does both
/// (docs/performance.md, "a pipelined client"). The chunks
/// still go one after the other, each once the one before has been
/// answered: the daemon carries them out in order and logs the command
/// as one. The client holds at most three chunks (read, asked, printed).
///
/// A refused chunk (`ok: false`) is the last one asked; `show` says why.
/// An invalid address stops the reading: the chunks read before it are
/// asked and printed, then its error is the command's.
fn pipelined(
    args: Vec<String>,
    mut ask: impl FnMut(Vec<String>, bool) -> anyhow::Result<Response>,
    mut show: impl FnMut(Response) -> anyhow::Result<()> + Send,
) -> anyhow::Result<()> {
    let (chunks, read) = std::sync::mpsc::sync_channel::<anyhow::Result<(Vec<String>, bool)>>(1);
    // Not a scoped thread: should the command stop early (the daemon
    // down), a reader blocked on stdin must not keep it from exiting.
    std::thread::Builder::new().name("ban-reader".into()).spawn(move || {
        let to = &chunks;
        let done = in_chunks(args, |chunk, more| {
            to.send(Ok((chunk, more)))
                .map_err(|_| anyhow::anyhow!("the command stopped"))
        });
        if let Err(e) = done {
            let _ = to.send(Err(e));
        }
    })?;
    std::thread::scope(|s| {
        let (answers, shown) = std::sync::mpsc::sync_channel::<Response>(1);
        let printer = s.spawn(move || shown.into_iter().try_for_each(&mut show));
        let asked = move || -> anyhow::Result<()> {
            for chunk in read {
                let (chunk, more) = chunk?;
                let resp = ask(chunk, more)?;
                let ok = resp.ok;
                // A printer that stopped, or is handed a refusal, has the
                // command's error: the asking stops without one.
                if answers.send(resp).is_err() || !ok {
                    break;
                }
            }
            Ok(())
        };
        // The printer's channel closes with the asking (it owns it).
        let asked = asked();
        let shown = printer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        shown.and(asked)
    })
}

/// Ask for one chunk of a `ban -` or `unban -` command with `call`. A
/// daemon older than the requests' `more` (started before nftban was
/// upgraded, not restarted since) refuses the field: the chunk goes again
/// without it, and so do the command's other chunks (`plain` remembers),
/// each logged by that daemon as a request of its own.
fn ask_chunk<E>(
    call: impl FnMut(&Request) -> Result<Response, E>,
    mut req: Request,
    plain: &mut bool,
) -> Result<Response, E> {
    if *plain {
        without_more(&mut req);
    }
    let (resp, refused) = or_without(call, req, "more", without_more)?;
    *plain |= refused;
    Ok(resp)
}

/// Ask `req` with `call`. A daemon older than its optional `field`
/// refuses it: asked again with `clear` (which says whether the field was
/// set). The answer, and whether the field was refused.
fn or_without<E>(
    mut call: impl FnMut(&Request) -> Result<Response, E>,
    mut req: Request,
    field: &str,
    clear: fn(&mut Request) -> bool,
) -> Result<(Response, bool), E> {
    let resp = call(&req)?;
    if resp.refuses_field(field) && clear(&mut req) {
        return Ok((call(&req)?, true));
    }
    Ok((resp, false))
}

/// Clear the request's `more`; whether it was set.
fn without_more(req: &mut Request) -> bool {
    match req {
        Request::Ban { more, .. } | Request::Unban { more, .. } => std::mem::take(more),
        _ => false,
    }
}

pub fn ban(
    addrs: Vec<String>,
    jail: String,
    bantime: Option<String>,
    force: bool,
    json: bool,
    c: &ConfigArg,
) -> anyhow::Result<u8> {
    let bantime = match bantime {
        Some(t) => Some(
            parse_duration(&t)
                .map_err(|e| anyhow::anyhow!("--bantime: {e}"))?
                .as_secs(),
        ),
        None => None,
    };
    // Printed chunk by chunk, so nothing grows with the number of addresses.
    let (mut banned, mut failed) = (0usize, 0usize);
    let mut plain = false;
    let ask = |addrs, more| {
        let req = Request::Ban {
            addrs,
            jail: Some(jail.clone()),
            bantime,
            force,
            more,
        };
        Ok(ask_chunk(|r| call(&socket(c), r), req, &mut plain)?)
    };
    pipelined(addrs, ask, |resp| {
        let r: BanResult = answered(resp)?;
        banned += r.banned.len();
        failed += r.failed.len();
        let mut out = chunk_out();
        if json {
            // One line per request: JSON lines, as long as the list.
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
            out.flush()?;
            return Ok(());
        }
        // The bans of a chunk mostly end in the same second.
        let mut left: Option<(u64, String)> = None;
        for b in &r.banned {
            let left = match &mut left {
                Some((secs, text)) if *secs == b.expires_in => text,
                slot => {
                    &slot
                        .insert((b.expires_in, format_duration(Duration::from_secs(b.expires_in))))
                        .1
                }
            };
            for part in ["banned ", &b.ip, " in jail ", &r.jail, " for ", left, "\n"] {
                out.write_all(part.as_bytes())?;
            }
        }
        for a in &r.already_covered {
            writeln!(out, "already banned: {a}")?;
        }
        // Before the errors on stderr, as they were printed before.
        out.flush()?;
        for f in &r.failed {
            eprintln!("nftban: not banned: {f}");
        }
        Ok(())
    })?;
    Ok(if banned == 0 || failed > 0 { 1 } else { 0 })
}

/// Standard output for one answer's lines, written in blocks: Rust's
/// standard output writes at every newline, a `write` per line, which
/// showed in the client's profile of a bulk `ban -` (docs/performance.md).
/// The caller flushes it at the end of the answer.
fn chunk_out() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

pub fn unban(addrs: Vec<String>, jail: Option<String>, json: bool, c: &ConfigArg) -> anyhow::Result<u8> {
    let mut unbanned = 0usize;
    let mut plain = false;
    let ask = |addrs, more| {
        let req = Request::Unban {
            addrs,
            jail: jail.clone(),
            more,
        };
        Ok(ask_chunk(|r| call(&socket(c), r), req, &mut plain)?)
    };
    pipelined(addrs, ask, |resp| {
        let r: UnbanResult = answered(resp)?;
        unbanned += r.unbanned.len();
        let mut out = chunk_out();
        if json {
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
            out.flush()?;
            return Ok(());
        }
        for (ip, jail) in &r.unbanned {
            for part in ["unbanned ", ip, " from jail ", jail, "\n"] {
                out.write_all(part.as_bytes())?;
            }
        }
        out.flush()?;
        for why in &r.not_banned {
            eprintln!("nftban: {why}");
        }
        Ok(())
    })?;
    Ok(if unbanned == 0 { 1 } else { 0 })
}

/// `reload --json`: `{"message": ...}`, the daemon's answer. A refused
/// reload is an error (exit 2) as without `--json`.
#[derive(serde::Serialize)]
struct Reloaded {
    message: String,
}

pub fn reload(json: bool, c: &ConfigArg) -> anyhow::Result<u8> {
    let said: String = ask(c, &Request::Reload)?;
    if json {
        outln!("{}", serde_json::to_string(&Reloaded { message: said })?)?;
    } else {
        outln!("{said}")?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<String> {
        (0..n as u32)
            .map(|i| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string())
            .collect()
    }

    #[test]
    fn addresses_go_in_chunks_of_ten_thousand() {
        let mut sizes = Vec::new();
        in_chunks(addrs(25_000), |c, _| {
            sizes.push(c.len());
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes, [10_000, 10_000, 5_000]);
        let mut sizes = Vec::new();
        in_chunks(addrs(20_000), |c, _| {
            sizes.push(c.len());
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes, [10_000, 10_000], "no empty request after a full chunk");
        let mut sizes = Vec::new();
        in_chunks(vec![], |c, _| {
            sizes.push(c.len());
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes, [0], "the daemon says what is wrong with no address");
    }

    #[test]
    fn an_invalid_address_stops_and_says_what_went_already() {
        let mut list = addrs(15_000);
        list[12_345] = "300.1.2.3".into();
        let mut sent = 0;
        let err = in_chunks(list, |c, _| {
            sent += c.len();
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(sent, 10_000);
        assert!(err.starts_with("`300.1.2.3`: "), "{err}");
        assert!(err.ends_with("(10000 addresses before it were sent already)"), "{err}");
    }

    /// The chunks sent of one command (each one's size, and whether more
    /// follow it), and the command's error if any.
    fn sent(list: Vec<String>) -> (Vec<(usize, bool)>, Result<(), String>) {
        let mut sent = Vec::new();
        let done = in_chunks(list, |c, more| {
            sent.push((c.len(), more));
            Ok(())
        });
        (sent, done.map_err(|e| e.to_string()))
    }

    /// The chunks of one command that went whole.
    fn chunks(list: Vec<String>) -> Vec<(usize, bool)> {
        let (chunks, done) = sent(list);
        assert_eq!(done, Ok(()));
        chunks
    }

    /// The last chunk, and only it, says no more follow.
    #[test]
    fn every_chunk_but_the_last_says_more_follow() {
        assert_eq!(chunks(addrs(25_000)), [(10_000, true), (10_000, true), (5_000, false)]);
        assert_eq!(chunks(addrs(20_000)), [(10_000, true), (10_000, false)]);
        assert_eq!(chunks(addrs(10_001)), [(10_000, true), (1, false)]);
        assert_eq!(chunks(addrs(10_000)), [(10_000, false)]);
        assert_eq!(chunks(addrs(3)), [(3, false)]);
        assert_eq!(chunks(vec![]), [(0, false)]);
    }

    /// An invalid address after sent chunks: they all said more follow,
    /// and the one it was in is not sent (the daemon logs what it held
    /// once the command goes quiet). A full chunk not yet known to be
    /// the last is not sent either.
    #[test]
    fn an_invalid_address_leaves_only_chunks_that_said_more() {
        let mut list = addrs(25_000);
        list[21_000] = "300.1.2.3".into();
        let (chunks, done) = sent(list);
        assert_eq!(chunks, [(10_000, true), (10_000, true)]);
        let err = done.unwrap_err();
        assert!(err.ends_with("(20000 addresses before it were sent already)"), "{err}");
        let mut list = addrs(10_001);
        list[10_000] = "300.1.2.3".into();
        let (chunks, done) = sent(list);
        assert_eq!(chunks, []);
        let err = done.unwrap_err();
        assert!(!err.contains("sent already"), "{err}");
    }

    /// What [`piped`] saw: the chunks asked (size, more), the chunks
    /// printed (by number), and the command's error.
    type Piped = (Vec<(usize, bool)>, Vec<usize>, Result<(), String>);

    /// A bulk command through [`pipelined`] with a daemon that answers
    /// each chunk with its number (refusing chunk `refuse`), and a printer
    /// that fails at chunk `fail`: what was asked, what was printed, and
    /// the command's error.
    fn piped(list: Vec<String>, refuse: Option<usize>, fail: Option<usize>) -> Piped {
        let (mut asked, mut shown) = (Vec::new(), Vec::new());
        let done = pipelined(
            list,
            |chunk, more| {
                asked.push((chunk.len(), more));
                let n = asked.len();
                Ok(if refuse == Some(n) {
                    Response::err(format!("chunk {n} refused"))
                } else {
                    Response::ok(n)
                })
            },
            |resp| {
                let n: usize = answered(resp)?;
                anyhow::ensure!(fail != Some(n), "printing chunk {n} failed");
                shown.push(n);
                Ok(())
            },
        );
        (asked, shown, done.map_err(|e| e.to_string()))
    }

    /// The stages keep the chunks in order, each asked and printed once,
    /// with the same `more` as read one after the other.
    #[test]
    fn a_piped_command_asks_and_prints_every_chunk_in_order() {
        let (asked, shown, done) = piped(addrs(25_000), None, None);
        assert_eq!(asked, [(10_000, true), (10_000, true), (5_000, false)]);
        assert_eq!(shown, [1, 2, 3]);
        assert_eq!(done, Ok(()));
    }

    /// A refused chunk is the last asked, and its refusal is the
    /// command's error; so is an invalid address, after the chunks read
    /// before it; and a printer that fails stops the asking.
    #[test]
    fn a_piped_command_stops_at_a_refusal_a_bad_address_or_a_failed_print() {
        let (asked, shown, done) = piped(addrs(35_000), Some(2), None);
        assert_eq!(asked.len(), 2);
        assert_eq!(shown, [1]);
        assert_eq!(done, Err("chunk 2 refused".into()));
        let mut list = addrs(25_000);
        list[21_000] = "300.1.2.3".into();
        let (asked, shown, done) = piped(list, None, None);
        assert_eq!(asked, [(10_000, true), (10_000, true)]);
        assert_eq!(shown, [1, 2]);
        let err = done.unwrap_err();
        assert!(err.starts_with("`300.1.2.3`: "), "{err}");
        let (asked, shown, done) = piped(addrs(55_000), None, Some(1));
        assert!(asked.len() < 6, "asked on after the printer stopped: {asked:?}");
        assert!(shown.is_empty(), "{shown:?}");
        assert_eq!(done, Err("printing chunk 1 failed".into()));
    }

    /// A daemon from before `brief` refuses it and is asked again
    /// without; a newer one is asked once, with it.
    #[test]
    fn an_older_daemon_gets_the_status_without_brief() {
        #[derive(serde::Deserialize)]
        #[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
        #[allow(dead_code)]
        enum OlderStatus {
            Status { jail: Option<String> },
        }
        for older in [true, false] {
            let mut asked = Vec::new();
            let daemon = |req: &Request| -> Result<Response, ()> {
                let line = serde_json::to_string(req).unwrap();
                asked.push(line.clone());
                Ok(match older {
                    true => match serde_json::from_str::<OlderStatus>(&line) {
                        Ok(_) => Response::ok("whole"),
                        Err(e) => Response::err(format!("bad request: {e}")),
                    },
                    false => Response::ok("brief"),
                })
            };
            let req = Request::Status {
                jail: None,
                brief: true,
            };
            let resp = brief_or_not(daemon, req).unwrap();
            let got: String = resp.data().unwrap();
            if older {
                assert_eq!(got, "whole");
                assert_eq!(asked.len(), 2, "{asked:?}");
                assert!(
                    asked[0].contains("\"brief\":true") && !asked[1].contains("brief"),
                    "{asked:?}"
                );
            } else {
                assert_eq!((got.as_str(), asked.len()), ("brief", 1));
            }
        }
    }

    /// The requests as a daemon from before `more` reads them: it denies
    /// unknown fields.
    #[derive(serde::Deserialize)]
    #[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Older {
        Ban {
            addrs: Vec<String>,
            jail: Option<String>,
            bantime: Option<u64>,
            #[serde(default)]
            force: bool,
        },
        Unban {
            addrs: Vec<String>,
            jail: Option<String>,
        },
    }

    /// A daemon's answer to `req`: an older one's if `older`, and the
    /// line each request went as.
    fn daemon(older: bool, lines: &mut Vec<String>) -> impl FnMut(&Request) -> Result<Response, ()> + '_ {
        move |req| {
            let line = serde_json::to_string(req).unwrap();
            lines.push(line.clone());
            let parsed = if older {
                serde_json::from_str::<Older>(&line).map(drop)
            } else {
                serde_json::from_str::<Request>(&line).map(drop)
            };
            Ok(match parsed {
                Ok(()) => Response::ok(UnbanResult::default()),
                // As the control socket words it.
                Err(e) => Response::err(format!("bad request: {e}")),
            })
        }
    }

    fn unban(more: bool) -> Request {
        Request::Unban {
            addrs: vec!["192.0.2.1".into()],
            jail: None,
            more,
        }
    }

    /// Against a daemon that does not know `more`, the first chunk goes
    /// again without it and the next go without it at once; a daemon that
    /// knows it is asked once per chunk.
    #[test]
    fn an_older_daemon_gets_the_chunks_without_more() {
        let with = r#"{"cmd":"unban","addrs":["192.0.2.1"],"jail":null,"more":true}"#;
        let without = r#"{"cmd":"unban","addrs":["192.0.2.1"],"jail":null}"#;
        let (mut lines, mut plain) = (Vec::new(), false);
        for more in [true, true, false] {
            let r = ask_chunk(daemon(true, &mut lines), unban(more), &mut plain).unwrap();
            assert!(r.ok, "{:?}", r.error);
        }
        assert!(plain);
        assert_eq!(lines, [with, without, without, without]);

        let (mut lines, mut plain) = (Vec::new(), false);
        for more in [true, false] {
            assert!(
                ask_chunk(daemon(false, &mut lines), unban(more), &mut plain)
                    .unwrap()
                    .ok
            );
        }
        assert!(!plain);
        assert_eq!(lines, [with, without]);

        // Another refusal is the answer, not a reason to send again.
        let (mut lines, mut plain) = (Vec::new(), false);
        let bad = Request::Ban {
            addrs: vec![],
            jail: None,
            bantime: Some(0),
            force: false,
            more: true,
        };
        let refuse = |req: &Request| {
            lines.push(serde_json::to_string(req).unwrap());
            Ok::<_, ()>(Response::err("bantime must be longer than 0s"))
        };
        assert!(!ask_chunk(refuse, bad, &mut plain).unwrap().ok);
        assert_eq!((lines.len(), plain), (1, false));
    }
}
