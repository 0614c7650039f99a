//! Deciding: failures become bans, bans get longer for repeat offenders,
//! bans and failure windows end.
//!
//! The counting itself is the tracker's (pure, clock-free); here a verdict
//! becomes a ban in the jail's record, queued for the next
//! [`Engine::flush`], and feeds recidive and IPv6 escalation.

use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use super::held::Chunk;
use super::jail::JailState;
use super::manual::Grounds;
use super::Engine;
use crate::address::{is_host, show as show_net};
use crate::config::format_duration;
use crate::firewall::Ban;
use crate::store::{FailureWindow, Origin};
use crate::tracker::Verdict;

impl Engine {
    /// A failure of `net` (an address, or a prefix a rule captured with
    /// `<SUBNET>` or `<ADDR>/<CIDR>`) seen in jail number `jail`, dated
    /// `at` (the line's own time), handled at `now`. A ban it leads to runs
    /// from `now`, however old the line.
    pub fn failure_of(&mut self, jail: usize, net: IpNet, at: SystemTime, now: SystemTime) {
        let net = net.trunc();
        let j = &mut self.jails[jail];
        let bantime = match j.tracker.failure_of(net, at) {
            Verdict::NeverBanned { why } => {
                j.never_banned += 1;
                tracing::debug!(jail = %j.name, net = %show_net(&net), "not banned: never-ban address ({why}); not counted");
                return;
            }
            Verdict::Ignored => {
                j.ignored += 1;
                tracing::debug!(jail = %j.name, net = %show_net(&net), "failure from (or overlapping) an ignoreip address; not counted");
                return;
            }
            Verdict::Counted { count } => {
                tracing::debug!(jail = %j.name, net = %show_net(&net), count, maxretry = j.tracker.policy.maxretry, "failure");
                return;
            }
            Verdict::Ban { bantime } => bantime,
        };
        let from = now.max(at);
        let bantime = self.incremented(jail, net, bantime);
        let j = &mut self.jails[jail];
        // Already held for as long by a running ban (itself, or a prefix
        // around it): nothing to add. One that ends sooner is not cut
        // short, and this one goes on after it.
        if let Some(cover) = j.bans.outlasting(&net, expiry(from, bantime)) {
            tracing::debug!(jail = %j.name, net = %show_net(&net), cover = %show_net(&cover), "already banned");
            return;
        }
        let why = self.rule_why(jail);
        let j = &mut self.jails[jail];
        if !is_host(&net) {
            // A prefix a rule captured: planned like any prefix, against
            // the prefixes the interval set holds already.
            let grounds = Grounds {
                origin: Origin::Auto,
                reason: None,
                how: &why,
                chunk: Chunk::Last,
            };
            match self.impose(jail, vec![net], bantime, grounds, from) {
                Ok(r) if r.banned.is_empty() => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(jail = %self.jails[jail].name, error = %e, "could not ban {}", show_net(&net));
                    return;
                }
            }
        } else {
            tracing::info!(jail = %j.name, "Ban {} for {} ({why})", show_net(&net), format_duration(bantime));
            j.bans.insert(net, expiry(from, bantime));
            j.count_bans([net], Origin::Auto);
            self.pending.push(Ban {
                jail: j.name.clone(),
                net,
                timeout: bantime,
            });
        }
        // Every ban of another jail is one "failure" for recidive.
        if let Some(r) = self.recidive.filter(|&r| r != jail) {
            self.failure_of(r, net, at, now);
        }
        if is_host(&net) {
            self.escalate(jail, net.addr(), from);
        }
    }

    /// A failure of the address `addr` at `now` (tests).
    #[cfg(test)]
    pub(super) fn failure(&mut self, jail: usize, addr: std::net::IpAddr, now: SystemTime) {
        self.failure_of(jail, IpNet::from(addr), now, now)
    }

    /// The ban time for the next ban of `net` in jail `jail`: `bantime *
    /// factor^n` after n earlier bans (from the history, else since start),
    /// at most the increment's `max`.
    pub(super) fn incremented(&mut self, jail: usize, net: IpNet, bantime: Duration) -> Duration {
        let Some(inc) = self.jails[jail].increment else {
            return bantime;
        };
        let name = self.jails[jail].name.clone();
        let earlier = self
            .history
            .ban_count(&name, &net)
            .unwrap_or_else(|| self.jails[jail].times_banned.get(&net));
        // The increment only lengthens: `max` caps the growth, never the base.
        let grown = bantime.as_secs_f64() * inc.factor.powi(earlier.min(64) as i32);
        Duration::try_from_secs_f64(grown.min(inc.max.0.as_secs_f64()))
            .unwrap_or(inc.max.0)
            .max(bantime)
    }

    /// Forget bans whose kernel timeout has passed (the kernel already
    /// dropped them) and failure windows that are over; purge old history
    /// now and then.
    pub(super) fn expire(&mut self, now: SystemTime) {
        self.expired_at = std::time::Instant::now();
        for i in 0..self.jails.len() {
            if self.jails[i].bans.any_ended(now) {
                for event in self.expired(i, now) {
                    self.events.publish(event);
                }
                let j = &mut self.jails[i];
                j.bans.retain(|_, t| t > now);
                if !j.reasons.is_empty() {
                    let bans = &j.bans;
                    j.reasons.retain(|net, _| bans.contains_key(net));
                }
            }
            self.jails[i].tracker.prune(now);
        }
        self.history.purge(now);
    }
}

/// When a ban of `bantime` made at `from` ends. A bantime too long for the
/// clock is cut to a century rather than overflowing (bantimes are at most
/// 10 years, so only an absurd `from` gets there; never a panic).
pub(super) fn expiry(from: SystemTime, bantime: Duration) -> SystemTime {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    from.checked_add(bantime)
        .or_else(|| from.checked_add(CENTURY))
        .unwrap_or(from)
}

/// Every jail's failure windows changed since the last save (recidive's
/// are rebuilt from the ban history at start instead).
pub(super) fn failure_changes(jails: &mut [JailState], recidive: Option<usize>) -> Vec<FailureWindow> {
    let mut out = Vec::new();
    for (i, j) in jails.iter_mut().enumerate() {
        if Some(i) == recidive {
            continue;
        }
        for (net, times) in j.tracker.take_changes() {
            out.push(FailureWindow {
                jail: j.name.clone(),
                net,
                times,
            });
        }
    }
    out
}
