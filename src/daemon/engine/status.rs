//! `nftban status`: the engine's figures per jail, with the kernel's rule
//! counters and each source's own account of itself, and the top
//! offenders of all jails.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::SystemTime;

use ipnet::IpNet;

use super::counts::BanCounts;
use super::{Engine, RequestError};
use crate::address::show as show_net;
use crate::firewall::Counter;
use crate::status::{Banned, JailStatus, Offender, Status, TOP_OFFENDERS};

impl Engine {
    /// Every jail.
    /// Every jail; `brief`: without their lists of bans (see
    /// [`crate::control::Request::Status`]).
    pub fn status(&mut self, now: SystemTime, brief: bool) -> Status {
        self.request(now, |e| {
            let counters = e.counters();
            let (most_banned, most_failed) = e.top_offenders(now);
            Status {
                jails: (0..e.jails.len())
                    .map(|i| e.jail_status_of(i, now, &counters, brief))
                    .collect(),
                kernel_errors: e.kernel_errors,
                history_errors: e.history.errors,
                history_waiting: e.history.waiting(),
                history_dropped: e.history.dropped(),
                most_banned,
                most_failed,
                fleet: e.fleet_status(),
                feeds: e.feed_status(&counters),
            }
        })
    }

    /// One jail, by name.
    pub fn jail_status(&mut self, name: &str, now: SystemTime, brief: bool) -> Result<JailStatus, RequestError> {
        self.request(now, |e| {
            let i = e.jail_index(name)?;
            let counters = e.counters();
            Ok(e.jail_status_of(i, now, &counters, brief))
        })
    }

    /// The rules' counters, in one small dump for every jail.
    fn counters(&mut self) -> BTreeMap<String, Counter> {
        self.firewall.counters().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the rule counters");
            BTreeMap::new()
        })
    }

    fn jail_status_of(
        &self,
        i: usize,
        now: SystemTime,
        counters: &BTreeMap<String, Counter>,
        brief: bool,
    ) -> JailStatus {
        let j = &self.jails[i];
        let mut counter = Counter::default();
        for set in self.spec.prefix_sets.jail_sets(&j.name) {
            if let Some(c) = counters.get(&set.name) {
                counter.packets += c.packets;
                counter.bytes += c.bytes;
            }
        }
        let (currently_banned, banned) = if brief {
            (j.bans.iter().filter(|&(_, t)| t > now).count(), Vec::new())
        } else {
            let banned: Vec<Banned> = j
                .bans
                .sorted(|t| t > now)
                .into_iter()
                .map(|(net, t)| Banned {
                    ip: show_net(&net),
                    expires_in: t.duration_since(now).unwrap_or_default().as_secs(),
                    reason: j.reasons.get(&net).map(|r| r.to_string()),
                })
                .collect();
            (banned.len(), banned)
        };
        JailStatus {
            name: j.name.clone(),
            ruleset: j.ruleset.clone(),
            files: j.files.clone(),
            journal: j.journal.clone(),
            currently_failed: self.unbanned_failing(i, now).count() as u64,
            total_failed: j.tracker.total_failed,
            not_counted: crate::status::NotCounted {
                ignoreip: j.ignored,
                never_banned: j.never_banned,
                too_old: j
                    .sources
                    .iter()
                    .map(|s| s.too_old.load(std::sync::atomic::Ordering::Relaxed))
                    .sum(),
            },
            currently_banned: currently_banned as u64,
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
            names: j
                .names
                .as_ref()
                .map(|(names, usedns)| names.status(*usedns))
                .filter(|n| n.usedns || n.names > 0),
        }
    }

    /// Jail `i`'s addresses with failures within findtime and no ban yet
    /// (docs/cli.md `currently_failed`), with their failures: one its own
    /// running ban holds (late lines of the attack) or a recidive ban
    /// holds (a ban of every port) is banned, not "failed".
    fn unbanned_failing(&self, i: usize, now: SystemTime) -> impl Iterator<Item = (&IpNet, u64)> {
        let j = &self.jails[i];
        let recidive = self.recidive.filter(|&r| r != i).map(|r| &self.jails[r]);
        j.tracker
            .failing(now)
            .filter(move |(net, _)| j.bans.covering(net, now).is_none())
            .filter(move |(net, _)| recidive.is_none_or(|r| r.bans.covering(net, now).is_none()))
    }

    /// The addresses banned most often since start, and those with the most
    /// failures and no ban now, all jails together. Recidive's "failures"
    /// are other jails' bans, counted already: left out.
    ///
    /// The bans of one jail are not copied: they were summed into a new map
    /// at every `status`, slow after a `ban -` of a million (the metrics ask
    /// every scrape; docs/performance.md). Only several jails with bans are
    /// summed.
    fn top_offenders(&self, now: SystemTime) -> (Vec<Offender>, Vec<Offender>) {
        let mut failures: HashMap<IpNet, u64> = HashMap::new();
        for i in (0..self.jails.len()).filter(|&i| Some(i) != self.recidive) {
            for (net, n) in self.unbanned_failing(i, now) {
                *failures.entry(*net).or_default() += n;
            }
        }
        let banning: Vec<&BanCounts> = self
            .jails
            .iter()
            .map(|j| &j.times_banned)
            .filter(|t| !t.is_empty())
            .collect();
        let summed: Option<HashMap<IpNet, u64>> = (banning.len() > 1).then(|| {
            let mut all = HashMap::new();
            for (net, &n) in banning.iter().flat_map(|t| t.iter()) {
                *all.entry(*net).or_default() += u64::from(n);
            }
            all
        });
        let most_banned: Vec<IpNet> = match (&summed, banning.first()) {
            (Some(all), _) => top(all.iter().map(|(net, &n)| (*net, n))),
            (None, Some(one)) => top(one.iter().map(|(net, &n)| (*net, u64::from(n)))),
            (None, None) => Vec::new(),
        };
        let bans = |net: &IpNet| match (&summed, banning.first()) {
            (Some(all), _) => all.get(net).copied().unwrap_or(0),
            (None, one) => one.map_or(0, |t| u64::from(t.get(net))),
        };
        let offender = |net: &IpNet| Offender {
            ip: show_net(net),
            bans: bans(net),
            failures: failures.get(net).copied().unwrap_or(0),
        };
        let most_banned = most_banned.iter().map(offender).collect();
        let most_failed = top(failures.iter().map(|(net, &n)| (*net, n)))
            .iter()
            .map(offender)
            .collect();
        (most_banned, most_failed)
    }
}

/// The [`TOP_OFFENDERS`] keys with the highest counts, highest first (ties
/// by address, so the list is stable between refreshes). Kept in a heap
/// whose top is the worst of the best so far: one pass, no copy of all
/// (a flood leaves many thousands of addresses, a bulk ban a million).
fn top(counts: impl Iterator<Item = (IpNet, u64)>) -> Vec<IpNet> {
    use std::cmp::Reverse;
    let mut best: BinaryHeap<(Reverse<u64>, IpNet)> = BinaryHeap::with_capacity(TOP_OFFENDERS + 1);
    for (net, n) in counts {
        let entry = (Reverse(n), net);
        if best.len() == TOP_OFFENDERS && best.peek().is_some_and(|worst| entry >= *worst) {
            continue;
        }
        best.push(entry);
        if best.len() > TOP_OFFENDERS {
            best.pop();
        }
    }
    best.into_sorted_vec().into_iter().map(|(_, net)| net).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The heap keeps what a sort of all would put first: the highest
        /// counts, ties by address, at most [`TOP_OFFENDERS`].
        #[test]
        fn top_is_the_head_of_the_whole_sort(counts in proptest::collection::vec((0u32..64, 0u64..4), 0..40)) {
            let counts: Vec<(IpNet, u64)> = counts
                .into_iter()
                .map(|(a, n)| (IpNet::from(std::net::IpAddr::from([192, 0, 2, a as u8])), n))
                .collect::<HashMap<_, _>>()
                .into_iter()
                .collect();
            let mut all = counts.clone();
            all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let want: Vec<IpNet> = all.into_iter().take(TOP_OFFENDERS).map(|(net, _)| net).collect();
            proptest::prop_assert_eq!(top(counts.into_iter()), want);
        }
    }
}
