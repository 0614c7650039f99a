//! This node's decisions out to the fleet, in order, each under its
//! `Nats-Msg-Id`. What cannot be published (NATS away, a cluster electing
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

use super::message::Message;
use super::stats::{State, Stats};
use crate::daemon::engine::Local;

/// Publishes in flight at once (their acks awaited together).
const WINDOW: usize = 256;

/// Most decisions that wait; past it the oldest are dropped (their bans
/// still run here, and a restart tells the running ones again).
const MAX_WAITING: usize = 1_000_000;

/// The publishing side.
pub struct Publisher {
    pub node: String,
    pub prefix: String,
    pub stats: Arc<Stats>,
    pub queue: VecDeque<Message>,
}

impl Publisher {
    /// The message of one decision.
    fn message(&self, local: Local) -> Message {
        match local {
            Local::Ban {
                jail,
                net,
                expires,
                origin,
                reason,
                ..
            } => Message::ban(&self.node, &jail, &net, expires, origin.as_str(), reason.as_deref()),
            Local::Unban { jail, net, at } => Message::unban(&self.node, &jail, &net, at),
        }
    }

    fn take(&mut self, news: Vec<Local>) {
        for n in news {
            let m = self.message(n);
            self.queue.push_back(m);
        }
        if self.queue.len() > MAX_WAITING {
            let over = self.queue.len() - MAX_WAITING;
            self.queue.drain(..over);
            tracing::warn!("fleet: {over} unpublished decision(s) dropped (more than {MAX_WAITING} waited)");
        }
        self.stats
            .waiting
            .store(self.queue.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Run until `rx` closes (the daemon stops).
    pub async fn run(mut self, js: jetstream::Context, mut rx: UnboundedReceiver<Vec<Local>>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.queue.is_empty() {
                match rx.recv().await {
                    Some(news) => self.take(news),
                    None => return,
                }
            }
            while let Ok(news) = rx.try_recv() {
                self.take(news);
            }
            match self.send_window(&js).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    if self.stats.state() == State::Connected {
                        tracing::warn!(
                            "fleet: publishing failed ({e}); {} decision(s) wait, retrying",
                            self.queue.len()
                        );
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
            let publish = PublishMessage::build().payload(m.to_json().into()).message_id(m.id());
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
                    Stats::add(counter, 1);
                    done += 1;
                }
                Err(e) => {
                    failed.get_or_insert(e.to_string());
                    break;
                }
            }
        }
        self.queue.drain(..done);
        self.stats
            .waiting
            .store(self.queue.len() as u64, std::sync::atomic::Ordering::Relaxed);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
