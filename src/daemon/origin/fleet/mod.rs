//! The fleet as an origin of bans (`fleet:`, docs/fleet.md): nodes share
//! their bans over NATS JetStream. This node publishes its own decisions
//! (told by the engine through [`Teller`], which only hands them over a
//! channel) and applies its peers', read from the stream, as
//! [`Decision`](super::Decision)s of origin `fleet:<node>`.
//!
//! async-nats runs on a small tokio runtime of its own, on this origin's
//! thread: the matcher, the readers and the engine stay as they are, and
//! nothing of NATS reaches them.
//!
//! One file per job: [`connect`] (config to client and stream),
//! [`publish`] (this node's decisions out, retried, de-duplicated),
//! [`receive`] (the peers' in: catch-up, folding, apply), [`message`]
//! (the versioned JSON), [`limits`] (what a peer may make this node ban),
//! [`stats`] (figures for `status` and the metrics).

mod connect;
mod limits;
mod message;
mod publish;
mod receive;
mod stats;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::{BanOrigin, Decisions};
use crate::config::FleetSpec;
use crate::daemon::engine::{Local, Share};
use crate::status::FleetStatus;
use stats::{State, Stats};

/// The origin: the runtime thread's side.
pub struct Fleet {
    spec: FleetSpec,
    stats: Arc<Stats>,
    news: UnboundedReceiver<Vec<Local>>,
}

/// The engine's side: takes this node's decisions (those of publishing
/// jails) without ever waiting, and reports the fleet's figures.
pub struct Teller {
    tx: UnboundedSender<Vec<Local>>,
    publish: HashSet<String>,
    spec: FleetSpec,
    stats: Arc<Stats>,
}

/// The fleet of `spec`: its origin and its teller.
pub fn fleet(spec: FleetSpec) -> (Fleet, Teller) {
    let stats = Arc::new(Stats::default());
    let (tx, news) = unbounded_channel();
    let teller = Teller {
        tx,
        publish: spec.publish.iter().cloned().collect(),
        spec: spec.clone(),
        stats: stats.clone(),
    };
    (Fleet { spec, stats, news }, teller)
}

impl Share for Teller {
    fn told(&mut self, mut news: Vec<Local>) {
        news.retain(|n| match n {
            Local::Ban { jail, .. } | Local::Unban { jail, .. } => self.publish.contains(jail),
        });
        if news.is_empty() {
            return;
        }
        Stats::add(&self.stats.waiting, news.len() as u64);
        // Closed only once the origin's thread is gone (the daemon stops).
        let _ = self.tx.send(news);
    }

    fn status(&self) -> FleetStatus {
        self.stats.status(&self.spec)
    }

    /// The stream's duplicate window, when nftban made the stream.
    fn retell(&self) -> Duration {
        self.spec.retention
    }
}

impl BanOrigin for Fleet {
    fn name(&self) -> String {
        format!("fleet:{}", self.spec.node)
    }

    fn run(self: Box<Self>, decisions: Decisions) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("fleet: cannot start its runtime ({e}); this node neither publishes nor receives bans");
                return;
            }
        };
        let Fleet { spec, stats, news } = *self;
        runtime.block_on(serve(spec, stats, news, decisions));
    }
}

/// Connect, find the stream (retrying until it is there), then publish
/// and receive side by side until the daemon stops.
async fn serve(spec: FleetSpec, stats: Arc<Stats>, news: UnboundedReceiver<Vec<Local>>, decisions: Decisions) {
    let started = std::time::SystemTime::now();
    let client = match connect::connect(&spec, stats.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("fleet: {e}; this node neither publishes nor receives bans");
            stats.set_error(e);
            return;
        }
    };
    let js = connect::context(client.clone());
    let mut said = String::new();
    let stream = loop {
        match connect::stream(&js, &spec).await {
            Ok(s) => break s,
            // Not connected: the connection's own error says why (and
            // stays shown); connected, the stream's, once per change.
            Err(e) if stats.state() == State::Connected => {
                if e != said {
                    tracing::warn!("fleet: {e}; trying again every second");
                    said.clone_from(&e);
                }
                stats.set_error(e);
                if decisions.stopping() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(_) => {
                if decisions.stopping() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    stats.clear_error();
    tracing::info!(
        "fleet: node {} on stream {} (subjects {}.>), publishing jails {}",
        spec.node,
        spec.stream,
        spec.subject_prefix,
        spec.publish.join(", ")
    );
    let publisher = publish::Publisher {
        node: spec.node.clone(),
        prefix: spec.subject_prefix.clone(),
        stats: stats.clone(),
        queue: VecDeque::new(),
        held: Vec::new(),
    };
    let receiver = receive::Receiver::new(
        spec.node.clone(),
        spec.subject_prefix.clone(),
        stats.clone(),
        limits::Limits::new(&spec),
    )
    .counting_from(started);
    let stopped = async {
        while !decisions.stopping() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let js_again = js.clone();
    tokio::select! {
        () = publisher.run(js, news) => {}
        () = receiver.run(stream, || connect::stream(&js_again, &spec), &decisions) => {}
        () = stopped => {}
    }
    // What waits for acks goes out if it can, briefly.
    let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
}
