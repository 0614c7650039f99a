//! The engine's side of the ban history: one type that owns the store (or
//! its absence), keeps what could not be written, counts what failed, and
//! says so in the log.
//!
//! The history is never what protects the host: a write that fails (a full
//! disk, say) does not stop a ban from reaching the kernel, nor an unban
//! from lifting it. What suffers is what comes after a restart, so nothing
//! that failed is dropped: bans and unbans wait in a [`Backlog`], in their
//! order, and reading positions and failure counts wait in memory; all are
//! written again at every save (about once a second) until it works.
//! Positions are never saved ahead of bans still waiting, so a crash meanwhile
//! reads those lines again. `status` shows the failures (`history_errors`),
//! what waits (`history_waiting`) and what was dropped past the backlog's
//! bound (`history_dropped`). The error is logged once when writing starts
//! to fail and once when it works again, not per write. A database SQLite
//! says is damaged will not work again by retrying: the next save moves it
//! aside and writes a new one with every running ban of the engine's
//! record. Every method here
//! returns plainly (an empty answer on error), so the error is dealt with
//! once, here, instead of at each call site.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;

use super::backlog::{Backlog, Step, Write};
use super::jail::JailState;
use crate::config::{format_duration, MANUAL_JAIL};
use crate::firewall::Ban;
use crate::sources::file::Position;
use crate::sources::Checkpoint;
use crate::store::{BanRecord, FailureWindow, Origin, RunningBan, Store};

/// How often reading positions (and the bans gathered in the pending file)
/// are saved while lines keep coming; also how often what waits is tried
/// again.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// How often old history is purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The ban history as the engine uses it.
pub(super) struct History {
    /// `None` runs without one (tests, benchmarks).
    store: Option<Store>,
    /// Writes and reads that failed since start (each retry that fails
    /// counts again).
    pub(super) errors: u64,
    /// Whether writing fails now: logged when this turns on and when it
    /// turns off, not at each failure.
    failing: bool,
    /// Whether SQLite said the database is damaged: it will not heal by
    /// itself, so the next save replaces it (see [`History::save`]).
    damaged: bool,
    /// Bans and unbans not written yet, in order.
    backlog: Backlog,
    /// How long history is kept, and when it was last purged.
    keep: Duration,
    last_purge: Option<SystemTime>,
    /// Reading positions and journal cursors of the lines dealt with, not
    /// yet saved; and when they were last saved.
    positions: BTreeMap<String, Position>,
    cursors: BTreeMap<String, String>,
    /// Failure windows taken from the trackers and not saved yet (a save
    /// failed, or the jail left the config: `None` deletes).
    windows: BTreeMap<(String, IpNet), Option<Vec<SystemTime>>>,
    saved_at: Option<Instant>,
    /// Unbans of many nets written in one transaction since start (tests
    /// check that a bulk unban is one).
    pub(super) unban_batches: u64,
}

impl History {
    pub(super) fn new(keep: Duration) -> History {
        History {
            store: None,
            errors: 0,
            failing: false,
            damaged: false,
            backlog: Backlog::default(),
            keep,
            last_purge: None,
            positions: BTreeMap::new(),
            cursors: BTreeMap::new(),
            windows: BTreeMap::new(),
            saved_at: None,
            unban_batches: 0,
        }
    }

    pub(super) fn with_store(mut self, store: Store) -> History {
        self.store = Some(store);
        self
    }

    pub(super) fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// Records (bans, unbans) waiting to be written.
    pub(super) fn waiting(&self) -> u64 {
        self.backlog.len() as u64
    }

    /// Records dropped since start because too many waited.
    pub(super) fn dropped(&self) -> u64 {
        self.backlog.dropped()
    }

    /// Count a failed step; log it if the history was working until now,
    /// with what it means for the user.
    fn failed<T>(&mut self, result: crate::store::Result<T>, consequence: &str) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors += 1;
                self.damaged |= e.is_damage();
                if self.failing {
                    tracing::debug!(error = %e, "{consequence}");
                } else if e.is_damage() {
                    // Retrying cannot help: the next save replaces it.
                    self.failing = true;
                    tracing::error!(
                        error = %e,
                        "{consequence}; the ban database is damaged: at the next save (within about a second) it is moved aside and a new one is written with every running ban"
                    );
                } else {
                    self.failing = true;
                    tracing::error!(
                        error = %e,
                        "{consequence}; what was not written is kept and written again about once a second (logged again once it works; `nftban status` counts what waits)"
                    );
                }
                None
            }
        }
    }

    /// A write reached SQLite: if the history was failing, say that it
    /// works again, and how many waiting records `caught_up` wrote.
    fn recovered(&mut self, caught_up: usize) {
        if std::mem::take(&mut self.failing) {
            let dropped = match self.backlog.dropped() {
                0 => String::new(),
                n => format!("; {n} record(s) were dropped since start because too many waited"),
            };
            tracing::info!("the ban history is written again: {caught_up} waiting record(s) written{dropped}");
        }
    }

    /// Keep writes that could not be made, after those already waiting.
    /// `Err` gives back one that could not be kept either (an unban, with
    /// the backlog full).
    fn hold(&mut self, writes: impl IntoIterator<Item = Write>) -> Result<(), Write> {
        writes.into_iter().try_for_each(|w| self.backlog.push(w))
    }

    /// Write what waits, oldest first; returns how many records that was.
    /// Neither counts nor logs: the caller does.
    fn catch_up(&mut self) -> crate::store::Result<usize> {
        let Some(store) = self.store.as_mut() else {
            return Ok(0);
        };
        self.backlog.replay(|step| match step {
            Step::Bans(bans) => store.record_bans(bans),
            Step::Unban { jail, net, at } => store.record_unban(jail, net, at),
            Step::JailRemoved { jail, at } => store.record_jail_removed(jail, at).map(drop),
        })
    }

    /// Write bans decided at `now`, before they go to the kernel. If the
    /// history cannot take them (or others wait, which must go first), they
    /// are kept and written again at the next save.
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
        if !self.backlog.is_empty() {
            // Bans never fail to be kept (the oldest makes room).
            let _ = self.hold(records.into_iter().map(Write::Ban));
            return;
        }
        if let Err(e) = store.record_bans(&records) {
            let consequence = format!(
                "could not write {} ban(s) to the history; they are in the kernel, and will be restored after a restart only once written",
                bans.len()
            );
            self.failed::<()>(Err(e), &consequence);
            let _ = self.hold(records.into_iter().map(Write::Ban));
        }
    }

    /// Write an unban (or a removed jail) after what waits. If it cannot be
    /// written it is kept, to be written at the next save; `Err` only when
    /// it can be neither written nor kept (too many records wait).
    fn write(&mut self, write: Write, consequence: &str) -> Result<(), crate::store::Error> {
        let result = self.catch_up().and_then(|caught_up| {
            let Some(store) = self.store.as_mut() else {
                return Ok(caught_up);
            };
            match &write {
                Write::Ban(b) => store.record_bans(std::slice::from_ref(b)),
                Write::Unban { jail, net, at } => store.record_unban(jail.as_deref(), net, *at),
                Write::JailRemoved { jail, at } => store.record_jail_removed(jail, *at).map(drop),
            }
            .map(|()| caught_up)
        });
        match result {
            Ok(caught_up) => {
                self.recovered(caught_up);
                Ok(())
            }
            Err(e) => match self.hold([write]) {
                Ok(()) => {
                    self.failed::<()>(Err(e), consequence);
                    Ok(())
                }
                Err(_) => {
                    self.errors += 1;
                    Err(e)
                }
            },
        }
    }

    /// Mark bans as lifted (by hand, replaced by a prefix, or refused by
    /// the kernel): they are not restored. `jail: None` is every jail.
    /// Kept to be written later if the history cannot take it now; `Err`
    /// when it can be neither written nor kept (true without a store).
    pub(super) fn unban(
        &mut self,
        jail: Option<&str>,
        nets: &[IpNet],
        now: SystemTime,
    ) -> Result<(), crate::store::Error> {
        if self.store.is_none() {
            return Ok(());
        }
        // Many at once, with nothing waiting before them: one transaction.
        // If that fails, one by one below, where each is kept to be written
        // later.
        if nets.len() > 1 && self.backlog.is_empty() {
            if let Some(store) = self.store.as_mut() {
                if store.record_unbans(jail, nets, now).is_ok() {
                    self.unban_batches += 1;
                    return Ok(());
                }
            }
        }
        for net in nets {
            let write = Write::Unban {
                jail: jail.map(str::to_string),
                net: *net,
                at: now,
            };
            self.write(
                write,
                "could not mark a ban lifted in the history; until that is written, a restart would restore it",
            )?;
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

    /// Bans still running at `now`, all at once (tests; a restore streams
    /// them, see [`History::each_running`]).
    #[cfg(test)]
    pub(super) fn active(&mut self, now: SystemTime) -> Vec<crate::store::ActiveBan> {
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

    /// The records of bans still running at `now`, handed to `each` at
    /// most `chunk` at a time while it says to go on (see
    /// `Store::each_running`). A failure to read is logged and counted:
    /// the bans read before it are restored, the others not.
    pub(super) fn each_running(&mut self, now: SystemTime, chunk: usize, each: impl FnMut(Vec<RunningBan>) -> bool) {
        let Some(store) = self.store.as_mut() else { return };
        let result = store.each_running(now, chunk, each);
        self.failed(
            result,
            "cannot read the ban history: the running bans after the error are not restored (bans still in the kernel stay until they expire)",
        );
    }

    /// Give back the memory the history's connection held for a big
    /// read (the restore; the purge gives its own back).
    pub(super) fn give_back(&self) {
        if let Some(store) = &self.store {
            store.give_back();
        }
    }

    /// A jail left the config: its bans are lifted and not restored again.
    pub(super) fn jail_removed(&mut self, jail: &str, now: SystemTime) {
        if self.store.is_none() {
            return;
        }
        tracing::info!("jail {jail} left the config: its bans are lifted");
        let write = Write::JailRemoved {
            jail: jail.to_string(),
            at: now,
        };
        if let Err(e) = self.write(write, "could not mark the removed jail's bans as lifted in the history") {
            tracing::warn!(error = %e, jail, "could not mark the removed jail's bans as lifted in the history");
        }
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

    /// Bans lifted since `since` that would still run at `now` (none
    /// running again since), to tell the fleet again at start.
    pub(super) fn lifted_since(&mut self, since: SystemTime, now: SystemTime) -> Vec<crate::store::LiftedBan> {
        let Some(store) = self.store.as_mut() else {
            return Vec::new();
        };
        let result = store.lifted_since(since, now);
        self.failed(result, "cannot read the ban history for unbans to tell the fleet again")
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

    /// See [`crate::store::Store::running_beside`]; `None` without a
    /// history, or when it cannot be read (logged).
    pub(super) fn running_beside(
        &mut self,
        jail: &str,
        net: &IpNet,
        except: Origin,
        now: SystemTime,
    ) -> Option<crate::store::ActiveBan> {
        let store = self.store.as_mut()?;
        match store.running_beside(jail, net, except, now) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(jail, error = %e, "cannot read the history for the bans under a peer's");
                None
            }
        }
    }

    /// How many times `net` was banned in `jail` before; `None` without a
    /// history (or when it cannot be read), so the caller counts itself.
    pub(super) fn ban_count(&mut self, jail: &str, net: &IpNet) -> Option<u32> {
        let store = self.store.as_mut()?;
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

    /// Write what waits, then save reading positions with the failure
    /// windows as they stand after those lines, and move the bans gathered
    /// in the pending file into SQLite with them: at most once a second
    /// unless `force` (shutdown, reload). `windows` is asked only when a
    /// save happens. Nothing is dropped when it fails: it is all tried
    /// again at the next save, and positions never go ahead of bans that
    /// wait.
    ///
    /// A database found damaged is replaced first: moved aside, and a new
    /// one written with `running`, every ban that runs (the engine's
    /// record, which [`History::wants_running`] asks for).
    pub(super) fn save(
        &mut self,
        force: bool,
        running: Option<Vec<BanRecord>>,
        windows: impl FnOnce() -> Vec<FailureWindow>,
    ) {
        let Some(store) = self.store.as_ref() else { return };
        let waiting = !self.positions.is_empty()
            || !self.cursors.is_empty()
            || !self.windows.is_empty()
            || !self.backlog.is_empty()
            || self.damaged
            || store.has_pending();
        if !waiting && !force {
            return;
        }
        if !self.due(force) {
            return;
        }
        self.saved_at = Some(Instant::now());
        if let Some(running) = running.filter(|_| self.damaged) {
            if !self.replace(&running) {
                return;
            }
        }
        // Taken from the trackers now; kept here until a save holds them.
        for w in windows() {
            self.windows.insert((w.jail, w.net), w.times);
        }
        let caught_up = self.catch_up();
        let Some(caught_up) = self.failed(
            caught_up,
            "could not write waiting bans and unbans to the history; file positions are not saved past them",
        ) else {
            return;
        };
        let positions: Vec<(String, Position)> = self.positions.iter().map(|(p, v)| (p.clone(), *v)).collect();
        let cursors: Vec<(String, String)> = self.cursors.iter().map(|(s, c)| (s.clone(), c.clone())).collect();
        let windows: Vec<FailureWindow> = self
            .windows
            .iter()
            .map(|((jail, net), times)| FailureWindow {
                jail: jail.clone(),
                net: *net,
                times: times.clone(),
            })
            .collect();
        let Some(store) = self.store.as_mut() else { return };
        // Forced (a stop, a reload): all of it now. Otherwise not while
        // the store's mover thread moves a bulk of bans: next second.
        let result = match force {
            true => store.save(&[], &positions, &cursors, &windows).map(|()| true),
            false => store.save_soon(&positions, &cursors, &windows),
        };
        if self.failed(
            result,
            "could not save file positions and failure counts; lines may be read again after a restart",
        ) == Some(true)
        {
            self.positions.clear();
            self.cursors.clear();
            self.windows.clear();
            self.recovered(caught_up);
        }
    }

    /// Whether a save now is due: forced, or a second since the last.
    fn due(&self, force: bool) -> bool {
        force || self.saved_at.is_none_or(|t| t.elapsed() >= SAVE_EVERY)
    }

    /// Whether the next save wants every running ban: the database is
    /// damaged and a save is due.
    pub(super) fn wants_running(&self, force: bool) -> bool {
        self.damaged && self.store.is_some() && self.due(force)
    }

    /// Replace the damaged database by a new one holding `running`. What
    /// waited for the old one is dropped: `running` has every ban still in
    /// force, an unban's ban is not among them. False if it failed (tried
    /// again at the next save).
    fn replace(&mut self, running: &[BanRecord]) -> bool {
        let Some(store) = self.store.as_mut() else { return false };
        let path = store.path().to_path_buf();
        let result = store
            .replace_damaged()
            .and_then(|aside| store.record_bans(running).map(|()| aside));
        let Some(aside) = self.failed(result, "could not replace the damaged ban database") else {
            return false;
        };
        self.damaged = false;
        let _ = self.backlog.replay(|_| Ok::<(), ()>(()));
        tracing::warn!(
            "the damaged ban database {} was moved aside to {}; a new one holds the {} running ban(s), so a restart restores them. Lost with the old one: the bans that ended (bantime increments and recidive count afresh), and reading positions and failure counts unchanged since the damage (a restart reads those files from their end)",
            path.display(),
            aside.display(),
            running.len()
        );
        true
    }

    /// Delete saved failure windows (of jails no longer configured), with
    /// the next save.
    pub(super) fn drop_windows(&mut self, gone: &[FailureWindow]) {
        if self.store.is_none() {
            return;
        }
        for w in gone {
            self.windows.insert((w.jail.clone(), w.net), None);
        }
    }

    /// Remove old history now and then (and give the page cache back).
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
        // The purge walks the whole table; with the pages of the hour's
        // own saves, what it left in the cache goes back.
        store.give_back();
        match self.failed(result, "could not purge old ban history") {
            Some(0) | None => {}
            Some(n) => tracing::info!("removed {n} ban history entries older than {}", format_duration(keep)),
        }
    }
}

/// Every ban that runs at `now`, from the jails' record, as history
/// records: made `now` (the record keeps no start), from a fleet peer when
/// its reason says so, by hand in the manual jail, escalated when its
/// reason says so, by the jail's rules otherwise.
pub(super) fn running_records(jails: &[JailState], now: SystemTime) -> Vec<BanRecord> {
    let mut out = Vec::new();
    for j in jails {
        for (net, until) in j.bans.iter().filter(|&(_, t)| t > now) {
            let reason = j.reasons.get(&net).map(|r| r.to_string());
            // A fleet peer's ban keeps its origin (its reason starts with
            // it): it must never come back as this node's own, to publish.
            let peer = reason
                .as_deref()
                .and_then(|r| r.strip_prefix("fleet:"))
                .and_then(|r| crate::store::Peer::of(r.split(':').next()?));
            let origin = if let Some(peer) = peer {
                Origin::Fleet(peer)
            } else if j.name == MANUAL_JAIL {
                Origin::Manual
            } else if reason.as_deref().is_some_and(|r| r.starts_with("escalated")) {
                Origin::Escalated
            } else {
                Origin::Auto
            };
            out.push(BanRecord {
                jail: j.name.clone(),
                net,
                at: now,
                expires: until,
                origin,
                reason,
            });
        }
    }
    out
}

impl Drop for History {
    /// Stopping (or reloading) with records still waiting loses them: say
    /// so, once, with what it means.
    fn drop(&mut self) {
        if !self.backlog.is_empty() {
            tracing::error!(
                "stopping with {} ban history record(s) not written (the history still fails): bans made meanwhile are not restored after a restart (they stay in the kernel until they expire), and unbans made meanwhile may be undone",
                self.backlog.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::SystemTime;

    use super::super::Engine;
    use crate::address::show as show_net;
    use crate::config::Config;
    use crate::firewall::memory::Memory;
    use crate::store::testfs::{fill, possible, with_small_disk};
    use crate::store::Store;

    const CONFIG: &str = "\
defaults: {findtime: 10m, maxretry: 3, bantime: 1h}
jails:
  asterisk:
    ruleset: asterisk
    files: [/var/log/asterisk/messages]
";

    fn kernel(e: &mut Engine, jail: &str) -> Vec<String> {
        let mut v: Vec<String> = e
            .firewall
            .list(jail)
            .unwrap()
            .iter()
            .map(|el| show_net(&el.net))
            .collect();
        v.sort();
        v
    }

    fn banned(e: &mut Engine, jail: &str) -> Vec<String> {
        let st = e.jail_status(jail, SystemTime::now(), false).unwrap();
        let mut v: Vec<String> = st.banned.into_iter().map(|b| b.ip).collect();
        v.sort();
        v
    }

    /// A full disk (a real one: a small tmpfs filled to the last page):
    /// bans still reach the firewall, unban works, nothing is logged per
    /// write, and once space is back the history catches up, so a restart
    /// restores the bans made meanwhile and not the one lifted meanwhile.
    /// Before, those bans were never written: after the restart they were
    /// missing from status and `unban` said "not banned in any jail".
    #[test]
    fn a_full_disk_is_caught_up_once_space_is_back() {
        if possible("a_full_disk_is_caught_up_once_space_is_back") {
            with_small_disk("4m", full_disk_scenario);
        }
    }

    /// Another process holding the history's write lock (an admin's
    /// `sqlite3` in a transaction, a backup tool) does not stop the engine.
    /// Before, each write waited SQLite's busy timeout (five seconds) for
    /// the lock on the engine's thread, every ban behind it waiting too; an
    /// unban while the lock was held for two seconds was answered only once
    /// it was released. Now the unban is a line of the pending file, like
    /// a ban: answered at once, with nothing waiting in the engine, and
    /// moved into SQLite once the lock is gone.
    #[test]
    fn a_lock_held_by_another_process_does_not_stop_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
        let mut e = Engine::new(&config, Box::new(Memory::new())).with_store(Store::open(&db).unwrap());
        e.start(&config).unwrap();
        let now = SystemTime::now();
        let ban = |e: &mut Engine, addr: &str| e.ban(&[addr.to_string()], Some("asterisk"), None, now).unwrap();
        ban(&mut e, "198.51.100.1");
        e.finish(now);
        ban(&mut e, "198.51.100.2");

        let (locked, is_locked) = std::sync::mpsc::channel();
        let holder = std::thread::spawn({
            let db = db.clone();
            move || {
                let c = rusqlite::Connection::open(&db).unwrap();
                c.execute_batch("BEGIN EXCLUSIVE").unwrap();
                locked.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_secs(2));
                c.execute_batch("ROLLBACK").unwrap();
            }
        });
        is_locked.recv().unwrap();
        let r = e.unban(&["198.51.100.1".into()], None, now).unwrap();
        assert_eq!(r.unbanned, [("198.51.100.1".to_string(), "asterisk".to_string())]);
        assert_eq!(kernel(&mut e, "asterisk"), ["198.51.100.2"]);
        let st = e.status(now, false);
        assert_eq!(
            (st.history_waiting, st.history_errors),
            (0, 0),
            "the unban's record waits in the pending file, not in the engine"
        );
        holder.join().unwrap();
        e.finish(now);
        assert_eq!(e.status(now, false).history_waiting, 0);
        drop(e);

        let mut e = Engine::new(&config, Box::new(Memory::new())).with_store(Store::open(&db).unwrap());
        assert_eq!(e.start(&config).unwrap(), 1);
        assert_eq!(banned(&mut e, "asterisk"), ["198.51.100.2"]);
    }

    /// What is logged on this thread, as text.
    #[derive(Clone, Default)]
    struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Log {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn full_disk_scenario(dir: &Path) {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _logging = tracing::subscriber::set_default(subscriber);
        let db = dir.join("nftban.db");
        let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
        let mut e = Engine::new(&config, Box::new(Memory::new())).with_store(Store::open(&db).unwrap());
        e.start(&config).unwrap();
        let now = SystemTime::now();
        let ban = |e: &mut Engine, addr: &str| e.ban(&[addr.to_string()], Some("asterisk"), None, now).unwrap();
        ban(&mut e, "198.51.100.1");
        e.finish(now);
        assert_eq!(e.status(now, false).history_errors, 0);
        // The WAL emptied to nothing, as a checkpoint leaves it at times:
        // with room left in it, SQLite writes on a full disk (the thread
        // that checkpoints after each commit often leaves it so).
        let c = rusqlite::Connection::open(&db).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        // A read first: until then the connection does not know the file
        // is in WAL mode, and a checkpoint answers "not in WAL mode".
        let _: i64 = c
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        // Busy while the thread's own checkpoint runs: again after it.
        for _ in 0..500 {
            let busy: i64 = c
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .unwrap();
            if busy == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(c);
        assert_eq!(std::fs::metadata(dir.join("nftban.db-wal")).unwrap().len(), 0);

        let filler = fill(dir);
        ban(&mut e, "198.51.100.2");
        ban(&mut e, "198.51.100.3");
        assert_eq!(
            kernel(&mut e, "asterisk"),
            ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        );
        let st = e.status(now, false);
        assert!(st.history_errors > 0);
        assert_eq!((st.history_waiting, st.history_dropped), (2, 0));
        // Unban works while the history cannot be written; it waits too.
        let r = e.unban(&["198.51.100.1".into()], None, now).unwrap();
        assert_eq!(r.unbanned, [("198.51.100.1".to_string(), "asterisk".to_string())]);
        assert_eq!(kernel(&mut e, "asterisk"), ["198.51.100.2", "198.51.100.3"]);
        e.finish(now);
        e.finish(now);
        assert_eq!(e.status(now, false).history_waiting, 3);

        std::fs::remove_file(filler).unwrap();
        e.finish(now);
        let st = e.status(now, false);
        assert_eq!((st.history_waiting, st.history_dropped), (0, 0));
        e.finish(now);
        assert_eq!(
            e.status(now, false).history_errors,
            st.history_errors,
            "no failure once space is back"
        );
        let text = log.text();
        assert_eq!(text.matches(" ERROR ").count(), 1, "{text}");
        assert_eq!(
            text.matches("the ban history is written again: 3 waiting record(s) written")
                .count(),
            1,
            "{text}"
        );
        drop(e);

        let mut e = Engine::new(&config, Box::new(Memory::new())).with_store(Store::open(&db).unwrap());
        assert_eq!(e.start(&config).unwrap(), 2);
        assert_eq!(banned(&mut e, "asterisk"), ["198.51.100.2", "198.51.100.3"]);
        let r = e.unban(&["198.51.100.2".into()], None, now).unwrap();
        assert_eq!(r.unbanned, [("198.51.100.2".to_string(), "asterisk".to_string())]);
    }
}
