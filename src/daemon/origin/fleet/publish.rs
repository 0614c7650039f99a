//! This node's decisions out to the fleet, in order, each message under
//! its `Nats-Msg-Id`. Decisions told together (an engine flush: a burst of
//! a log, a `ban -` of 100,000) and those that waited meanwhile go out as
//! few batches (version 2, [`Out::of`]), published in a window whose acks
//! are awaited together; a lone decision goes out at once, as version 1. What cannot be published (NATS away, a cluster electing
//! a leader) waits here and is sent again until the stream stores it; a
//! retry of what was stored after all is dropped by the stream as a
//! duplicate. A stop or crash loses what waits here, but not the bans:
//! the history restores them at the next start, and the engine tells them
//! again, to be published then (docs/fleet.md).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use tokio::sync::mpsc::UnboundedReceiver;

use super::message::{Message, Out, What};
use super::stats::{State, Stats};
use crate::daemon::engine::Local;

/// Messages in flight at once (their acks awaited together).
/// Ids of sent messages kept to tell this node's echoes from a twin's.
const SENT_KEPT: usize = 100_000;

const WINDOW: usize = 256;

/// The decisions the `i`th message of `queue` carries.
fn m_len(queue: &VecDeque<Out>, i: usize) -> u64 {
    queue.get(i).map_or(0, |m| m.len() as u64)
}

/// Most decisions that wait; past it the oldest are dropped (their bans
/// still run here, and a restart tells the running ones again).
const MAX_WAITING: usize = 1_000_000;

/// The publishing side.
pub struct Publisher {
    pub node: String,
    pub prefix: String,
    pub stats: Arc<Stats>,
    pub queue: VecDeque<Out>,
    /// Decisions told since a ban told again at start, until the
    /// receiver has caught up (see the module doc).
    pub held: Vec<Local>,
}

impl Publisher {
    /// One decision as (jail, net, what), as messages carry it.
    fn item(local: Local) -> (String, ipnet::IpNet, What) {
        match local {
            Local::Ban {
                jail,
                net,
                expires,
                origin,
                reason,
                ..
            } => (jail, net, What::ban(expires, origin.as_str(), reason)),
            Local::Unban { jail, net, at } => (jail, net, What::unban(at)),
        }
    }

    /// Queue the decisions told together as their messages.
    fn take(&mut self, news: Vec<Local>) {
        let items = news.into_iter().map(Self::item).collect();
        self.queue.extend(Out::of(&self.node, items));
        let mut waiting: usize = self.queue.iter().map(Out::len).sum();
        while waiting > MAX_WAITING {
            let Some(dropped) = self.queue.pop_front() else { break };
            waiting -= dropped.len();
            tracing::warn!(
                "fleet: {} unpublished decision(s) dropped (more than {MAX_WAITING} waited)",
                dropped.len()
            );
        }
        self.stats
            .waiting
            .store(waiting as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Hold `news` while the receiver has not caught up and a ban told
    /// again at start is among them (or held already); once it has, drop
    /// the held bans the stream holds and queue the rest. What is not held
    /// is returned.
    fn hold(&mut self, news: Vec<Local>) -> Vec<Local> {
        let caught_up = self.stats.caught_up.load(std::sync::atomic::Ordering::Relaxed);
        let restored = |n: &Local| matches!(n, Local::Ban { restored: true, .. });
        if !caught_up && (!self.held.is_empty() || news.iter().any(restored)) {
            self.held.extend(news);
            return Vec::new();
        }
        // Caught up: the ids read are used now, or never (memory back).
        let own = std::mem::take(&mut *self.stats.own_stored.lock().unwrap_or_else(|e| e.into_inner()));
        if self.held.is_empty() {
            return news;
        }
        let mut held = std::mem::take(&mut self.held);
        let before = held.len();
        held.retain(|n| {
            if !restored(n) {
                return true;
            }
            let (jail, net, what) = Self::item(n.clone());
            !own.contains(&Message::id_of(&self.node, &jail, &net, &what))
        });
        let stored = before - held.len();
        if stored > 0 {
            tracing::info!("fleet: {stored} ban(s) told again at start were in the stream already");
            Stats::add(&self.stats.duplicates, stored as u64);
        }
        held.extend(news);
        // Those the stream held wait no more: counted out now, even when
        // nothing is left to send (the count stayed up until the next
        // publish).
        let waiting = self.queue.iter().map(Out::len).sum::<usize>() + held.len();
        self.stats
            .waiting
            .store(waiting as u64, std::sync::atomic::Ordering::Relaxed);
        held
    }

    /// Run until `rx` closes (the daemon stops).
    pub async fn run(mut self, js: jetstream::Context, mut rx: UnboundedReceiver<Vec<Local>>) {
        let mut backoff = Duration::from_millis(100);
        let mut said: Option<String> = None;
        loop {
            let mut news = Vec::new();
            if !self.held.is_empty() {
                // Look again for the end of the catch-up now and then.
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(first) => news = first,
                        None => return,
                    },
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            } else if self.queue.is_empty() {
                match rx.recv().await {
                    Some(first) => news = first,
                    None => return,
                }
            }
            // What else was told meanwhile joins them: a burst told in
            // several flushes goes out in as few batches. Nothing waits
            // for more: a lone ban goes out at once.
            while let Ok(more) = rx.try_recv() {
                news.extend(more);
            }
            let news = self.hold(news);
            if !news.is_empty() {
                self.take(news);
            }
            if self.queue.is_empty() {
                continue;
            }
            match self.send_window(&js).await {
                Ok(()) => {
                    if backoff > Duration::from_millis(100) && self.stats.clear_error() {
                        tracing::info!("fleet: publishing again");
                    }
                    said = None;
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    // Once per error, not at every retry (up to every 2 s).
                    if self.stats.state() == State::Connected && said.as_deref() != Some(e.as_str()) {
                        tracing::warn!(
                            "fleet: publishing failed ({e}); {} decision(s) wait, retrying",
                            self.queue.len()
                        );
                        said = Some(e.clone());
                    }
                    self.stats.set_error(e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Publish the first [`WINDOW`] waiting messages, then await their
    /// acks in order; those acked leave the queue. `Err` at the first that
    /// fails: it and the ones after it stay.
    async fn send_window(&mut self, js: &jetstream::Context) -> Result<(), String> {
        let n = self.queue.len().min(WINDOW);
        let mut acks = Vec::with_capacity(n);
        let mut failed = None;
        for m in self.queue.iter().take(n) {
            let id = m.id();
            {
                let mut sent = self.stats.sent.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded: the echo of a message comes back within a second.
                if sent.len() >= SENT_KEPT {
                    sent.clear();
                }
                sent.insert(id.clone());
            }
            let publish = PublishMessage::build().payload(m.to_json().into()).message_id(id);
            // Sent now; the ack is awaited below with the others.
            match js.send_publish(m.subject(&self.prefix), publish).await {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        let mut done = 0;
        for ack in acks {
            match ack.await {
                Ok(ack) => {
                    let counter = if ack.duplicate {
                        &self.stats.duplicates
                    } else {
                        &self.stats.published
                    };
                    Stats::add(counter, m_len(&self.queue, done));
                    done += 1;
                }
                Err(e) => {
                    failed.get_or_insert(e.to_string());
                    break;
                }
            }
        }
        self.queue.drain(..done);
        let waiting: usize = self.queue.iter().map(Out::len).sum();
        self.stats
            .waiting
            .store(waiting as u64, std::sync::atomic::Ordering::Relaxed);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::store::Origin;

    /// One engine flush of 20,000 bans by hand (a `ban -`) queues three
    /// batches, not 20,000 messages; what waits counts decisions.
    #[test]
    fn a_flush_of_many_bans_waits_as_few_batches() {
        let mut p = Publisher {
            node: "a".into(),
            prefix: "nftban".into(),
            stats: Arc::new(Stats::default()),
            queue: VecDeque::new(),
            held: Vec::new(),
        };
        let expires = SystemTime::now() + Duration::from_secs(3600);
        let news = (0..20_000u32)
            .map(|i| Local::Ban {
                jail: "sshd".into(),
                net: std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)).into(),
                expires,
                origin: Origin::Manual,
                reason: None,
                restored: false,
            })
            .collect();
        p.take(news);
        assert_eq!(p.queue.len(), 3, "{} messages", p.queue.len());
        assert_eq!(p.stats.waiting.load(std::sync::atomic::Ordering::Relaxed), 20_000);
        assert_eq!(m_len(&p.queue, 0), super::super::message::MAX_BATCH as u64);
    }

    /// After a restart, the bans told again wait for the catch-up, with
    /// what came after them; those the stream holds (whatever batch they
    /// went out in) are dropped, the others go out in order.
    #[test]
    fn bans_told_again_at_start_skip_those_the_stream_holds() {
        let mut p = Publisher {
            node: "a".into(),
            prefix: "nftban".into(),
            stats: Arc::new(Stats::default()),
            queue: VecDeque::new(),
            held: Vec::new(),
        };
        let expires = SystemTime::now() + Duration::from_secs(3600);
        let ban = |last: u8, restored| Local::Ban {
            jail: "sshd".into(),
            net: std::net::IpAddr::from([198, 51, 100, last]).into(),
            expires,
            origin: Origin::Auto,
            reason: None,
            restored,
        };
        let (jail, net, what) = Publisher::item(ban(1, true));
        p.stats
            .own_stored
            .lock()
            .unwrap()
            .insert(Message::id_of("a", &jail, &net, &what));
        // The teller counts what it hands over as waiting.
        p.stats.waiting.store(3, std::sync::atomic::Ordering::Relaxed);
        assert!(p.hold(vec![ban(1, true), ban(2, true)]).is_empty());
        assert!(p.hold(vec![ban(3, false)]).is_empty(), "what follows waits too");
        p.stats.caught_up.store(true, std::sync::atomic::Ordering::Relaxed);
        let out = p.hold(Vec::new());
        assert_eq!(out, [ban(2, true), ban(3, false)]);
        assert_eq!(p.stats.duplicates.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(
            p.stats.waiting.load(std::sync::atomic::Ordering::Relaxed),
            2,
            "the one stored waits no more"
        );
        assert!(p.stats.own_stored.lock().unwrap().is_empty());
        assert_eq!(p.hold(vec![ban(4, false)]), [ban(4, false)]);
    }
}
