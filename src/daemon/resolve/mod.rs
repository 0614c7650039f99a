//! Host names in `<HOST>`, resolved for the jails that ask (`usedns:
//! yes`), never on a reader's or the engine's thread.
//!
//! A reader hands a matched line whose host is a name to [`Asker::ask`]:
//! one `try_send` on a bounded queue, so a flood of names costs a reader
//! no more than a full queue's refusal (the line is dropped and counted).
//! The resolver thread keeps a cache of names (addresses found, and names
//! that gave none or timed out, each for a while; bounded) and answers a
//! cached name at once. Any other name is looked up on a lookup thread of
//! its own, at most [`Limits::lookups`] at a time, through a [`Lookup`]:
//! the system resolver ([`System`], getaddrinfo: /etc/hosts, then DNS as
//! nsswitch.conf says). getaddrinfo has no timeout of its own, so the
//! resolver gives up waiting after [`Limits::timeout`]: the lines waiting
//! for that name are dropped (counted as timeouts) and the thread is left
//! to finish on its own; its answer still fills the cache for later lines.
//! At most [`Limits::waiting`] lines wait for answers at once, more are
//! dropped and counted.
//!
//! Each address a name gives gets the line's failure, dated as the line
//! (as fail2ban does), and goes to the engine like a reader's failures,
//! where `ignoreip` and the never-ban list apply as to any address. Those
//! failures reach the engine later than the reader's failures of the same
//! read, so their order relative to other failures may differ, and a
//! reader's checkpoint may be saved before them: a stop at that moment
//! loses them (a few lines, never a ban already made).

mod cache;
mod names;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::Event;
use names::Names;

/// How names are looked up (the system resolver, or a double in tests).
pub trait Lookup: Send + Sync + 'static {
    /// The addresses of `name`; an error or an empty list when it has none.
    /// May block as long as it likes: it runs on a lookup thread.
    fn lookup(&self, name: &str) -> io::Result<Vec<IpAddr>>;
}

/// The system resolver: getaddrinfo, as every program on the host resolves
/// (/etc/hosts, DNS, per nsswitch.conf and resolv.conf).
pub struct System;

impl Lookup for System {
    fn lookup(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        Ok((name, 0).to_socket_addrs()?.map(|a| a.ip().to_canonical()).collect())
    }
}

/// The resolver's bounds. Fixed in the daemon ([`Limits::DEFAULT`]);
/// tests choose their own.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long lines wait for a name's lookup before they are dropped.
    pub timeout: Duration,
    /// Lookup threads at once, abandoned ones included.
    pub lookups: usize,
    /// Lines waiting for answers at once; also the queue from the readers.
    pub waiting: usize,
    /// Names the cache holds.
    pub cache: usize,
    /// How long a name's addresses are used without asking again.
    pub ttl: Duration,
    /// How long a name that gave no address (or timed out) is not asked
    /// again.
    pub negative_ttl: Duration,
    /// The most addresses one name bans (the first ones getaddrinfo gives).
    pub addresses: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        timeout: Duration::from_secs(3),
        lookups: 4,
        waiting: 1024,
        cache: 4096,
        ttl: Duration::from_secs(300),
        negative_ttl: Duration::from_secs(60),
        addresses: 16,
    };
}

/// One jail's account of the names its lines held, for `status` and the
/// metrics: lines, not names (a name on ten lines counts ten).
#[derive(Debug, Default)]
pub struct NameStats {
    /// Lines whose host was a name, whatever `usedns` says.
    pub names: AtomicU64,
    /// Lookups started for this jail's lines.
    pub lookups: AtomicU64,
    /// Lines answered from the cache.
    pub cache_hits: AtomicU64,
    /// Lines whose name gave addresses: each got the failure.
    pub resolved: AtomicU64,
    /// Lines whose name gave no address (no such name, a lookup error, not
    /// a name at all).
    pub unresolved: AtomicU64,
    /// Lines dropped because their name's lookup outlived the timeout.
    pub timeouts: AtomicU64,
    /// Lines dropped because too many were waiting already.
    pub dropped: AtomicU64,
}

impl NameStats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures as `status` shows them.
    pub fn status(&self, usedns: bool) -> crate::status::NameStatus {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        crate::status::NameStatus {
            usedns,
            names: get(&self.names),
            lookups: get(&self.lookups),
            cache_hits: get(&self.cache_hits),
            resolved: get(&self.resolved),
            unresolved: get(&self.unresolved),
            timeouts: get(&self.timeouts),
            dropped: get(&self.dropped),
        }
    }
}

/// Whether getaddrinfo may be asked about `text`: a DNS name is at most
/// 253 bytes, and has a letter (getaddrinfo reads `10` or `3232235777` as
/// an IPv4 address).
fn could_be_a_name(text: &str) -> bool {
    text.len() <= 253 && text.bytes().any(|b| b.is_ascii_alphabetic())
}

/// What the resolver thread is told.
enum Msg {
    /// A line of jail number `jail` named `name`, dated `at`.
    Ask { jail: usize, name: String, at: SystemTime },
    /// A lookup thread's answer.
    Done {
        name: String,
        result: io::Result<Vec<IpAddr>>,
    },
}

/// A reader's handle on the resolver.
#[derive(Clone)]
pub struct Asker {
    tx: SyncSender<Msg>,
}

impl Asker {
    /// Hand a line's name over; never waits. A full queue drops the line
    /// (counted in `stats`). What cannot be a name is counted here, before
    /// it is copied: a line may hold a megabyte of `a.a.a...`.
    pub fn ask(&self, jail: usize, name: &str, at: SystemTime, stats: &NameStats) {
        if !could_be_a_name(name) {
            NameStats::add(&stats.unresolved);
            return;
        }
        let msg = Msg::Ask {
            jail,
            name: name.to_string(),
            at,
        };
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => NameStats::add(&stats.dropped),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Start the resolver thread: failures of resolved names go to `engine`;
/// `stats` are the jails' (by the engine's jail numbers).
pub fn spawn<L: Lookup>(
    lookup: L,
    limits: Limits,
    stats: Vec<Arc<NameStats>>,
    engine: SyncSender<Event>,
) -> io::Result<Asker> {
    let (tx, rx) = mpsc::sync_channel::<Msg>(limits.waiting);
    let mut names = Names::new(Arc::new(lookup), limits, stats, tx.clone());
    std::thread::Builder::new().name("resolver".into()).spawn(move || {
        let mut out = Vec::new();
        loop {
            let msg = match names.next_deadline() {
                Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let now = Instant::now();
            match msg {
                Ok(Msg::Ask { jail, name, at }) => names.ask(jail, name, at, now, &mut out),
                Ok(Msg::Done { name, result }) => names.done(name, result, now, &mut out),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            names.expire(now);
            if !out.is_empty() {
                let failures = std::mem::take(&mut out);
                if engine
                    .send(Event::Lines {
                        failures,
                        checkpoint: None,
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    })?;
    Ok(Asker { tx })
}
