//! Names already looked up: their addresses (or none), each until its
//! time runs out. Bounded: when full, expired entries go first, then the
//! one that would expire soonest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

#[derive(Debug)]
pub(super) struct Cache {
    entries: HashMap<String, (Vec<IpAddr>, Instant)>,
    capacity: usize,
}

impl Cache {
    pub(super) fn new(capacity: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// `name`'s addresses (empty: it has none) if still valid at `now`.
    pub(super) fn get(&self, name: &str, now: Instant) -> Option<&[IpAddr]> {
        match self.entries.get(name) {
            Some((addrs, until)) if *until > now => Some(addrs),
            _ => None,
        }
    }

    /// Keep `addrs` for `name` until `until`.
    pub(super) fn put(&mut self, name: String, addrs: Vec<IpAddr>, until: Instant, now: Instant) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&name) {
            self.entries.retain(|_, (_, u)| *u > now);
            if self.entries.len() >= self.capacity {
                // A scan of a few thousand entries, only on a miss with a
                // full cache: cheaper than keeping an order on every hit.
                if let Some(soonest) = self.entries.iter().min_by_key(|(_, (_, u))| *u).map(|(k, _)| k.clone()) {
                    self.entries.remove(&soonest);
                }
            }
        }
        self.entries.insert(name, (addrs, until));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
