//! An in-memory [`Firewall`]: the same contract as the kernel, for daemon
//! tests that must not need root and for dry runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::{Ban, Element, Firewall, Result, TableSpec};

/// Sets kept in memory, keyed by jail, with absolute expiry instants.
#[derive(Debug, Default)]
pub struct Memory {
    pub spec: Option<TableSpec>,
    pub sets: BTreeMap<String, BTreeMap<IpNet, Instant>>,
    /// How many times `setup` ran (tests check re-setup keeps elements).
    pub setups: usize,
}

impl Memory {
    pub fn new() -> Memory {
        Memory::default()
    }

    /// Elements of a jail that have not expired yet.
    pub fn live(&self, jail: &str) -> Vec<IpNet> {
        let now = Instant::now();
        self.sets
            .get(jail)
            .map(|s| s.iter().filter(|(_, &t)| t > now).map(|(n, _)| *n).collect())
            .unwrap_or_default()
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

    fn add(&mut self, bans: &[Ban]) -> Result<()> {
        let now = Instant::now();
        for ban in bans {
            self.sets
                .entry(ban.jail.clone())
                .or_default()
                .insert(ban.net, now + ban.timeout);
        }
        Ok(())
    }

    fn delete(&mut self, jail: &str, nets: &[IpNet]) -> Result<()> {
        if let Some(set) = self.sets.get_mut(jail) {
            for net in nets {
                set.remove(net);
            }
        }
        Ok(())
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
