//! The peers' decisions in from the stream: an ordered consumer from the
//! oldest message the stream keeps (the catch-up), then live. Messages
//! read together are folded first (per jail, address and peer, the last
//! word wins), so a catch-up bans each address once, in few engine
//! requests, and never bans what its peer lifted since; then each is
//! judged by the limits and handed to the engine, bans as `Decision`s of
//! origin `fleet:<node>`, unbans as lifts of that peer's bans only.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt;
use ipnet::IpNet;

use super::limits::{Limits, Refusal};
use super::message::{from_unix, unix_secs, Message, What};
use super::stats::Stats;
use crate::config::duration::MAX_DURATION;
use crate::daemon::origin::{Decision, Decisions};
use crate::store::{Origin, Peer};

/// Messages folded at most before they are handed over.
const FOLD: usize = 10_000;

/// The last word of one peer on one address of one jail.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    Ban { expires: u64, reason: String },
    Unban,
}

/// The receiving side.
pub struct Receiver {
    pub node: String,
    pub prefix: String,
    pub stats: Arc<Stats>,
    pub limits: Limits,
    folded: HashMap<(String, IpNet, Peer), Word>,
    /// The last stream sequence read, to resume after a consumer is lost.
    last: u64,
}

impl Receiver {
    pub fn new(node: String, prefix: String, stats: Arc<Stats>, limits: Limits) -> Receiver {
        Receiver {
            node,
            prefix,
            stats,
            limits,
            folded: HashMap::new(),
            last: 0,
        }
    }

    /// Read the stream until the daemon stops; a consumer that fails is
    /// made again from the message after the last one read.
    pub async fn run(mut self, stream: Stream, decisions: &Decisions) {
        while !decisions.stopping() {
            if let Err(e) = self.consume(&stream, decisions).await {
                tracing::warn!("fleet: reading the stream failed ({e}); reading on in a second");
                self.stats.set_error(e);
                tokio::time::sleep(Duration::from_secs(1)).await;
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
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: format!("{}.>", self.prefix),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot make a consumer: {e}"))?;
        if consumer.cached_info().num_pending == 0 && !self.stats.caught_up.swap(true, Ordering::Relaxed) {
            tracing::info!("fleet: the stream holds nothing to catch up on");
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| format!("cannot read messages: {e}"))?;
        loop {
            // Wake now and then to see whether the daemon stops.
            let next = tokio::time::timeout(Duration::from_millis(500), messages.next()).await;
            if decisions.stopping() {
                return Ok(());
            }
            let Ok(next) = next else { continue };
            let Some(message) = next else {
                return Err("the consumer ended".into());
            };
            let message = message.map_err(|e| e.to_string())?;
            let Ok(info) = message.info() else {
                continue;
            };
            let (seq, pending, published) = (
                info.stream_sequence,
                info.pending,
                info.published.unix_timestamp_nanos(),
            );
            self.last = seq;
            self.read(message.subject.as_str(), &message.payload, published);
            if pending == 0 || self.folded.len() >= FOLD {
                if !self.hand_over(decisions) {
                    return Ok(());
                }
                if pending == 0 && !self.stats.caught_up.swap(true, Ordering::Relaxed) {
                    tracing::info!("fleet: caught up with the stream");
                }
            }
        }
    }

    /// One message: judged, then folded.
    fn read(&mut self, subject: &str, payload: &[u8], published: i128) {
        let (m, net) = match Message::read(&self.prefix, subject, payload) {
            Ok(read) => read,
            Err(e) => {
                Stats::add(&self.stats.received, 1);
                self.stats.refused(Refusal::Malformed);
                tracing::warn!("fleet: message on {subject} refused: {e}");
                return;
            }
        };
        if m.node == self.node {
            return;
        }
        Stats::add(&self.stats.received, 1);
        let Some(peer) = Peer::of(&m.node) else {
            self.stats.refused(Refusal::Malformed);
            return;
        };
        let key = (m.jail.clone(), net.trunc(), peer);
        match m.what {
            What::Unban { .. } => {
                self.folded.insert(key, Word::Unban);
            }
            What::Ban {
                expires,
                origin,
                reason,
            } => {
                if let Err(why) = self.limits.judge(&m.node, &m.jail, &net, published) {
                    self.stats.refused(why);
                    tracing::info!(jail = %m.jail, "fleet: ban of {} from {} refused ({})", m.net, m.node, why.as_str());
                    return;
                }
                let reason = match reason {
                    Some(r) => format!("{}: {r}", peer_text(peer)),
                    None => format!("{}: {origin}", peer_text(peer)),
                };
                // A peer's later ban of the same address: the longer stands.
                let longer = match self.folded.get(&key) {
                    Some(Word::Ban { expires: e, .. }) => expires > *e,
                    _ => true,
                };
                if longer {
                    self.folded.insert(key, Word::Ban { expires, reason });
                }
            }
        }
    }

    /// Hand what is folded to the engine: bans grouped into decisions of
    /// one jail, peer, end and reason; unbans into lifts of one jail and
    /// peer. False once the daemon stops.
    fn hand_over(&mut self, decisions: &Decisions) -> bool {
        let now = SystemTime::now();
        let mut bans: BTreeMap<(String, Peer, u64, String), Vec<IpNet>> = BTreeMap::new();
        let mut lifts: BTreeMap<(String, Peer), Vec<IpNet>> = BTreeMap::new();
        for ((jail, net, peer), word) in self.folded.drain() {
            match word {
                Word::Ban { expires, reason } => {
                    if from_unix(expires) <= now {
                        Stats::add(&self.stats.expired, 1);
                        continue;
                    }
                    bans.entry((jail, peer, expires, reason)).or_default().push(net);
                }
                Word::Unban => lifts.entry((jail, peer)).or_default().push(net),
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
                reason: Some(reason),
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
