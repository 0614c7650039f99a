//! The engine: the one place where ban state changes.
//!
//! It owns each jail's tracker and ban record and the firewall. Sources feed
//! it failures, the control socket feeds it requests; both arrive on one
//! channel, so there are no locks around ban state. Bans decided while
//! handling a burst of events are queued and sent to the kernel together by
//! [`Engine::flush`], one netlink batch for the whole burst.
//!
//! The ban record mirrors the kernel: what nftban added, with expiry times.
//! It is rebuilt from the ban history at start (never by listing the
//! kernel's sets), so a restart keeps and shows the bans that are still
//! running.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use crate::address::{is_host, parse_net, show as show_net};
use crate::config::{format_duration, Config, EscalationConfig, IncrementConfig, MANUAL_JAIL, RECIDIVE_JAIL};
use crate::control::protocol::{BanResult, Banned, JailStatus, SourceStatus, Status, UnbanResult};
use crate::control::{Request, Response};
use crate::firewall::netlink::monitor::Pauser;
use crate::firewall::{jail_sets, Ban, Counter, Firewall, Refused, TableSpec};
use crate::sources::file::Position;
use crate::sources::{SourceState, SourceStats};
use crate::store::{BanRecord, FailureWindow, Origin, Store};
use crate::tracker::{Policy, Tracker, Verdict};

mod bans;
pub use bans::Bans;

/// How many bans refused in one batch are logged one by one.
const LOGGED_REFUSALS: usize = 10;

/// While bans stream in, conntrack entries of banned sources are removed at
/// most this often. Each removal walks the kernel's whole conntrack hash
/// table (`nf_conntrack_buckets`, shared by all namespaces: 262,144 buckets
/// took about 3 ms per walk), however few addresses it is for, so one walk
/// per ban took a whole core at 333 bans/s (docs/performance.md, Daemon).
/// A lone ban is still cleaned at once; bans in the interval after it are
/// cleaned together at its end. Their packets are dropped by the rules
/// meanwhile: only the entries' cleanup waits.
pub const FORGET_INTERVAL: Duration = Duration::from_secs(1);

/// One jail's live state.
pub struct JailState {
    pub name: String,
    pub ruleset: String,
    pub files: Vec<String>,
    pub journal: Vec<String>,
    pub tracker: Tracker,
    /// Banned addresses/prefixes and when their kernel timeout ends.
    pub bans: Bans,
    pub total_banned: u64,
    pub total_unbanned: u64,
    /// Bans of this jail the kernel refused (a full set, say).
    pub kernel_errors: u64,
    pub sources: Vec<Arc<SourceStats>>,
    /// Longer bans for repeat offenders.
    pub increment: Option<IncrementConfig>,
    /// Ban an IPv6 prefix once enough of its addresses are banned.
    pub escalation: Option<EscalationConfig>,
    /// Why a ban was made, for the bans whose jail rule does not say it
    /// (escalated prefixes); shown by `status`.
    pub reasons: HashMap<IpNet, String>,
    /// Bans per address since start, when there is no history to ask.
    times_banned: HashMap<IpNet, u32>,
}

impl JailState {
    fn new(name: &str, ruleset: &str, files: &[PathBuf], journal: &[String], policy: Policy) -> JailState {
        JailState {
            name: name.into(),
            ruleset: ruleset.into(),
            files: files.iter().map(|f| f.display().to_string()).collect(),
            journal: journal.to_vec(),
            tracker: Tracker::new(policy),
            bans: Bans::default(),
            total_banned: 0,
            total_unbanned: 0,
            kernel_errors: 0,
            sources: files
                .iter()
                .cloned()
                .chain((!journal.is_empty()).then(|| PathBuf::from(crate::sources::journal::label(journal))))
                .map(|f| Arc::new(SourceStats::new(f)))
                .collect(),
            increment: None,
            escalation: None,
            reasons: HashMap::new(),
            times_banned: HashMap::new(),
        }
    }
}

/// Ban state of all jails plus the firewall they are pushed to.
pub struct Engine {
    pub firewall: Box<dyn Firewall>,
    pub jails: Vec<JailState>,
    pending: Vec<Ban>,
    /// Bans the kernel refused and other kernel requests that failed,
    /// since start.
    pub kernel_errors: u64,
    /// Index of the recidive jail, when `recidive:` is configured.
    recidive: Option<usize>,
    /// Ban history; `None` runs without one (tests, or no `database:`).
    store: Option<Store>,
    /// Writes to the history that failed since start (e.g. disk full).
    pub store_errors: u64,
    /// How long history is kept, and when it was last purged.
    history_keep: Duration,
    last_purge: Option<SystemTime>,
    /// Reading positions of the files whose lines have been dealt with,
    /// not yet saved; and when positions were last saved.
    positions: BTreeMap<String, Position>,
    /// Journal cursors likewise.
    cursors: BTreeMap<String, String>,
    positions_saved: Option<std::time::Instant>,
    /// Pauses the nf_tables event monitor during big batches of nftban's
    /// own (see [`Engine::BIG_BATCH`]); `None` without a monitor.
    pub monitor: Option<Pauser>,
    /// Set after a paused batch: the daemon should check the table, since
    /// other tools' changes in that window went unseen.
    pub recheck: bool,
    /// Banned addresses and prefixes whose conntrack entries are still to
    /// be removed, and when that was last done (see [`FORGET_INTERVAL`]).
    forget: Vec<IpNet>,
    forgot_at: Option<std::time::Instant>,
    /// [`FORGET_INTERVAL`]; tests set another.
    pub forget_interval: Duration,
}

impl Engine {
    /// Build the jails of `config` (plus `manual`) with empty state.
    pub fn new(config: &Config, firewall: Box<dyn Firewall>) -> Engine {
        let mut shared: BTreeMap<std::path::PathBuf, Arc<SourceStats>> = BTreeMap::new();
        let mut jails: Vec<JailState> = config
            .jails
            .iter()
            .map(|j| {
                let policy = Policy {
                    findtime: j.findtime,
                    maxretry: j.maxretry,
                    bantime: j.bantime,
                    ignoreip: j.ignoreip.clone(),
                    max_tracked: j.max_tracked,
                };
                let mut state = JailState::new(&j.name, &j.ruleset, &j.files, &j.journal, policy);
                state.increment = j.increment;
                state.escalation = j.escalation;
                // Jails reading the same file share its reader and its stats.
                for (k, f) in j.files.iter().enumerate() {
                    let own = Arc::clone(&state.sources[k]);
                    state.sources[k] = shared.entry(f.clone()).or_insert(own).clone();
                }
                // Standard input likewise, after the files and the journal.
                if j.stdin {
                    let label = PathBuf::from(crate::sources::stdin::LABEL);
                    let own = Arc::new(SourceStats::new(label.clone()));
                    state.sources.push(shared.entry(label).or_insert(own).clone());
                }
                state
            })
            .collect();
        // The recidive jail counts bans, not lines: its "failures" are the
        // bans of the other jails.
        let recidive = config.recidive.map(|r| {
            jails.push(JailState::new(
                RECIDIVE_JAIL,
                "-",
                &[],
                &[],
                Policy {
                    findtime: r.findtime.0,
                    maxretry: r.maxretry,
                    bantime: r.bantime.0,
                    ignoreip: vec![],
                    max_tracked: crate::tracker::DEFAULT_MAX_TRACKED,
                },
            ));
            jails.len() - 1
        });
        let manual = Policy {
            findtime: Duration::from_secs(1),
            maxretry: 1,
            bantime: config.default_bantime,
            ignoreip: vec![],
            max_tracked: 1,
        };
        jails.push(JailState::new(MANUAL_JAIL, "-", &[], &[], manual));
        Engine {
            firewall,
            jails,
            recidive,
            pending: Vec::new(),
            kernel_errors: 0,
            store: None,
            store_errors: 0,
            history_keep: config.history_keep,
            last_purge: None,
            positions: BTreeMap::new(),
            cursors: BTreeMap::new(),
            positions_saved: None,
            monitor: None,
            recheck: false,
            forget: Vec::new(),
            forgot_at: None,
            forget_interval: FORGET_INTERVAL,
        }
    }

    /// From this many bans on, one `add` runs with the event monitor paused:
    /// the kernel then skips building an event per element.
    pub const BIG_BATCH: usize = 10_000;

    /// `Firewall::add`, with the event monitor paused for big batches.
    fn kernel_add(&mut self, bans: &[Ban]) -> crate::firewall::Result<Vec<Refused>> {
        let pauser = self.monitor.as_ref().filter(|_| bans.len() >= Self::BIG_BATCH);
        let Some(pauser) = pauser else {
            return self.firewall.add(bans);
        };
        if let Err(e) = pauser.pause() {
            tracing::debug!(error = %e, "cannot pause the nf_tables event monitor");
        }
        let result = self.firewall.add(bans);
        if let Err(e) = pauser.resume() {
            tracing::warn!(error = %e, "cannot resume the nf_tables event monitor: changes by other tools will go unseen");
        }
        self.recheck = true;
        result
    }

    /// Keep ban history in `store`: bans are written there before they go
    /// to the kernel, and restored from there at start.
    pub fn with_store(mut self, store: Store) -> Engine {
        self.store = Some(store);
        self
    }

    /// Write bans to the history. A failing write is logged and counted;
    /// the bans still go to the kernel (protection first).
    fn record(&mut self, bans: &[Ban], origin: Origin, now: SystemTime) {
        let Some(store) = self.store.as_mut() else { return };
        let records: Vec<BanRecord> = bans
            .iter()
            .map(|b| BanRecord {
                jail: b.jail.clone(),
                net: b.net,
                at: now,
                expires: now + b.timeout,
                origin,
                reason: None,
            })
            .collect();
        if let Err(e) = store.record_bans(&records) {
            self.store_errors += 1;
            tracing::error!(
                error = %e,
                count = bans.len(),
                "could not write bans to the history; they are in the kernel but will not be restored after a restart"
            );
        }
    }

    /// Create or adopt the kernel table, then restore the bans the history
    /// says are still running, all in one batch. The kernel's sets are never
    /// listed (listing a million elements takes over a minute in the
    /// kernel): setup creates only what is missing and never flushes a set,
    /// so bans already in the kernel stay there with their own timeouts,
    /// and re-adding the history's bans is idempotent. Without history (a
    /// first start, a deleted database) the record starts empty: bans left
    /// in the kernel keep dropping until they expire, but `status` does not
    /// show them. Returns how many bans were restored.
    pub fn start(&mut self, config: &Config) -> crate::firewall::Result<usize> {
        self.firewall.setup(&config.table_spec())?;
        let now = SystemTime::now();
        let active = match self.store.as_mut().map(|s| s.active(now)) {
            Some(Ok(active)) => active,
            None => Vec::new(),
            Some(Err(e)) => {
                self.store_errors += 1;
                tracing::error!(
                    error = %e,
                    "cannot read the ban history: no ban restored (bans still in the kernel stay until they expire)"
                );
                Vec::new()
            }
        };
        self.seed_recidive(now);
        self.restore_failures(now);
        let mut restore = Vec::with_capacity(active.len());
        let mut removed = std::collections::BTreeSet::new();
        for ban in active {
            let Some(jail) = self.jails.iter_mut().find(|j| j.name == ban.jail) else {
                // The jail left the config: its bans are lifted
                // (setup removed its sets) and not restored again.
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
        if let Some(store) = self.store.as_mut() {
            for jail in &removed {
                tracing::info!("jail {jail} left the config: its bans are lifted");
                if store.record_jail_removed(jail, now).is_err() {
                    self.store_errors += 1;
                }
            }
        }
        if restore.is_empty() {
            tracing::info!(
                "no running ban in the history; bans already in the kernel's sets are kept as they are (not listed, not shown by status) until they expire"
            );
            return Ok(0);
        }
        // Restored bans the kernel refuses (a set that became smaller,
        // say) are logged and dropped like any refusal.
        let batches = self.firewall.batches();
        let refused = self.push(&restore).len();
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
        let Some(store) = self.store.as_mut() else { return };
        let windows = match store.failure_windows() {
            Ok(w) => w,
            Err(e) => {
                self.store_errors += 1;
                tracing::warn!(error = %e, "cannot read saved failure counts; counting starts afresh");
                return;
            }
        };
        let (mut restored, mut gone) = (0, Vec::new());
        for (jail, net, times) in windows {
            match self
                .jails
                .iter()
                .position(|j| j.name == jail)
                .filter(|&i| Some(i) != self.recidive)
            {
                Some(i) => {
                    self.jails[i].tracker.restore(net, &times, now);
                    restored += 1;
                }
                None => gone.push(FailureWindow { jail, net, times: None }),
            }
        }
        if !gone.is_empty() && store.save(&[], &[], &[], &gone).is_err() {
            self.store_errors += 1;
        }
        if restored > 0 {
            tracing::info!("restored the failure counts of {restored} address(es) not banned yet");
        }
    }

    /// Every jail's failure windows changed since the last save (recidive's
    /// are rebuilt from the ban history at start instead).
    fn failure_changes(&mut self) -> Vec<FailureWindow> {
        let recidive = self.recidive;
        let mut out = Vec::new();
        for (i, j) in self.jails.iter_mut().enumerate() {
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

    /// Recidive counts bans across restarts: feed it the history's bans of
    /// the last `findtime`.
    fn seed_recidive(&mut self, now: SystemTime) {
        let (Some(r), Some(store)) = (self.recidive, self.store.as_mut()) else {
            return;
        };
        let since = now - self.jails[r].tracker.policy.findtime;
        match store.bans_since(since) {
            Ok(rows) => {
                for (jail, net, at) in rows {
                    if jail != RECIDIVE_JAIL && jail != MANUAL_JAIL {
                        let _ = self.jails[r].tracker.failure_of(net, at);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the ban history for recidive"),
        }
    }

    /// A source has dealt out every line up to `pos` (their failures came
    /// before this on the same channel, so they are handled).
    pub fn position(&mut self, path: String, pos: Position) {
        self.positions.insert(path, pos);
    }

    /// A journal source has sent every failure up to `cursor`.
    pub fn cursor(&mut self, source: String, cursor: String) {
        self.cursors.insert(source, cursor);
    }

    /// Save reading positions, and move the bans gathered in the history's
    /// pending file into SQLite with them: at most once a second unless
    /// `force` (shutdown, reload).
    pub fn save_positions(&mut self, force: bool) {
        let pending = self.store.as_ref().is_some_and(|s| s.has_pending());
        if self.positions.is_empty() && self.cursors.is_empty() && !pending && !force {
            return;
        }
        let due = force
            || self
                .positions_saved
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if !due || self.store.is_none() {
            return;
        }
        // The windows as they stand after the failures of the lines up to
        // these positions (they came before them on the channel).
        let windows = self.failure_changes();
        let Some(store) = self.store.as_mut() else { return };
        let positions: Vec<(String, Position)> = std::mem::take(&mut self.positions).into_iter().collect();
        let cursors: Vec<(String, String)> = std::mem::take(&mut self.cursors).into_iter().collect();
        if let Err(e) = store.save(&[], &positions, &cursors, &windows) {
            self.store_errors += 1;
            tracing::warn!(error = %e, "could not save file positions; lines may be read again after a restart");
        }
        self.positions_saved = Some(std::time::Instant::now());
    }

    /// Remove old history now and then (hourly).
    fn purge(&mut self, now: SystemTime) {
        let due = self
            .last_purge
            .is_none_or(|t| now.duration_since(t).unwrap_or_default() >= Duration::from_secs(3600));
        if !due {
            return;
        }
        self.last_purge = Some(now);
        let keep = self.history_keep;
        if let Some(store) = self.store.as_mut() {
            match store.purge(now, keep) {
                Ok(0) => {}
                Ok(n) => tracing::info!("removed {n} ban history entries older than {}", format_duration(keep)),
                Err(e) => {
                    self.store_errors += 1;
                    tracing::warn!(error = %e, "could not purge old ban history");
                }
            }
        }
    }

    /// Put the table back as `setup` makes it and re-add every live ban
    /// with its remaining time, from nftban's own record (never by listing
    /// the kernel's sets): after another tool deleted or flushed the table,
    /// its chain, sets or elements. Returns how many bans were re-added.
    pub fn restore(&mut self, spec: &TableSpec, now: SystemTime) -> crate::firewall::Result<usize> {
        self.flush();
        self.expire(now);
        self.firewall.setup(spec)?;
        let bans: Vec<Ban> = self
            .jails
            .iter()
            .flat_map(|j| {
                j.bans.iter().filter_map(move |(net, &until)| {
                    let left = until.duration_since(now).ok().filter(|d| !d.is_zero())?;
                    Some(Ban {
                        jail: j.name.clone(),
                        net: *net,
                        timeout: left,
                    })
                })
            })
            .collect();
        self.kernel_add(&bans)?;
        Ok(bans.len())
    }

    /// What is missing from the kernel, checked cheaply: the table's
    /// objects, and per jail one single-address and one prefix ban (the
    /// ones with the most time left), looked up one by one.
    pub fn missing(&mut self, spec: &TableSpec, now: SystemTime) -> crate::firewall::Result<Vec<String>> {
        let soon = now + Duration::from_secs(2);
        let mut probes = Vec::new();
        for j in &self.jails {
            for host in [true, false] {
                let best = j
                    .bans
                    .iter()
                    .filter(|(n, &t)| t > soon && is_host(n) == host)
                    .max_by_key(|(_, &t)| t);
                if let Some((net, _)) = best {
                    probes.push((j.name.clone(), *net));
                }
            }
        }
        self.firewall.missing(spec, &probes)
    }

    fn jail_index(&self, name: &str) -> Option<usize> {
        self.jails.iter().position(|j| j.name == name)
    }

    /// A failure of `addr` seen in jail `jail` at `at`.
    pub fn failure(&mut self, jail: usize, addr: IpAddr, at: SystemTime) {
        self.failure_of(jail, IpNet::from(addr), at)
    }

    /// A failure of `net` (an address, or a prefix a rule captured with
    /// `<SUBNET>` or `<ADDR>/<CIDR>`) seen in jail `jail` at `at`.
    pub fn failure_of(&mut self, jail: usize, net: IpNet, at: SystemTime) {
        let net = net.trunc();
        let j = &mut self.jails[jail];
        match j.tracker.failure_of(net, at) {
            Verdict::Ignored => {
                tracing::debug!(jail = %j.name, net = %show_net(&net), "failure from (or overlapping) an ignoreip address; not counted")
            }
            Verdict::Counted { count } => {
                tracing::debug!(jail = %j.name, net = %show_net(&net), count, maxretry = j.tracker.policy.maxretry, "failure")
            }
            Verdict::Ban { bantime } => {
                if let Some(cover) = j.bans.covering(&net, at) {
                    tracing::debug!(jail = %j.name, net = %show_net(&net), %cover, "already banned");
                    return;
                }
                let shown = show_net(&net);
                let bantime = self.incremented(jail, net, bantime);
                let j = &mut self.jails[jail];
                let policy = &j.tracker.policy;
                let (what, window) = (policy.maxretry, format_duration(policy.findtime));
                if Some(jail) == self.recidive {
                    tracing::info!(jail = %j.name, "Ban {shown} for {} (banned {what} times within {window})", format_duration(bantime));
                } else {
                    tracing::info!(jail = %j.name, "Ban {shown} for {} ({what} failures within {window})", format_duration(bantime));
                }
                j.bans.insert(net, at.max(SystemTime::now()) + bantime);
                j.total_banned += 1;
                *j.times_banned.entry(net).or_default() += 1;
                self.pending.push(Ban {
                    jail: j.name.clone(),
                    net,
                    timeout: bantime,
                });
                // Every ban of another jail is one "failure" for recidive.
                if let Some(r) = self.recidive.filter(|&r| r != jail) {
                    self.failure_of(r, net, at);
                }
                if is_host(&net) {
                    self.escalate(jail, net.addr(), at);
                }
            }
        }
    }

    /// IPv6 escalation (`ipv6_escalation`): once jail `jail`'s running bans
    /// hold `threshold` distinct addresses inside the `/prefix` of `addr`,
    /// ban that prefix with the jail's bantime (incremented for a repeat
    /// prefix, and at least as long as the longest ban it replaces), record
    /// it as escalated, then lift the bans it holds: the prefix covers them,
    /// and an unban of one of them then says that the prefix holds it. If
    /// the kernel refuses the prefix, the address bans stay as they were.
    /// Counting is a range walk over the jail's bans inside the prefix, not
    /// over all bans.
    fn escalate(&mut self, jail: usize, addr: IpAddr, at: SystemTime) {
        let (IpAddr::V6(v6), Some(esc)) = (addr, self.jails[jail].escalation) else {
            return;
        };
        let Ok(prefix) = ipnet::Ipv6Net::new(v6, esc.prefix).map(|p| p.trunc()) else {
            return;
        };
        let now = at.max(SystemTime::now());
        let net = IpNet::V6(prefix);
        let j = &self.jails[jail];
        if j.bans.covering(&net, now).is_some() {
            return;
        }
        // Every ban inside the prefix sorts between its first address with
        // length 0 and its last address with length 128.
        let (Ok(lo), Ok(hi)) = (
            ipnet::Ipv6Net::new(prefix.network(), 0),
            ipnet::Ipv6Net::new(prefix.broadcast(), 128),
        ) else {
            return;
        };
        let inside: Vec<(IpNet, SystemTime)> = j
            .bans
            .range(IpNet::V6(lo)..=IpNet::V6(hi))
            .filter(|(n, &t)| t > now && net.contains(*n))
            .map(|(n, t)| (*n, *t))
            .collect();
        let hosts = inside.iter().filter(|(n, _)| n.prefix_len() == 128).count();
        if hosts < esc.threshold as usize {
            return;
        }
        // The address bans decided so far go in first, so the kernel and
        // the record agree before some of them are lifted below.
        self.flush();
        let base = self.jails[jail].tracker.policy.bantime;
        let longest = inside
            .iter()
            .map(|(_, t)| t.duration_since(now).unwrap_or_default())
            .max()
            .unwrap_or_default();
        let bantime = self.incremented(jail, net, base).max(longest);
        let reason = format!("escalated: {hosts} addresses in {prefix}");
        let j = &mut self.jails[jail];
        tracing::info!(jail = %j.name, "Ban {prefix} for {} ({reason})", format_duration(bantime));
        j.bans.insert(net, now + bantime);
        j.reasons.insert(net, reason.clone());
        j.total_banned += 1;
        *j.times_banned.entry(net).or_default() += 1;
        let name = j.name.clone();
        let ban = Ban {
            jail: name.clone(),
            net,
            timeout: bantime,
        };
        if let Some(store) = self.store.as_mut() {
            let record = BanRecord {
                jail: name.clone(),
                net,
                at: now,
                expires: now + bantime,
                origin: Origin::Escalated,
                reason: Some(reason),
            };
            if let Err(e) = store.record_bans(&[record]) {
                self.store_errors += 1;
                tracing::error!(error = %e, "could not write the escalated ban of {prefix} to the history");
            }
        }
        if !self.push(std::slice::from_ref(&ban)).is_empty() {
            self.jails[jail].reasons.remove(&net);
            return;
        }
        let inner: Vec<IpNet> = inside.iter().map(|(n, _)| *n).collect();
        if let Err(e) = self.firewall.delete(&name, &inner) {
            // They stay in the kernel, covered by the prefix, and in the record.
            self.kernel_errors += 1;
            tracing::warn!(jail = %name, error = %e, "could not remove the bans inside escalated {prefix}");
            return;
        }
        let j = &mut self.jails[jail];
        for n in &inner {
            j.bans.remove(n);
            j.reasons.remove(n);
        }
        if let Some(store) = self.store.as_mut() {
            for n in &inner {
                if store.record_unban(Some(&name), n, now).is_err() {
                    self.store_errors += 1;
                }
            }
        }
    }

    /// The ban time for the next ban of `net` in jail `jail`: `bantime *
    /// factor^n` after n earlier bans (from the history, else since start),
    /// at most the increment's `max`.
    fn incremented(&mut self, jail: usize, net: IpNet, bantime: Duration) -> Duration {
        let Some(inc) = self.jails[jail].increment else {
            return bantime;
        };
        let name = &self.jails[jail].name;
        let earlier = match self.store.as_ref().map(|s| s.ban_count(name, &net)) {
            Some(Ok(n)) => n as u32,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot read ban history for the bantime increment");
                self.jails[jail].times_banned.get(&net).copied().unwrap_or(0)
            }
            None => self.jails[jail].times_banned.get(&net).copied().unwrap_or(0),
        };
        // The increment only lengthens: `max` caps the growth, never the base.
        let grown = bantime.as_secs_f64() * inc.factor.powi(earlier.min(64) as i32);
        Duration::from_secs_f64(grown.min(inc.max.0.as_secs_f64())).max(bantime)
    }

    /// Send queued bans to the kernel in one batch.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bans = std::mem::take(&mut self.pending);
        self.record(&bans, Origin::Auto, SystemTime::now());
        let _ = self.push(&bans);
    }

    /// Put `bans` into the kernel, then remove their conntrack entries.
    /// Bans the kernel refuses are logged, counted and dropped from the
    /// record; the others stay. Returns the refused ones, with the reason.
    fn push(&mut self, bans: &[Ban]) -> Vec<(Ban, String)> {
        let refused: Vec<(Ban, String)> = match self.kernel_add(bans) {
            Ok(refused) => refused.into_iter().map(|r| (r.ban, r.error.to_string())).collect(),
            Err(e) => {
                // Nothing went in: one log line for the call, not one per ban.
                tracing::error!(error = %e, count = bans.len(), "could not put bans into the kernel");
                self.kernel_errors += bans.len() as u64;
                for ban in bans {
                    if let Some(j) = self.jails.iter_mut().find(|j| j.name == ban.jail) {
                        j.bans.remove(&ban.net);
                        j.kernel_errors += 1;
                        j.total_banned = j.total_banned.saturating_sub(1);
                    }
                }
                return bans.iter().map(|b| (b.clone(), e.to_string())).collect();
            }
        };
        for (k, (ban, why)) in refused.iter().enumerate() {
            self.kernel_errors += 1;
            // A full set refuses every further ban: name the first few.
            if k < LOGGED_REFUSALS {
                tracing::error!(jail = %ban.jail, "could not put the ban of {} into the kernel: {why}", show_net(&ban.net));
            } else if k == LOGGED_REFUSALS {
                tracing::error!("... and {} more bans refused by the kernel", refused.len() - k);
            }
            if let Some(j) = self.jails.iter_mut().find(|j| j.name == ban.jail) {
                j.bans.remove(&ban.net);
                j.kernel_errors += 1;
                j.total_banned = j.total_banned.saturating_sub(1);
            }
            // Not in the kernel, so not to be restored either.
            if let Some(store) = self.store.as_mut() {
                if store
                    .record_unban(Some(&ban.jail), &ban.net, SystemTime::now())
                    .is_err()
                {
                    self.store_errors += 1;
                }
            }
        }
        // Only now that the bans are in place: a packet of the flow that
        // arrives meanwhile is dropped before its new entry is confirmed.
        let lost: BTreeSet<(&str, IpNet)> = refused.iter().map(|(b, _)| (b.jail.as_str(), b.net)).collect();
        let banned: Vec<IpNet> = bans
            .iter()
            .filter(|b| !lost.contains(&(b.jail.as_str(), b.net)))
            .map(|b| b.net)
            .collect();
        self.forget.extend(banned);
        self.forget_connections(false);
        refused
    }

    /// Remove the conntrack entries of the sources banned since the last
    /// time: now if `force` or [`FORGET_INTERVAL`] has passed since then,
    /// else later (the daemon's loop calls this again within the interval
    /// while some are waiting, see [`Engine::forget_waiting`]).
    pub fn forget_connections(&mut self, force: bool) {
        if self.forget.is_empty() || !force && self.forgot_at.is_some_and(|t| t.elapsed() < self.forget_interval) {
            return;
        }
        let nets = std::mem::take(&mut self.forget);
        self.forgot_at = Some(std::time::Instant::now());
        match self.firewall.forget_connections(&nets) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "removed {n} conntrack entr{} of banned sources",
                if n == 1 { "y" } else { "ies" }
            ),
            Err(e) => {
                self.kernel_errors += 1;
                tracing::warn!(error = %e, "could not remove the conntrack entries of banned sources");
            }
        }
    }

    /// Are conntrack removals waiting for the end of the interval?
    pub fn forget_waiting(&self) -> bool {
        !self.forget.is_empty()
    }

    /// Forget bans whose kernel timeout has passed (the kernel already
    /// dropped them) and failure windows that are over.
    pub fn expire(&mut self, now: SystemTime) {
        for j in &mut self.jails {
            j.bans.retain(|_, &mut t| t > now);
            if !j.reasons.is_empty() {
                let bans = &j.bans;
                j.reasons.retain(|net, _| bans.contains_key(net));
            }
            j.tracker.prune(now);
        }
        self.purge(now);
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
            // Handled by the daemon loop, which knows the config file.
            Request::Reload => Response::err("reload is handled by the daemon, not the engine"),
        };
        self.flush();
        // Requests are rare: whatever waits is done now, so a ban by hand
        // has its entries removed before the answer.
        self.forget_connections(true);
        resp
    }

    fn status(&mut self, jail: Option<&str>, now: SystemTime) -> Response {
        // One small GETRULE dump for every jail's counters.
        let counters = self.firewall.counters().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the rule counters");
            BTreeMap::new()
        });
        match jail {
            Some(name) => match self.jail_index(name) {
                Some(i) => Response::ok(self.jail_status(i, now, &counters)),
                None => Response::err(self.unknown_jail(name)),
            },
            None => Response::ok(Status {
                jails: (0..self.jails.len())
                    .map(|i| self.jail_status(i, now, &counters))
                    .collect(),
                kernel_errors: self.kernel_errors,
                history_errors: self.store_errors,
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

    fn jail_status(&self, i: usize, now: SystemTime, counters: &BTreeMap<String, Counter>) -> JailStatus {
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
        // First the plan, without touching the record: which bans go in and
        // which contained bans they replace (interval sets do not hold
        // overlapping elements).
        // `wanted` keeps the request's order; `wanted_set` answers "is a
        // wider prefix of this request wanted" in one lookup per prefix
        // length, so a `ban -` of 100,000 addresses is not quadratic.
        let mut wanted: Vec<IpNet> = Vec::new();
        let mut wanted_set: HashSet<IpNet> = HashSet::new();
        let mut lifted: Vec<(IpNet, SystemTime)> = Vec::new();
        for net in nets {
            let j = &self.jails[i];
            let wider_wanted = || {
                (0..net.prefix_len())
                    .rev()
                    .find_map(|len| Some(IpNet::new(net.addr(), len).ok()?.trunc()).filter(|w| wanted_set.contains(w)))
            };
            if let Some(cover) = j.bans.covering(&net, now).filter(|c| *c != net).or_else(wider_wanted) {
                result
                    .already_covered
                    .push(format!("{} (inside banned {})", show_net(&net), show_net(&cover)));
                continue;
            }
            // A single address contains nothing else: skip the walks (a
            // `ban -` of a million addresses must not be quadratic).
            if !is_host(&net) {
                lifted.extend(
                    j.bans
                        .iter()
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
        if !lifted.is_empty() {
            let inner: Vec<IpNet> = lifted.iter().map(|(n, _)| *n).collect();
            if let Err(e) = self.firewall.delete(name, &inner) {
                self.kernel_errors += 1;
                return Response::err(format!("kernel refused to replace contained bans: {e}"));
            }
            // Replaced by the prefix: not to be restored on their own.
            if let Some(store) = self.store.as_mut() {
                for net in &inner {
                    if store.record_unban(Some(name), net, now).is_err() {
                        self.store_errors += 1;
                    }
                }
            }
        }
        let j = &mut self.jails[i];
        for (inner, _) in &lifted {
            j.bans.remove(inner);
        }
        let mut pending = Vec::new();
        for net in wanted {
            j.bans.insert(net, now + bantime);
            j.reasons.remove(&net);
            j.total_banned += 1;
            result.banned.push(Banned {
                ip: show_net(&net),
                expires_in: bantime.as_secs(),
                reason: None,
            });
            tracing::info!(jail = %name, "Ban {} for {} (by hand)", show_net(&net), format_duration(bantime));
            pending.push(Ban {
                jail: name.to_string(),
                net,
                timeout: bantime,
            });
        }
        self.record(&pending, Origin::Manual, now);
        let mut restore = Vec::new();
        for (ban, why) in self.push(&pending) {
            let ip = show_net(&ban.net);
            result.banned.retain(|b| b.ip != ip);
            result.failed.push(format!("{ip}: {why}"));
            // The prefix did not go in: the bans it was to replace come back.
            for (inner, until) in lifted.iter().filter(|(n, _)| ban.net.contains(n)) {
                if let Ok(left) = until.duration_since(now) {
                    self.jails[i].bans.insert(*inner, *until);
                    restore.push(Ban {
                        jail: name.to_string(),
                        net: *inner,
                        timeout: left,
                    });
                }
            }
        }
        if !restore.is_empty() {
            self.record(&restore, Origin::Manual, now);
            for (ban, why) in self.push(&restore) {
                tracing::error!(jail = %name, "could not restore the ban of {}: {why}", show_net(&ban.net));
            }
        }
        // Bans by hand into a jail count for its IPv6 escalation too.
        if self.jails[i].escalation.is_some() {
            let hosts: Vec<IpAddr> = pending
                .iter()
                .filter(|b| b.net.prefix_len() == 128 && self.jails[i].bans.contains_key(&b.net))
                .map(|b| b.net.addr())
                .collect();
            for addr in hosts {
                self.escalate(i, addr, now);
            }
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
            // Forget it in the history first, so it is never restored even
            // if the kernel step below fails (seed FAQ row 7).
            if let Some(store) = self.store.as_mut() {
                if let Err(e) = store.record_unban(jail, &net, SystemTime::now()) {
                    self.store_errors += 1;
                    return Response::err(format!(
                        "cannot record the unban of {} in the history: {e}",
                        show_net(&net)
                    ));
                }
            }
            let mut found = false;
            let mut inside = Vec::new();
            for j in self.jails.iter_mut().filter(|j| jail.is_none_or(|n| n == j.name)) {
                if j.bans.remove(&net).is_some() {
                    j.reasons.remove(&net);
                    found = true;
                    if let Err(e) = self.firewall.delete(&j.name, &[net]) {
                        self.kernel_errors += 1;
                        return Response::err(format!("kernel refused to unban {}: {e}", show_net(&net)));
                    }
                    j.tracker.forget(&net);
                    tracing::info!(jail = %j.name, "Unban {} (by hand)", show_net(&net));
                    j.total_unbanned += 1;
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
        SourceState::NoMatch => ("no_match", None),
        SourceState::Closed => ("closed", None),
    };
    let lines = s.lines.load(Relaxed);
    let matched = s.matched.load(Relaxed);
    let last = s
        .last_match()
        .map(|t| now.duration_since(t).unwrap_or_default().as_secs());
    let members = s.members();
    let diagnosis = match (state, &error) {
        ("no_match", _) => format!("no file matches {} yet", s.path.display()),
        ("closed", _) => {
            format!(
                "stdin closed after {lines} lines ({matched} matched): no more lines will come; other sources go on"
            )
        }
        _ if !members.is_empty() && lines == 0 => {
            format!("{} file(s) match; no line read yet since nftban started", members.len())
        }
        _ if !members.is_empty() && matched == 0 => format!(
            "{} file(s) match; {lines} lines read, none matched the ruleset",
            members.len()
        ),
        _ if !members.is_empty() => format!("{} file(s) match; {lines} lines read, {matched} matched", members.len()),
        ("missing", _) => {
            "file does not exist (yet): nothing to read; check the path, or where the service logs".to_string()
        }
        ("unreadable", Some(e)) => format!("file cannot be read: {e}"),
        ("starting", _) => "not opened yet".to_string(),
        _ if lines == 0 && s.path.as_os_str() == crate::sources::stdin::LABEL => {
            "no line on stdin yet since nftban started".to_string()
        }
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
        files: members.iter().map(|m| source_status(m, jail_failures, now)).collect(),
    }
}

#[cfg(test)]
mod tests;
