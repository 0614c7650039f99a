//! An in-memory [`Firewall`]: the same contract as the kernel, for daemon
//! tests that must not need root and for dry runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::{Ban, Catches, Counter, Element, Error, Firewall, Refused, Result, TableSpec};

/// Sets kept in memory, keyed by jail, with absolute expiry instants.
#[derive(Debug, Default)]
pub struct Memory {
    pub spec: Option<TableSpec>,
    pub sets: BTreeMap<String, BTreeMap<IpNet, Instant>>,
    /// How many times `setup` ran (tests check re-setup keeps elements).
    pub setups: usize,
    /// Elements a set holds at most, like a set with a `size`: further
    /// bans are refused with ENFILE, as the kernel does (tests of
    /// per-element errors).
    pub capacity: Option<usize>,
    /// Every prefix `forget_connections` was asked for, in order; shared,
    /// so a test keeps a handle after boxing the firewall.
    pub forgotten: Arc<Mutex<Vec<IpNet>>>,
    /// What `counters` returns (tests set it).
    pub counters: BTreeMap<String, Counter>,
    /// Calls of `add` with bans: one call is one kernel batch here.
    pub batches: u64,
    /// Calls of `delete` with nets (tests check that a bulk unban is one
    /// per jail, not one per address); shared like `forgotten`.
    pub deletes: Arc<AtomicUsize>,
    /// How many times `list` ran; shared, so a test can check that the
    /// engine never lists a set.
    pub lists: Arc<AtomicUsize>,
    /// Plays the netlink backend's pausing of its watcher during big
    /// batches: an `add` of at least this many bans counts as made with the
    /// watcher paused, which `take_unwatched` then reports once (tests of
    /// the check that follows; the backend's threshold is
    /// [`super::netlink::BIG_BATCH`]). `None` (the default): never.
    pub unwatched_from: Option<usize>,
    unwatched: bool,
    /// The SIP meter's caught sources (the ban each stands for, and when
    /// its element ends), as the kernel would hold them: tests put sources
    /// here as if the meter had caught them. Shared with [`Firewall::catches`].
    pub caught: Arc<Mutex<BTreeMap<IpNet, Instant>>>,
    /// Calls of `apply_diff` (feed refreshes), each one batch.
    pub diffs: usize,
}

/// [`Catches`] over [`Memory::caught`].
pub struct MemoryCatches {
    caught: Arc<Mutex<BTreeMap<IpNet, Instant>>>,
}

impl Catches for MemoryCatches {
    fn caught(&mut self) -> Result<Vec<Element>> {
        let now = Instant::now();
        let caught = self.caught.lock().expect("not poisoned");
        Ok(caught
            .iter()
            .filter(|(_, &t)| t > now)
            .map(|(n, &t)| Element {
                net: *n,
                expires_in: Some(t.saturating_duration_since(now)),
            })
            .collect())
    }

    fn release(&mut self, nets: &[IpNet]) -> Result<()> {
        let mut caught = self.caught.lock().expect("not poisoned");
        for net in nets {
            caught.remove(net);
        }
        Ok(())
    }
}

impl Memory {
    pub fn new() -> Memory {
        Memory::default()
    }
}

impl Firewall for Memory {
    fn setup(&mut self, spec: &TableSpec) -> Result<()> {
        self.sets.retain(|jail, _| spec.jails.contains(jail));
        for jail in &spec.jails {
            self.sets.entry(jail.clone()).or_default();
        }
        self.spec = Some(spec.clone());
        self.setups += 1;
        Ok(())
    }

    fn add(&mut self, bans: &[Ban]) -> Result<Vec<Refused>> {
        self.batches += u64::from(!bans.is_empty());
        if self.unwatched_from.is_some_and(|n| !bans.is_empty() && bans.len() >= n) {
            self.unwatched = true;
        }
        let now = Instant::now();
        let mut refused = Vec::new();
        for ban in bans {
            let set = self.sets.entry(ban.jail.clone()).or_default();
            if self.capacity.is_some_and(|c| set.len() >= c) && !set.contains_key(&ban.net) {
                refused.push(Refused {
                    ban: ban.clone(),
                    error: Error::Kernel {
                        what: format!("add 1 element to the set of jail {} (the set is full)", ban.jail),
                        error: std::io::Error::from_raw_os_error(libc::ENFILE),
                    },
                });
                continue;
            }
            // As the kernel, which caps a timeout, never overflow: a
            // century is "longer than anything else here".
            const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
            let until = now.checked_add(ban.timeout.min(CENTURY)).unwrap_or(now);
            set.insert(ban.net, until);
        }
        Ok(refused)
    }

    fn delete(&mut self, jail: &str, nets: &[IpNet]) -> Result<()> {
        if !nets.is_empty() {
            self.deletes.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(set) = self.sets.get_mut(jail) {
            for net in nets {
                set.remove(net);
            }
        }
        if self
            .spec
            .as_ref()
            .and_then(|s| s.sip.as_ref())
            .is_some_and(|m| m.jail == jail)
        {
            let mut caught = self.caught.lock().expect("not poisoned");
            for net in nets {
                caught.remove(net);
            }
        }
        Ok(())
    }

    fn apply_diff(&mut self, jail: &str, add: &[IpNet], remove: &[IpNet]) -> Result<()> {
        self.batches += u64::from(!add.is_empty() || !remove.is_empty());
        self.diffs += 1;
        let set = self.sets.entry(jail.to_string()).or_default();
        // No timeout: as far off as the clock allows.
        let never = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        for net in add {
            set.insert(net.trunc(), never);
        }
        for net in remove {
            set.remove(&net.trunc());
        }
        Ok(())
    }

    fn catches(&mut self, spec: &TableSpec) -> Result<Option<Box<dyn Catches>>> {
        Ok(spec.sip.is_some().then(|| {
            Box::new(MemoryCatches {
                caught: Arc::clone(&self.caught),
            }) as Box<dyn Catches>
        }))
    }

    fn forget_connections(&mut self, nets: &[IpNet]) -> Result<usize> {
        self.forgotten.lock().expect("not poisoned").extend_from_slice(nets);
        Ok(0)
    }

    fn counters(&mut self) -> Result<BTreeMap<String, Counter>> {
        Ok(self.counters.clone())
    }

    fn batches(&self) -> u64 {
        self.batches
    }

    fn take_unwatched(&mut self) -> bool {
        std::mem::take(&mut self.unwatched)
    }

    fn missing(&mut self, spec: &TableSpec, probes: &[(String, IpNet)]) -> Result<Vec<String>> {
        if self.spec.as_ref() != Some(spec) {
            return Ok(vec![format!("table inet {} is missing", spec.table)]);
        }
        let now = Instant::now();
        Ok(probes
            .iter()
            .filter(|(jail, net)| self.sets.get(jail).and_then(|s| s.get(net)).is_none_or(|&t| t <= now))
            .map(|(jail, net)| format!("element {net} is missing from jail {jail}"))
            .collect())
    }

    fn list(&mut self, jail: &str) -> Result<Vec<Element>> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        Ok(self
            .sets
            .get(jail)
            .map(|s| {
                s.iter()
                    .filter(|(_, &t)| t > now)
                    .map(|(n, &t)| Element {
                        net: *n,
                        expires_in: Some(t.saturating_duration_since(now).max(Duration::ZERO)),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn bans(n: usize) -> Vec<Ban> {
        (0..n)
            .map(|i| Ban {
                jail: "sshd".into(),
                net: IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(0xc000_0200 + i as u32))),
                timeout: Duration::from_secs(60),
            })
            .collect()
    }

    #[test]
    fn big_adds_count_as_unwatched_once_when_asked_to() {
        let mut fw = Memory::new();
        assert!(fw.watch("nftban").unwrap().is_none(), "memory cannot watch");
        fw.add(&bans(5)).unwrap();
        assert!(!fw.take_unwatched(), "off by default");
        fw.unwatched_from = Some(3);
        fw.add(&bans(2)).unwrap();
        assert!(!fw.take_unwatched(), "a small add is watched");
        fw.add(&bans(3)).unwrap();
        assert!(fw.take_unwatched());
        assert!(!fw.take_unwatched(), "reset by the call");
    }

    /// A timeout past what the clock can hold is kept as a very long one,
    /// as the kernel caps it, not a panic.
    #[test]
    fn an_endless_timeout_does_not_panic() {
        let mut fw = Memory::new();
        let mut ban = bans(1).remove(0);
        ban.timeout = Duration::MAX;
        fw.add(&[ban]).unwrap();
        let listed = fw.list("sshd").unwrap();
        assert!(listed[0].expires_in.unwrap() > Duration::from_secs(3650 * 86_400));
    }
}
