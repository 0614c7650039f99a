//! The daemon (`nftban run`): wires sources, engine, firewall and control
//! socket together.
//!
//! Threads: one per source file (reading and matching; jails that read the
//! same file share its thread and try all their rules in one pass per line),
//! one for the control socket, one for signals, and the engine loop on the
//! caller's thread. A failure's time is the line's own date when it has one,
//! so replaying an old log bans nobody: failures older than the jail's
//! `findtime` are dropped before they reach the engine. They talk over one bounded channel; when the
//! engine falls behind, sources wait and their lines stay on disk instead of
//! in memory.

pub mod engine;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::config::{format_duration, Config};
use crate::control::server::{serve, Server};
use crate::control::{Request, Response};
use crate::firewall::Firewall;
use crate::matcher::{LineMatch, MatcherRef, SourceMatcher, Zone};
use crate::sources::file::follow;
pub use engine::Engine;

/// What the engine is told.
pub enum Event {
    /// A failure line of `addr` in jail number `jail`.
    Failure { jail: usize, addr: IpAddr, at: SystemTime },
    /// A control request and where to send the answer.
    Request(Request, mpsc::Sender<Response>),
    /// Stop (signal name).
    Shutdown(&'static str),
}

/// How many events may wait for the engine before sources block.
const QUEUE: usize = 16 * 1024;

/// Run the daemon until SIGTERM or SIGINT.
pub fn run(config: Config, firewall: Box<dyn Firewall>) -> anyhow::Result<()> {
    let mut engine = Engine::new(&config, firewall);
    let adopted = engine
        .start(&config)
        .with_context(|| format!("cannot set up `table inet {}`", config.table))?;
    tracing::info!(
        table = %config.table,
        "nftables table inet {} ready; {adopted} ban(s) from an earlier run kept",
        config.table
    );
    let server = Server::bind(&config.socket)
        .with_context(|| format!("cannot open the control socket {}", config.socket.display()))?;
    tracing::info!("control socket {} (mode 0600)", config.socket.display());

    let (tx, rx) = mpsc::sync_channel::<Event>(QUEUE);
    let stop = Arc::new(AtomicBool::new(false));

    // Jails by file: one reader and one combined matcher per file.
    let mut by_file: std::collections::BTreeMap<std::path::PathBuf, Vec<usize>> = Default::default();
    for (i, jail) in config.jails.iter().enumerate() {
        tracing::info!(
            jail = %jail.name,
            "jail {}: ruleset {}, files {:?}, ban after {} failures within {} for {}",
            jail.name,
            jail.ruleset,
            jail.files,
            jail.maxretry,
            format_duration(jail.findtime),
            format_duration(jail.bantime)
        );
        for f in &jail.files {
            by_file.entry(f.clone()).or_default().push(i);
        }
    }
    for (path, ids) in by_file {
        let Some(stats) = engine.jails[ids[0]].sources.iter().find(|s| s.path == path).cloned() else {
            continue;
        };
        let matchers: Vec<MatcherRef<'static>> = ids
            .iter()
            .map(|&i| MatcherRef::Shared(config.jails[i].matcher.clone()))
            .collect();
        let findtimes: Vec<Duration> = ids.iter().map(|&i| config.jails[i].findtime).collect();
        let names: Vec<String> = ids.iter().map(|&i| config.jails[i].name.clone()).collect();
        let (stop, tx) = (stop.clone(), tx.clone());
        let name = format!("src-{}", names.join("+"));
        std::thread::Builder::new().name(name).spawn(move || {
            let mut sm = SourceMatcher::new(matchers, Zone::Local);
            let counter = stats.clone();
            follow(&path, stats, stop, |line| {
                let now = SystemTime::now();
                sm.match_line(line, now);
                if !sm.any_match() {
                    return;
                }
                counter.note_match(now);
                let at = line_time(sm.parse_date(line, now).map(|f| f.time), now);
                for (k, r) in sm.results().iter().enumerate() {
                    match r {
                        LineMatch::Failure { addr, .. } => {
                            if !counts(at, now, findtimes[k]) {
                                tracing::debug!(jail = %names[k], %addr, "failure older than findtime (line dated {}s ago); not counted",
                                    now.duration_since(at).map(|d| d.as_secs()).unwrap_or(0));
                                continue;
                            }
                            let _ = tx.send(Event::Failure { jail: ids[k], addr: *addr, at });
                        }
                        LineMatch::NotAnAddress { host, .. } => {
                            tracing::debug!(jail = %names[k], %host, "matched a hostname, not an address: nftban never resolves names; not counted");
                        }
                        LineMatch::Missed | LineMatch::Ignored => {}
                    }
                }
            });
        })?;
    }

    {
        let tx = tx.clone();
        let listener = server.listener()?;
        std::thread::Builder::new().name("control".into()).spawn(move || {
            serve(listener, |req| {
                let (rtx, rrx) = mpsc::channel();
                if tx.send(Event::Request(req, rtx)).is_err() {
                    return Response::err("the daemon is stopping");
                }
                rrx.recv().unwrap_or_else(|_| Response::err("the daemon is stopping"))
            })
        })?;
    }
    spawn_signal_thread(tx.clone())?;
    drop(tx);

    tracing::info!("nftban running; logs go to {}", config.log.target);
    engine_loop(&mut engine, rx);
    stop.store(true, Ordering::Relaxed);
    drop(server);
    tracing::info!("stopped; bans stay in the kernel until their timeouts end");
    Ok(())
}

/// A failure's time: the line's date, or `now` for a line without one or
/// dated in the future (a clock ahead, a wrong year guess).
pub fn line_time(date: Option<SystemTime>, now: SystemTime) -> SystemTime {
    date.map_or(now, |t| t.min(now))
}

/// Whether a failure at `at` still counts at `now` for a jail's `findtime`.
pub fn counts(at: SystemTime, now: SystemTime, findtime: Duration) -> bool {
    now.duration_since(at).map_or(true, |age| age < findtime)
}

fn engine_loop(engine: &mut Engine, rx: mpsc::Receiver<Event>) {
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => {
                engine.expire(SystemTime::now());
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Take the whole burst, then send its bans in one batch.
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(ev) = next.take() {
            match ev {
                Event::Failure { jail, addr, at } => engine.failure(jail, addr, at),
                Event::Request(req, reply) => {
                    engine.flush();
                    let _ = reply.send(engine.handle(req, SystemTime::now()));
                }
                Event::Shutdown(sig) => {
                    engine.flush();
                    tracing::info!("{sig} received, stopping");
                    return;
                }
            }
            handled += 1;
            if handled < 10_000 {
                next = rx.try_recv().ok();
            }
        }
        engine.flush();
    }
}

fn spawn_signal_thread(tx: SyncSender<Event>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGHUP => tracing::warn!("SIGHUP: reload is not supported yet in this version; restart nftban to apply a new config (bans are kept)"),
                SIGINT => {
                    let _ = tx.send(Event::Shutdown("SIGINT"));
                }
                _ => {
                    let _ = tx.send(Event::Shutdown("SIGTERM"));
                }
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::{Matcher, Ruleset};

    /// Replaying an old log bans nobody: the line's own date makes its
    /// failure older than findtime; a fresh or undated line counts.
    #[test]
    fn old_lines_do_not_count() {
        let m = Matcher::new(&Ruleset::shipped("sshd").unwrap()).unwrap();
        let mut sm = SourceMatcher::new(vec![MatcherRef::Borrowed(&m)], Zone::Utc);
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_764_000_000); // 2025-11-24
        let findtime = Duration::from_secs(600);
        let old = "2024-01-01T00:00:00Z host sshd[1]: Failed password for root from 198.51.100.1 port 22 ssh2";
        let fresh = "2025-11-24T15:55:00Z host sshd[1]: Failed password for root from 198.51.100.1 port 22 ssh2";
        let undated = "Failed password for root from 198.51.100.1 port 22 ssh2";
        let future = "2030-01-01T00:00:00Z host sshd[1]: Failed password for root from 198.51.100.1 port 22 ssh2";
        let mut verdicts = vec![];
        for line in [old, fresh, undated, future] {
            sm.match_line(line, now);
            assert!(matches!(sm.results()[0], LineMatch::Failure { .. }), "{line}");
            let at = line_time(sm.parse_date(line, now).map(|f| f.time), now);
            verdicts.push(counts(at, now, findtime));
        }
        assert_eq!(verdicts, vec![false, true, true, true]);
        assert_eq!(line_time(None, now), now);
    }
}
