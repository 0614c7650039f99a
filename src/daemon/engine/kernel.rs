//! The engine's kernel side: bans decided go into the kernel in one batch
//! per burst, refused ones leave the record, banned sources lose their
//! conntrack entries, and the table is put back when another tool changed
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;

use super::Engine;
use crate::address::{is_host, show as show_net};
use crate::firewall::{Ban, Notice};
use crate::store::Origin;

/// How many bans refused in one batch are logged one by one.
const LOGGED_REFUSALS: usize = 10;

/// While bans stream in, conntrack entries of banned sources are removed at
/// most this often. Each removal walks the kernel's whole conntrack table
/// (shared by all namespaces), however few addresses it is for, so one walk
/// per ban costs a whole core under a steady stream of bans
/// (docs/performance.md, "Daemon"). A lone ban is still cleaned at once;
/// bans in the interval after it are cleaned together at its end. Their
/// packets are dropped by the rules meanwhile: only the entries' cleanup
/// waits.
pub const FORGET_INTERVAL: Duration = Duration::from_secs(1);

/// Banned sources whose conntrack entries are still to be removed.
pub(super) struct Forget {
    waiting: Vec<IpNet>,
    last: Option<Instant>,
    /// [`FORGET_INTERVAL`]; tests set another.
    pub(super) interval: Duration,
}

impl Forget {
    /// Whether removals wait for the end of the interval.
    pub(super) fn waiting(&self) -> bool {
        !self.waiting.is_empty()
    }
}

impl Default for Forget {
    fn default() -> Forget {
        Forget {
            waiting: Vec::new(),
            last: None,
            interval: FORGET_INTERVAL,
        }
    }
}

impl Engine {
    /// Send the bans decided since the last flush to the kernel in one
    /// batch, after writing them to the history.
    pub fn flush(&mut self, now: SystemTime) {
        if self.pending.is_empty() {
            return;
        }
        let bans = std::mem::take(&mut self.pending);
        self.history.record(&bans, Origin::Auto, None, now);
        let refused = self.push(&bans, Some(Origin::Auto), now);
        self.announce_bans(&bans, &refused, Origin::Auto, None, now);
    }

    /// Put `bans` (already in the record) into the kernel, then remove
    /// their conntrack entries. If the table is gone, it is put back first.
    /// Bans the kernel refuses are logged, counted and dropped from the
    /// record and the history; the others stay. `counted`: the origin the
    /// bans were counted under when they were decided (`None` for bans put
    /// back), whose count a refusal undoes. Returns the refused ones, with
    /// the reason.
    pub(super) fn push(&mut self, bans: &[Ban], counted: Option<Origin>, now: SystemTime) -> Vec<(Ban, String)> {
        let added = match self.firewall.add(bans) {
            // Another tool deleted the table (or a set) since the last
            // batch, or in the middle of this one. These bans are in the
            // record: the table goes back with every ban of the record, as
            // healing does, rather than refusing them (the watcher's notice
            // of the deletion, handled later, finds the table whole).
            Err(e) if no_such_table(&e) => match self.restore(now) {
                Ok(n) => {
                    tracing::warn!(
                        "table inet {} was gone while {} ban(s) went in ({e}): restored the table and {n} ban(s){}",
                        self.spec.table,
                        bans.len(),
                        self.feeds_restored()
                    );
                    Ok(Vec::new())
                }
                Err(again) => Err(again),
            },
            other => other,
        };
        // `Err` means nothing went in (no table that could be restored, a
        // broken socket): one log line for the call, not one per ban.
        let (refused, whole): (Vec<(Ban, String)>, bool) = match added {
            Ok(refused) => (
                refused.into_iter().map(|r| (r.ban, r.error.to_string())).collect(),
                false,
            ),
            Err(e) => {
                tracing::error!(error = %e, count = bans.len(), "could not put bans into the kernel");
                let why = e.to_string();
                (bans.iter().map(|b| (b.clone(), why.clone())).collect(), true)
            }
        };
        self.unrecord(&refused, whole, counted, now);
        // Only now that the bans are in place: a packet of the flow that
        // arrives meanwhile is dropped before its new entry is confirmed.
        let lost: BTreeSet<(&str, IpNet)> = refused.iter().map(|(b, _)| (b.jail.as_str(), b.net)).collect();
        self.forget.waiting.extend(
            bans.iter()
                .filter(|b| !lost.contains(&(b.jail.as_str(), b.net)))
                .map(|b| b.net),
        );
        self.forget_connections(false);
        self.share_bans(bans, &refused, counted, now);
        refused
    }

    /// Bans the kernel refused leave the record and the history: logged
    /// (the first few one by one; none if `whole`, a failure of the whole
    /// call the caller logged once) and counted. `counted`: as in
    /// [`Engine::push`].
    pub(super) fn unrecord(
        &mut self,
        refused: &[(Ban, String)],
        whole: bool,
        counted: Option<Origin>,
        now: SystemTime,
    ) {
        let mut unrecord: BTreeMap<&str, Vec<IpNet>> = BTreeMap::new();
        for (k, (ban, why)) in refused.iter().enumerate() {
            self.kernel_errors += 1;
            if let Some(j) = self.jails.iter_mut().find(|j| j.name == ban.jail) {
                j.drop_refused(&ban.net, counted);
            }
            // Refused by the kernel, so not to be restored either: the
            // record, the history and the answer agree. (A whole refusal
            // used to stay in the history, so a restart put back bans that
            // `ban` had answered were not made and status did not show.)
            unrecord.entry(ban.jail.as_str()).or_default().push(ban.net);
            if whole {
                continue;
            }
            // A full set refuses every further ban: name the first few.
            if k < LOGGED_REFUSALS {
                tracing::error!(jail = %ban.jail, "could not put the ban of {} into the kernel: {why}", show_net(&ban.net));
            } else if k == LOGGED_REFUSALS {
                tracing::error!("... and {} more bans refused by the kernel", refused.len() - k);
            }
        }
        for (jail, nets) in &unrecord {
            self.history.forget(jail, nets, now);
        }
    }

    /// Remove the conntrack entries of the sources banned since the last
    /// time: now if `force` or [`FORGET_INTERVAL`] has passed since then,
    /// else later (the daemon's loop calls [`Engine::tick`] within the
    /// interval while some are waiting, see [`Engine::wait_at_most`]).
    pub(super) fn forget_connections(&mut self, force: bool) {
        let f = &mut self.forget;
        if f.waiting.is_empty() || !force && f.last.is_some_and(|t| t.elapsed() < f.interval) {
            return;
        }
        let nets = std::mem::take(&mut f.waiting);
        f.last = Some(Instant::now());
        if !conntrack_logged(self.firewall.forget_connections(&nets), "banned") {
            self.kernel_errors += 1;
        }
    }

    /// Put the table back as setup makes it and re-add every live ban
    /// with its remaining time, from nftban's own record (never by listing
    /// the kernel's sets). Returns how many bans were re-added.
    pub(super) fn restore(&mut self, now: SystemTime) -> crate::firewall::Result<usize> {
        self.flush(now);
        self.expire(now);
        self.firewall.setup(&self.spec)?;
        // In chunks, as at start: a million bans are never copied at once.
        let chunk = self.restore_chunk.max(1);
        let (mut bans, mut added) = (Vec::new(), 0);
        for j in &self.jails {
            for (net, until) in j.bans.iter() {
                let Some(left) = until.duration_since(now).ok().filter(|d| !d.is_zero()) else {
                    continue;
                };
                bans.push(Ban {
                    jail: j.name.clone(),
                    net,
                    timeout: left,
                });
                if bans.len() == chunk {
                    self.firewall.add(&bans)?;
                    added += bans.len();
                    bans.clear();
                }
            }
        }
        self.firewall.add(&bans)?;
        added += bans.len();
        // The feeds' entries too: one transaction per feed, as a refresh.
        let feeds: Vec<(String, Vec<IpNet>)> = self.feed_entries().map(|(s, n)| (s.to_string(), n)).collect();
        for (sets, nets) in &feeds {
            self.firewall.apply_diff(sets, nets, &[])?;
        }
        Ok(added)
    }

    /// The end of a restore's log line: the feeds' entries it put back
    /// too, if any (it said only the bans).
    pub(super) fn feeds_restored(&self) -> String {
        match self.feed_entry_count() {
            0 => String::new(),
            n => format!(" and {n} feed entr{}", if n == 1 { "y" } else { "ies" }),
        }
    }

    /// What is missing from the kernel, checked cheaply: the table's
    /// objects, and per jail one single-address and one prefix ban (the
    /// ones with the most time left), looked up one by one.
    fn missing(&mut self, now: SystemTime) -> crate::firewall::Result<Vec<String>> {
        let soon = now.checked_add(Duration::from_secs(2)).unwrap_or(now);
        let mut probes = Vec::new();
        for j in &self.jails {
            // Any ban that still runs after the check will do; the first
            // found, not the longest (that was a walk over every ban after
            // each big batch: quadratic while `ban -` filled a jail).
            for host in [true, false] {
                if !host && !j.bans.has_prefixes() {
                    continue;
                }
                let probe = j.bans.iter().find(|(n, t)| *t > soon && is_host(n) == host);
                if let Some((net, _)) = probe {
                    probes.push((j.name.clone(), net));
                }
            }
        }
        probes.extend(self.feed_probes());
        self.firewall.missing(&self.spec, &probes)
    }

    /// Act on what the watcher of nftban's table reported: after another
    /// process's deletions, restore at once; after lost events (or a big
    /// batch of nftban's own, during which the watcher was paused), check
    /// cheaply first and restore only if something is missing.
    pub fn heal(&mut self, notice: Notice, now: SystemTime) {
        let table = self.spec.table.clone();
        let cause = match notice {
            Notice::Changed { what, pid, process } => {
                format!("{} by process {process} (pid {pid})", what.join(", "))
            }
            Notice::Lost => match self.missing(now) {
                Ok(missing) if missing.is_empty() => {
                    tracing::debug!("nf_tables events were lost (ENOBUFS); table inet {table} is intact");
                    return;
                }
                Ok(missing) => format!(
                    "{} (nf_tables events were lost, so the process is unknown)",
                    missing.join(", ")
                ),
                Err(e) => format!("nf_tables events were lost and checking the table failed ({e})"),
            },
        };
        match self.restore(now) {
            Ok(n) => tracing::warn!(
                "table inet {table} was changed by another tool: {cause}; restored the table and {n} ban(s){}",
                self.feeds_restored()
            ),
            Err(e) => {
                self.kernel_errors += 1;
                tracing::error!(error = %e, "table inet {table} was changed by another tool: {cause}; restoring it failed")
            }
        }
        // The restore itself may have run with the watcher paused: that
        // window is covered by the restore, so it needs no second check.
        let _ = self.firewall.take_unwatched();
    }
}

/// Whether the kernel said a table or set of the batch does not exist
/// (ENOENT): another tool deleted it.
pub(super) fn no_such_table(e: &crate::firewall::Error) -> bool {
    matches!(e, crate::firewall::Error::Kernel { error, .. } if error.raw_os_error() == Some(libc::ENOENT))
}

/// Log how removing the conntrack entries of the `whose` sources went
/// (`banned`, `restored bans'`): how many, or why not. Whether it worked.
pub(super) fn conntrack_logged(removed: crate::firewall::Result<usize>, whose: &str) -> bool {
    match removed {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            "removed {n} conntrack entr{} of {whose} sources",
            if n == 1 { "y" } else { "ies" }
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not remove the conntrack entries of {whose} sources");
            return false;
        }
    }
    true
}
