//! Bans decided outside a jail's failure count: by hand (`nftban ban`,
//! `nftban unban`) and by any other origin of bans (see
//! [`crate::daemon::origin`]). They all go through [`Engine::impose`], which
//! plans the bans against what the jail already holds: an address inside a
//! banned prefix is already covered, a prefix replaces the bans inside it
//! (interval sets do not hold overlapping elements), and if the kernel
//! refuses the prefix, the bans it was to replace come back.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use super::decide::expiry;
use super::{Engine, RequestError};
use crate::address::{is_host, parse_net, show as show_net};
use crate::config::duration::MAX_DURATION;
use crate::config::{format_duration, MANUAL_JAIL};
use crate::firewall::Ban;
use crate::status::{BanResult, Banned, UnbanResult};
use crate::store::Origin;

/// Bans that an origin other than the jail's own rules decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The jail whose sets hold them.
    pub jail: String,
    /// Addresses (/32, /128) and prefixes.
    pub nets: Vec<IpNet>,
    /// `None`: the jail's bantime.
    pub bantime: Option<Duration>,
    pub origin: Origin,
    /// Why, in words, for `status` and the history.
    pub reason: Option<String>,
}

impl Engine {
    /// `nftban ban`: ban addresses or prefixes in `jail` (default
    /// `manual`) for `bantime` (default: the jail's).
    pub fn ban(
        &mut self,
        addrs: &[String],
        jail: Option<&str>,
        bantime: Option<Duration>,
        now: SystemTime,
    ) -> Result<BanResult, RequestError> {
        self.request(now, |e| {
            let name = jail.unwrap_or(MANUAL_JAIL);
            let i = e.jail_index(name)?;
            let nets = parse_all(addrs)?;
            let bantime = checked_bantime(bantime.unwrap_or(e.jails[i].tracker.policy.bantime))?;
            e.impose(i, nets, bantime, Origin::Manual, None, now)
        })
    }

    /// Bans of another origin (a kernel meter, a fleet peer, a feed). Unlike
    /// bans by hand, they never touch the jail's `ignoreip`: such entries are
    /// refused and reported in the result's `failed`.
    pub fn decided(&mut self, decision: Decision, now: SystemTime) -> Result<BanResult, RequestError> {
        self.request(now, |e| {
            let i = e.jail_index(&decision.jail)?;
            let bantime = checked_bantime(decision.bantime.unwrap_or(e.jails[i].tracker.policy.bantime))?;
            let tracker = &e.jails[i].tracker;
            let (nets, ignored): (Vec<IpNet>, Vec<IpNet>) =
                decision.nets.iter().map(|n| n.trunc()).partition(|n| !tracker.is_ignored(n));
            let mut result = e.impose(i, nets, bantime, decision.origin, decision.reason.as_deref(), now)?;
            for net in ignored {
                let name = &decision.jail;
                tracing::info!(jail = %name, "{} from {} not banned: it overlaps ignoreip", show_net(&net), decision.origin.as_str());
                result.failed.push(format!("{}: overlaps ignoreip of jail {name}", show_net(&net)));
            }
            Ok(result)
        })
    }

    /// Ban `nets` in jail number `i` for `bantime`, planned against what the
    /// jail holds (see the module doc), written to the history and put
    /// into the kernel.
    pub(super) fn impose(
        &mut self,
        i: usize,
        nets: Vec<IpNet>,
        bantime: Duration,
        origin: Origin,
        reason: Option<&str>,
        now: SystemTime,
    ) -> Result<BanResult, RequestError> {
        let name = self.jails[i].name.clone();
        let mut result = BanResult {
            jail: name.clone(),
            ..Default::default()
        };
        let plan = plan(&self.jails[i].bans, nets, now, &mut result.already_covered);
        if !plan.lifted.is_empty() {
            let inner: Vec<IpNet> = plan.lifted.iter().map(|(n, _)| *n).collect();
            if let Err(e) = self.firewall.delete(&name, &inner) {
                self.kernel_errors += 1;
                return Err(RequestError::ReplaceRefused(e));
            }
            // Replaced by the prefix: not to be restored on their own.
            self.history.forget(&name, &inner, now);
        }
        let how = reason.unwrap_or(match origin {
            Origin::Manual => "by hand",
            other => other.as_str(),
        });
        let j = &mut self.jails[i];
        for (inner, _) in &plan.lifted {
            j.bans.remove(inner);
        }
        let mut pending = Vec::new();
        for net in plan.wanted {
            j.bans.insert(net, expiry(now, bantime));
            match reason {
                Some(why) => j.reasons.insert(net, why.to_string()),
                None => j.reasons.remove(&net),
            };
            j.count_ban(net);
            result.banned.push(Banned {
                ip: show_net(&net),
                expires_in: bantime.as_secs(),
                reason: reason.map(str::to_string),
            });
            tracing::info!(jail = %name, "Ban {} for {} ({how})", show_net(&net), format_duration(bantime));
            pending.push(Ban {
                jail: name.clone(),
                net,
                timeout: bantime,
            });
        }
        self.history.record(&pending, origin, reason, now);
        let mut restore = Vec::new();
        for (ban, why) in self.push(&pending, now) {
            let ip = show_net(&ban.net);
            result.banned.retain(|b| b.ip != ip);
            result.failed.push(format!("{ip}: {why}"));
            // The prefix did not go in: the bans it was to replace come back.
            for (inner, until) in plan.lifted.iter().filter(|(n, _)| ban.net.contains(n)) {
                if let Ok(left) = until.duration_since(now) {
                    self.jails[i].bans.insert(*inner, *until);
                    restore.push(Ban {
                        jail: name.clone(),
                        net: *inner,
                        timeout: left,
                    });
                }
            }
        }
        if !restore.is_empty() {
            self.history.record(&restore, origin, reason, now);
            for (ban, why) in self.push(&restore, now) {
                tracing::error!(jail = %name, "could not restore the ban of {}: {why}", show_net(&ban.net));
            }
        }
        // Bans from outside count for the jail's IPv6 escalation too.
        if self.jails[i].escalation.is_some() {
            let hosts: Vec<IpAddr> = pending
                .iter()
                .filter(|b| is_host(&b.net) && self.jails[i].bans.contains_key(&b.net))
                .map(|b| b.net.addr())
                .collect();
            for addr in hosts {
                self.escalate(i, addr, now);
            }
        }
        Ok(result)
    }

    /// `nftban unban`: lift bans in one jail or, without `jail`, in all;
    /// they are forgotten in the history first, so they are never restored
    /// even if the kernel step fails (docs/faq.md row 7).
    pub fn unban(
        &mut self,
        addrs: &[String],
        jail: Option<&str>,
        now: SystemTime,
    ) -> Result<UnbanResult, RequestError> {
        self.request(now, |e| {
            if let Some(name) = jail {
                e.jail_index(name)?;
            }
            let nets = parse_all(addrs)?;
            let mut result = UnbanResult::default();
            for net in nets {
                e.history
                    .unban(jail, &[net], now)
                    .map_err(|source| RequestError::History {
                        net: show_net(&net),
                        source,
                    })?;
                let mut found = false;
                let mut inside = Vec::new();
                for j in e.jails.iter_mut().filter(|j| jail.is_none_or(|n| n == j.name)) {
                    if j.bans.remove(&net).is_some() {
                        j.reasons.remove(&net);
                        found = true;
                        e.firewall.delete(&j.name, &[net]).map_err(|source| {
                            e.kernel_errors += 1;
                            RequestError::UnbanRefused {
                                net: show_net(&net),
                                source,
                            }
                        })?;
                        j.tracker.forget(&net);
                        tracing::info!(jail = %j.name, "Unban {} (by hand)", show_net(&net));
                        j.total_unbanned += 1;
                        result.unbanned.push((show_net(&net), j.name.clone()));
                    } else if let Some(cover) = j.bans.keys().find(|b| b.contains(&net)) {
                        inside.push(format!("inside banned prefix {} in jail {}", show_net(cover), j.name));
                    }
                }
                if !found {
                    result.not_banned.push(not_banned(&net, jail, &inside));
                }
            }
            Ok(result)
        })
    }
}

/// A bantime a request may ask for: longer than 0s, at most
/// [`MAX_DURATION`] (longer would overflow the clock downstream).
fn checked_bantime(bantime: Duration) -> Result<Duration, RequestError> {
    if bantime.is_zero() {
        return Err(RequestError::ZeroBantime);
    }
    if bantime > MAX_DURATION {
        return Err(RequestError::BantimeTooLong {
            secs: bantime.as_secs(),
        });
    }
    Ok(bantime)
}

/// Why `net` could not be unbanned.
fn not_banned(net: &IpNet, jail: Option<&str>, inside: &[String]) -> String {
    match (inside.is_empty(), jail) {
        (true, Some(n)) => format!("{} is not banned in jail {n}", show_net(net)),
        (true, None) => format!("{} is not banned in any jail", show_net(net)),
        (false, _) => format!(
            "{} is {}; unban the prefix to lift it",
            show_net(net),
            inside.join(", ")
        ),
    }
}

fn parse_all(addrs: &[String]) -> Result<Vec<IpNet>, RequestError> {
    if addrs.is_empty() {
        return Err(RequestError::NoAddress);
    }
    addrs
        .iter()
        .map(|a| {
            parse_net(a).map_err(|source| RequestError::BadAddress {
                text: a.clone(),
                source,
            })
        })
        .collect()
}

/// Which bans of a request go in, and which running bans they replace.
struct Plan {
    /// In the request's order, each once, none inside another.
    wanted: Vec<IpNet>,
    /// Running bans inside a wanted prefix, with their expiry.
    lifted: Vec<(IpNet, SystemTime)>,
}

/// Plan a request without touching the record. Addresses inside a running
/// or requested wider prefix go to `covered`. `wanted_set` answers "is a
/// wider prefix of this request wanted" in one lookup per prefix length, so
/// a `ban -` of many addresses is not quadratic.
fn plan(bans: &super::Bans, nets: Vec<IpNet>, now: SystemTime, covered: &mut Vec<String>) -> Plan {
    let mut wanted: Vec<IpNet> = Vec::new();
    let mut wanted_set: HashSet<IpNet> = HashSet::new();
    let mut lifted: Vec<(IpNet, SystemTime)> = Vec::new();
    for net in nets {
        let wider_wanted = || {
            (0..net.prefix_len())
                .rev()
                .find_map(|len| Some(IpNet::new(net.addr(), len).ok()?.trunc()).filter(|w| wanted_set.contains(w)))
        };
        if let Some(cover) = bans.covering(&net, now).filter(|c| *c != net).or_else(wider_wanted) {
            covered.push(format!("{} (inside banned {})", show_net(&net), show_net(&cover)));
            continue;
        }
        // A single address contains nothing else: skip the walks.
        if !is_host(&net) {
            lifted.extend(
                bans.iter()
                    .filter(|(b, _)| **b != net && net.contains(*b))
                    .map(|(b, t)| (*b, *t)),
            );
            // A wider prefix of this same request replaces narrower ones of it.
            wanted.retain(|w| *w == net || !net.contains(w));
            wanted_set.retain(|w| *w == net || !net.contains(w));
        }
        if wanted_set.insert(net) {
            wanted.push(net);
        }
    }
    Plan { wanted, lifted }
}
