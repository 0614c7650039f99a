//! The fleet's figures, shared between its runtime thread (which counts)
//! and the engine (which shows them in `status`).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use super::limits::Refusal;
use crate::config::FleetSpec;
use crate::status::{FleetLimits, FleetStatus};

/// The connection, as `status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Connecting = 0,
    Connected = 1,
    Disconnected = 2,
}

/// Counters since start.
#[derive(Default)]
pub struct Stats {
    state: AtomicU8,
    pub published: AtomicU64,
    pub duplicates: AtomicU64,
    pub waiting: AtomicU64,
    pub received: AtomicU64,
    pub applied: AtomicU64,
    pub lifted: AtomicU64,
    pub expired: AtomicU64,
    pub caught_up: AtomicBool,
    /// The message ids (version 1 form) of this node's own bans read from
    /// the stream before it was caught up: the bans told again at start
    /// that are among them were published before, and are not again
    /// (publish.rs). Emptied once the publisher has used it.
    pub own_stored: Mutex<HashSet<String>>,
    /// The ids of the messages this run sent, recorded before each is
    /// sent (its echo may come back before its ack): a message under this
    /// node's name that is not among them, once caught up, comes from
    /// another node with the same name.
    pub sent: Mutex<HashSet<String>>,
    /// Another node publishes under this node's name: said once, and
    /// shown in `status` for the rest of the run (it does not go away).
    pub twin: Mutex<Option<String>>,
    refused: Mutex<BTreeMap<Refusal, u64>>,
    error: Mutex<Option<String>>,
}

impl Stats {
    pub fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::Relaxed);
        if state == State::Connected {
            *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    pub fn state(&self) -> State {
        match self.state.load(Ordering::Relaxed) {
            1 => State::Connected,
            2 => State::Disconnected,
            _ => State::Connecting,
        }
    }

    /// The last error, shown until the work it stopped goes on (connected
    /// to a server yet unable to publish or read, a node does nothing: its
    /// status must say why).
    pub fn set_error(&self, error: String) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// An error of the connection: logged when it differs from the last
    /// one (the client retries every second or two), and shown.
    pub fn note_error(&self, error: String) {
        let mut last = self.error.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() != Some(error.as_str()) {
            tracing::warn!("fleet: {error}");
            *last = Some(error);
        }
    }

    /// The work goes on: no error to show. Whether there was one.
    pub fn clear_error(&self) -> bool {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).take().is_some()
    }

    pub fn refused(&self, why: Refusal) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(why)
            .or_default() += 1;
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// `status.fleet`.
    pub fn status(&self, spec: &FleetSpec) -> FleetStatus {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let state = self.state();
        FleetStatus {
            node: spec.node.clone(),
            state: match state {
                State::Connecting => "connecting",
                State::Connected => "connected",
                State::Disconnected => "disconnected",
            }
            .into(),
            error: self
                .error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .or_else(|| self.twin.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            stream: spec.stream.clone(),
            published: get(&self.published),
            duplicates: get(&self.duplicates),
            waiting: get(&self.waiting),
            received: get(&self.received),
            applied: get(&self.applied),
            lifted: get(&self.lifted),
            expired: get(&self.expired),
            caught_up: self.caught_up.load(Ordering::Relaxed),
            refused: self
                .refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(why, n)| (why.as_str().to_string(), *n))
                .collect(),
            limits: FleetLimits {
                ipv4_prefix: spec.ipv4_prefix,
                ipv6_prefix: spec.ipv6_prefix,
                rate: spec.rate.to_string(),
                burst: spec.burst,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connected to a server but unable to find the stream (or publish, or
    /// read), a node does nothing: its status says why, until the work
    /// goes on. Before, a connected node showed no error at all.
    #[test]
    fn an_error_shows_while_connected_until_the_work_goes_on() {
        let spec = crate::config::Config::from_text(
            std::path::Path::new("/x/nftban.yaml"),
            "fleet: {node: a, servers: ['nats://127.0.0.1:4222']}\n",
        )
        .unwrap()
        .fleet
        .unwrap();
        let stats = Stats::default();
        stats.set_state(State::Connected);
        stats.set_error("cannot find or make the stream NFTBAN: replicas > 1 not supported".into());
        let st = stats.status(&spec);
        assert_eq!(st.state, "connected");
        assert_eq!(
            st.error.as_deref(),
            Some("cannot find or make the stream NFTBAN: replicas > 1 not supported")
        );
        assert!(stats.clear_error());
        assert_eq!(stats.status(&spec).error, None);
        assert!(!stats.clear_error());
    }
}
