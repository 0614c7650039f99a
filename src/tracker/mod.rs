//! The tracker stage: counts failures per address and decides bans.
//!
//! Pure logic, no clock and no I/O: the caller passes the time of each
//! failure, so tests are exact and the same code will serve replays with
//! times taken from log lines. An address is banned when it has `maxretry`
//! failures within `findtime`; addresses in `ignoreip` are never counted.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
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
    /// The address is in `ignoreip`.
    Ignored,
    /// Counted; `count` failures within `findtime` so far.
    Counted { count: u32 },
    /// `maxretry` reached: ban for this long. The address's count restarts.
    Ban { bantime: Duration },
}

/// Failure windows of one jail.
#[derive(Debug)]
pub struct Tracker {
    pub policy: Policy,
    failures: HashMap<IpAddr, VecDeque<SystemTime>>,
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
            total_failed: 0,
            evicted: 0,
        }
    }

    /// Whether `ignoreip` covers an address.
    pub fn is_ignored(&self, addr: IpAddr) -> bool {
        self.policy.ignoreip.iter().any(|n| n.contains(&addr))
    }

    /// Record one failure of `addr` at time `at`.
    pub fn failure(&mut self, addr: IpAddr, at: SystemTime) -> Verdict {
        if self.is_ignored(addr) {
            return Verdict::Ignored;
        }
        self.total_failed += 1;
        let findtime = self.policy.findtime;
        let window = self.failures.entry(addr).or_default();
        window.retain(|&t| within(t, at, findtime));
        window.push_back(at);
        let count = window.len() as u32;
        if count >= self.policy.maxretry {
            self.failures.remove(&addr);
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
        let mut by_age: Vec<(SystemTime, IpAddr)> = self
            .failures
            .iter()
            .map(|(a, w)| (w.back().copied().unwrap_or(now), *a))
            .collect();
        let excess = self.failures.len() - target;
        by_age.select_nth_unstable(excess - 1);
        for (_, addr) in &by_age[..excess] {
            self.failures.remove(addr);
        }
        self.evicted += excess as u64;
        tracing::warn!(
            evicted = excess,
            cap,
            "too many addresses with failures; forgot those idle the longest"
        );
    }

    /// How many addresses are tracked now.
    pub fn tracked(&self) -> usize {
        self.failures.len()
    }

    /// Forget an address's failures (after an unban, so it starts afresh).
    pub fn forget(&mut self, addr: IpAddr) {
        self.failures.remove(&addr);
    }

    /// Drop windows whose failures are all older than `findtime`.
    pub fn prune(&mut self, now: SystemTime) {
        let findtime = self.policy.findtime;
        self.failures.retain(|_, w| {
            w.retain(|&t| within(t, now, findtime));
            !w.is_empty()
        });
    }

    /// Addresses with at least one failure within `findtime` of `now`
    /// (fail2ban's "Currently failed").
    pub fn currently_failed(&self, now: SystemTime) -> usize {
        let findtime = self.policy.findtime;
        self.failures
            .values()
            .filter(|w| w.iter().any(|&t| within(t, now, findtime)))
            .count()
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

    fn tracker(maxretry: u32) -> Tracker {
        Tracker::new(Policy {
            findtime: Duration::from_secs(600),
            maxretry,
            bantime: Duration::from_secs(3600),
            ignoreip: vec!["127.0.0.0/8".parse().unwrap(), "2001:db8:ffff::/48".parse().unwrap()],
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
        assert_eq!(t.failure("127.0.0.5".parse().unwrap(), at(0)), Verdict::Ignored);
        assert_eq!(t.failure("2001:db8:ffff::1".parse().unwrap(), at(0)), Verdict::Ignored);
        assert_eq!(t.total_failed, 0);
        assert!(matches!(
            t.failure("2001:db8::1".parse().unwrap(), at(0)),
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
        t.forget(a);
        assert_eq!(t.failure(a, at(1)), Verdict::Counted { count: 1 });
    }
}
