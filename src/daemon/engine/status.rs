//! `nftban status`: the engine's figures per jail, with the kernel's rule
//! counters and each source's own account of itself.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::{Engine, RequestError};
use crate::address::show as show_net;
use crate::firewall::{jail_sets, Counter};
use crate::status::{Banned, JailStatus, Status};

impl Engine {
    /// Every jail.
    pub fn status(&mut self, now: SystemTime) -> Status {
        self.request(now, |e| {
            let counters = e.counters();
            Status {
                jails: (0..e.jails.len())
                    .map(|i| e.jail_status_of(i, now, &counters))
                    .collect(),
                kernel_errors: e.kernel_errors,
                history_errors: e.history.errors,
                history_waiting: e.history.waiting(),
                history_dropped: e.history.dropped(),
                fleet: e.fleet_status(),
            }
        })
    }

    /// One jail, by name.
    pub fn jail_status(&mut self, name: &str, now: SystemTime) -> Result<JailStatus, RequestError> {
        self.request(now, |e| {
            let i = e.jail_index(name)?;
            let counters = e.counters();
            Ok(e.jail_status_of(i, now, &counters))
        })
    }

    /// The rules' counters, in one small dump for every jail.
    fn counters(&mut self) -> BTreeMap<String, Counter> {
        self.firewall.counters().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the rule counters");
            BTreeMap::new()
        })
    }

    fn jail_status_of(&self, i: usize, now: SystemTime, counters: &BTreeMap<String, Counter>) -> JailStatus {
        let j = &self.jails[i];
        let mut counter = Counter::default();
        for set in jail_sets(&j.name) {
            if let Some(c) = counters.get(&set.name) {
                counter.packets += c.packets;
                counter.bytes += c.bytes;
            }
        }
        let banned: Vec<Banned> = j
            .bans
            .iter()
            .filter(|(_, &t)| t > now)
            .map(|(net, &t)| Banned {
                ip: show_net(net),
                expires_in: t.duration_since(now).unwrap_or_default().as_secs(),
                reason: j.reasons.get(net).cloned(),
            })
            .collect();
        JailStatus {
            name: j.name.clone(),
            ruleset: j.ruleset.clone(),
            files: j.files.clone(),
            journal: j.journal.clone(),
            currently_failed: j.tracker.currently_failed(now) as u64,
            total_failed: j.tracker.total_failed,
            currently_banned: banned.len() as u64,
            total_banned: j.total_banned,
            bans_by_origin: j
                .bans_by_origin
                .iter()
                .map(|(origin, &n)| (origin.as_str().to_string(), n))
                .collect(),
            total_unbanned: j.total_unbanned,
            banned,
            packets: counter.packets,
            bytes: counter.bytes,
            kernel_errors: j.kernel_errors,
            findtime: j.tracker.policy.findtime.as_secs(),
            maxretry: j.tracker.policy.maxretry,
            bantime: j.tracker.policy.bantime.as_secs(),
            evicted: j.tracker.evicted,
            sources: j
                .sources
                .iter()
                .map(|s| s.status(j.tracker.total_failed, now))
                .collect(),
        }
    }
}
