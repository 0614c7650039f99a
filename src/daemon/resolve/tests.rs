//! The resolver with a lookup double: the cache (names and their absence),
//! the timeout, the bounds, and `ignoreip` applying to what names give.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::names::Names;
use super::{Limits, Lookup, Msg, NameStats};
use crate::daemon::outbox::Failure;

/// Answers from a table; a name listed in `held` blocks until the test
/// releases it (a resolver that does not answer). Counts the lookups.
#[derive(Default)]
struct Table {
    answers: HashMap<String, Vec<IpAddr>>,
    held: Mutex<Option<mpsc::Receiver<()>>>,
    asked: Mutex<Vec<String>>,
}

impl Lookup for Table {
    fn lookup(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        self.asked.lock().unwrap().push(name.to_string());
        if name.starts_with("slow") {
            if let Some(rx) = self.held.lock().unwrap().as_ref() {
                let _ = rx.recv();
            }
        }
        match self.answers.get(name) {
            Some(a) => Ok(a.clone()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such name")),
        }
    }
}

fn table(entries: &[(&str, &[&str])]) -> Table {
    Table {
        answers: entries
            .iter()
            .map(|(n, a)| (n.to_string(), a.iter().map(|a| a.parse().unwrap()).collect()))
            .collect(),
        ..Table::default()
    }
}

const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(3),
    lookups: 2,
    waiting: 4,
    cache: 8,
    ttl: Duration::from_secs(300),
    negative_ttl: Duration::from_secs(60),
    addresses: 16,
};

struct Bed {
    names: Names<Table>,
    done: Receiver<Msg>,
    stats: Vec<Arc<NameStats>>,
    lookup: Arc<Table>,
    out: Vec<Failure>,
}

fn bed(lookup: Table, limits: Limits) -> Bed {
    let (tx, done) = mpsc::sync_channel(64);
    let stats: Vec<Arc<NameStats>> = vec![Arc::default(), Arc::default()];
    let lookup = Arc::new(lookup);
    Bed {
        names: Names::new(Arc::clone(&lookup), limits, stats.clone(), tx),
        done,
        stats,
        lookup,
        out: Vec::new(),
    }
}

impl Bed {
    fn ask(&mut self, jail: usize, name: &str, at: SystemTime, now: Instant) {
        self.names.ask(jail, name.to_string(), at, now, &mut self.out);
    }

    /// The next lookup's answer handed to the resolver, as its thread does.
    fn answer(&mut self, now: Instant) {
        match self
            .done
            .recv_timeout(Duration::from_secs(10))
            .expect("a lookup answers")
        {
            Msg::Done { name, result } => self.names.done(name, result, now, &mut self.out),
            Msg::Ask { .. } => panic!("not an answer"),
        }
    }

    fn failures(&mut self) -> Vec<(usize, String, SystemTime)> {
        self.out
            .drain(..)
            .map(|f| (f.jail, f.net.addr().to_string(), f.at))
            .collect()
    }

    fn count(&self, jail: usize, c: fn(&NameStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        c(&self.stats[jail]).load(Ordering::Relaxed)
    }
}

/// A name's every address gets the line's failure, dated as the line; the
/// next line of the same name is answered from the cache without a
/// lookup; a name with no address is cached too (negative), until its
/// shorter time runs out.
#[test]
fn every_address_gets_the_failure_and_answers_are_cached() {
    let mut b = bed(
        table(&[("attacker.test", &["198.51.100.7", "2001:db8::7", "198.51.100.7"])]),
        LIMITS,
    );
    let t0 = Instant::now();
    let line = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    b.ask(0, "attacker.test", line, t0);
    assert!(b.failures().is_empty(), "nothing before the answer");
    b.answer(t0);
    assert_eq!(
        b.failures(),
        [(0, "198.51.100.7".into(), line), (0, "2001:db8::7".into(), line)],
        "each address once, the line's time kept"
    );
    b.ask(1, "attacker.test", line, t0 + Duration::from_secs(10));
    assert_eq!(b.failures().len(), 2, "answered from the cache");
    assert!(b.done.try_recv().is_err(), "no second lookup");
    assert_eq!((b.count(1, |s| &s.cache_hits), b.count(1, |s| &s.resolved)), (1, 1));
    assert_eq!(b.count(0, |s| &s.lookups), 1);

    b.ask(0, "nowhere.test", line, t0);
    b.answer(t0);
    b.ask(0, "nowhere.test", line, t0 + Duration::from_secs(59));
    assert!(b.failures().is_empty());
    assert!(b.done.try_recv().is_err(), "the absence is cached");
    assert_eq!(b.count(0, |s| &s.unresolved), 2);
    b.ask(0, "nowhere.test", line, t0 + Duration::from_secs(61));
    b.answer(t0 + Duration::from_secs(61));
    assert_eq!(
        b.lookup.asked.lock().unwrap().len(),
        3,
        "asked again once the negative entry ran out"
    );
    // Past its time, a found name is asked again too.
    b.ask(0, "attacker.test", line, t0 + Duration::from_secs(301));
    b.answer(t0 + Duration::from_secs(301));
    assert_eq!(b.lookup.asked.lock().unwrap().len(), 4);
}

/// Lines of a name whose lookup does not answer in time are dropped and
/// counted as timeouts; the name is not asked again for a while, and the
/// late answer still fills the cache for later lines.
#[test]
fn a_lookup_that_outlives_the_timeout_is_abandoned() {
    let (release, held) = mpsc::channel();
    let lookup = Table {
        held: Mutex::new(Some(held)),
        ..table(&[("slow.test", &["203.0.113.9"])])
    };
    let mut b = bed(lookup, LIMITS);
    let t0 = Instant::now();
    let line = SystemTime::now();
    b.ask(0, "slow.test", line, t0);
    b.ask(1, "slow.test", line, t0 + Duration::from_secs(1));
    assert_eq!(b.names.next_deadline(), Some(t0 + LIMITS.timeout));
    b.names.expire(t0 + Duration::from_secs(2));
    assert_eq!(b.names.waiting(), 2, "not yet");
    b.names.expire(t0 + LIMITS.timeout);
    assert_eq!(b.names.waiting(), 0);
    assert_eq!((b.count(0, |s| &s.timeouts), b.count(1, |s| &s.timeouts)), (1, 1));
    assert_eq!(b.names.next_deadline(), None);
    b.ask(0, "slow.test", line, t0 + Duration::from_secs(4));
    assert!(b.failures().is_empty(), "a timed-out name is not waited for again");
    assert_eq!(b.names.running, 1, "the abandoned lookup still holds its thread");
    release.send(()).unwrap();
    b.answer(t0 + Duration::from_secs(5));
    assert!(b.failures().is_empty(), "its lines were given up");
    assert_eq!(b.names.running, 0);
    b.ask(0, "slow.test", line, t0 + Duration::from_secs(6));
    assert_eq!(
        b.failures(),
        [(0, "203.0.113.9".into(), line)],
        "the late answer is cached"
    );
}

/// At most `lookups` threads run and `waiting` lines wait: more lines are
/// dropped and counted, never queued without bound; a name waiting for a
/// free thread starts when one is free.
#[test]
fn lookups_and_waiting_lines_are_bounded() {
    let (release, held) = mpsc::channel();
    let lookup = Table {
        held: Mutex::new(Some(held)),
        ..table(&[
            ("slow1.test", &["203.0.113.1"]),
            ("slow2.test", &["203.0.113.2"]),
            ("c.test", &["203.0.113.3"]),
        ])
    };
    let mut b = bed(lookup, LIMITS);
    let t0 = Instant::now();
    let line = SystemTime::now();
    b.ask(0, "slow1.test", line, t0);
    b.ask(0, "slow2.test", line, t0);
    b.ask(0, "c.test", line, t0);
    assert_eq!(b.names.running, 2, "two threads at most");
    b.ask(0, "c.test", line, t0);
    assert_eq!(b.names.waiting(), 4);
    b.ask(0, "d.test", line, t0);
    b.ask(1, "c.test", line, t0);
    assert_eq!((b.count(0, |s| &s.dropped), b.count(1, |s| &s.dropped)), (1, 1));
    assert_eq!(b.count(0, |s| &s.lookups), 2, "c.test waits for a thread");
    release.send(()).unwrap();
    b.answer(t0);
    // Whichever slow lookup took the release first (the threads race
    // for the held channel).
    let first = b.failures();
    assert_eq!(first.len(), 1);
    assert_eq!(b.count(0, |s| &s.lookups), 3, "a free thread takes c.test");
    // The other slow lookup and c.test answer, in either order.
    release.send(()).unwrap();
    b.answer(t0);
    b.answer(t0);
    let mut got: Vec<String> = first.into_iter().chain(b.failures()).map(|f| f.1).collect();
    got.sort();
    assert_eq!(got, ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.3"]);
    assert_eq!(b.names.waiting(), 0);
}

/// Numbers are not names (getaddrinfo would read `3232235777` as an
/// address); the cache holds at most its size.
#[test]
fn numbers_are_not_looked_up_and_the_cache_is_bounded() {
    let entries: Vec<(String, Vec<&str>)> = (0..20).map(|i| (format!("n{i}.test"), vec!["198.51.100.1"])).collect();
    let refs: Vec<(&str, &[&str])> = entries.iter().map(|(n, a)| (n.as_str(), a.as_slice())).collect();
    let mut b = bed(table(&refs), LIMITS);
    let t0 = Instant::now();
    b.ask(0, "3232235777", SystemTime::now(), t0);
    assert_eq!(b.count(0, |s| &s.unresolved), 1);
    assert!(b.lookup.asked.lock().unwrap().is_empty());
    for i in 0..20 {
        b.ask(0, &format!("n{i}.test"), SystemTime::now(), t0);
        b.answer(t0 + Duration::from_secs(i));
    }
    assert_eq!(b.names.cache.len(), LIMITS.cache);
}

/// The whole path: lines naming hosts through the resolver's thread into
/// an engine (memory kernel), where `ignoreip` applies to the addresses
/// a name gives as to any address: the name that points into `ignoreip`
/// bans nobody; the other one is banned after maxretry lines.
#[test]
fn resolved_addresses_meet_ignoreip_in_the_engine() {
    use crate::config::Config;
    use crate::daemon::{Engine, Event};
    use crate::firewall::memory::Memory;
    let config = Config::from_text(
        std::path::Path::new("/x/nftban.yaml"),
        "defaults: {findtime: 10m, maxretry: 2, bantime: 1h, ignoreip: [192.0.2.0/24]}\n\
         jails:\n  asterisk:\n    ruleset: asterisk\n    files: [/var/log/asterisk/messages]\n    usedns: yes\n",
    )
    .unwrap();
    assert!(config.jails[0].usedns.resolves());
    let mut engine = Engine::new(&config, Box::new(Memory::new()));
    engine.start(&config).unwrap();
    let stats = vec![Arc::new(NameStats::default())];
    engine.attach_names(0, stats[0].clone(), true);
    let (tx, rx) = mpsc::sync_channel(16);
    let lookup = table(&[
        ("friend.test", &["192.0.2.5"]),
        ("attacker.test", &["198.51.100.7", "192.0.2.6"]),
    ]);
    let asker = super::spawn(lookup, LIMITS, stats.clone(), tx).unwrap();
    for name in ["friend.test", "attacker.test", "friend.test", "attacker.test"] {
        asker.ask(0, name, SystemTime::now(), &stats[0]);
    }
    let mut failures = 0;
    while failures < 6 {
        match rx.recv_timeout(Duration::from_secs(10)).expect("the resolver answers") {
            Event::Lines {
                failures: f,
                checkpoint,
            } => {
                assert!(checkpoint.is_none(), "the resolver saves no position");
                failures += f.len();
                for f in f {
                    engine.failure_of(f.jail, f.net, f.at, SystemTime::now());
                }
            }
            _ => panic!("not failures"),
        }
    }
    engine.flush(SystemTime::now());
    let st = engine.jail_status("asterisk", SystemTime::now(), false).unwrap();
    let banned: Vec<&str> = st.banned.iter().map(|b| b.ip.as_str()).collect();
    assert_eq!(banned, ["198.51.100.7"]);
    let names = st.names.expect("the jail's account of names");
    // The second line of a name comes before or after its answer: waiting
    // for the same lookup, or from the cache; one lookup per name anyway.
    assert_eq!((names.usedns, names.lookups, names.resolved), (true, 2, 4));
}

/// What cannot be a name (past 253 bytes, no letter) is counted by the
/// reader's handle before anything is copied or queued; a full queue
/// drops the line and counts it, never waits.
#[test]
fn the_readers_handle_refuses_non_names_and_never_waits() {
    let (tx, rx) = mpsc::sync_channel(1);
    let asker = super::Asker { tx };
    let stats = NameStats::default();
    let long = "a.".repeat(500) + "test";
    asker.ask(0, &long, SystemTime::now(), &stats);
    asker.ask(0, "3232235777", SystemTime::now(), &stats);
    assert_eq!(stats.unresolved.load(Ordering::Relaxed), 2);
    assert!(rx.try_recv().is_err(), "nothing queued");
    asker.ask(0, "a.test", SystemTime::now(), &stats);
    asker.ask(0, "b.test", SystemTime::now(), &stats);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 1, "the queue of one was full");
    assert!(matches!(rx.try_recv(), Ok(Msg::Ask { name, .. }) if name == "a.test"));
}
