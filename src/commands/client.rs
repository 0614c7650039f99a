//! `ban`, `unban`, `reload`: ask the daemon over its control socket and
//! print the answer for people (or JSON for scripts).

use std::io::{BufRead, Write as _};

use crate::cli::ConfigArg;
use crate::config::{config_path, format_duration, parse_duration, socket_of};
use crate::control::client::call;
use crate::control::protocol::{BanResult, UnbanResult};
use crate::control::{Request, Response};
use std::time::Duration;

use super::asking::{Asking, Daemon, Socket};

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
fn brief_or_not<E>(mut call: impl FnMut(&Request) -> Result<Response, E>, mut req: Request) -> Result<Response, E> {
    let resp = call(&req)?;
    let brief = match &mut req {
        Request::Status { brief, .. } => std::mem::take(brief),
        _ => false,
    };
    if brief && resp.refuses_field("brief") {
        return call(&req);
    }
    Ok(resp)
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
/// ([`Asking`]: each chunk whose next one is read already goes before the
/// answer to the one before it is read), and a third reads and prints each
/// answer (`show`). So the daemon works on a chunk while the client reads
/// the next one and prints the last one, instead of waiting while the
/// client does both (docs/performance.md, "a pipelined client"). The
/// daemon carries the chunks out in order and logs the command as one.
/// The client holds a few chunks at most (read, asked, printed).
///
/// `make` makes a chunk's request, with its `more` and `follows`. A
/// refused chunk (`ok: false`) is the last one carried out; `show` says
/// why. An invalid address stops the reading: the chunks read before it
/// are asked and printed, then its error is the command's.
fn pipelined<D: Daemon>(
    args: Vec<String>,
    mut asking: Asking<D>,
    make: impl Fn(Vec<String>, bool, bool) -> Request,
    mut show: impl FnMut(Response) -> anyhow::Result<()> + Send,
) -> anyhow::Result<()> {
    type Chunk = anyhow::Result<(Vec<String>, bool)>;
    let (chunks, read) = std::sync::mpsc::sync_channel::<Chunk>(1);
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
            // A printer that stopped, or is handed a refusal, has the
            // command's error: the asking stops without one.
            let mut deliver = |resp: Response| {
                let ok = resp.ok;
                answers.send(resp).is_ok() && ok
            };
            let mut hand: Option<Chunk> = read.recv().ok();
            while let Some(chunk) = hand.take() {
                let (chunk, more) = chunk?;
                // The next chunk, if it is read by then: this one says
                // `follows`, and it goes right after.
                let next = match more && asking.may_follow() {
                    true => read.recv_timeout(NEXT_WAIT).ok(),
                    false => None,
                };
                let follows = matches!(next, Some(Ok(_)));
                if !asking.ask(make(chunk, more, follows), &mut deliver)? {
                    return Ok(());
                }
                hand = match next {
                    Some(next) => Some(next),
                    None if more => read.recv().ok(),
                    None => None,
                };
            }
            asking.settle(&mut deliver)
        };
        // The printer's channel closes with the asking (it owns it), which
        // is dropped here.
        let asked = { asked }();
        let shown = printer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        shown.and(asked)
    })
}

/// How long the asking waits for the next chunk to be read before it
/// sends one without `follows`: the first chunks of a command from a file
/// come a few milliseconds apart; from a slow pipe, later.
const NEXT_WAIT: Duration = Duration::from_millis(50);

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
    let make = |addrs, more, follows| Request::Ban {
        addrs,
        jail: Some(jail.clone()),
        bantime,
        force,
        more,
        follows,
    };
    pipelined(addrs, Asking::new(Socket::new(socket(c))), make, |resp| {
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
    let make = |addrs, more, follows| Request::Unban {
        addrs,
        jail: jail.clone(),
        more,
        follows,
    };
    pipelined(addrs, Asking::new(Socket::new(socket(c))), make, |resp| {
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

    /// What [`piped`] saw: the chunks carried out (size, more), the
    /// chunks printed (by number), and the command's error.
    type Piped = (Vec<(usize, bool)>, Vec<usize>, Result<(), String>);

    /// A bulk command through [`pipelined`] with a daemon that answers
    /// each chunk with its number (refusing chunk `refuse`), and a printer
    /// that fails at chunk `fail`: what was carried out, what was printed,
    /// and the command's error.
    fn piped(list: Vec<String>, refuse: Option<usize>, fail: Option<usize>) -> Piped {
        use super::super::asking::tests::{Age, Fake};
        let mut shown = Vec::new();
        let mut daemon = Fake::new(Age::Now, refuse);
        let done = pipelined(
            list,
            Asking::new(&mut daemon),
            |addrs, more, follows| Request::Unban {
                addrs,
                jail: None,
                more,
                follows,
            },
            |resp| {
                let n: usize = answered(resp)?;
                anyhow::ensure!(fail != Some(n), "printing chunk {n} failed");
                shown.push(n);
                Ok(())
            },
        );
        (daemon.sizes, shown, done.map_err(|e| e.to_string()))
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
}
