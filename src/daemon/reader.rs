//! One thread per source: its lines go through the matcher of every jail
//! that reads it (one pass per line for all of them), and the failures that
//! still count go to the engine, one message per read with the read's
//! checkpoint.
//!
//! This is the one failure filter for every kind of source: a failure's
//! time is the line's own date when it has one (the entry's time for the
//! journal), so replaying an old log bans nobody; failures older than the
//! jail's `findtime` are dropped here, and said so at debug level, before
//! they reach the engine. A hostname where an address should be is
//! counted, and resolved only for a jail with `usedns: yes`, by the
//! resolver's thread ([`super::resolve`]; docs/faq.md row 1): the reader
//! only hands it over, never waits for it.

use std::sync::mpsc::SyncSender;
use std::time::{Duration, SystemTime};

use std::sync::Arc;

use super::outbox::{Failure, Outbox};
use super::resolve::{Asker, NameStats};
use super::Event;
use crate::config::Jail;
use crate::matcher::{LineMatch, MatcherRef, SourceMatcher, Zone};
use crate::sources::file::FileSource;
use crate::sources::glob::{self, GlobSource};
use crate::sources::journal::JournalSource;
use crate::sources::stdin::StdinSource;
use crate::sources::{Checkpoint, Context, Sink, Source, SourceStats};

/// The sources a jail reads, in the order `status` lists them: its files
/// and glob patterns, its journal matches, standard input.
pub(super) fn sources_of(jail: &Jail) -> Vec<Box<dyn Source>> {
    let mut out: Vec<Box<dyn Source>> = Vec::new();
    for f in &jail.files {
        if glob::is_pattern(f) {
            out.push(Box::new(GlobSource::new(f.clone())));
        } else {
            out.push(Box::new(FileSource::new(f.clone())));
        }
    }
    if !jail.journal.is_empty() {
        out.push(Box::new(JournalSource::new(jail.journal.clone())));
    }
    if jail.stdin {
        out.push(Box::new(StdinSource));
    }
    out
}

/// What one reader needs to know of each jail it serves.
struct JailRef {
    /// The engine's number for the jail.
    index: usize,
    name: String,
    findtime: Duration,
    /// The jail's account of lines that named a host.
    names: Arc<NameStats>,
    /// Where its names go to be resolved (`usedns: yes`), else `None`.
    resolve: Option<Asker>,
}

/// The sink of one source: matches each line for every jail reading it
/// and gathers their failures for the engine.
struct Reader {
    matcher: SourceMatcher<'static>,
    jails: Vec<JailRef>,
    outbox: Outbox,
}

impl Sink for Reader {
    fn line(&mut self, from: &SourceStats, line: &str, at: Option<SystemTime>) {
        let now = SystemTime::now();
        self.matcher.match_line(line, now);
        if !self.matcher.any_match() {
            return;
        }
        from.note_match(at.unwrap_or(now));
        let at = line_time(at.or_else(|| self.matcher.parse_date(line, now).map(|f| f.time)), now);
        let mut too_old = false;
        for (k, r) in self.matcher.results().iter().enumerate() {
            let jail = &self.jails[k];
            match r {
                LineMatch::Failure { addr, .. } => {
                    if !counts(at, now, jail.findtime) {
                        too_old = true;
                        tracing::debug!(jail = %jail.name, %addr, "failure older than findtime (line dated {}s ago); not counted",
                            now.duration_since(at).map(|d| d.as_secs()).unwrap_or(0));
                        continue;
                    }
                    if let Some(net) = r.failure_net() {
                        self.outbox.failure(Failure {
                            jail: jail.index,
                            net,
                            at,
                        });
                    }
                }
                LineMatch::NotAnAddress { host, .. } => {
                    jail.names.names.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    match &jail.resolve {
                        Some(_) if !counts(at, now, jail.findtime) => {
                            tracing::debug!(jail = %jail.name, %host, "a name on a line older than findtime; not resolved");
                        }
                        Some(asker) => asker.ask(jail.index, host, at, &jail.names),
                        None => {
                            tracing::debug!(jail = %jail.name, %host, "matched a hostname, not an address: not resolved (usedns: no); not counted");
                        }
                    }
                }
                LineMatch::Missed | LineMatch::Ignored => {}
            }
        }
        if too_old {
            from.note_too_old();
        }
    }

    fn read_done(&mut self, checkpoint: Option<Checkpoint>) {
        self.outbox.send(checkpoint);
    }
}

/// What the readers share about names: each jail's account (by the
/// engine's jail numbers) and the resolver, when a jail resolves.
pub(super) struct Names {
    pub stats: Vec<Arc<NameStats>>,
    pub resolver: Option<Asker>,
}

/// Start the thread that reads `source` for the jails numbered `jails`
/// (indices into `config_jails`, the same as the engine's).
pub(super) fn spawn(
    source: Box<dyn Source>,
    jails: &[usize],
    config_jails: &[Jail],
    names: &Names,
    ctx: Context,
    tx: SyncSender<Event>,
) -> std::io::Result<()> {
    let matchers: Vec<MatcherRef<'static>> = jails
        .iter()
        .map(|&i| MatcherRef::Shared(config_jails[i].matcher.clone()))
        .collect();
    let refs: Vec<JailRef> = jails
        .iter()
        .map(|&i| JailRef {
            index: i,
            name: config_jails[i].name.clone(),
            findtime: config_jails[i].findtime,
            names: names.stats[i].clone(),
            resolve: names.resolver.clone().filter(|_| config_jails[i].usedns.resolves()),
        })
        .collect();
    let name = format!(
        "src-{}",
        refs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>().join("+")
    );
    std::thread::Builder::new().name(name).spawn(move || {
        let mut reader = Reader {
            matcher: SourceMatcher::new(matchers, Zone::Local),
            jails: refs,
            outbox: Outbox::new(tx),
        };
        source.follow(ctx, &mut reader);
    })?;
    Ok(())
}

/// A failure's time: the line's date, or `now` for a line without one or
/// dated in the future (a clock ahead, a wrong year guess).
fn line_time(date: Option<SystemTime>, now: SystemTime) -> SystemTime {
    date.map_or(now, |t| t.min(now))
}

/// Whether a failure at `at` still counts at `now` for a jail's `findtime`.
fn counts(at: SystemTime, now: SystemTime, findtime: Duration) -> bool {
    now.duration_since(at).map_or(true, |age| age < findtime)
}

#[cfg(test)]
mod hostile;

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

    /// Every kind of source goes through the same filter: a line whose
    /// time the source gives (a journal entry's) is judged by that time,
    /// an undated line by now; the failures of a read reach the engine in
    /// one message with the read's checkpoint.
    #[test]
    fn the_reader_filters_by_the_sources_time_and_sends_once_per_read() {
        let m = Arc::new(Matcher::new(&Ruleset::shipped("sshd").unwrap()).unwrap());
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let mut reader = Reader {
            matcher: SourceMatcher::new(vec![MatcherRef::Shared(m)], Zone::Local),
            jails: vec![JailRef {
                index: 3,
                name: "sshd".into(),
                findtime: Duration::from_secs(600),
                names: Arc::default(),
                resolve: None,
            }],
            outbox: Outbox::new(tx),
        };
        let stats = SourceStats::new("journal:_SYSTEMD_UNIT=ssh.service".into());
        let line = "Failed password for root from 198.51.100.1 port 22 ssh2";
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        reader.line(&stats, line, Some(long_ago));
        reader.line(&stats, line, None);
        reader.line(
            &stats,
            "Accepted password for root from 198.51.100.2 port 22 ssh2",
            None,
        );
        assert!(rx.try_recv().is_err(), "nothing before the read is done");
        let checkpoint = Checkpoint::Journal {
            source: "journal:_SYSTEMD_UNIT=ssh.service".into(),
            cursor: "s=1".into(),
        };
        reader.read_done(Some(checkpoint.clone()));
        match rx.try_recv().unwrap() {
            Event::Lines {
                failures,
                checkpoint: got,
            } => {
                let nets: Vec<(usize, String)> = failures.iter().map(|f| (f.jail, f.net.to_string())).collect();
                assert_eq!(
                    nets,
                    [(3, "198.51.100.1/32".to_string())],
                    "the hour-old entry does not count"
                );
                assert_eq!(got, Some(checkpoint));
            }
            _ => panic!("not a Lines event"),
        }
        assert_eq!(stats.matched.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
