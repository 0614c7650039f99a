//! The engine: the one place where ban state changes.
//!
//! It owns each jail's tracker and ban record, the ban history and the
//! firewall. Sources feed it failures, the control socket feeds it requests,
//! other origins of bans feed it decisions; all arrive on one channel, so
//! there are no locks around ban state. Bans decided while handling a burst
//! of events are queued and sent to the kernel together by
//! [`Engine::flush`], one netlink batch for the whole burst.
//!
//! The ban record mirrors the kernel: what nftban added, with expiry times.
//! It is rebuilt from the ban history at start (never by listing the
//! kernel's sets), so a restart keeps and shows the bans that are still
//! running.
//!
//! One file per job:
//! - [`decide`]: failures → bans, bantime increment, expiry;
//! - [`manual`]: bans by hand and from other origins ([`Decision`]), unbans;
//! - [`told`]: a request's bans, unbans and refusals in the log, and
//!   [`held`]: the requests of one `nftban ban -` logged as one;
//! - [`escalation`]: IPv6 prefixes banned once enough of their addresses are;
//! - [`kernel`]: bans into the kernel, refusals, conntrack, healing;
//! - [`start`]: setup and restore from the history;
//! - [`history`]: the ban history, its errors and their logging, and
//!   [`backlog`]: what it could not write yet, written again at each save;
//! - [`status`]: what `nftban status` shows;
//! - [`announce`]: bans, unbans and expiries told to `nftban events`;
//! - [`share`]: this node's decisions told to a listener (the fleet);
//! - [`feeds`]: blocklist feeds' entries, a refresh as one kernel diff;
//! - [`jail`] and [`bans`]: one jail's state, and its running bans.
//!
//! The engine knows the kernel only through the [`Firewall`] trait, and
//! answers with the report types of [`crate::status`]; turning those into
//! control-socket responses is the daemon's job.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Config, MANUAL_JAIL};
use crate::events::Hub;
use crate::firewall::{Firewall, TableSpec};
use crate::sources::{Checkpoint, SourceStats};
use crate::store::Store;
use crate::tracker::{Policy, DEFAULT_MAX_TRACKED};

mod announce;
mod backlog;
mod bans;
mod counts;
mod decide;
mod escalation;
mod feeds;
mod held;
mod history;
mod hosts;
mod jail;
mod kernel;
mod manual;
mod plan;
mod share;
mod start;
mod status;
mod told;

use bans::Bans;
use decide::failure_changes;
pub use feeds::{Applied, FeedStats};
pub use held::Chunk;
use history::History;
use jail::JailState;
use kernel::Forget;
pub use kernel::FORGET_INTERVAL;
pub use manual::Decision;
pub use share::{Local, Share};

/// Why a request (ban, unban, status of one jail) was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No jail of that name.
    #[error("no jail named `{name}` (jails: {jails})")]
    UnknownJail { name: String, jails: String },
    /// The request names no address.
    #[error("no address given")]
    NoAddress,
    /// A text that is not an address or prefix.
    #[error("`{text}`: {source}")]
    BadAddress {
        text: String,
        source: crate::address::AddressError,
    },
    /// A ban of no time at all.
    #[error("bantime must be longer than 0s")]
    ZeroBantime,
    /// A ban longer than any duration nftban accepts (the control socket
    /// carries seconds as a plain number).
    #[error(
        "bantime {secs}s is longer than the maximum of {}",
        crate::config::duration::MAX_DURATION_TEXT
    )]
    BantimeTooLong { secs: u64 },
    /// The kernel would not lift the bans a prefix replaces.
    #[error("kernel refused to replace contained bans: {0}")]
    ReplaceRefused(#[source] crate::firewall::Error),
    /// The kernel would not lift a ban.
    #[error("kernel refused to unban {net}: {source}")]
    UnbanRefused {
        net: String,
        source: crate::firewall::Error,
    },
    /// The history could neither record an unban nor keep it to record
    /// later (too many records wait), so it would come back after a
    /// restart: nothing was lifted.
    #[error("cannot record the unban of {net} in the history: {source}")]
    History { net: String, source: crate::store::Error },
}

/// Ban state of all jails plus the firewall they are pushed to.
pub struct Engine {
    firewall: Box<dyn Firewall>,
    jails: Vec<JailState>,
    /// Index of the recidive jail, when `recidive:` is configured.
    recidive: Option<usize>,
    /// What setup builds, kept to heal the table.
    spec: TableSpec,
    /// Bans decided since the last flush.
    pending: Vec<crate::firewall::Ban>,
    /// Bans the kernel refused and other kernel requests that failed,
    /// since start.
    kernel_errors: u64,
    history: History,
    /// Conntrack entries of banned sources still to be removed.
    forget: Forget,
    /// Bans per kernel call when restoring ([`start::RESTORE_CHUNK`];
    /// tests set fewer).
    restore_chunk: usize,
    /// Where bans, unbans and expiries are told (`nftban events`).
    events: Hub,
    /// When bans that ended were last forgotten.
    expired_at: Instant,
    /// Who hears of this node's own decisions (the fleet), if anyone.
    share: Option<Box<dyn Share>>,
    /// The blocklist feeds' entries in the kernel, by the stem of their
    /// sets, and their figures for `status`.
    feeds: feeds::Feeds,
    /// The log lines of `nftban ban -` requests with more to come.
    held: held::Held,
}

impl Engine {
    /// Build the jails of `config` (plus `recidive` and `manual`) with empty
    /// state and no sources (see [`Engine::attach_source`]).
    pub fn new(config: &Config, firewall: Box<dyn Firewall>) -> Engine {
        let mut jails: Vec<JailState> = config.jails.iter().map(JailState::of).collect();
        // The SIP meter's own jail when the config has none for it: it
        // holds the kernel's bans and reads no log.
        if let Some(sip) = config.sip.as_ref().filter(|_| config.sip_implicit_jail) {
            jails.push(JailState::new(
                crate::config::SIP_JAIL,
                Policy {
                    findtime: Duration::from_secs(1),
                    maxretry: 1,
                    bantime: sip.bantime,
                    ignoreip: config.default_ignoreip.clone(),
                    max_tracked: 1,
                },
            ));
        }
        // The recidive jail counts bans, not lines: its "failures" are the
        // bans of the other jails.
        let recidive = config.recidive.map(|r| {
            jails.push(JailState::new(
                crate::config::RECIDIVE_JAIL,
                Policy {
                    findtime: r.findtime.0,
                    maxretry: r.maxretry,
                    bantime: r.bantime.0,
                    ignoreip: config.default_ignoreip.clone(),
                    max_tracked: DEFAULT_MAX_TRACKED,
                },
            ));
            jails.len() - 1
        });
        let manual = Policy {
            findtime: Duration::from_secs(1),
            maxretry: 1,
            bantime: config.default_bantime,
            // A ban by hand respects it unless forced.
            ignoreip: config.default_ignoreip.clone(),
            max_tracked: 1,
        };
        jails.push(JailState::new(MANUAL_JAIL, manual));
        Engine {
            firewall,
            jails,
            recidive,
            spec: config.table_spec(),
            pending: Vec::new(),
            kernel_errors: 0,
            history: History::new(config.history_keep),
            forget: Forget::default(),
            restore_chunk: start::RESTORE_CHUNK,
            events: Hub::default(),
            expired_at: Instant::now(),
            share: None,
            feeds: feeds::Feeds::default(),
            held: held::Held::default(),
        }
    }

    /// Tell bans, unbans and expiries to `hub`'s subscribers.
    pub fn with_events(mut self, hub: Hub) -> Engine {
        self.events = hub;
        self
    }

    /// Keep ban history in `store`: bans are written there before they go
    /// to the kernel, and restored from there at start.
    pub fn with_store(mut self, store: Store) -> Engine {
        self.history = self.history.with_store(store);
        self
    }

    /// Jail number `jail` reads `source`: its figures show in the jail's
    /// status, in the order attached.
    pub fn attach_source(&mut self, jail: usize, source: Arc<SourceStats>) {
        self.jails[jail].sources.push(source);
    }

    /// The account of jail number `jail`'s lines that named a host, which
    /// its readers and the resolver keep; `usedns`: whether it resolves.
    pub fn attach_names(&mut self, jail: usize, names: Arc<crate::daemon::resolve::NameStats>, usedns: bool) {
        self.jails[jail].names = Some((names, usedns));
    }

    /// A source has dealt out every line up to `checkpoint` (their failures
    /// came before this on the same channel, so they are handled): saved
    /// with the next save of the history.
    pub fn checkpoint(&mut self, checkpoint: Checkpoint) {
        self.history.checkpoint(checkpoint);
    }

    /// After a burst of events: its bans to the kernel, conntrack entries
    /// of banned sources removed when due, positions saved when due. Returns
    /// whether the table should be checked, because some of nftban's own
    /// changes ran with the watcher paused (changes by others in that
    /// window went unseen).
    pub fn after_burst(&mut self, now: SystemTime) -> bool {
        self.flush(now);
        // Under a steady stream of events the loop never idles into a
        // tick: bans that ended are still forgotten (and told) each second.
        if self.expired_at.elapsed() >= Duration::from_secs(1) {
            self.expire(now);
        }
        self.forget_connections(false);
        self.save(false);
        // Nor would summaries held for a command that went quiet be told.
        self.held.quiet(now);
        self.firewall.take_unwatched()
    }

    /// Nothing happened for a while: expire what ended, do the waiting
    /// conntrack removals and saves when due, and log the summaries of
    /// commands that went quiet without their last request.
    pub fn tick(&mut self, now: SystemTime) {
        self.forget_connections(false);
        self.expire(now);
        self.save(false);
        self.held.quiet(now);
    }

    /// Stop (or reload): everything decided goes out and is saved, and
    /// every summary held is logged.
    pub fn finish(&mut self, now: SystemTime) {
        self.flush(now);
        self.forget_connections(true);
        self.save(true);
        self.held.all();
    }

    /// How long the daemon's loop may wait for an event before calling
    /// [`Engine::tick`]: sooner while conntrack removals wait.
    pub fn wait_at_most(&self) -> Duration {
        if self.forget.waiting() {
            self.forget.interval
        } else {
            Duration::from_secs(1)
        }
    }

    /// Save reading positions and the failure windows as they stand.
    fn save(&mut self, force: bool) {
        let running = self
            .history
            .wants_running(force)
            .then(|| history::running_records(&self.jails, SystemTime::now()));
        let Engine {
            history,
            jails,
            recidive,
            ..
        } = self;
        history.save(force, running, || failure_changes(jails, *recidive));
    }

    /// `Ok` if a jail of that name exists, else the error that lists the
    /// jails (an `events --jail` subscription asks).
    pub fn knows_jail(&self, name: &str) -> Result<(), RequestError> {
        self.jail_index(name).map(drop)
    }

    fn jail_index(&self, name: &str) -> Result<usize, RequestError> {
        self.jails
            .iter()
            .position(|j| j.name == name)
            .ok_or_else(|| RequestError::UnknownJail {
                name: name.into(),
                jails: self
                    .jails
                    .iter()
                    .map(|j| j.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Carry out a request at `now`: bans that ended are forgotten first;
    /// what it decided goes to the kernel at once, and since requests are
    /// rare, whatever conntrack removals wait are done too (a ban by hand
    /// has its entries removed before the answer).
    fn request<T>(&mut self, now: SystemTime, f: impl FnOnce(&mut Engine) -> T) -> T {
        self.expire(now);
        let out = f(self);
        self.flush(now);
        self.forget_connections(true);
        out
    }
}

#[cfg(test)]
mod tests;
