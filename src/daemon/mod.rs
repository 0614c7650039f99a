//! The daemon (`nftban run`): wires sources, engine, firewall and control
//! socket together.
//!
//! Threads: one per source file (reading and matching; jails that read the
//! same file share its thread and try all their rules in one pass per line),
//! one per journal source, one for the control socket, one for signals, one
//! watching nf_tables events (self-healing), and the engine loop on the
//! caller's thread. A failure's time is the line's own date when it has one
//! (the entry's time for the journal), so replaying an old log bans nobody:
//! failures older than the jail's `findtime` are dropped before they reach
//! the engine. They talk over one bounded channel; when the engine falls
//! behind, sources wait and their lines stay on disk instead of in memory.
//!
//! Batching: the loop takes every event already waiting (up to 10,000)
//! before it flushes, so bans decided together go to the kernel in one
//! netlink batch, while a lone event is flushed as soon as it is handled
//! (no timer, no wait for more).

pub mod engine;
mod notify;
mod outbox;

use ipnet::IpNet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::config::{format_duration, Config};
use crate::control::server::{serve, Server};
use crate::control::{Request, Response};
use crate::firewall::netlink::monitor::{Monitor, Notice};
use crate::firewall::{Firewall, TableSpec};
use crate::matcher::{LineMatch, MatcherRef, SourceMatcher, Zone};
use crate::sources::file::{follow, Position, StartAt};
use crate::sources::{glob, stdin, SourceState, SourceStats};
pub use engine::Engine;
use outbox::{Failure, Outbox};

/// What the engine is told.
pub enum Event {
    /// A failure line of `net` in jail number `jail` (journal sources).
    Failure { jail: usize, net: IpNet, at: SystemTime },
    /// The failures of one read of a file source (or stdin), then, if
    /// given, the position up to which that file is dealt with.
    Lines {
        failures: Vec<outbox::Failure>,
        position: Option<(String, Position)>,
    },
    /// A journal source has sent every failure up to this cursor.
    Cursor { source: String, cursor: String },
    /// A control request and where to send the answer.
    Request(Request, mpsc::Sender<Response>),
    /// nf_tables events about nftban's table: another process deleted
    /// parts of it, or events were lost.
    Kernel(Notice),
    /// Stop (signal name).
    Shutdown(&'static str),
}

/// How many events may wait for the engine before sources block.
const QUEUE: usize = 16 * 1024;

/// Run the daemon until SIGTERM or SIGINT. With `watch`, a thread listens to
/// nf_tables events and the engine heals the table when another process
/// deletes or flushes parts of it (the kernel backend; not the in-memory one).
pub fn run(config: Config, firewall: Box<dyn Firewall>, watch: bool) -> anyhow::Result<()> {
    let store = crate::store::Store::open(&config.database)?;
    let positions = store.positions().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read saved file positions; following files from their end");
        Default::default()
    });
    let cursors = store.cursors().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read saved journal cursors; following the journal from its end");
        Default::default()
    });
    tracing::info!("ban history in {}", config.database.display());
    // Subscribe before setup, so no change after it goes unseen.
    let monitor = if watch {
        match Monitor::open(&config.table) {
            Ok(m) => {
                if let Some(port) = firewall.event_port() {
                    if let Err(e) = m.ignore_port(port) {
                        tracing::debug!(error = %e, "cannot filter nftban's own nf_tables events; they are told apart by process id");
                    }
                }
                Some(m)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch nf_tables events: nftban will not notice (nor heal) changes other tools make to table inet {}", config.table);
                None
            }
        }
    } else {
        None
    };
    let mut engine = Engine::new(&config, firewall).with_store(store);
    engine.monitor = monitor.as_ref().and_then(|m| m.pauser().ok());
    let adopted = engine
        .start(&config)
        .with_context(|| format!("cannot set up `table inet {}`", config.table))?;
    let chains: Vec<&str> = config.hooks.iter().map(|h| h.chain()).collect();
    tracing::info!(
        table = %config.table,
        "nftables table inet {} ready (action {}, chains: {}); {adopted} running ban(s) restored",
        config.table,
        config.action,
        chains.join(", ")
    );
    let server = Server::bind(&config.socket)
        .with_context(|| format!("cannot open the control socket {}", config.socket.display()))?;
    tracing::info!("control socket {} (mode 0600)", config.socket.display());

    let (tx, rx) = mpsc::sync_channel::<Event>(QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    // Signals first: a SIGTERM while the sources start is a clean stop
    // (the engine loop finds it waiting), not the default kill.
    spawn_signal_thread(tx.clone())?;

    // Jails by file: one reader and one combined matcher per file.
    let mut by_file: std::collections::BTreeMap<std::path::PathBuf, Vec<usize>> = Default::default();
    for (i, jail) in config.jails.iter().enumerate() {
        tracing::info!(
            jail = %jail.name,
            "jail {}: ruleset {}, files {:?}{}, ban after {} failures within {} for {}",
            jail.name,
            jail.ruleset,
            jail.files,
            if jail.stdin { ", stdin" } else { "" },
            jail.maxretry,
            format_duration(jail.findtime),
            format_duration(jail.bantime)
        );
        if !jail.journal.is_empty() {
            let stats = engine.jails[i].sources[jail.files.len()].clone();
            let (stop, tx, matcher, matches) = (stop.clone(), tx.clone(), jail.matcher.clone(), jail.journal.clone());
            let findtime = jail.findtime;
            let key = crate::sources::journal::label(&matches);
            let start = match cursors.get(&key) {
                Some(c) => crate::sources::journal::JournalStart::After(c.clone()),
                None => crate::sources::journal::JournalStart::End,
            };
            std::thread::Builder::new()
                .name(format!("journal-{}", jail.name))
                .spawn(move || {
                    let counter = stats.clone();
                    let tx2 = tx.clone();
                    let on_cursor = move |cursor| {
                        let _ = tx2.send(Event::Cursor {
                            source: key.clone(),
                            cursor,
                        });
                    };
                    // The entry's own time: entries read late are judged by when they happened.
                    let on_line = |line: &str, at: SystemTime| match matcher.match_line(line) {
                        m @ LineMatch::Failure { .. } => {
                            counter.note_match(at);
                            if let Some(net) = m.failure_net().filter(|_| counts(at, SystemTime::now(), findtime)) {
                                let _ = tx.send(Event::Failure { jail: i, net, at });
                            }
                        }
                        LineMatch::NotAnAddress { .. } => counter.note_match(at),
                        LineMatch::Missed | LineMatch::Ignored => {}
                    };
                    crate::sources::journal::follow(&matches, stats, stop, start, on_line, on_cursor);
                })?;
        }
        for f in &jail.files {
            by_file.entry(f.clone()).or_default().push(i);
        }
        // Standard input is one more source, shared like a file (its label
        // cannot clash with a file: those are absolute paths).
        if jail.stdin {
            by_file.entry(stdin::LABEL.into()).or_default().push(i);
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
        let key = path.display().to_string();
        // Where an earlier run stopped, else the end: old lines are not replayed.
        let start = positions.get(&key).map(|p| StartAt::Resume(*p)).unwrap_or(StartAt::End);
        // A glob pattern: the saved positions of the files it stands for.
        let saved: std::collections::BTreeMap<std::path::PathBuf, Position> = if glob::is_pattern(&path) {
            positions
                .iter()
                .map(|(p, pos)| (std::path::PathBuf::from(p), *pos))
                .filter(|(p, _)| glob::path_matches(&path, p))
                .collect()
        } else {
            Default::default()
        };
        std::thread::Builder::new().name(name).spawn(move || {
            let mut sm = SourceMatcher::new(matchers, Zone::Local);
            // Shared by the line and position callbacks of one thread.
            let outbox = std::cell::RefCell::new(Outbox::new(tx));
            // `counter`: the stats of the file the line comes from.
            let mut on_line = |counter: &SourceStats, line: &str| {
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
                            if let Some(net) = r.failure_net() {
                                outbox.borrow_mut().failure(Failure { jail: ids[k], net, at });
                            }
                        }
                        LineMatch::NotAnAddress { host, .. } => {
                            tracing::debug!(jail = %names[k], %host, "matched a hostname, not an address: nftban never resolves names; not counted");
                        }
                        LineMatch::Missed | LineMatch::Ignored => {}
                    }
                }
            };
            if path.as_os_str() == stdin::LABEL {
                // No position: what went through the pipe is gone. Each
                // failure goes at once (stdin has no end-of-read callback).
                let counter = stats.clone();
                stdin::follow(stats, stop, |line| {
                    on_line(&counter, line);
                    outbox.borrow_mut().send(None);
                });
            } else if glob::is_pattern(&path) {
                let on_position = |file: &std::path::Path, pos: Position| {
                    outbox.borrow_mut().send(Some((file.display().to_string(), pos)));
                };
                glob::follow(&path, stats, stop, &saved, on_line, on_position);
            } else {
                let on_position = |pos: Position| outbox.borrow_mut().send(Some((key.clone(), pos)));
                let counter = stats.clone();
                follow(&path, stats, stop, start, |line| on_line(&counter, line), on_position);
            }
        })?;
    }

    // Answer on the control socket (and tell systemd READY) only once every
    // source has opened its file (or found it missing): a line written
    // after the first answer is then never skipped by a reader that starts
    // at the end of its file. Bounded, so a stuck source cannot hang start.
    let looked = std::time::Instant::now();
    while engine
        .jails
        .iter()
        .flat_map(|j| &j.sources)
        .any(|s| s.state() == SourceState::Starting)
        && looked.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(2));
    }

    let answering = Arc::new(AtomicBool::new(false));
    {
        let tx = tx.clone();
        let listener = server.listener()?;
        let answering = answering.clone();
        std::thread::Builder::new().name("control".into()).spawn(move || {
            serve(listener, answering, |req| {
                let (rtx, rrx) = mpsc::channel();
                if tx.send(Event::Request(req, rtx)).is_err() {
                    return Response::err("the daemon is stopping");
                }
                rrx.recv().unwrap_or_else(|_| Response::err("the daemon is stopping"))
            })
        })?;
    }
    if let Some(m) = config.metrics {
        let listener = crate::control::metrics::bind(m.listen)
            .with_context(|| format!("cannot listen for metrics on {} (metrics.listen)", m.listen))?;
        tracing::info!("Prometheus metrics on http://{}/metrics", m.listen);
        let tx = tx.clone();
        std::thread::Builder::new().name("metrics".into()).spawn(move || {
            crate::control::metrics::serve(listener, || {
                let (rtx, rrx) = mpsc::channel();
                tx.send(Event::Request(Request::Status { jail: None }, rtx)).ok()?;
                serde_json::from_value(rrx.recv().ok()?.data).ok()
            })
        })?;
    }
    if let Some(monitor) = monitor {
        spawn_monitor_thread(monitor, tx.clone(), stop.clone())?;
    }
    drop(tx);

    tracing::info!("nftban running; logs go to {}", config.log.target);
    notify::notify(&format!("READY=1\nSTATUS=watching {} jail(s)", config.jails.len()));
    let exit = engine_loop(&mut engine, rx, &config, &answering);
    stop.store(true, Ordering::Relaxed);
    drop(server);
    if exit == Exit::Reload {
        // The new config was checked. Start over in this same process (same
        // pid for systemd): bans stay in the kernel, the history restores
        // them, files resume at their saved positions. Failure counts of
        // bans not yet reached start afresh.
        notify::notify("RELOADING=1");
        tracing::info!("reloading {}", config.path.display());
        drop(engine);
        let exe = std::env::current_exe()?;
        use std::os::unix::process::CommandExt;
        let err = std::process::Command::new(exe).args(std::env::args_os().skip(1)).exec();
        anyhow::bail!("cannot restart for the reload: {err}");
    }
    notify::notify("STOPPING=1");
    tracing::info!("stopped; bans stay in the kernel until their timeouts end");
    Ok(())
}

/// Why the engine loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Stop,
    Reload,
}

/// Check the config file for a reload: the new config as a whole, or its
/// error (the running one stays).
fn check_reload(config: &Config) -> Response {
    match Config::load(&config.path) {
        Ok(new) => {
            tracing::info!(
                "reload: {} is valid ({} jail(s)); restarting with it",
                config.path.display(),
                new.jails.len()
            );
            Response::ok(format!(
                "reloading {} ({} jail(s))",
                config.path.display(),
                new.jails.len()
            ))
        }
        Err(e) => {
            // The error names the place; its source chain says what is wrong.
            let e = anyhow::Error::new(e);
            tracing::error!("reload refused, the running config stays: {e:#}");
            Response::err(format!("reload refused, the running config stays: {e:#}"))
        }
    }
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

fn engine_loop(engine: &mut Engine, rx: mpsc::Receiver<Event>, config: &Config, answering: &AtomicBool) -> Exit {
    let spec = &config.table_spec();
    loop {
        // Removals of conntrack entries waiting for their interval are done
        // at its end even if nothing else happens.
        let wait = if engine.forget_waiting() {
            engine.forget_interval
        } else {
            Duration::from_secs(1)
        };
        let first = match rx.recv_timeout(wait) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => {
                engine.forget_connections(false);
                engine.expire(SystemTime::now());
                engine.save_positions(false);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return Exit::Stop,
        };
        // Take the whole burst, then send its bans in one batch.
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(ev) = next.take() {
            match ev {
                Event::Failure { jail, net, at } => engine.failure_of(jail, net, at),
                Event::Lines { failures, position } => {
                    for f in failures {
                        engine.failure_of(f.jail, f.net, f.at);
                    }
                    if let Some((path, pos)) = position {
                        engine.position(path, pos);
                    }
                }
                Event::Cursor { source, cursor } => engine.cursor(source, cursor),
                Event::Request(Request::Reload, reply) => {
                    let answer = check_reload(config);
                    let ok = answer.ok;
                    let _ = reply.send(answer);
                    if ok {
                        engine.flush();
                        engine.forget_connections(true);
                        engine.save_positions(true);
                        // The "ok" must reach `nftban reload` before the
                        // restart closes the socket (bounded: a stuck client
                        // must not hold the reload).
                        let asked = std::time::Instant::now();
                        while answering.load(Ordering::SeqCst) && asked.elapsed() < Duration::from_secs(2) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        return Exit::Reload;
                    }
                }
                Event::Request(req, reply) => {
                    engine.flush();
                    let _ = reply.send(engine.handle(req, SystemTime::now()));
                }
                Event::Kernel(notice) => {
                    engine.flush();
                    heal(engine, spec, notice);
                }
                Event::Shutdown(sig) => {
                    engine.flush();
                    engine.forget_connections(true);
                    engine.save_positions(true);
                    tracing::info!("{sig} received, stopping");
                    return Exit::Stop;
                }
            }
            handled += 1;
            if handled < 10_000 {
                next = rx.try_recv().ok();
            }
        }
        engine.flush();
        engine.forget_connections(false);
        engine.save_positions(false);
        // A big batch ran with the event monitor paused: look for what
        // other tools may have deleted meanwhile, as after lost events.
        // Once: a restore (itself a big batch) does not check again, so
        // this can never loop.
        if std::mem::take(&mut engine.recheck) {
            heal(engine, spec, Notice::Lost);
            engine.recheck = false;
        }
    }
}

/// Act on a monitor notice: after another process's deletions, restore at
/// once; after lost events, check cheaply first and restore only if
/// something is missing.
fn heal(engine: &mut Engine, spec: &TableSpec, notice: Notice) {
    let now = SystemTime::now();
    let cause = match notice {
        Notice::Changed { what, pid, process } => {
            format!("{} by process {process} (pid {pid})", what.join(", "))
        }
        Notice::Lost => match engine.missing(spec, now) {
            Ok(missing) if missing.is_empty() => {
                tracing::debug!(
                    "nf_tables events were lost (ENOBUFS); table inet {} is intact",
                    spec.table
                );
                return;
            }
            Ok(missing) => format!(
                "{} (nf_tables events were lost, so the process is unknown)",
                missing.join(", ")
            ),
            Err(e) => format!("nf_tables events were lost and checking the table failed ({e})"),
        },
    };
    match engine.restore(spec, now) {
        Ok(n) => tracing::warn!(
            "table inet {} was changed by another tool: {cause}; restored the table and {n} ban(s)",
            spec.table
        ),
        Err(e) => {
            engine.kernel_errors += 1;
            tracing::error!(error = %e, "table inet {} was changed by another tool: {cause}; restoring it failed", spec.table)
        }
    }
}

fn spawn_monitor_thread(mut monitor: Monitor, tx: SyncSender<Event>, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    std::thread::Builder::new().name("nft-monitor".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match monitor.wait() {
                Ok(Some(notice)) => {
                    if tx.send(Event::Kernel(notice)).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading nf_tables events failed; retrying in a second");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    })?;
    Ok(())
}

fn spawn_signal_thread(tx: SyncSender<Event>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGHUP => {
                    // As `nftban reload`; nobody waits for the answer.
                    let (reply, _) = mpsc::channel();
                    let _ = tx.send(Event::Request(Request::Reload, reply));
                }
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
