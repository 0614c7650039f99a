//! The engine's side of the ban history: one type that owns the store (or
//! its absence), counts what failed to be written, and says so in the log.
//!
//! The history is never what protects the host: a write that fails (a full
//! disk, say) is logged and counted in `status` (`history_errors`), and the
//! bans still go to the kernel. What suffers is what comes after a restart:
//! bans not written are not restored, positions not saved are read again.
//! So every method here returns plainly (an empty answer on error) and the
//! error is dealt with once, here, instead of at each call site.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;

use crate::config::format_duration;
use crate::firewall::Ban;
use crate::sources::file::Position;
use crate::sources::Checkpoint;
use crate::store::{ActiveBan, BanRecord, FailureWindow, Origin, Store};

/// How often reading positions (and the bans gathered in the pending file)
/// are saved while lines keep coming.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// How often old history is purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The ban history as the engine uses it.
pub(super) struct History {
    /// `None` runs without one (tests, benchmarks).
    store: Option<Store>,
    /// Writes and reads that failed since start.
    pub(super) errors: u64,
    /// How long history is kept, and when it was last purged.
    keep: Duration,
    last_purge: Option<SystemTime>,
    /// Reading positions and journal cursors of the lines dealt with, not
    /// yet saved; and when they were last saved.
    positions: BTreeMap<String, Position>,
    cursors: BTreeMap<String, String>,
    saved_at: Option<Instant>,
}

impl History {
    pub(super) fn new(keep: Duration) -> History {
        History {
            store: None,
            errors: 0,
            keep,
            last_purge: None,
            positions: BTreeMap::new(),
            cursors: BTreeMap::new(),
            saved_at: None,
        }
    }

    pub(super) fn with_store(mut self, store: Store) -> History {
        self.store = Some(store);
        self
    }

    pub(super) fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// Count a failed step and log it once, with what it means for the user.
    fn failed<T>(&mut self, result: crate::store::Result<T>, consequence: &str) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors += 1;
                tracing::error!(error = %e, "{consequence}");
                None
            }
        }
    }

    /// Write bans decided at `now`, before they go to the kernel.
    pub(super) fn record(&mut self, bans: &[Ban], origin: Origin, reason: Option<&str>, now: SystemTime) {
        let Some(store) = self.store.as_mut() else { return };
        let records: Vec<BanRecord> = bans
            .iter()
            .map(|b| BanRecord {
                jail: b.jail.clone(),
                net: b.net,
                at: now,
                expires: now.checked_add(b.timeout).unwrap_or(now),
                origin,
                reason: reason.map(str::to_string),
            })
            .collect();
        let result = store.record_bans(&records);
        self.failed(
            result,
            &format!(
                "could not write {} ban(s) to the history; they are in the kernel but will not be restored after a restart",
                bans.len()
            ),
        );
    }

    /// Mark bans as lifted (by hand, replaced by a prefix, or refused by
    /// the kernel): they are not restored. `jail: None` is every jail.
    /// Returns whether the history holds the unban (true without a store).
    pub(super) fn unban(
        &mut self,
        jail: Option<&str>,
        nets: &[IpNet],
        now: SystemTime,
    ) -> Result<(), crate::store::Error> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        for net in nets {
            if let Err(e) = store.record_unban(jail, net, now) {
                self.errors += 1;
                return Err(e);
            }
        }
        Ok(())
    }

    /// As [`History::unban`], when nothing waits on the answer: a failure
    /// is logged and counted.
    pub(super) fn forget(&mut self, jail: &str, nets: &[IpNet], now: SystemTime) {
        if let Err(e) = self.unban(Some(jail), nets, now) {
            tracing::warn!(error = %e, jail, "could not mark lifted bans in the history; they may come back after a restart");
        }
    }

    /// Bans still running at `now`, to restore.
    pub(super) fn active(&mut self, now: SystemTime) -> Vec<ActiveBan> {
        let Some(store) = self.store.as_mut() else {
            return Vec::new();
        };
        let result = store.active(now);
        self.failed(
            result,
            "cannot read the ban history: no ban restored (bans still in the kernel stay until they expire)",
        )
        .unwrap_or_default()
    }

    /// A jail left the config: its bans are lifted and not restored again.
    pub(super) fn jail_removed(&mut self, jail: &str, now: SystemTime) {
        let Some(store) = self.store.as_mut() else { return };
        tracing::info!("jail {jail} left the config: its bans are lifted");
        let result = store.record_jail_removed(jail, now);
        self.failed(
            result,
            "could not mark the removed jail's bans as lifted in the history",
        );
    }

    /// Failure windows saved by an earlier run: (jail, address, times).
    pub(super) fn failure_windows(&mut self) -> Vec<(String, IpNet, Vec<SystemTime>)> {
        let Some(store) = self.store.as_mut() else {
            return Vec::new();
        };
        let result = store.failure_windows();
        self.failed(result, "cannot read saved failure counts; counting starts afresh")
            .unwrap_or_default()
    }

    /// Bans of every jail since `since`: (jail, address, when).
    pub(super) fn bans_since(&mut self, since: SystemTime) -> Vec<(String, IpNet, SystemTime)> {
        let Some(store) = self.store.as_mut() else {
            return Vec::new();
        };
        let result = store.bans_since(since);
        self.failed(result, "cannot read the ban history for recidive")
            .unwrap_or_default()
    }

    /// How many times `net` was banned in `jail` before; `None` without a
    /// history (or when it cannot be read), so the caller counts itself.
    pub(super) fn ban_count(&mut self, jail: &str, net: &IpNet) -> Option<u32> {
        let store = self.store.as_ref()?;
        let result = store.ban_count(jail, net);
        self.failed(result, "cannot read ban history for the bantime increment")
            .map(|n| n.min(u32::MAX as u64) as u32)
    }

    /// A source has dealt out every line up to `checkpoint`: save it with
    /// the next [`History::save`].
    pub(super) fn checkpoint(&mut self, checkpoint: Checkpoint) {
        match checkpoint {
            Checkpoint::File { path, position } => {
                self.positions.insert(path, position);
            }
            Checkpoint::Journal { source, cursor } => {
                self.cursors.insert(source, cursor);
            }
        }
    }

    /// Save reading positions with the failure windows as they stand after
    /// those lines, and move the bans gathered in the pending file into
    /// SQLite with them: at most once a second unless `force` (shutdown,
    /// reload). `windows` is asked only when a save happens.
    pub(super) fn save(&mut self, force: bool, windows: impl FnOnce() -> Vec<FailureWindow>) {
        let Some(store) = self.store.as_mut() else { return };
        let waiting = !self.positions.is_empty() || !self.cursors.is_empty() || store.has_pending();
        if !waiting && !force {
            return;
        }
        if !force && self.saved_at.is_some_and(|t| t.elapsed() < SAVE_EVERY) {
            return;
        }
        let positions: Vec<(String, Position)> = std::mem::take(&mut self.positions).into_iter().collect();
        let cursors: Vec<(String, String)> = std::mem::take(&mut self.cursors).into_iter().collect();
        let result = store.save(&[], &positions, &cursors, &windows());
        self.saved_at = Some(Instant::now());
        self.failed(
            result,
            "could not save file positions; lines may be read again after a restart",
        );
    }

    /// Delete saved failure windows (of jails no longer configured).
    pub(super) fn drop_windows(&mut self, gone: &[FailureWindow]) {
        let Some(store) = self.store.as_mut() else { return };
        let result = store.save(&[], &[], &[], gone);
        self.failed(result, "could not delete the saved failure counts of removed jails");
    }

    /// Remove old history now and then.
    pub(super) fn purge(&mut self, now: SystemTime) {
        let due = self
            .last_purge
            .is_none_or(|t| now.duration_since(t).unwrap_or_default() >= PURGE_EVERY);
        let Some(store) = self.store.as_mut().filter(|_| due) else {
            return;
        };
        self.last_purge = Some(now);
        let keep = self.keep;
        let result = store.purge(now, keep);
        match self.failed(result, "could not purge old ban history") {
            Some(0) | None => {}
            Some(n) => tracing::info!("removed {n} ban history entries older than {}", format_duration(keep)),
        }
    }
}
