//! Start: create or adopt the kernel table, then bring back from the ban
//! history what an earlier run left running: bans (into the kernel, in one
//! batch), failure counts not yet at `maxretry`, and recidive's memory of
//! recent bans.

use std::collections::BTreeSet;
use std::time::SystemTime;

use super::Engine;
use crate::config::{Config, MANUAL_JAIL, RECIDIVE_JAIL};
use crate::firewall::Ban;
use crate::store::FailureWindow;

impl Engine {
    /// Create or adopt the kernel table, then restore the bans the history
    /// says are still running, all in one batch. The kernel's sets are never
    /// listed (listing a big set is slow in the kernel, docs/firewall.md):
    /// setup creates only what is missing and never flushes a set, so bans
    /// already in the kernel stay there with their own timeouts, and
    /// re-adding the history's bans is idempotent. Without history (a first
    /// start, a deleted database) the record starts empty: bans left in the
    /// kernel keep dropping until they expire, but `status` does not show
    /// them. Returns how many bans were restored.
    pub fn start(&mut self, config: &Config) -> crate::firewall::Result<usize> {
        self.spec = config.table_spec();
        self.firewall.setup(&self.spec)?;
        let now = SystemTime::now();
        let active = self.history.active(now);
        self.seed_recidive(now);
        self.restore_failures(now);
        let mut restore = Vec::with_capacity(active.len());
        let mut removed = BTreeSet::new();
        for ban in active {
            let Some(jail) = self.jails.iter_mut().find(|j| j.name == ban.jail) else {
                // The jail left the config: its bans are lifted (setup
                // removed its sets) and not restored again.
                removed.insert(ban.jail);
                continue;
            };
            let left = ban.expires.duration_since(now).unwrap_or_default();
            if left.is_zero() {
                continue;
            }
            jail.bans.insert(ban.net, ban.expires);
            if let Some(why) = ban.reason {
                jail.reasons.insert(ban.net, why);
            }
            restore.push(Ban {
                jail: ban.jail,
                net: ban.net,
                timeout: left,
            });
        }
        for jail in &removed {
            self.history.jail_removed(jail, now);
        }
        if restore.is_empty() {
            tracing::info!(
                "no running ban in the history; bans already in the kernel's sets are kept as they are (not listed, not shown by status) until they expire"
            );
            return Ok(0);
        }
        // Restored bans the kernel refuses (a set that became smaller, say)
        // are logged and dropped like any refusal.
        let batches = self.firewall.batches();
        let refused = self.push(&restore, now).len();
        let batches = self.firewall.batches() - batches;
        tracing::info!(
            "restored {} bans in {batches} netlink batch{}",
            restore.len() - refused,
            if batches == 1 { "" } else { "es" }
        );
        Ok(restore.len() - refused)
    }

    /// Put back the failure windows saved with the file positions (see
    /// `Tracker::take_changes`). Windows of jails no longer configured are
    /// deleted from the history.
    fn restore_failures(&mut self, now: SystemTime) {
        let (mut restored, mut gone) = (0, Vec::new());
        for (jail, net, times) in self.history.failure_windows() {
            let found = self.jails.iter().position(|j| j.name == jail);
            match found.filter(|&i| Some(i) != self.recidive) {
                Some(i) => {
                    self.jails[i].tracker.restore(net, &times, now);
                    restored += 1;
                }
                None => gone.push(FailureWindow { jail, net, times: None }),
            }
        }
        if !gone.is_empty() {
            self.history.drop_windows(&gone);
        }
        if restored > 0 {
            tracing::info!("restored the failure counts of {restored} address(es) not banned yet");
        }
    }

    /// Recidive counts bans across restarts: feed it the history's bans of
    /// the last `findtime`.
    fn seed_recidive(&mut self, now: SystemTime) {
        let Some(r) = self.recidive.filter(|_| self.history.has_store()) else {
            return;
        };
        let findtime = self.jails[r].tracker.policy.findtime;
        let since = now.checked_sub(findtime).unwrap_or(std::time::UNIX_EPOCH);
        for (jail, net, at) in self.history.bans_since(since) {
            if jail != RECIDIVE_JAIL && jail != MANUAL_JAIL {
                let _ = self.jails[r].tracker.failure_of(net, at);
            }
        }
    }
}
