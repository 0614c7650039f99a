//! Bans decided outside a jail's failure count: by hand (`nftban ban`,
//! `nftban unban`), by any other origin of bans (see
//! [`crate::daemon::origin`]), and prefixes (captured by a rule, or an IPv6
//! escalation). They all go through [`Engine::impose`], which plans the
//! bans against what the jail already holds so that a new ban never
//! shortens a running one (see [`super::plan`]): address bans stay beside the
//! prefixes around them, nested prefixes become the wider one running as
//! long as both, and if the kernel refuses a prefix, the prefixes it was
//! to replace come back. An unban lifts what it names and nothing inside.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use super::decide::expiry;
use super::held::Chunk;
use super::plan::plan;
use super::told::{Kind, Told};
use super::{Engine, RequestError};
use crate::address::{is_host, never_banned, parse_net, show as show_net};
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
    /// `nftban ban` without `--force`: see [`Engine::ban_with`].
    pub fn ban(
        &mut self,
        addrs: &[String],
        jail: Option<&str>,
        bantime: Option<Duration>,
        now: SystemTime,
    ) -> Result<BanResult, RequestError> {
        self.ban_with(addrs, jail, bantime, false, Chunk::Last, now)
    }

    /// `nftban ban`: ban addresses or prefixes in `jail` (default
    /// `manual`) for `bantime` (default: the jail's). What overlaps the
    /// jail's `ignoreip` is refused unless `force`; what is never banned
    /// is refused whatever `force` says. Each refusal is in the answer's
    /// `failed`, with why. The log lines wait for the command's last
    /// `chunk` (see [`super::held`]).
    pub fn ban_with(
        &mut self,
        addrs: &[String],
        jail: Option<&str>,
        bantime: Option<Duration>,
        force: bool,
        chunk: Chunk,
        now: SystemTime,
    ) -> Result<BanResult, RequestError> {
        self.request(now, |e| {
            let name = jail.unwrap_or(MANUAL_JAIL);
            let i = e.jail_index(name)?;
            let nets = parse_all(addrs)?;
            let bantime = checked_bantime(bantime.unwrap_or(e.jails[i].tracker.policy.bantime))?;
            let how = if force { "by hand, forced" } else { "by hand" };
            let rule = if force { Ignoreip::Forced } else { Ignoreip::Overridable };
            let grounds = Grounds {
                origin: Origin::Manual,
                reason: None,
                how,
                chunk,
            };
            let mut refused = Vec::new();
            let nets = e.admissible(i, nets, rule, grounds, now, &mut refused);
            // What `--force` let past the jail's `ignoreip` says so in the
            // history, whose restore would otherwise lift it as a record
            // nftban never makes (engine::start), and in `status`.
            let (mut forced, nets): (Vec<IpNet>, Vec<IpNet>) = nets
                .into_iter()
                .partition(|net| force && e.jails[i].tracker.is_ignored(net));
            let past = Grounds {
                reason: Some(FORCED),
                ..grounds
            };
            let mut result = match (nets.is_empty(), forced.is_empty()) {
                (true, false) => e.impose(i, std::mem::take(&mut forced), bantime, past, now)?,
                _ => e.impose(i, nets, bantime, grounds, now)?,
            };
            if !forced.is_empty() {
                let more = e.impose(i, forced, bantime, past, now)?;
                result.banned.extend(more.banned);
                result.already_covered.extend(more.already_covered);
                result.failed.extend(more.failed);
            }
            refused.append(&mut result.failed);
            result.failed = refused;
            Ok(result)
        })
    }

    /// Bans of another origin (a kernel meter, a fleet peer, a feed). They
    /// never touch the never-ban list nor the jail's `ignoreip` (nothing
    /// overrides them here): such entries are refused and reported in the
    /// result's `failed`, each with why.
    pub fn decided(&mut self, decision: Decision, now: SystemTime) -> Result<BanResult, RequestError> {
        self.request(now, |e| {
            let i = e.jail_index(&decision.jail)?;
            let bantime = checked_bantime(decision.bantime.unwrap_or(e.jails[i].tracker.policy.bantime))?;
            let nets: Vec<IpNet> = decision.nets.iter().map(|n| n.trunc()).collect();
            let reason = super::share::reason_of(decision.origin, decision.reason);
            let how = reason.as_deref().unwrap_or(decision.origin.as_str());
            let grounds = Grounds {
                origin: decision.origin,
                reason: reason.as_deref(),
                how,
                chunk: Chunk::Last,
            };
            let mut refused = Vec::new();
            let nets = e.admissible(i, nets, Ignoreip::Binding, grounds, now, &mut refused);
            let mut result = e.impose(i, nets, bantime, grounds, now)?;
            refused.append(&mut result.failed);
            result.failed = refused;
            Ok(result)
        })
    }

    /// The nets of a request that may be banned in jail number `i`, in
    /// order; each of the others goes to `refused` with why. The never-ban
    /// list comes first, and nothing overrides it; then the jail's
    /// `ignoreip`, as `rule` says.
    fn admissible(
        &mut self,
        i: usize,
        nets: Vec<IpNet>,
        rule: Ignoreip,
        grounds: Grounds<'_>,
        now: SystemTime,
        refused: &mut Vec<String>,
    ) -> Vec<IpNet> {
        let j = &self.jails[i];
        let how = grounds.how;
        let mut told = Told::new(Kind::Refused, &j.name, how);
        let admitted = nets
            .into_iter()
            .filter(|net| {
                let why = match never_banned(net) {
                    Some(why) => format!("never banned: {why}"),
                    None if rule == Ignoreip::Forced || !j.tracker.is_ignored(net) => return true,
                    None if rule == Ignoreip::Overridable => {
                        format!("overlaps ignoreip of jail {} (--force bans it anyway)", j.name)
                    }
                    None => format!("overlaps ignoreip of jail {}", j.name),
                };
                told.add(show_net(net), format!("{} not banned ({how}): {why}", show_net(net)));
                refused.push(format!("{}: {why}", show_net(net)));
                false
            })
            .collect();
        self.held.tell(told, grounds.chunk, now);
        admitted
    }

    /// Ban `nets` in jail number `i` for `bantime`, planned against what the
    /// jail holds (see the module doc), written to the history and put
    /// into the kernel.
    pub(super) fn impose(
        &mut self,
        i: usize,
        nets: Vec<IpNet>,
        bantime: Duration,
        grounds: Grounds<'_>,
        now: SystemTime,
    ) -> Result<BanResult, RequestError> {
        let Grounds {
            origin, reason, how, ..
        } = grounds;
        let name = self.jails[i].name.clone();
        let mut result = BanResult {
            jail: name.clone(),
            ..Default::default()
        };
        // Whoever asks (escalation and captured prefixes come here without
        // a check of their own): the one list of what no ban may touch.
        let mut nets = nets;
        let mut never = Told::new(Kind::NeverBanned, &name, how);
        nets.retain(|net| match never_banned(net) {
            Some(why) => {
                never.add(
                    show_net(net),
                    format!("{} not banned ({how}): never banned: {why}", show_net(net)),
                );
                result.failed.push(format!("{}: never banned: {why}", show_net(net)));
                false
            }
            None => true,
        });
        self.held.tell(never, grounds.chunk, now);
        let plan = plan(
            &self.jails[i].bans,
            nets,
            expiry(now, bantime),
            now,
            &mut result.already_covered,
        );
        if !plan.lifted.is_empty() {
            let inner: Vec<IpNet> = plan.lifted.keys().copied().collect();
            if let Err(e) = self.firewall.delete(&name, &inner) {
                self.kernel_errors += 1;
                return Err(RequestError::ReplaceRefused(e));
            }
            // Replaced by a prefix that runs as long: not to be restored
            // on their own.
            self.history.forget(&name, &inner, now);
        }
        let j = &mut self.jails[i];
        for inner in plan.lifted.keys() {
            j.bans.remove(inner);
            j.reasons.remove(inner);
        }
        let mut pending = Vec::with_capacity(plan.wanted.len());
        result.banned.reserve(plan.wanted.len());
        let longest = plan
            .wanted
            .iter()
            .map(|w| w.until)
            .max()
            .and_then(|u| u.duration_since(now).ok());
        let mut told = Told::new(Kind::Ban { upto: longest }, &name, how);
        let why: Option<std::sync::Arc<str>> = reason.map(Into::into);
        for w in &plan.wanted {
            let left = w.until.duration_since(now).unwrap_or_default();
            j.bans.insert(w.net, w.until);
            match &why {
                Some(why) => _ = j.reasons.insert(w.net, why.clone()),
                None if !j.reasons.is_empty() => _ = j.reasons.remove(&w.net),
                None => {}
            }
            result.banned.push(Banned {
                ip: show_net(&w.net),
                expires_in: left.as_secs(),
                reason: reason.map(str::to_string),
            });
            told.add_with(|| {
                let ip = show_net(&w.net);
                let line = format!("Ban {ip} for {} ({how})", format_duration(left));
                (ip, line)
            });
            pending.push(Ban {
                jail: name.clone(),
                net: w.net,
                timeout: left,
            });
        }
        j.count_bans(plan.wanted.iter().map(|w| w.net), origin);
        self.held.tell(told, grounds.chunk, now);
        self.history.record(&pending, origin, reason, now);
        let mut restore = Vec::new();
        let mut still = Vec::new();
        let refused = self.push(&pending, Some(origin), now);
        self.announce_bans(&pending, &refused, origin, Some(how), now);
        for (ban, why) in refused {
            let ip = show_net(&ban.net);
            result.banned.retain(|b| b.ip != ip);
            result.failed.push(format!("{ip}: {why}"));
            // The ban it was to lengthen still runs in the kernel as it was.
            if let Some(was) = plan.wanted.iter().find(|w| w.net == ban.net).and_then(|w| w.was) {
                still.push((ban.net, was));
            }
            // The prefix did not go in: the bans it was to replace come back.
            for (inner, until) in plan.lifted.iter().filter(|(n, _)| ban.net.contains(*n)) {
                restore.push((*inner, *until));
            }
        }
        let back = |bans: &[(IpNet, SystemTime)]| -> Vec<Ban> {
            bans.iter()
                .filter_map(|(net, until)| {
                    Some(Ban {
                        jail: name.clone(),
                        net: *net,
                        timeout: until.duration_since(now).ok()?,
                    })
                })
                .collect()
        };
        let (still, restore) = (back(&still), back(&restore));
        for ban in still.iter().chain(&restore) {
            self.jails[i].bans.insert(ban.net, expiry(now, ban.timeout));
        }
        // The history forgot the refused bans: what still runs goes back in.
        self.history.record(&still, origin, reason, now);
        if !restore.is_empty() {
            self.history.record(&restore, origin, reason, now);
            for (ban, why) in self.push(&restore, None, now) {
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

    /// An `nftban unban` of one request: see [`Engine::unban_with`].
    pub fn unban(
        &mut self,
        addrs: &[String],
        jail: Option<&str>,
        now: SystemTime,
    ) -> Result<UnbanResult, RequestError> {
        self.unban_with(addrs, jail, Chunk::Last, now)
    }

    /// `nftban unban`: lift bans in one jail or, without `jail`, in all;
    /// they are forgotten in the history first, so they are never restored
    /// even if the kernel step fails (docs/faq.md row 7). The log lines
    /// wait for the command's last `chunk` (see [`super::held`]).
    pub fn unban_with(
        &mut self,
        addrs: &[String],
        jail: Option<&str>,
        chunk: Chunk,
        now: SystemTime,
    ) -> Result<UnbanResult, RequestError> {
        self.request(now, |e| {
            if let Some(name) = jail {
                e.jail_index(name)?;
            }
            let nets = parse_all(addrs)?;
            let mut result = UnbanResult::default();
            // Each jail's, even empty: the last chunk logs what earlier
            // ones held there, whether it lifted anything there or not.
            let mut told: BTreeMap<String, Told> = e
                .jails
                .iter()
                .filter(|j| jail.is_none_or(|n| n == j.name))
                .map(|j| (j.name.clone(), Told::new(Kind::Unban, &j.name, "by hand")))
                .collect();
            // This node's own bans lifted, for the fleet (one learnt from
            // a peer is lifted here only).
            let mut news = Vec::new();
            // Told even when a later address fails: what was lifted is said.
            // The history first, all of them in one write; then the record;
            // then one kernel delete per jail (not per address: `unban -` of
            // 100,000 addresses is a handful of batches).
            let lift = || -> Result<(), RequestError> {
                e.history
                    .unban(jail, &nets, now)
                    .map_err(|source| RequestError::History {
                        net: describe(&nets),
                        source,
                    })?;
                let sharing = e.share.is_some();
                // Per jail: the nets lifted from its record, with their end.
                let mut gone: BTreeMap<usize, Vec<(IpNet, SystemTime)>> = BTreeMap::new();
                for net in nets {
                    let mut found = false;
                    let mut inside = Vec::new();
                    for (k, j) in e
                        .jails
                        .iter_mut()
                        .enumerate()
                        .filter(|(_, j)| jail.is_none_or(|n| n == j.name))
                    {
                        if let Some(until) = j.bans.remove(&net) {
                            // Most bans have no reason: no hash then.
                            let why = match j.reasons.is_empty() {
                                true => None,
                                false => j.reasons.remove(&net),
                            };
                            let learnt = why.as_deref().filter(|w| super::share::learnt(w));
                            if sharing && learnt.is_none() {
                                news.push(super::Local::Unban {
                                    jail: j.name.clone(),
                                    net,
                                    at: super::share::whole_secs(now),
                                });
                            }
                            // A peer's ban is lifted here only: said, so
                            // that nobody expects the fleet to follow.
                            if let Some(peer) = learnt.and_then(|w| w.split(": ").next()) {
                                result.not_banned.push(format!(
                                    "{} was lifted on this node only: its ban came from {peer}, whose other peers keep it (unban it there to lift it everywhere)",
                                    show_net(&net)
                                ));
                            }
                            found = true;
                            gone.entry(k).or_default().push((net, until));
                            j.tracker.forget(&net);
                            if let Some(told) = told.get_mut(&j.name) {
                                told.add_with(|| {
                                    let ip = show_net(&net);
                                    let line = format!("Unban {ip} (by hand)");
                                    (ip, line)
                                });
                            }
                            j.total_unbanned += 1;
                            result.unbanned.push((show_net(&net), j.name.clone()));
                        }
                        // A prefix around it (its own ban lifted or not) still
                        // drops it: say so, rather than let the unban look whole.
                        if let Some((cover, _)) = j.bans.wider_prefix(&net, now) {
                            inside.push(format!("inside banned prefix {} in jail {}", show_net(&cover), j.name));
                        }
                    }
                    // A feed's entry is no ban: the unban leaves it, and says so.
                    let feed = match e.feeds_held() {
                        true => e.feed_holding(&net),
                        false => None,
                    };
                    if let Some(feed) = feed {
                        let why = format!(
                            "blocked by feed {feed}, which an unban does not lift (take it out of the feed's list, or add it to the jail's ignoreip)"
                        );
                        result.not_banned.push(match found {
                            true => format!("{} is still {why}", show_net(&net)),
                            false => format!("{}; it is {why}", not_banned(&net, jail, &inside)),
                        });
                    } else if !found {
                        result.not_banned.push(not_banned(&net, jail, &inside));
                    } else if !inside.is_empty() {
                        result.not_banned.push(format!(
                            "{} is still {}; unban the prefix to lift it",
                            show_net(&net),
                            inside.join(", ")
                        ));
                    }
                }
                for (k, lifted) in gone {
                    let name = e.jails[k].name.clone();
                    let nets: Vec<IpNet> = lifted.iter().map(|(n, _)| *n).collect();
                    e.firewall.delete(&name, &nets).map_err(|source| {
                        e.kernel_errors += 1;
                        RequestError::UnbanRefused {
                            net: describe(&nets),
                            source,
                        }
                    })?;
                    for (net, until) in &lifted {
                        Engine::announce_unban(&e.events, &name, net, *until, now, Origin::Manual.as_str(), "by hand");
                    }
                }
                Ok(())
            };
            let outcome = lift();
            for (_, t) in told {
                e.held.tell(t, chunk, now);
            }
            e.share(news);
            outcome?;
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

/// The nets of a request in an error: the one, or the first and how many
/// more.
fn describe(nets: &[IpNet]) -> String {
    match nets {
        [one] => show_net(one),
        [first, rest @ ..] => format!("{} and {} more", show_net(first), rest.len()),
        [] => String::new(),
    }
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

/// The reason of a ban by hand that `--force` let past the jail's
/// `ignoreip`: kept in the history, which restores such a ban although
/// `ignoreip` covers it.
pub(crate) const FORCED: &str = "forced past ignoreip";

/// What a request does with the jail's `ignoreip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ignoreip {
    /// What overlaps it is refused; nothing overrides that (other origins
    /// of bans).
    Binding,
    /// What overlaps it is refused, and the refusal says that `--force`
    /// bans it anyway (bans by hand).
    Overridable,
    /// Banned anyway (`nftban ban --force`).
    Forced,
}

/// Who asked for a ban and why: for the history, `status` and the log.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grounds<'a> {
    pub(super) origin: Origin,
    /// Shown by `status` and kept in the history; `None` for the jail's
    /// own rules and bans by hand.
    pub(super) reason: Option<&'a str>,
    /// Why, for the log line of each ban.
    pub(super) how: &'a str,
    /// Whether its log lines wait for more requests of the same command.
    pub(super) chunk: Chunk,
}
