//! The peers' decisions in from the stream: a consumer of our own from the
//! oldest message the stream keeps (the catch-up), then live. It is an
//! ephemeral pull consumer with a short idle heartbeat, made again by this
//! file (not by async-nats's ordered consumer, whose 15 s heartbeat and
//! two missed beats kept a node deaf for up to a minute after the server
//! holding its consumer died): a missed beat, a gap in its sequence or any
//! error makes it again from the message after the last one read. Every
//! message already delivered is read before anything is handed over (a
//! peer's `ban -` arrives as a burst of batches: one engine request for
//! them all, not one per message), but nothing waits for more: a lone ban
//! is handed over as soon as it is read. Messages read together are
//! folded first (per jail, address and peer, the last
//! word wins), so a catch-up bans each address once, in few engine
//! requests, and never bans what its peer lifted since; then each is
//! judged by the limits and handed to the engine, bans as `Decision`s of
//! origin `fleet:<node>`, unbans as lifts of that peer's bans only.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use futures_util::{FutureExt, StreamExt};
use ipnet::IpNet;

use super::limits::{Limits, Refusal};
use super::message::{from_unix, read, unix_secs, Message, What};
use super::stats::Stats;
use crate::config::duration::MAX_DURATION;
use crate::daemon::origin::{Decision, Decisions};
use crate::store::{Origin, Peer};

/// Decisions folded at most before they are handed over: a peer's
/// `ban -` of 100,000 is one engine request.
const FOLD: usize = 100_000;

/// How long one pull request waits on the server; the server sends an
/// idle heartbeat every half of it. Two beats missed (2 s) and the
/// consumer is taken for lost (its server died, the stream moved) and
/// made again: a node hears its peers again a few seconds after a
/// cluster has a new stream leader.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// How long a lost consumer stays on the server before it removes it.
const INACTIVE: Duration = Duration::from_secs(10);

/// The pause before making the consumer again after `failures` failures
/// in a row: short at first (the new consumer usually works at once),
/// then at most a second, so a cluster's election is not waited out by
/// more than that.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis((100u64 << failures.min(4)).min(1000))
}

/// The last word of one peer on one address of one jail. The reason is
/// shared by every ban of a group (one peer's `ban -` says the same of
/// each address): made once per group, not once per address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    Ban { expires: u64, reason: Arc<str> },
    Unban,
}

/// The words of one peer in one jail, by address.
type Words = HashMap<IpNet, Word>;

/// The receiving side.
pub struct Receiver {
    pub node: String,
    pub prefix: String,
    pub stats: Arc<Stats>,
    pub limits: Limits,
    /// Per jail and peer: looked up once per message, not per address.
    folded: HashMap<(String, Peer), Words>,
    /// The addresses in `folded`.
    count: usize,
    /// The last stream sequence read, to resume after a consumer is lost.
    last: u64,
    /// Refusals of messages the stream stored before this time
    /// (nanoseconds since the epoch) are neither counted nor logged but at
    /// debug: a catch-up reads the whole stream again at every start, and
    /// the run that read them first counted them (`refused` is a counter
    /// to alert on: each restart raised it). 0: all are counted.
    counted_from: i128,
}

impl Receiver {
    pub fn new(node: String, prefix: String, stats: Arc<Stats>, limits: Limits) -> Receiver {
        Receiver {
            node,
            prefix,
            stats,
            limits,
            folded: HashMap::new(),
            count: 0,
            last: 0,
            counted_from: 0,
        }
    }

    /// Count refusals only of messages stored from `t` on.
    pub fn counting_from(mut self, t: std::time::SystemTime) -> Receiver {
        self.counted_from = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        self
    }

    /// Read the stream until the daemon stops; a consumer that fails is
    /// made again from the message after the last one read. `remake`
    /// finds the stream again (making it if it is gone: deleted by hand,
    /// or lost with a server of no replica), so that a fleet whose stream
    /// went away does not stay deaf until a restart.
    pub async fn run<F, Fut>(mut self, stream: Stream, remake: F, decisions: &Decisions)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Stream, String>>,
    {
        let mut failures = 0;
        let mut stream = stream;
        while !decisions.stopping() {
            let last = self.last;
            if let Err(e) = self.consume(&stream, decisions).await {
                if let Ok(mut again) = remake().await {
                    // A stream made anew numbers from 1: read it from its start.
                    let top = again.info().await.map_or(u64::MAX, |i| i.state.last_sequence);
                    if top < self.last {
                        tracing::warn!("fleet: the stream was made anew (its last message is {top}, this node had read {}): reading it from its start", self.last);
                        self.last = 0;
                    }
                    stream = again;
                }
                if self.last != last {
                    failures = 0;
                }
                let delay = retry_delay(failures);
                failures = failures.saturating_add(1);
                tracing::warn!(
                    "fleet: reading the stream failed ({e}); a new consumer from sequence {} in {} ms",
                    self.last + 1,
                    delay.as_millis()
                );
                self.stats.set_error(e);
                tokio::time::sleep(delay).await;
            }
        }
    }

    async fn consume(&mut self, stream: &Stream, decisions: &Decisions) -> Result<(), String> {
        let deliver_policy = if self.last == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: self.last + 1,
            }
        };
        // What async-nats's ordered consumer makes: one replica in memory,
        // no acks (order is checked below), gone when left.
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: format!("{}.>", self.prefix),
                deliver_policy,
                ack_policy: AckPolicy::None,
                max_deliver: 1,
                num_replicas: 1,
                memory_storage: true,
                inactive_threshold: INACTIVE,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot make a consumer: {e}"))?;
        if consumer.cached_info().num_pending == 0 && !self.stats.caught_up.swap(true, Ordering::Relaxed) {
            tracing::info!("fleet: the stream holds nothing to catch up on");
        }
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(500)
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_EXPIRES / 2)
            .messages()
            .await
            .map_err(|e| format!("cannot read messages: {e}"))?;
        if self.last > 0 && self.stats.clear_error() {
            tracing::info!("fleet: reading the stream again from sequence {}", self.last + 1);
        }
        // The consumer's own count: a message skipped means one lost.
        let mut delivered = 0;
        loop {
            // Wake now and then to see whether the daemon stops.
            let next = tokio::time::timeout(Duration::from_millis(500), messages.next()).await;
            if decisions.stopping() {
                return Ok(());
            }
            let Ok(mut next) = next else { continue };
            let mut pending = 0;
            // This message, then every one already delivered, up to a
            // fold's worth: handed over together.
            loop {
                let Some(message) = next else {
                    return Err("the consumer ended".into());
                };
                let message = message.map_err(|e| e.to_string())?;
                if let Ok(info) = message.info() {
                    if info.consumer_sequence != delivered + 1 {
                        return Err(format!(
                            "the consumer skipped from {delivered} to {} (stream sequence {})",
                            info.consumer_sequence, info.stream_sequence
                        ));
                    }
                    delivered = info.consumer_sequence;
                    let (seq, published) = (info.stream_sequence, info.published.unix_timestamp_nanos());
                    pending = info.pending;
                    self.last = seq;
                    let own = self.read(message.subject.as_str(), &message.payload, published);
                    if let Some(id) = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Msg-Id"))
                        .filter(|_| own)
                    {
                        self.own_echo(id.as_str());
                    }
                }
                if self.count >= FOLD {
                    break;
                }
                match messages.next().now_or_never() {
                    Some(more) => next = more,
                    None => break,
                }
            }
            if !self.hand_over(decisions) {
                return Ok(());
            }
            if pending == 0 && !self.stats.caught_up.swap(true, Ordering::Relaxed) {
                tracing::info!("fleet: caught up with the stream");
            }
        }
    }

    /// A message of this node's name that this run did not send, once
    /// caught up: another node uses the same `fleet.node` (cloned hosts
    /// default to the same host name), and each ignores the other's bans.
    /// Said once, and shown in `status`. `id`: the `Nats-Msg-Id` of a
    /// message [`Receiver::read`] found to be of this node's name.
    fn own_echo(&self, id: &str) {
        if !self.stats.caught_up.load(Ordering::Relaxed) {
            return;
        }
        if self.stats.sent.lock().unwrap_or_else(|e| e.into_inner()).contains(id) {
            return;
        }
        let mut twin = self.stats.twin.lock().unwrap_or_else(|e| e.into_inner());
        if twin.is_none() {
            let why = format!(
                "another node publishes as `{}` (message {id}): each ignores the other's bans; give each node its own fleet.node",
                self.node
            );
            tracing::error!("fleet: {why}");
            *twin = Some(why);
        }
    }

    /// One message: each of its decisions judged, then folded. True for a
    /// message of this node's own name, which is not judged (see
    /// [`Receiver::own_echo`]).
    fn read(&mut self, subject: &str, payload: &[u8], published: i128) -> bool {
        let fresh = published >= self.counted_from;
        let m = match read(&self.prefix, subject, payload) {
            Ok(read) => read,
            Err(e) => {
                Stats::add(&self.stats.received, 1);
                if fresh {
                    self.stats.refused(Refusal::Malformed);
                    tracing::warn!("fleet: message on {subject} refused: {e}");
                } else {
                    tracing::debug!("fleet: message on {subject} refused again: {e}");
                }
                return false;
            }
        };
        if m.node == self.node {
            // Before the catch-up ends: this node's bans the stream holds
            // already, not to be published again (publish.rs).
            if !self.stats.caught_up.load(Ordering::Relaxed) {
                let mut own = self.stats.own_stored.lock().unwrap_or_else(|e| e.into_inner());
                for (net, what) in m.items.iter().flatten() {
                    if matches!(what, What::Ban { .. }) {
                        own.insert(Message::id_of(&m.node, &m.jail, net, what));
                    }
                }
            }
            return true;
        }
        Stats::add(&self.stats.received, m.items.len() as u64);
        let Some(peer) = Peer::of(&m.node) else {
            for _ in m.items.iter().filter(|_| fresh) {
                self.stats.refused(Refusal::Malformed);
            }
            return false;
        };
        let Receiver {
            folded,
            count,
            limits,
            stats,
            ..
        } = self;
        let jail = m.jail.as_str();
        let words = folded.entry((m.jail.clone(), peer)).or_default();
        let before = words.len();
        words.reserve(m.items.len());
        // The reason of the group in hand: made again only when the
        // origin or reason changes, not for every address.
        let mut said: Option<(String, Option<String>, Arc<str>)> = None;
        for item in m.items {
            let (net, what) = match item {
                Ok(decision) => decision,
                Err(e) => {
                    if fresh {
                        stats.refused(Refusal::Malformed);
                        tracing::warn!("fleet: a decision on {subject} refused: {e}");
                    }
                    continue;
                }
            };
            let key = net.trunc();
            let What::Ban {
                expires,
                origin,
                reason,
            } = what
            else {
                words.insert(key, Word::Unban);
                continue;
            };
            if let Err(why) = limits.judge(&m.node, jail, &net, published) {
                if !fresh {
                    continue;
                }
                stats.refused(why);
                tracing::info!(
                    jail,
                    "fleet: ban of {} from {} refused ({})",
                    crate::address::show(&net),
                    m.node,
                    why.as_str()
                );
                continue;
            }
            let reason = match &said {
                Some((o, r, shared)) if *o == origin && *r == reason => shared.clone(),
                _ => {
                    let shared: Arc<str> = match &reason {
                        Some(r) => format!("{}: {r}", peer_text(peer)),
                        None => format!("{}: {origin}", peer_text(peer)),
                    }
                    .into();
                    said = Some((origin, reason, shared.clone()));
                    shared
                }
            };
            // A peer's later ban of the same address: the longer stands.
            let longer = match words.get(&key) {
                Some(Word::Ban { expires: e, .. }) => expires > *e,
                _ => true,
            };
            if longer {
                words.insert(key, Word::Ban { expires, reason });
            }
        }
        *count += words.len() - before;
        false
    }

    /// Hand what is folded to the engine: bans grouped into decisions of
    /// one jail, peer, end and reason; unbans into lifts of one jail and
    /// peer. False once the daemon stops.
    fn hand_over(&mut self, decisions: &Decisions) -> bool {
        let now = SystemTime::now();
        let mut bans: BTreeMap<(String, Peer, u64, Arc<str>), Vec<IpNet>> = BTreeMap::new();
        let mut lifts: BTreeMap<(String, Peer), Vec<IpNet>> = BTreeMap::new();
        self.count = 0;
        for ((jail, peer), words) in self.folded.drain() {
            // Grouped here first: the jail's name is not compared per address.
            let mut groups: HashMap<(u64, Arc<str>), Vec<IpNet>> = HashMap::new();
            let mut lifted = Vec::new();
            for (net, word) in words {
                match word {
                    Word::Ban { expires, reason } => {
                        if from_unix(expires) <= now {
                            Stats::add(&self.stats.expired, 1);
                            continue;
                        }
                        groups.entry((expires, reason)).or_default().push(net);
                    }
                    Word::Unban => lifted.push(net),
                }
            }
            if !lifted.is_empty() {
                lifts.entry((jail.clone(), peer)).or_default().append(&mut lifted);
            }
            for ((expires, reason), nets) in groups {
                bans.insert((jail.clone(), peer, expires, reason), nets);
            }
        }
        for ((jail, peer), nets) in lifts {
            Stats::add(&self.stats.lifted, nets.len() as u64);
            if !decisions.lift(jail, nets, Origin::Fleet(peer)) {
                return false;
            }
        }
        for ((jail, peer, expires, reason), nets) in bans {
            // A peer's clock or config may ask for longer than any ban
            // nftban makes: cut to that, not refused whole.
            let left = expires.saturating_sub(unix_secs(now)).clamp(1, MAX_DURATION.as_secs());
            Stats::add(&self.stats.applied, nets.len() as u64);
            let decision = Decision {
                jail,
                nets,
                bantime: Some(Duration::from_secs(left)),
                origin: Origin::Fleet(peer),
                reason: Some(reason.to_string()),
            };
            if !decisions.send(decision) {
                return false;
            }
        }
        true
    }
}

fn peer_text(peer: Peer) -> &'static str {
    Origin::Fleet(peer).as_str()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc::{sync_channel, Receiver as Rx};

    use super::*;
    use crate::config::{Config, Credentials, FleetSpec};
    use crate::daemon::engine::Engine;
    use crate::daemon::origin::fleet::message::Out;
    use crate::daemon::Event;
    use crate::firewall::memory::Memory;

    fn spec() -> FleetSpec {
        FleetSpec {
            servers: vec!["nats://127.0.0.1:4222".into()],
            node: "b".into(),
            credentials: Credentials::None,
            tls: None,
            stream: "NFTBAN".into(),
            subject_prefix: "nftban".into(),
            publish: vec!["sshd".into()],
            accept: BTreeMap::from([("sshd".into(), vec!["192.0.2.0/24".parse().unwrap()])]),
            retention: Duration::from_secs(3600),
            replicas: 1,
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            rate: "1000000/second".parse().unwrap(),
            burst: 1_000_000,
        }
    }

    fn receiver() -> Receiver {
        let spec = spec();
        Receiver::new(
            "b".into(),
            "nftban".into(),
            Arc::new(Stats::default()),
            Limits::new(&spec),
        )
    }

    fn decisions() -> (Decisions, Rx<Event>) {
        let (tx, rx) = sync_channel(1000);
        let d = Decisions {
            tx,
            stop: Arc::new(AtomicBool::new(false)),
        };
        (d, rx)
    }

    /// Peer `a`'s bans of `n` addresses from `first`, ending at `expires`,
    /// as its publisher sends them.
    fn burst(first: u32, n: u32, expires: u64) -> Vec<Out> {
        let items = (first..first + n)
            .map(|i| {
                let net = IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
                ("sshd".to_string(), net, What::ban(from_unix(expires), "manual", None))
            })
            .collect();
        Out::of("a", items)
    }

    /// What the engine was handed: (nets of each decision, nets of each lift).
    fn handed(rx: &Rx<Event>) -> (Vec<Decision>, Vec<usize>) {
        let (mut bans, mut lifts) = (Vec::new(), Vec::new());
        while let Ok(ev) = rx.try_recv() {
            match ev {
                Event::Decided(d) => bans.push(d),
                Event::Lifted { nets, .. } => lifts.push(nets.len()),
                _ => panic!("not a fleet event"),
            }
        }
        (bans, lifts)
    }

    /// A peer's burst of 20,000 bans in three batches, and a lone ban
    /// besides, read together: one engine decision with every address,
    /// not one per message or per ban; then one kernel batch.
    #[test]
    fn a_burst_of_batches_is_one_decision_and_one_kernel_batch() {
        let expires = unix_secs(SystemTime::now()) + 3600;
        let mut r = receiver();
        let (d, rx) = decisions();
        let mut out = burst(0, 20_000, expires);
        out.extend(burst(30_000, 1, expires));
        assert_eq!(out.len(), 4, "three batches and a version 1 message");
        for m in &out {
            r.read(&m.subject("nftban"), &m.to_json(), 0);
        }
        assert!(r.hand_over(&d));
        let (bans, lifts) = handed(&rx);
        assert!(lifts.is_empty());
        assert_eq!(bans.len(), 1, "one decision for the burst");
        assert_eq!(bans[0].nets.len(), 20_001);
        assert_eq!(bans[0].origin, Origin::Fleet(Peer::of("a").unwrap()));
        assert_eq!(bans[0].reason.as_deref(), Some("fleet:a: manual"));
        assert_eq!(r.stats.received.load(Ordering::Relaxed), 20_001);

        // The engine makes it one history write and one kernel batch.
        let config = Config::from_text(
            Path::new("/x/nftban.yaml"),
            "jails:\n  sshd: {ruleset: sshd, files: [/var/log/auth.log], bantime: 1h}\n",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut e = Engine::new(&config, Box::new(Memory::new()))
            .with_store(crate::store::Store::open(&dir.path().join("db")).unwrap());
        e.start(&config).unwrap();
        let before = e.kernel_batches();
        let result = e.decided(bans.into_iter().next().unwrap(), SystemTime::now()).unwrap();
        assert_eq!(result.banned.len(), 20_001);
        assert_eq!(e.kernel_batches() - before, 1, "one netlink batch");
    }

    /// A peer's burst is folded with one reason per message for all its
    /// addresses (not one made per address), and the count that bounds a
    /// fold is of the addresses held: a ban told again is counted once,
    /// and the count is back to zero once handed over.
    #[test]
    fn a_burst_shares_its_reason_and_counts_each_address_once() {
        let expires = unix_secs(SystemTime::now()) + 3600;
        let mut r = receiver();
        let (d, rx) = decisions();
        // Three batches, then the first 5,000 addresses again, longer.
        let out: Vec<Out> = burst(0, 20_000, expires)
            .into_iter()
            .chain(burst(0, 5_000, expires + 60))
            .collect();
        assert_eq!(out.len(), 4);
        for m in &out {
            r.read(&m.subject("nftban"), &m.to_json(), 0);
        }
        assert_eq!(r.count, 20_000);
        let reasons: std::collections::HashSet<*const u8> = r
            .folded
            .values()
            .flat_map(|words| words.values())
            .filter_map(|w| match w {
                Word::Ban { reason, .. } => Some(reason.as_ptr()),
                Word::Unban => None,
            })
            .collect();
        assert!(reasons.len() <= out.len(), "{} reasons made", reasons.len());
        assert!(r.hand_over(&d));
        assert_eq!(r.count, 0);
        let (bans, _) = handed(&rx);
        let sizes: Vec<(u64, usize)> = bans
            .iter()
            // In whole minutes, rounded: a second may pass between the
            // messages' making and their handing over.
            .map(|b| ((b.bantime.unwrap().as_secs() + 30) / 60, b.nets.len()))
            .collect();
        assert_eq!(sizes, [(60, 15_000), (61, 5_000)], "the longer ban stands");
        assert!(bans.iter().all(|b| b.reason.as_deref() == Some("fleet:a: manual")));
    }

    /// Folding keeps the last word of a peer on an address across the
    /// messages read together: a ban lifted later in the same read is
    /// lifted, not banned; ended bans are skipped.
    #[test]
    fn a_drain_folds_bans_unbans_and_ended_ones() {
        let now = unix_secs(SystemTime::now());
        let mut r = receiver();
        let (d, rx) = decisions();
        let net = |s: &str| -> IpNet { s.parse().unwrap() };
        let items = vec![
            (
                "sshd".to_string(),
                net("198.51.100.1/32"),
                What::ban(from_unix(now + 600), "auto", None),
            ),
            (
                "sshd".to_string(),
                net("198.51.100.2/32"),
                What::ban(from_unix(now + 600), "auto", None),
            ),
            (
                "sshd".to_string(),
                net("198.51.100.3/32"),
                What::ban(from_unix(now - 5), "auto", None),
            ),
            (
                "sshd".to_string(),
                net("192.0.2.7/32"),
                What::ban(from_unix(now + 600), "auto", None),
            ),
        ];
        for m in Out::of("a", items) {
            r.read(&m.subject("nftban"), &m.to_json(), 0);
        }
        let lift = Out::of(
            "a",
            vec![("sshd".to_string(), net("198.51.100.2/32"), What::Unban { at: 1 })],
        );
        r.read(&lift[0].subject("nftban"), &lift[0].to_json(), 0);
        assert!(r.hand_over(&d));
        let (bans, lifts) = handed(&rx);
        assert_eq!(lifts, [1]);
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].nets, [net("198.51.100.1/32")]);
        assert_eq!(r.stats.expired.load(Ordering::Relaxed), 1);
        assert_eq!(r.stats.status(&spec()).refused.get("ignoreip"), Some(&1));
    }

    /// A catch-up reads the whole stream again at each start: refusals of
    /// messages stored before this start (counted by the run that read
    /// them first) are judged as ever but not counted again; a refusal of
    /// a message stored since is. Before, each restart raised `refused`, a
    /// counter the docs say to alert on.
    #[test]
    fn a_catch_up_does_not_count_old_refusals_again() {
        let start = SystemTime::now();
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let d = Decisions {
            tx,
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        let mut r = Receiver::new(
            "b".into(),
            "nftban".into(),
            Arc::new(Stats::default()),
            Limits::new(&spec()),
        )
        .counting_from(start);
        let at = |t: SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i128;
        let net = |s: &str| -> IpNet { s.parse().unwrap() };
        let now = unix_secs(start);
        let ignored = Out::of(
            "a",
            vec![(
                "sshd".to_string(),
                net("192.0.2.7/32"),
                What::ban(from_unix(now + 600), "auto", None),
            )],
        );
        r.read(
            &ignored[0].subject("nftban"),
            &ignored[0].to_json(),
            at(start) - 1_000_000_000,
        );
        r.read("nftban.a.sshd", b"not json", at(start) - 1);
        assert!(r.stats.status(&spec()).refused.is_empty());
        r.read(&ignored[0].subject("nftban"), &ignored[0].to_json(), at(start) + 1);
        assert_eq!(r.stats.status(&spec()).refused.get("ignoreip"), Some(&1));
        assert!(r.hand_over(&d));
        assert!(handed(&rx).0.is_empty(), "refused all the same");
    }

    /// A message under this node's name that this run did not send, once
    /// caught up, is a twin's (cloned hosts share a host name, the default
    /// node name): said in `status`. This run's own echoes, and the
    /// catch-up of its earlier runs' messages, are not.
    #[test]
    fn a_twin_publishing_under_this_nodes_name_is_said() {
        let mut r = Receiver::new(
            "b".into(),
            "nftban".into(),
            Arc::new(Stats::default()),
            Limits::new(&spec()),
        );
        r.own_echo("b/sshd/198.51.100.1/b1");
        r.stats.caught_up.store(true, Ordering::Relaxed);
        r.stats.sent.lock().unwrap().insert("b/sshd/198.51.100.2/b1".into());
        r.own_echo("b/sshd/198.51.100.2/b1");
        // Another node's message is judged, not taken for an echo.
        let net: IpNet = "198.51.100.3/32".parse().unwrap();
        let later = from_unix(unix_secs(SystemTime::now()) + 600);
        for (node, own) in [("a", false), ("b", true)] {
            let m = Out::of(node, vec![("sshd".to_string(), net, What::ban(later, "auto", None))]);
            assert_eq!(r.read(&m[0].subject("nftban"), &m[0].to_json(), 0), own, "{node}");
        }
        assert_eq!(r.stats.status(&spec()).error, None);
        r.own_echo("b/sshd/198.51.100.4/b1");
        let e = r.stats.status(&spec()).error.unwrap();
        assert!(
            e.starts_with("another node publishes as `b` (message b/sshd/198.51.100.4/b1)"),
            "{e}"
        );
        // It stays shown when other errors come and go.
        r.stats.set_error("disconnected".into());
        assert!(r.stats.clear_error());
        assert!(r
            .stats
            .status(&spec())
            .error
            .unwrap()
            .starts_with("another node publishes as `b`"));
    }

    /// A lost consumer is made again soon, then at most every second:
    /// never a pause that outlasts a cluster's election by much.
    #[test]
    fn a_lost_consumer_is_made_again_within_a_second() {
        let delays: Vec<u128> = (0..8).map(|n| retry_delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(1));
    }

    /// This node's own messages are never applied; read before the
    /// catch-up ends, their bans' ids are kept for the publisher.
    #[test]
    fn own_bans_read_in_the_catch_up_are_kept_for_the_publisher() {
        let expires = unix_secs(SystemTime::now()) + 3600;
        let mut r = Receiver::new(
            "a".into(),
            "nftban".into(),
            Arc::new(Stats::default()),
            Limits::new(&spec()),
        );
        let (d, rx) = decisions();
        for m in burst(0, 3, expires) {
            r.read(&m.subject("nftban"), &m.to_json(), 0);
        }
        assert!(r.hand_over(&d));
        assert!(handed(&rx).0.is_empty(), "its own bans are not applied");
        let own = r.stats.own_stored.lock().unwrap().clone();
        assert_eq!(own.len(), 3);
        assert!(own.contains(&format!("a/sshd/10.0.0.2/b{expires}")), "{own:?}");
        r.stats.caught_up.store(true, Ordering::Relaxed);
        for m in burst(10, 1, expires) {
            r.read(&m.subject("nftban"), &m.to_json(), 0);
        }
        assert_eq!(r.stats.own_stored.lock().unwrap().len(), 3, "not after the catch-up");
    }
}
