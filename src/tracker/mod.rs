//! The tracker stage: counts failures per address (or per prefix, for rules
//! that capture one with `<SUBNET>` or `<ADDR>/<CIDR>`) and decides bans.
//!
//! Pure logic, no clock and no I/O: the caller passes the time of each
//! failure, so tests are exact and the same code will serve replays with
//! times taken from log lines. An address is banned when it has `maxretry`
//! failures within `findtime`; addresses in `ignoreip` are never counted,
//! nor are prefixes that overlap an `ignoreip` entry (a prefix holding an
//! ignored address would ban it too), nor what no ban may ever touch
//! ([`crate::address::never_banned`]: a log line naming `0.0.0.0` or a
//! multicast address was written by an attacker, not sent by one).

use std::collections::{HashMap, HashSet, VecDeque};

use std::time::{Duration, SystemTime};

use ipnet::IpNet;

/// A jail's ban policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub findtime: Duration,
    pub maxretry: u32,
    pub bantime: Duration,
    pub ignoreip: Vec<IpNet>,
    /// At most this many addresses are tracked at once; past it, the ones
    /// whose last failure is oldest are forgotten (and counted), so a flood
    /// of one-off addresses cannot take all memory.
    pub max_tracked: usize,
}

/// Default for [`Policy::max_tracked`].
pub const DEFAULT_MAX_TRACKED: usize = 100_000;

/// What one failure leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The address is one no ban may touch, for this reason
    /// ([`crate::address::never_banned`]).
    NeverBanned { why: &'static str },
    /// The address is in `ignoreip`.
    Ignored,
    /// Counted; `count` failures within `findtime` so far.
    Counted { count: u32 },
    /// `maxretry` reached: ban for this long. The address's count restarts.
    Ban { bantime: Duration },
}

/// One address's (or prefix's) failures within `findtime`, oldest first.
#[derive(Debug, Default)]
struct Window {
    times: VecDeque<SystemTime>,
    /// The ban history holds a copy (see [`Tracker::take_changes`]).
    saved: bool,
}

/// Failure windows of one jail.
#[derive(Debug)]
pub struct Tracker {
    pub policy: Policy,
    failures: HashMap<IpNet, Window>,
    /// Windows changed since the last [`Tracker::take_changes`], and saved
    /// ones that went away.
    changed: HashSet<IpNet>,
    /// Failures counted since start (ignored ones excluded).
    pub total_failed: u64,
    /// Addresses forgotten because of `max_tracked`.
    pub evicted: u64,
}

impl Tracker {
    pub fn new(policy: Policy) -> Tracker {
        Tracker {
            policy,
            failures: HashMap::new(),
            changed: HashSet::new(),
            total_failed: 0,
            evicted: 0,
        }
    }

    /// Whether `ignoreip` covers an address, or overlaps a prefix.
    pub fn is_ignored(&self, net: &IpNet) -> bool {
        self.policy.ignoreip.iter().any(|n| n.contains(net) || net.contains(n))
    }

    /// Record one failure of `addr` at time `at`.
    #[cfg(test)]
    pub fn failure(&mut self, addr: std::net::IpAddr, at: SystemTime) -> Verdict {
        self.failure_of(IpNet::from(addr), at)
    }

    /// Record one failure of `net` (an address as a /32 or /128, or a
    /// prefix, counted apart from the addresses inside it) at time `at`.
    pub fn failure_of(&mut self, net: IpNet, at: SystemTime) -> Verdict {
        let net = net.trunc();
        if let Some(why) = crate::address::never_banned(&net) {
            return Verdict::NeverBanned { why };
        }
        if self.is_ignored(&net) {
            return Verdict::Ignored;
        }
        self.total_failed += 1;
        let findtime = self.policy.findtime;
        let window = self.failures.entry(net).or_default();
        window.times.retain(|&t| within(t, at, findtime));
        window.times.push_back(at);
        let count = window.times.len() as u32;
        self.changed.insert(net);
        if count >= self.policy.maxretry {
            self.remove(&net);
            Verdict::Ban {
                bantime: self.policy.bantime,
            }
        } else {
            if self.failures.len() > self.policy.max_tracked {
                self.evict(at);
            }
            Verdict::Counted { count }
        }
    }

    /// Over the cap: drop windows that are over, then the tenth of the
    /// addresses whose last failure is oldest. Evicting a tenth at once keeps
    /// the cost per failure small under a flood of new addresses.
    fn evict(&mut self, now: SystemTime) {
        self.prune(now);
        let cap = self.policy.max_tracked;
        if self.failures.len() <= cap {
            return;
        }
        let target = cap - cap / 10;
        let mut by_age: Vec<(SystemTime, IpNet)> = self
            .failures
            .iter()
            .map(|(a, w)| (w.times.back().copied().unwrap_or(now), *a))
            .collect();
        let excess = self.failures.len() - target;
        by_age.select_nth_unstable(excess - 1);
        for (_, addr) in &by_age[..excess] {
            self.remove(addr);
        }
        self.evicted += excess as u64;
        tracing::warn!(
            evicted = excess,
            cap,
            "too many addresses with failures; forgot those idle the longest"
        );
    }

    /// How many addresses are tracked now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.failures.len()
    }

    /// Forget the failures of an address or prefix (after an unban, so it
    /// starts afresh).
    pub fn forget(&mut self, net: &IpNet) {
        self.remove(&net.trunc());
    }

    /// Drop a window; if the history holds it, note it for deletion there.
    fn remove(&mut self, net: &IpNet) {
        match self.failures.remove(net) {
            Some(w) if w.saved => {
                self.changed.insert(*net);
            }
            _ => {
                self.changed.remove(net);
            }
        }
    }

    /// Drop windows whose failures are all older than `findtime`.
    pub fn prune(&mut self, now: SystemTime) {
        let findtime = self.policy.findtime;
        let changed = &mut self.changed;
        self.failures.retain(|net, w| {
            w.times.retain(|&t| within(t, now, findtime));
            if w.times.is_empty() && w.saved {
                changed.insert(*net);
            }
            !w.times.is_empty()
        });
    }

    /// The windows changed since the last call, for the ban history: each
    /// with its failure times, or `None` where a saved window went away
    /// (banned, forgotten, expired). Saved with the file positions in one
    /// transaction, so that after a restart the failures of lines before
    /// the saved positions still count, and those after are read again:
    /// an attacker whose lines straddle a restart is still banned at
    /// `maxretry`, and no failure counts twice. Windows that come and go
    /// between two saves (most attackers, banned within milliseconds) are
    /// never written.
    pub fn take_changes(&mut self) -> Vec<(IpNet, Option<Vec<SystemTime>>)> {
        let mut out = Vec::with_capacity(self.changed.len());
        for net in self.changed.drain() {
            match self.failures.get_mut(&net) {
                Some(w) => {
                    w.saved = true;
                    out.push((net, Some(w.times.iter().copied().collect())));
                }
                None => out.push((net, None)),
            }
        }
        out
    }

    /// Put back a window the history saved (at start), keeping only the
    /// failures still within `findtime` of `now`.
    pub fn restore(&mut self, net: IpNet, times: &[SystemTime], now: SystemTime) {
        let findtime = self.policy.findtime;
        let times: VecDeque<SystemTime> = times.iter().copied().filter(|&t| within(t, now, findtime)).collect();
        if times.is_empty() {
            // Still in the history: delete it at the next save.
            self.changed.insert(net);
            return;
        }
        self.failures.insert(net, Window { times, saved: true });
    }

    /// Addresses with at least one failure within `findtime` of `now`
    /// (fail2ban's "Currently failed", banned ones included).
    #[cfg(test)]
    pub fn currently_failed(&self, now: SystemTime) -> usize {
        self.failing(now).count()
    }

    /// The addresses (and prefixes) with at least one failure within
    /// `findtime` of `now`, each with how many. A banned address may be
    /// among them: its late lines count toward its next ban. Whether it is
    /// banned is the engine's to say (status leaves those out).
    pub fn failing(&self, now: SystemTime) -> impl Iterator<Item = (&IpNet, u64)> {
        let findtime = self.policy.findtime;
        self.failures.iter().filter_map(move |(net, w)| {
            let n = w.times.iter().filter(|&&t| within(t, now, findtime)).count() as u64;
            (n > 0).then_some((net, n))
        })
    }
}

/// Whether a failure at `t` still counts at `now`. Failures from the future
/// (clock skew) count.
fn within(t: SystemTime, now: SystemTime, findtime: Duration) -> bool {
    match now.duration_since(t) {
        Ok(age) => age < findtime,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn tracker(maxretry: u32) -> Tracker {
        Tracker::new(Policy {
            findtime: Duration::from_secs(600),
            maxretry,
            bantime: Duration::from_secs(3600),
            // Loopback would be refused as a never-ban address before
            // ignoreip is looked at: these tests are about ignoreip.
            ignoreip: vec!["100.64.0.0/16".parse().unwrap(), "2001:db8:ffff::/48".parse().unwrap()],
            max_tracked: DEFAULT_MAX_TRACKED,
        })
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    const A: &str = "198.51.100.7";

    #[test]
    fn bans_at_maxretry_within_findtime() {
        let mut t = tracker(3);
        let a = A.parse().unwrap();
        assert_eq!(t.failure(a, at(0)), Verdict::Counted { count: 1 });
        assert_eq!(t.failure(a, at(10)), Verdict::Counted { count: 2 });
        assert_eq!(
            t.failure(a, at(20)),
            Verdict::Ban {
                bantime: Duration::from_secs(3600)
            }
        );
        // The window restarts after a ban.
        assert_eq!(t.failure(a, at(30)), Verdict::Counted { count: 1 });
        assert_eq!(t.total_failed, 4);
    }

    #[test]
    fn old_failures_fall_out_of_the_window() {
        let mut t = tracker(3);
        let a = A.parse().unwrap();
        t.failure(a, at(0));
        t.failure(a, at(300));
        assert_eq!(
            t.failure(a, at(700)),
            Verdict::Counted { count: 2 },
            "the one at 0 is older than 600 s"
        );
        assert_eq!(t.currently_failed(at(700)), 1);
        assert_eq!(t.currently_failed(at(1301)), 0);
        t.prune(at(1301));
        assert_eq!(t.failure(a, at(1302)), Verdict::Counted { count: 1 });
    }

    #[test]
    fn below_maxretry_never_bans_and_addresses_are_separate() {
        let mut t = tracker(3);
        for i in 0..10u8 {
            let addr = IpAddr::from([203, 0, 113, i]);
            assert!(matches!(t.failure(addr, at(0)), Verdict::Counted { .. }));
            assert!(matches!(t.failure(addr, at(1)), Verdict::Counted { count: 2 }));
        }
        assert_eq!(t.currently_failed(at(2)), 10);
    }

    #[test]
    fn ignoreip_is_never_counted() {
        let mut t = tracker(1);
        assert_eq!(t.failure("100.64.0.5".parse().unwrap(), at(0)), Verdict::Ignored);
        assert_eq!(t.failure("2001:db8:ffff::1".parse().unwrap(), at(0)), Verdict::Ignored);
        assert_eq!(t.total_failed, 0);
        assert!(matches!(
            t.failure("2001:db8::1".parse().unwrap(), at(0)),
            Verdict::Ban { .. }
        ));
    }

    #[test]
    fn never_banned_addresses_are_never_counted() {
        let mut t = tracker(1);
        t.policy.ignoreip.clear();
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.251",
            "::",
            "ff02::1",
            "127.0.0.1",
            "::1",
        ] {
            let verdict = t.failure(text.parse().unwrap(), at(0));
            assert!(matches!(verdict, Verdict::NeverBanned { .. }), "{text}: {verdict:?}");
        }
        for text in ["0.0.0.0/0", "::/0", "0.0.0.0/1", "ff00::/12"] {
            let verdict = t.failure_of(text.parse().unwrap(), at(0));
            assert!(matches!(verdict, Verdict::NeverBanned { .. }), "{text}: {verdict:?}");
        }
        assert_eq!(
            t.failure("0.0.0.0".parse().unwrap(), at(0)),
            Verdict::NeverBanned {
                why: "\"this network\" (0.0.0.0/8) is not a source address"
            }
        );
        assert_eq!((t.total_failed, t.tracked()), (0, 0));
        assert!(matches!(
            t.failure("198.51.100.1".parse().unwrap(), at(0)),
            Verdict::Ban { .. }
        ));
    }

    #[test]
    fn memory_is_bounded_and_the_longest_idle_are_evicted() {
        let mut t = tracker(3);
        t.policy.max_tracked = 100;
        for i in 0..1000u32 {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0xc633_6400 + i));
            t.failure(addr, at(i as u64 / 10));
            assert!(t.tracked() <= 101, "cap exceeded at {i}");
        }
        assert!(t.evicted >= 899, "evicted {}", t.evicted);
        // The most recent address is still tracked.
        let last = IpAddr::from(std::net::Ipv4Addr::from(0xc633_6400 + 999));
        assert_eq!(t.failure(last, at(100)), Verdict::Counted { count: 2 });
    }

    #[test]
    fn forget_restarts_the_count() {
        let mut t = tracker(2);
        let a = A.parse().unwrap();
        t.failure(a, at(0));
        t.forget(&IpNet::from(a));
        assert_eq!(t.failure(a, at(1)), Verdict::Counted { count: 1 });
    }

    #[test]
    fn prefixes_are_counted_apart_and_never_over_an_ignored_address() {
        let mut t = tracker(2);
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        // Host bits are cleared: both lines count for 192.0.2.0/24.
        assert_eq!(t.failure_of(net("192.0.2.0/24"), at(0)), Verdict::Counted { count: 1 });
        assert_eq!(
            t.failure("192.0.2.9".parse().unwrap(), at(0)),
            Verdict::Counted { count: 1 }
        );
        assert!(matches!(t.failure_of(net("192.0.2.77/24"), at(1)), Verdict::Ban { .. }));
        // A prefix holding an ignored address, or inside an ignored prefix.
        assert_eq!(t.failure_of(net("100.64.0.0/24"), at(0)), Verdict::Ignored);
        assert_eq!(t.failure_of(net("96.0.0.0/4"), at(0)), Verdict::Ignored);
        assert_eq!(t.failure_of(net("2001:db8::/32"), at(0)), Verdict::Ignored);
        assert_eq!(t.failure_of(net("2001:db8:ffff:1::/64"), at(0)), Verdict::Ignored);
        assert_eq!(
            t.failure_of(net("2001:db8:1::/48"), at(0)),
            Verdict::Counted { count: 1 }
        );
    }

    #[test]
    fn changes_name_what_to_save_and_what_to_delete() {
        let mut t = tracker(3);
        let (a, b) = (A.parse().unwrap(), "198.51.100.8".parse().unwrap());
        let (na, nb) = (IpNet::from(a), IpNet::from(b));
        t.failure(a, at(0));
        // b comes and is banned between two saves: nothing to write.
        for s in 0..3 {
            t.failure(b, at(s));
        }
        assert_eq!(t.take_changes(), vec![(na, Some(vec![at(0)]))]);
        assert!(t.take_changes().is_empty());
        // Once saved, a ban or expiry of the window deletes it.
        t.failure(a, at(1));
        t.failure(a, at(2));
        assert_eq!(t.take_changes(), vec![(na, None)]);
        t.restore(nb, &[at(0), at(1)], at(5));
        assert_eq!(t.tracked(), 1);
        t.prune(at(1000));
        assert_eq!(t.take_changes(), vec![(nb, None)]);
        // A saved window whose failures are all past findtime is deleted.
        t.restore(na, &[at(0)], at(1000));
        assert_eq!(t.tracked(), 0);
        assert_eq!(t.take_changes(), vec![(na, None)]);
    }
}
