//! The engine: the one place where ban state changes.
//!
//! It owns each jail's tracker and ban record and the firewall. Sources feed
//! it failures, the control socket feeds it requests; both arrive on one
//! channel, so there are no locks around ban state. Bans decided while
//! handling a burst of events are queued and sent to the kernel together by
//! [`Engine::flush`], one netlink batch for the whole burst.
//!
//! The ban record mirrors the kernel: what nftban added, with expiry times.
//! It is rebuilt from the kernel's sets at start, so a restart keeps and
//! shows the bans that are still running.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use crate::config::{format_duration, Config, MANUAL_JAIL};
use crate::control::protocol::{BanResult, Banned, JailStatus, SourceStatus, Status, UnbanResult};
use crate::control::{Request, Response};
use crate::firewall::{Ban, Firewall};
use crate::matcher::parse_net;
use crate::sources::{SourceState, SourceStats};
use crate::tracker::{Policy, Tracker, Verdict};

/// One jail's live state.
pub struct JailState {
    pub name: String,
    pub ruleset: String,
    pub files: Vec<String>,
    pub journal: Vec<String>,
    pub tracker: Tracker,
    /// Banned addresses/prefixes and when their kernel timeout ends.
    pub bans: BTreeMap<IpNet, SystemTime>,
    pub total_banned: u64,
    pub sources: Vec<Arc<SourceStats>>,
}

/// Ban state of all jails plus the firewall they are pushed to.
pub struct Engine {
    pub firewall: Box<dyn Firewall>,
    pub jails: Vec<JailState>,
    pending: Vec<Ban>,
    /// Kernel requests that failed since start.
    pub kernel_errors: u64,
}

impl Engine {
    /// Build the jails of `config` (plus `manual`) with empty state.
    pub fn new(config: &Config, firewall: Box<dyn Firewall>) -> Engine {
        let mut shared: BTreeMap<std::path::PathBuf, Arc<SourceStats>> = BTreeMap::new();
        let mut jails: Vec<JailState> = config
            .jails
            .iter()
            .map(|j| JailState {
                name: j.name.clone(),
                ruleset: j.ruleset.clone(),
                files: j.files.iter().map(|f| f.display().to_string()).collect(),
                journal: j.journal.clone(),
                tracker: Tracker::new(Policy {
                    findtime: j.findtime,
                    maxretry: j.maxretry,
                    bantime: j.bantime,
                    ignoreip: j.ignoreip.clone(),
                }),
                bans: BTreeMap::new(),
                total_banned: 0,
                // Jails reading the same file share its reader and its stats.
                sources: j
                    .files
                    .iter()
                    .map(|f| {
                        shared
                            .entry(f.clone())
                            .or_insert_with(|| Arc::new(SourceStats::new(f.clone())))
                            .clone()
                    })
                    .collect(),
            })
            .collect();
        jails.push(JailState {
            name: MANUAL_JAIL.into(),
            ruleset: "-".into(),
            files: vec![],
            journal: vec![],
            tracker: Tracker::new(Policy {
                findtime: Duration::from_secs(1),
                maxretry: 1,
                bantime: config.default_bantime,
                ignoreip: vec![],
            }),
            bans: BTreeMap::new(),
            total_banned: 0,
            sources: vec![],
        });
        Engine {
            firewall,
            jails,
            pending: Vec::new(),
            kernel_errors: 0,
        }
    }

    /// Create or adopt the kernel table, then learn the bans an earlier run
    /// left in it so they show in status and are not added twice.
    pub fn start(&mut self, config: &Config) -> crate::firewall::Result<usize> {
        self.firewall.setup(&config.table_spec())?;
        let now = SystemTime::now();
        let mut adopted = 0;
        for jail in &mut self.jails {
            for el in self.firewall.list(&jail.name)? {
                let expires = now + el.expires_in.unwrap_or(Duration::from_secs(u32::MAX as u64));
                jail.bans.insert(el.net, expires);
                adopted += 1;
            }
        }
        Ok(adopted)
    }

    fn jail_index(&self, name: &str) -> Option<usize> {
        self.jails.iter().position(|j| j.name == name)
    }

    /// A failure of `addr` seen in jail `jail` at `at`.
    pub fn failure(&mut self, jail: usize, addr: IpAddr, at: SystemTime) {
        let j = &mut self.jails[jail];
        match j.tracker.failure(addr, at) {
            Verdict::Ignored => tracing::debug!(jail = %j.name, %addr, "failure from an ignoreip address; not counted"),
            Verdict::Counted { count } => {
                tracing::debug!(jail = %j.name, %addr, count, maxretry = j.tracker.policy.maxretry, "failure")
            }
            Verdict::Ban { bantime } => {
                let net = IpNet::from(addr);
                if let Some(cover) = covering(&j.bans, &net, at) {
                    tracing::debug!(jail = %j.name, %addr, %cover, "already banned");
                    return;
                }
                tracing::info!(
                    jail = %j.name,
                    "Ban {addr} for {} ({} failures within {})",
                    format_duration(bantime),
                    j.tracker.policy.maxretry,
                    format_duration(j.tracker.policy.findtime)
                );
                j.bans.insert(net, at.max(SystemTime::now()) + bantime);
                j.total_banned += 1;
                self.pending.push(Ban {
                    jail: j.name.clone(),
                    net,
                    timeout: bantime,
                });
            }
        }
    }

    /// Send queued bans to the kernel in one batch.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bans = std::mem::take(&mut self.pending);
        if let Err(e) = self.firewall.add(&bans) {
            self.kernel_errors += 1;
            tracing::error!(error = %e, count = bans.len(), "could not put bans into the kernel");
            for b in &bans {
                if let Some(j) = self.jails.iter_mut().find(|j| j.name == b.jail) {
                    j.bans.remove(&b.net);
                }
            }
        }
    }

    /// Forget bans whose kernel timeout has passed (the kernel already
    /// dropped them) and failure windows that are over.
    pub fn expire(&mut self, now: SystemTime) {
        for j in &mut self.jails {
            j.bans.retain(|_, &mut t| t > now);
            j.tracker.prune(now);
        }
    }

    /// Answer a control request.
    pub fn handle(&mut self, req: Request, now: SystemTime) -> Response {
        self.expire(now);
        let resp = match req {
            Request::Status { jail } => self.status(jail.as_deref(), now),
            Request::Ban { addrs, jail, bantime } => {
                self.ban(&addrs, jail.as_deref(), bantime.map(Duration::from_secs), now)
            }
            Request::Unban { addrs, jail } => self.unban(&addrs, jail.as_deref()),
        };
        self.flush();
        resp
    }

    fn status(&self, jail: Option<&str>, now: SystemTime) -> Response {
        match jail {
            Some(name) => match self.jail_index(name) {
                Some(i) => Response::ok(self.jail_status(i, now)),
                None => Response::err(self.unknown_jail(name)),
            },
            None => Response::ok(Status {
                jails: (0..self.jails.len()).map(|i| self.jail_status(i, now)).collect(),
            }),
        }
    }

    fn unknown_jail(&self, name: &str) -> String {
        format!(
            "no jail named `{name}` (jails: {})",
            self.jails
                .iter()
                .map(|j| j.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn jail_status(&self, i: usize, now: SystemTime) -> JailStatus {
        let j = &self.jails[i];
        let banned: Vec<Banned> = j
            .bans
            .iter()
            .filter(|(_, &t)| t > now)
            .map(|(net, &t)| Banned {
                ip: show_net(net),
                expires_in: t.duration_since(now).unwrap_or_default().as_secs(),
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
            banned,
            findtime: j.tracker.policy.findtime.as_secs(),
            maxretry: j.tracker.policy.maxretry,
            bantime: j.tracker.policy.bantime.as_secs(),
            sources: j
                .sources
                .iter()
                .map(|s| source_status(s, j.tracker.total_failed, now))
                .collect(),
        }
    }

    fn ban(&mut self, addrs: &[String], jail: Option<&str>, bantime: Option<Duration>, now: SystemTime) -> Response {
        let name = jail.unwrap_or(MANUAL_JAIL);
        let Some(i) = self.jail_index(name) else {
            return Response::err(self.unknown_jail(name));
        };
        let nets = match parse_all(addrs) {
            Ok(n) => n,
            Err(e) => return Response::err(e),
        };
        let bantime = bantime.unwrap_or(self.jails[i].tracker.policy.bantime);
        if bantime.is_zero() {
            return Response::err("bantime must be longer than 0s");
        }
        let mut result = BanResult {
            jail: name.to_string(),
            ..Default::default()
        };
        let mut lifted = Vec::new();
        for net in nets {
            let j = &mut self.jails[i];
            if let Some(cover) = covering(&j.bans, &net, now).filter(|c| *c != net) {
                result
                    .already_covered
                    .push(format!("{} (inside banned {})", show_net(&net), show_net(&cover)));
                continue;
            }
            // A prefix replaces the bans it contains: interval sets do not
            // hold overlapping elements.
            let inner: Vec<IpNet> = j
                .bans
                .keys()
                .filter(|b| **b != net && net.contains(*b))
                .copied()
                .collect();
            for b in &inner {
                j.bans.remove(b);
            }
            lifted.extend(inner);
            j.bans.insert(net, now + bantime);
            j.total_banned += 1;
            result.banned.push(Banned {
                ip: show_net(&net),
                expires_in: bantime.as_secs(),
            });
            tracing::info!(jail = %name, "Ban {} for {} (by hand)", show_net(&net), format_duration(bantime));
            self.pending.push(Ban {
                jail: name.to_string(),
                net,
                timeout: bantime,
            });
        }
        if !lifted.is_empty() {
            if let Err(e) = self.firewall.delete(name, &lifted) {
                self.kernel_errors += 1;
                return Response::err(format!("kernel refused to replace contained bans: {e}"));
            }
        }
        let pending = std::mem::take(&mut self.pending);
        if let Err(e) = self.firewall.add(&pending) {
            self.kernel_errors += 1;
            for b in &pending {
                self.jails[i].bans.remove(&b.net);
            }
            return Response::err(format!("kernel refused the ban: {e}"));
        }
        Response::ok(result)
    }

    fn unban(&mut self, addrs: &[String], jail: Option<&str>) -> Response {
        if let Some(name) = jail {
            if self.jail_index(name).is_none() {
                return Response::err(self.unknown_jail(name));
            }
        }
        let nets = match parse_all(addrs) {
            Ok(n) => n,
            Err(e) => return Response::err(e),
        };
        let mut result = UnbanResult::default();
        for net in nets {
            let mut found = false;
            let mut inside = Vec::new();
            for j in self.jails.iter_mut().filter(|j| jail.is_none_or(|n| n == j.name)) {
                if j.bans.remove(&net).is_some() {
                    found = true;
                    if let Err(e) = self.firewall.delete(&j.name, &[net]) {
                        self.kernel_errors += 1;
                        return Response::err(format!("kernel refused to unban {}: {e}", show_net(&net)));
                    }
                    if net.prefix_len() == net.max_prefix_len() {
                        j.tracker.forget(net.addr());
                    }
                    tracing::info!(jail = %j.name, "Unban {} (by hand)", show_net(&net));
                    result.unbanned.push((show_net(&net), j.name.clone()));
                } else if let Some(cover) = j.bans.keys().find(|b| b.contains(&net)) {
                    inside.push(format!("inside banned prefix {} in jail {}", show_net(cover), j.name));
                }
            }
            if !found {
                let why = if inside.is_empty() {
                    match jail {
                        Some(n) => format!("{} is not banned in jail {n}", show_net(&net)),
                        None => format!("{} is not banned in any jail", show_net(&net)),
                    }
                } else {
                    format!(
                        "{} is {}; unban the prefix to lift it",
                        show_net(&net),
                        inside.join(", ")
                    )
                };
                result.not_banned.push(why);
            }
        }
        Response::ok(result)
    }
}

/// A banned element that contains `net` and has not expired.
fn covering(bans: &BTreeMap<IpNet, SystemTime>, net: &IpNet, now: SystemTime) -> Option<IpNet> {
    bans.iter().find(|(b, &t)| t > now && b.contains(net)).map(|(b, _)| *b)
}

/// An address prints without `/32` or `/128`, a prefix with its length.
pub fn show_net(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn parse_all(addrs: &[String]) -> Result<Vec<IpNet>, String> {
    if addrs.is_empty() {
        return Err("no address given".into());
    }
    addrs
        .iter()
        .map(|a| parse_net(a).map_err(|e| format!("`{a}`: {e}")))
        .collect()
}

fn source_status(s: &SourceStats, jail_failures: u64, now: SystemTime) -> SourceStatus {
    use std::sync::atomic::Ordering::Relaxed;
    let (state, error) = match s.state() {
        SourceState::Starting => ("starting", None),
        SourceState::Missing => ("missing", None),
        SourceState::Unreadable(e) => ("unreadable", Some(e)),
        SourceState::Reading => ("reading", None),
    };
    let lines = s.lines.load(Relaxed);
    let matched = s.matched.load(Relaxed);
    let last = s
        .last_match()
        .map(|t| now.duration_since(t).unwrap_or_default().as_secs());
    let diagnosis = match (state, &error) {
        ("missing", _) => {
            "file does not exist (yet): nothing to read; check the path, or where the service logs".to_string()
        }
        ("unreadable", Some(e)) => format!("file cannot be read: {e}"),
        ("starting", _) => "not opened yet".to_string(),
        _ if lines == 0 => "no line read yet since nftban started (nothing written to the file?)".to_string(),
        _ if matched == 0 => format!(
            "{lines} lines read, none matched the ruleset: is the service logging the failures here, in this format?"
        ),
        _ if jail_failures == 0 => {
            format!("{matched} lines matched but none counted (all from ignoreip, or hostnames)")
        }
        _ => format!("{lines} lines read, {matched} matched"),
    };
    SourceStatus {
        path: s.path.display().to_string(),
        state: state.to_string(),
        error,
        lines,
        matched,
        truncated: s.truncated.load(Relaxed),
        invalid_utf8: s.invalid_utf8.load(Relaxed),
        last_match_ago: last,
        diagnosis,
    }
}

#[cfg(test)]
mod tests;
