//! Start: create or adopt the kernel table, then bring back from the ban
//! history what an earlier run left running: bans (into the kernel, in one
//! batch), failure counts not yet at `maxretry`, and recidive's memory of
//! recent bans.
//!
//! The history is a file, and restore never trusts it more than any other
//! input: a ban nftban would never make (an address no ban may touch,
//! one overlapping the jail's `ignoreip` unless `nftban ban --force` put
//! it there, one running past the maximum bantime, a prefix with host bits
//! set) is not restored but lifted, in the kernel and in the history, and
//! said once in the log with a count. Those records come from a hand edit,
//! a forgery (the pending file was once world-writable under a loose
//! umask) or damage; a forged `0.0.0.0/0` used to ban the whole world for
//! a day at start. A ban inside `ignoreip` comes, far more often, from an
//! `ignoreip` widened since: it is lifted too, and said so plainly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use super::jail::JailState;
use super::manual::FORCED;
use super::share::Share;
use super::Engine;
use crate::address::{never_banned, show as show_net};
use crate::config::duration::MAX_DURATION;
use crate::config::{Config, MANUAL_JAIL, RECIDIVE_JAIL};
use crate::firewall::{Ban, Firewall};
use crate::store::{FailureWindow, Origin, RunningBan};

/// Clock steps (NTP, a fixed RTC) move "now" by seconds to hours: a ban
/// or failure that far off is believed, a day past it is not.
const CLOCK_SLACK: Duration = Duration::from_secs(86_400);

impl Engine {
    /// Create or adopt the kernel table, then restore the bans the history
    /// says are still running. The kernel's sets are never listed (listing
    /// a big set is slow in the kernel, docs/firewall.md): setup creates
    /// only what is missing and never flushes a set, so bans already in the
    /// kernel stay there with their own timeouts, and re-adding the
    /// history's bans is idempotent. Without history (a first start, a
    /// deleted database) the record starts empty: bans left in the kernel
    /// keep dropping until they expire, but `status` does not show them.
    /// Bans nftban would never make are lifted instead (module doc).
    ///
    /// The history is read on a thread of its own and handed over
    /// [`RESTORE_CHUNK`] bans at a time, each chunk one kernel call while
    /// the next is read: a million bans are never held twice (they were
    /// read all at once, then copied for the kernel and for the fleet: 912
    /// MB), and reading overlaps the kernel's work (docs/performance.md).
    /// Returns how many bans were restored.
    pub fn start(&mut self, config: &Config) -> crate::firewall::Result<usize> {
        self.spec = config.table_spec();
        self.firewall.setup(&self.spec)?;
        let now = SystemTime::now();
        // Before the restored bans: an unban told again never follows a
        // ban of the same address (none runs again, engine::share).
        self.retell_unbans(now);
        let mut refused = Refusals::default();
        self.seed_recidive(now, &mut refused);
        self.restore_failures(now, &mut refused);
        let batches = self.firewall.batches();
        let mut run = Restoring::new(now, refused);
        let chunk = self.restore_chunk;
        {
            let Engine {
                history,
                jails,
                firewall,
                share,
                ..
            } = self;
            std::thread::scope(|s| {
                // Three stages, each a chunk at a time: the history read on
                // one thread, the records on this one, the kernel on a
                // third. A chunk goes into the record while the one before
                // goes into the kernel (the two were most of a restore's
                // time, one after the other).
                let (tx, rx) = mpsc::sync_channel(1);
                let reader = s.spawn(move || history.each_running(now, chunk, |rows| tx.send(rows).is_ok()));
                let (to_kernel, kernel_rx) = mpsc::sync_channel::<Vec<Ban>>(1);
                let (from_kernel, added) = mpsc::channel();
                let firewall = firewall.as_mut();
                let kernel = s.spawn(move || {
                    for bans in kernel_rx {
                        let outcome = Restoring::into_kernel(&bans, firewall);
                        if from_kernel.send((bans, outcome)).is_err() {
                            break;
                        }
                    }
                });
                let mut news = std::collections::VecDeque::new();
                for rows in rx {
                    let (bans, told) = run.record(rows, jails, share.is_some());
                    if bans.is_empty() {
                        continue;
                    }
                    news.push_back(told);
                    if to_kernel.send(bans).is_err() {
                        break;
                    }
                    while let Ok((bans, outcome)) = added.try_recv() {
                        run.added(&bans, outcome, news.pop_front().unwrap_or_default(), share);
                    }
                }
                drop(to_kernel);
                for (bans, outcome) in added {
                    run.added(&bans, outcome, news.pop_front().unwrap_or_default(), share);
                }
                // A panic of the reader or the kernel's thread is the
                // daemon's: it happens again.
                if let Some(panic) = [reader.join().err(), kernel.join().err()].into_iter().flatten().next() {
                    std::panic::resume_unwind(panic);
                }
            });
        }
        let Restoring {
            refused,
            removed,
            lift,
            kernel,
            whole,
            gone,
            restored,
            conntrack_errors,
            ..
        } = run;
        self.kernel_errors += conntrack_errors;
        for jail in &removed {
            self.history.jail_removed(jail, now);
        }
        self.lift_refused(&lift, now);
        refused.log();
        if let Some(e) = gone {
            // Another tool deleted the table (or a set) during the restore:
            // it goes back with every ban of the record, as healing does.
            match self.restore(now) {
                Ok(n) => tracing::warn!(
                    "table inet {} was gone while the bans were restored ({e}): restored the table and {n} ban(s){}",
                    self.spec.table,
                    self.feeds_restored()
                ),
                Err(again) => return Err(again),
            }
        }
        if let Some(e) = &whole {
            tracing::error!(error = %e, count = kernel.len(), "could not put restored bans into the kernel");
        }
        // Restored bans the kernel refuses (a set that became smaller, say)
        // are logged and dropped like any refusal.
        self.unrecord(&kernel, whole.is_some(), None, now);
        self.history.give_back();
        let restored = restored.saturating_sub(kernel.len());
        if restored == 0 {
            tracing::info!(
                "no running ban in the history; bans already in the kernel's sets are kept as they are (not listed, not shown by status) until they expire"
            );
            return Ok(0);
        }
        let batches = self.firewall.batches() - batches;
        tracing::info!(
            "restored {restored} bans in {batches} netlink batch{}",
            if batches == 1 { "" } else { "es" }
        );
        Ok(restored)
    }

    /// Lift bans restore refused: out of the kernel (an older nftban may
    /// have put them there; deleting what is not there is no error) and
    /// marked lifted in the history, so they are judged once.
    fn lift_refused(&mut self, lift: &BTreeMap<String, Vec<IpNet>>, now: SystemTime) {
        for (jail, nets) in lift {
            // A prefix with host bits set never went into the kernel.
            let valid: Vec<IpNet> = nets.iter().filter(|n| n.trunc() == **n).copied().collect();
            if !valid.is_empty() {
                if let Err(e) = self.firewall.delete(jail, &valid) {
                    self.kernel_errors += 1;
                    tracing::error!(error = %e, jail, "could not lift refused bans from the kernel");
                }
            }
            self.history.forget(jail, nets, now);
        }
    }

    /// Put back the failure windows saved with the file positions (see
    /// `Tracker::take_changes`). Windows of jails no longer configured are
    /// deleted from the history; failure times far ahead of the clock are
    /// dropped.
    fn restore_failures(&mut self, now: SystemTime, refused: &mut Refusals) {
        let (mut restored, mut gone) = (0, Vec::new());
        let latest = now.checked_add(CLOCK_SLACK).unwrap_or(now);
        for (jail, net, mut times) in self.history.failure_windows() {
            let found = self.jails.iter().position(|j| j.name == jail);
            match found.filter(|&i| Some(i) != self.recidive) {
                Some(i) => {
                    let before = times.len();
                    times.retain(|t| *t <= latest);
                    for _ in times.len()..before {
                        refused.note(AHEAD, || format!("a failure of {} in jail {jail}", show_net(&net)));
                    }
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
    /// the last `findtime` (not those dated far ahead of the clock, which
    /// would count for ever, nor those no ban may touch).
    fn seed_recidive(&mut self, now: SystemTime, refused: &mut Refusals) {
        let Some(r) = self.recidive.filter(|_| self.history.has_store()) else {
            return;
        };
        let findtime = self.jails[r].tracker.policy.findtime;
        let since = now.checked_sub(findtime).unwrap_or(std::time::UNIX_EPOCH);
        let latest = now.checked_add(CLOCK_SLACK).unwrap_or(now);
        for (jail, net, at) in self.history.bans_since(since) {
            if jail == RECIDIVE_JAIL || jail == MANUAL_JAIL {
                continue;
            }
            let example = || format!("{} in jail {jail}", show_net(&net));
            if at > latest {
                refused.note(AHEAD, example);
            } else if never_banned(&net).is_some() {
                refused.note(NEVER, example);
            } else {
                let _ = self.jails[r].tracker.failure_of(net, at);
            }
        }
    }
}

/// Bans per kernel call when restoring: about 1.4 MB of netlink messages,
/// one batch; a million bans are 31 calls. Bigger chunks gain nothing in
/// the kernel (docs/performance.md) and hold more rows at once.
pub(super) const RESTORE_CHUNK: usize = 32_768;

/// What a restore found, chunk by chunk, for the engine to act on once the
/// history is read (the reader thread holds the history until then).
struct Restoring {
    now: SystemTime,
    refused: Refusals,
    /// Jails left the config that still had bans.
    removed: BTreeSet<String>,
    /// Bans nftban would never make, to lift.
    lift: BTreeMap<String, Vec<IpNet>>,
    /// Bans the kernel refused, with why.
    kernel: Vec<(Ban, String)>,
    /// The error of a kernel call that refused a whole chunk (a broken
    /// socket), if one did.
    whole: Option<crate::firewall::Error>,
    /// The table or a set was gone (another tool deleted it meanwhile).
    gone: Option<crate::firewall::Error>,
    /// Distinct bans put in the record.
    restored: usize,
    /// Conntrack removals that failed.
    conntrack_errors: u64,
}

impl Restoring {
    fn new(now: SystemTime, refused: Refusals) -> Restoring {
        Restoring {
            now,
            refused,
            removed: BTreeSet::new(),
            lift: BTreeMap::new(),
            kernel: Vec::new(),
            whole: None,
            gone: None,
            restored: 0,
            conntrack_errors: 0,
        }
    }

    /// One chunk of the history's running bans into the jails' records:
    /// the bans for the kernel, and (with `sharing`) the news for the
    /// fleet. A (jail, net) the history holds twice (banned again while
    /// running) keeps the latest expiry: a later record running longer is
    /// put in again (the kernel takes the new timeout), one running
    /// shorter is skipped.
    fn record(
        &mut self,
        rows: Vec<RunningBan>,
        jails: &mut [JailState],
        sharing: bool,
    ) -> (Vec<Ban>, Vec<super::Local>) {
        let now = self.now;
        let mut bans = Vec::with_capacity(rows.len());
        // This node's own bans, told again (the fleet publishes what an
        // outage or a stop kept back; its peers drop what they have).
        let mut news = Vec::new();
        // The last reason, shared by the bans after it that give the same
        // (a fleet peer's batch, a feed's load come back in a row).
        let mut last: Option<std::sync::Arc<str>> = None;
        for ban in rows {
            let Some(jail) = jails.iter_mut().find(|j| *j.name == *ban.jail) else {
                // The jail left the config: its bans are lifted (setup
                // removed its sets) and not restored again.
                if !self.removed.contains(&*ban.jail) {
                    self.removed.insert(ban.jail.to_string());
                }
                continue;
            };
            let left = ban.expires.duration_since(now).unwrap_or_default();
            if left.is_zero() {
                continue;
            }
            if let Some(why) = distrust(jail, &ban, left) {
                self.refused
                    .note(why, || format!("{} in jail {}", show_net(&ban.net), ban.jail));
                self.lift.entry(ban.jail.to_string()).or_default().push(ban.net);
                continue;
            }
            match jail.bans.insert(ban.net, ban.expires) {
                Some(old) if old >= ban.expires => {
                    jail.bans.insert(ban.net, old);
                    continue;
                }
                Some(_) => {}
                None => self.restored += 1,
            }
            match &ban.reason {
                Some(why) => {
                    let why = match last.take() {
                        Some(l) if *l == **why => l,
                        _ => why.as_str().into(),
                    };
                    jail.reasons.insert(ban.net, why.clone());
                    last = Some(why);
                }
                None if !jail.reasons.is_empty() => _ = jail.reasons.remove(&ban.net),
                None => {}
            }
            if sharing && !ban.origin.is_some_and(Origin::is_fleet) {
                news.push(super::Local::Ban {
                    jail: jail.name.clone(),
                    net: ban.net,
                    expires: ban.expires,
                    origin: ban.origin.unwrap_or(Origin::Auto),
                    reason: ban.reason,
                    restored: true,
                });
            }
            bans.push(Ban {
                jail: jail.name.clone(),
                net: ban.net,
                timeout: left,
            });
        }
        (bans, news)
    }

    /// One chunk of restored bans into the kernel in one call, and the
    /// conntrack entries of their sources out (a walk of the conntrack
    /// table per chunk, none when it is empty): on the kernel's thread.
    fn into_kernel(bans: &[Ban], firewall: &mut dyn Firewall) -> Added {
        let refused: Vec<(Ban, String)> = match firewall.add(bans) {
            Ok(refused) => refused.into_iter().map(|r| (r.ban, r.error.to_string())).collect(),
            // Healed once the history is read (`start`).
            Err(e) if super::kernel::no_such_table(&e) => return Added::Gone(e),
            Err(e) => {
                let why = e.to_string();
                let refused = bans.iter().map(|b| (b.clone(), why.clone())).collect();
                return Added::Whole(e, refused);
            }
        };
        // As after any ban: only once the bans are in place.
        let lost = refused_keys(&refused);
        let nets: Vec<IpNet> = bans
            .iter()
            .filter(|b| lost.is_empty() || !lost.contains(&(b.jail.as_str(), b.net)))
            .map(|b| b.net)
            .collect();
        let conntrack = firewall.forget_connections(&nets);
        Added::In { refused, conntrack }
    }

    /// What the kernel made of a chunk: its refusals kept, the fleet told
    /// of the bans that went in.
    fn added(&mut self, bans: &[Ban], outcome: Added, mut news: Vec<super::Local>, share: &mut Option<Box<dyn Share>>) {
        let refused = match outcome {
            Added::Gone(e) => {
                self.gone.get_or_insert(e);
                return;
            }
            Added::Whole(e, refused) => {
                self.whole.get_or_insert(e);
                refused
            }
            Added::In { refused, conntrack } => {
                if !super::kernel::conntrack_logged(conntrack, "restored bans'") {
                    self.conntrack_errors += 1;
                }
                refused
            }
        };
        debug_assert!(bans.len() >= refused.len());
        if let Some(listener) = share.as_mut() {
            let lost = refused_keys(&refused);
            news.retain(|n| match n {
                super::Local::Ban { jail, net, .. } => !lost.contains(&(jail.as_str(), *net)),
                super::Local::Unban { .. } => true,
            });
            if !news.is_empty() {
                listener.told(news);
            }
        }
        self.kernel.extend(refused);
    }
}

/// The (jail, net) of each refused ban, to leave them out of what follows
/// a chunk (conntrack, the fleet's news).
fn refused_keys(refused: &[(Ban, String)]) -> BTreeSet<(&str, IpNet)> {
    refused.iter().map(|(b, _)| (b.jail.as_str(), b.net)).collect()
}

/// What one kernel call of a restore made of its chunk.
enum Added {
    /// In, but for the refused bans; and how removing their sources'
    /// conntrack entries went.
    In {
        refused: Vec<(Ban, String)>,
        conntrack: crate::firewall::Result<usize>,
    },
    /// Nothing went in: the call failed as a whole (a broken socket).
    Whole(crate::firewall::Error, Vec<(Ban, String)>),
    /// The table or a set was gone (another tool deleted it meanwhile).
    Gone(crate::firewall::Error),
}

const NEVER: &str = "that no ban may touch";
const IGNORED: &str = "overlapping the jail's ignoreip";
const TOO_LONG: &str = "running past the maximum bantime of 10 years";
const MALFORMED: &str = "not a valid prefix (host bits set)";
const AHEAD: &str = "dated more than a day ahead of the clock";

/// Why a ban of `net`, with `left` to run, is not to be restored in `jail`, if it
/// is not: the bans nftban itself would never make.
/// A ban by hand forced past `ignoreip` is restored although it overlaps it.
fn distrust(jail: &JailState, ban: &RunningBan, left: Duration) -> Option<&'static str> {
    let net = &ban.net;
    let forced = ban.origin == Some(Origin::Manual) && ban.reason.as_deref() == Some(FORCED);
    if net.trunc() != *net {
        Some(MALFORMED)
    } else if never_banned(net).is_some() {
        Some(NEVER)
    } else if jail.tracker.is_ignored(net) && !forced {
        Some(IGNORED)
    } else if left > MAX_DURATION.saturating_add(CLOCK_SLACK) {
        Some(TOO_LONG)
    } else {
        None
    }
}

/// What restore refused from the history, by reason, each with a count and
/// its first example: logged once, not once per record (a forged file can
/// hold millions).
#[derive(Default)]
struct Refusals(BTreeMap<&'static str, (usize, String)>);

impl Refusals {
    fn note(&mut self, why: &'static str, example: impl FnOnce() -> String) {
        self.0.entry(why).or_insert_with(|| (0, example())).0 += 1;
    }

    fn log(&self) {
        // An `ignoreip` widened since the ban (the way to lift bans and
        // keep them lifted, docs/troubleshooting.md) is no sign of damage.
        if let Some((n, example)) = self.0.get(IGNORED) {
            tracing::info!("{n} ban(s) lifted at start, in the kernel and the history: now inside their jail's ignoreip (e.g. {example})");
        }
        let others = || self.0.iter().filter(|(why, _)| **why != IGNORED);
        if others().next().is_none() {
            return;
        }
        let total: usize = others().map(|(_, (n, _))| n).sum();
        let each: Vec<String> = others()
            .map(|(why, (n, example))| format!("{n} {why} (e.g. {example})"))
            .collect();
        tracing::warn!(
            "the ban history holds {total} record(s) nftban would never make, not restored (bans lifted in the kernel and the history): {}; the database or its pending file was edited, forged or damaged",
            each.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use ipnet::IpNet;

    use super::super::held::Chunk;
    use super::super::Engine;
    use crate::address::show as show_net;
    use crate::config::Config;
    use crate::firewall::memory::Memory;
    use crate::firewall::{Ban, Firewall};
    use crate::store::{BanRecord, Origin, Store};

    const CONFIG: &str = "\
defaults: {findtime: 10m, maxretry: 3, bantime: 1h, ignoreip: [192.0.2.0/24]}
jails:
  asterisk:
    ruleset: asterisk
    files: [/var/log/asterisk/messages]
";

    fn config() -> Config {
        Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap()
    }

    fn record(jail: &str, net: &str, at: SystemTime, expires: SystemTime) -> BanRecord {
        BanRecord {
            jail: jail.into(),
            net: net.parse().unwrap(),
            at,
            expires,
            origin: Origin::Auto,
            reason: None,
        }
    }

    fn kernel(fw: &mut dyn Firewall, jail: &str) -> Vec<String> {
        fw.list(jail).unwrap().iter().map(|el| show_net(&el.net)).collect()
    }

    /// The history is a file: whatever it says is checked like any input.
    /// Bans nftban would never make (the world, loopback, inside ignoreip,
    /// longer than the maximum, an expiry past the clock) are not
    /// restored; the one true ban is. Before, the world was banned at start.
    #[test]
    fn restore_skips_what_nftban_would_never_ban() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let now = SystemTime::now();
        let hour = now + Duration::from_secs(3600);
        {
            let mut s = Store::open(&db).unwrap();
            s.record_bans(&[
                record("asterisk", "198.51.100.7/32", now, hour),
                record("asterisk", "0.0.0.0/0", now, hour),
                record("asterisk", "::/0", now, hour),
                record("asterisk", "127.0.0.1/32", now, hour),
                record("asterisk", "224.0.0.0/4", now, hour),
                record("asterisk", "192.0.2.0/25", now, hour),
                record("asterisk", "192.0.0.0/16", now, hour),
                record(
                    "asterisk",
                    "198.51.100.8/32",
                    now,
                    now + Duration::from_secs(20 * 365 * 86_400),
                ),
                record("manual", "198.51.100.9/32", now, end_of_the_clock()),
            ])
            .unwrap();
        }
        let config = config();
        let mut e = Engine::new(&config, Box::new(Memory::new())).with_store(Store::open(&db).unwrap());
        assert_eq!(e.start(&config).unwrap(), 1);
        assert_eq!(kernel(e.firewall.as_mut(), "asterisk"), ["198.51.100.7"]);
        assert!(kernel(e.firewall.as_mut(), "manual").is_empty());
        let st = e.jail_status("asterisk", now, false).unwrap();
        assert_eq!(
            st.banned.iter().map(|b| b.ip.as_str()).collect::<Vec<_>>(),
            ["198.51.100.7"]
        );
        // Lifted in the history too: the next start has only the true ban.
        drop(e);
        let mut s = Store::open(&db).unwrap();
        let active: Vec<IpNet> = s.active(now).unwrap().into_iter().map(|b| b.net).collect();
        assert_eq!(active, ["198.51.100.7/32".parse::<IpNet>().unwrap()]);
    }

    /// A ban forced past `ignoreip` by hand runs to its end across a
    /// restart, with its reason; a record of another address inside
    /// `ignoreip` that does not say it was forced is lifted as before.
    #[test]
    fn a_ban_forced_past_ignoreip_is_restored() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let now = SystemTime::now();
        let config = config();
        {
            let mut e = Engine::new(&config, Box::new(Memory::new())).with_store(Store::open(&db).unwrap());
            e.start(&config).unwrap();
            let addrs = ["192.0.2.9".to_string(), "198.51.100.3".to_string()];
            let r = e.ban_with(&addrs, None, None, true, Chunk::Last, now).unwrap();
            let mut banned: Vec<&str> = r.banned.iter().map(|b| b.ip.as_str()).collect();
            banned.sort();
            assert_eq!(banned, ["192.0.2.9", "198.51.100.3"], "{r:?}");
        }
        let mut stale = record("manual", "192.0.2.10/32", now, now + Duration::from_secs(3600));
        stale.origin = Origin::Manual;
        Store::open(&db).unwrap().record_bans(&[stale]).unwrap();
        let mut e = Engine::new(&config, Box::new(Memory::new())).with_store(Store::open(&db).unwrap());
        e.start(&config).unwrap();
        let mut held = kernel(e.firewall.as_mut(), "manual");
        held.sort();
        assert_eq!(held, ["192.0.2.9", "198.51.100.3"]);
        let st = e.jail_status("manual", now, false).unwrap();
        let forced = st.banned.iter().find(|b| b.ip == "192.0.2.9").unwrap();
        assert_eq!(forced.reason.as_deref(), Some(super::FORCED));
        let other = st.banned.iter().find(|b| b.ip == "198.51.100.3").unwrap();
        assert_eq!(other.reason, None);
    }

    /// A restore streams the history into the kernel in chunks, one
    /// kernel call each: not one call per ban (a million round trips), and
    /// not every ban at once (a million rows held, then copied).
    /// A (jail, net) recorded twice keeps its latest expiry, whichever
    /// record comes first; an expired record is not restored.
    #[test]
    fn restore_goes_into_the_kernel_chunk_by_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let now = SystemTime::now();
        let hours = |h: u64| now + Duration::from_secs(h * 3600);
        let earlier = now - Duration::from_secs(60);
        let mut records: Vec<BanRecord> = (1..=250)
            .map(|i| record("asterisk", &format!("198.51.100.{i}/32"), earlier, hours(1)))
            .collect();
        // Banned again while running: .1 for longer, .2 for shorter.
        records.push(record("asterisk", "198.51.100.1/32", now, hours(3)));
        records.push(record("asterisk", "198.51.100.2/32", now, hours(2)));
        records[1].expires = hours(5);
        records.push(record(
            "asterisk",
            "198.51.101.1/32",
            earlier,
            now - Duration::from_secs(1),
        ));
        Store::open(&db).unwrap().record_bans(&records).unwrap();
        let config = config();
        let mut e = Engine::new(&config, Box::new(Memory::new())).with_store(Store::open(&db).unwrap());
        e.restore_chunk = 100;
        let before = e.firewall.batches();
        assert_eq!(e.start(&config).unwrap(), 250);
        // 252 running records: chunks of 100, 100 and 52.
        assert_eq!(e.firewall.batches() - before, 3);
        let minutes: std::collections::BTreeMap<String, u64> = e
            .firewall
            .list("asterisk")
            .unwrap()
            .iter()
            .map(|el| {
                (
                    show_net(&el.net),
                    el.expires_in.unwrap_or_default().as_secs().div_ceil(60),
                )
            })
            .collect();
        assert_eq!(minutes.len(), 250);
        assert_eq!(minutes["198.51.100.1"], 180);
        assert_eq!(minutes["198.51.100.2"], 300);
        assert_eq!(minutes["198.51.100.250"], 60);
        assert!(!minutes.contains_key("198.51.101.1"), "expired");
        assert_eq!(e.jail_status("asterisk", now, false).unwrap().banned.len(), 250);
    }

    /// The latest time the history's seconds can say (`i64::MAX`).
    fn end_of_the_clock() -> SystemTime {
        SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(i64::MAX as u64))
            .unwrap()
    }

    /// A ban the kernel holds but nftban would never make (left by an
    /// older version that restored a forged record) is lifted from the
    /// kernel at start, not only left out of the record.
    #[test]
    fn restore_lifts_a_refused_ban_from_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let now = SystemTime::now();
        let hour = now + Duration::from_secs(3600);
        Store::open(&db)
            .unwrap()
            .record_bans(&[record("asterisk", "0.0.0.0/0", now, hour)])
            .unwrap();
        let config = config();
        let mut fw = Memory::new();
        fw.setup(&config.table_spec()).unwrap();
        let world = Ban {
            jail: "asterisk".into(),
            net: "0.0.0.0/0".parse().unwrap(),
            timeout: Duration::from_secs(3600),
        };
        fw.add(&[world]).unwrap();
        let mut e = Engine::new(&config, Box::new(fw)).with_store(Store::open(&db).unwrap());
        assert_eq!(e.start(&config).unwrap(), 0);
        assert!(kernel(e.firewall.as_mut(), "asterisk").is_empty());
    }

    /// Failures and bans dated days ahead of the clock count for ever (a
    /// failure "from the future" is always within `findtime`): restore
    /// drops them rather than let a forged record pin a count.
    #[test]
    fn restore_drops_times_far_ahead_of_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let now = SystemTime::now();
        let ahead = now + Duration::from_secs(2 * 86_400);
        let net: IpNet = "198.51.100.7/32".parse().unwrap();
        {
            let mut s = Store::open(&db).unwrap();
            let far = ahead + Duration::from_secs(3600);
            s.record_bans(&[record("asterisk", "198.51.100.7/32", ahead, far)])
                .unwrap();
            let window = crate::store::FailureWindow {
                jail: "asterisk".into(),
                net,
                times: Some(vec![ahead, ahead]),
            };
            s.save(&[], &[], &[], &[window]).unwrap();
        }
        let text = format!("{CONFIG}recidive: {{findtime: 1d, maxretry: 2, bantime: 1w}}\n");
        let config = Config::from_text(Path::new("/x/nftban.yaml"), &text).unwrap();
        let mut e = Engine::new(&config, Box::new(Memory::new())).with_store(Store::open(&db).unwrap());
        e.start(&config).unwrap();
        assert_eq!(e.jail_status("asterisk", now, false).unwrap().currently_failed, 0);
        assert_eq!(e.jail_status("recidive", now, false).unwrap().currently_failed, 0);
    }
}
