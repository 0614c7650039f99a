//! Origins of bans other than a jail's own rules (a kernel meter, a fleet
//! peer, a blocklist feed): each runs on its own thread and hands the engine
//! [`Decision`]s over the same channel as the sources, so its bans go
//! through the same path as bans by hand: planned against the jail's
//! running bans, written to the history, put into the kernel in one batch,
//! shown by `status`. Unlike bans by hand, they never override the jail's
//! `ignoreip`.
//!
//! Adding an origin is one module that implements [`BanOrigin`] and one
//! line in [`configured`] that builds it from the config.

mod feed;
pub mod fleet;
mod meter;
pub(crate) mod own;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

pub use super::engine::Decision;
use super::Event;
use crate::config::Config;
use crate::firewall::Catches;
pub(super) use feed::feeds;

/// An origin of bans.
pub trait BanOrigin: Send {
    /// How logs name it (`kernel meter`, `fleet`, `feed:spamhaus`).
    fn name(&self) -> String;

    /// Run until [`Decisions::stopping`], handing decisions to
    /// [`Decisions::send`]. Never returns an error: problems are logged and
    /// retried.
    fn run(self: Box<Self>, decisions: Decisions);
}

/// Where an origin sends its decisions.
pub struct Decisions {
    tx: SyncSender<Event>,
    stop: Arc<AtomicBool>,
}

impl Decisions {
    /// Hand bans to the engine (waits while the engine is busy). False once
    /// the daemon is stopping.
    pub fn send(&self, decision: Decision) -> bool {
        !self.stopping() && self.tx.send(Event::Decided(decision)).is_ok()
    }

    /// Lift bans of `origin` in `jail` (a fleet peer's unbans): only
    /// where the running ban is that origin's. False once the daemon is
    /// stopping.
    pub fn lift(&self, jail: String, nets: Vec<ipnet::IpNet>, origin: crate::store::Origin) -> bool {
        !self.stopping() && self.tx.send(Event::Lifted { jail, nets, origin }).is_ok()
    }

    /// Have the engine make a feed's sets (`sets`) hold `list`, and wait
    /// for how it went. `None` once the daemon is stopping.
    pub fn feed(&self, sets: &str, list: Vec<ipnet::IpNet>) -> Option<Result<super::engine::Applied, String>> {
        if self.stopping() {
            return None;
        }
        let (reply, answer) = std::sync::mpsc::channel();
        let event = Event::Feed {
            sets: sets.to_string(),
            list,
            reply,
        };
        self.tx.send(event).ok()?;
        answer.recv().ok()
    }

    /// Whether the daemon is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The origins `config` turns on, each built from its own section; the
/// kernel meter's needs a reader of its caught sets (`catches`, from the
/// firewall, `None` when it has none).
pub(super) fn configured(
    config: &Config,
    catches: Option<Box<dyn Catches>>,
    fleet: Option<fleet::Fleet>,
    feeds: Vec<feed::Feed>,
) -> Vec<Box<dyn BanOrigin>> {
    let mut out: Vec<Box<dyn BanOrigin>> = Vec::new();
    for f in feeds {
        out.push(Box::new(f));
    }
    if let Some(f) = fleet {
        out.push(Box::new(f));
    }
    if let (Some(spec), Some(catches)) = (&config.sip, catches) {
        out.push(Box::new(meter::KernelMeter::new(catches, spec.clone())));
    }
    out
}

/// Start `origin` on its own thread.
pub(super) fn spawn(origin: Box<dyn BanOrigin>, tx: SyncSender<Event>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let name = origin.name();
    tracing::info!("ban origin {name} started");
    std::thread::Builder::new()
        .name(format!("origin-{name}"))
        .spawn(move || origin.run(Decisions { tx, stop }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Origin;

    /// An origin that decides one ban and stops.
    struct Once(Decision);

    impl BanOrigin for Once {
        fn name(&self) -> String {
            "test".into()
        }
        fn run(self: Box<Self>, decisions: Decisions) {
            assert!(decisions.send(self.0));
        }
    }

    #[test]
    fn an_origins_decisions_reach_the_engine_channel() {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let decision = Decision {
            jail: "sshd".into(),
            nets: vec!["198.51.100.9/32".parse().unwrap()],
            bantime: None,
            origin: Origin::Escalated,
            reason: Some("test".into()),
        };
        spawn(Box::new(Once(decision.clone())), tx, Arc::new(AtomicBool::new(false))).unwrap();
        match rx.recv().unwrap() {
            Event::Decided(got) => assert_eq!(got, decision),
            _ => panic!("not a decision"),
        }
    }

    #[test]
    fn a_stopping_daemon_takes_no_more_decisions() {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let decisions = Decisions {
            tx,
            stop: Arc::new(AtomicBool::new(true)),
        };
        let decision = Decision {
            jail: "sshd".into(),
            nets: vec![],
            bantime: None,
            origin: Origin::Manual,
            reason: None,
        };
        assert!(!decisions.send(decision));
        assert!(rx.try_recv().is_err());
    }
}
