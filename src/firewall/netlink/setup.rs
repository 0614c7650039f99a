//! Making nftban's table match the configuration, in one atomic batch, and
//! the cheap checks that it still does: which sets, chains and rules a
//! [`TableSpec`] asks for, compared with what the kernel has.

use std::collections::BTreeMap;
use std::io;

use ipnet::IpNet;

use super::socket::Failure;
use super::{abi, error, messages, sip, Netlink};
use crate::firewall::sip::SIP_CHAIN;
use crate::firewall::{masked_length, Error, Family, Hook, Result, SetDef, SetKind, TableSpec};

/// What a set of nftban's must be to be kept: flags, key type and length,
/// size (for the meter's dynamic sets).
type SetShape = (u32, u32, u32, Option<u32>);

/// Every set `spec` asks for, by name, with its shape: the jails' sets and
/// the SIP meter's.
fn wanted_shapes(spec: &TableSpec) -> BTreeMap<String, SetShape> {
    let mut out: BTreeMap<String, SetShape> = wanted_sets(spec)
        .into_values()
        .map(|d| {
            let (key_type, key_len) = messages::key_type(d.family);
            let flags = messages::set_flags(d.interval()).bits();
            (d.name, (flags, key_type, key_len, None))
        })
        .collect();
    if let Some(sip) = &spec.sip {
        for d in sip.sets() {
            let (key_type, key_len) = messages::key_type(d.family);
            let shape = (
                sip::set_flags(d.kind).bits(),
                key_type,
                key_len,
                sip::set_size(sip, d.kind),
            );
            out.insert(d.name, shape);
        }
    }
    out
}

/// The sets `spec` asks for, by name.
fn wanted_sets(spec: &TableSpec) -> BTreeMap<String, SetDef> {
    spec.jails
        .iter()
        .flat_map(|jail| spec.prefix_sets.jail_sets(jail))
        .map(|d| (d.name.clone(), d))
        .collect()
}

/// The interval sets to empty because their jail's masked lengths changed
/// (`nftables.prefix_sets`): a prefix of a length that now has a masked
/// set of its own may sit in the interval set since an earlier run, where
/// an unban would no longer look for it. Setup deletes and creates such a
/// set again in its batch; the restore that follows puts its bans back
/// where they now belong (and a feed's first list after start, its
/// entries). Only when the set is there and the jail's masked sets
/// in the kernel are not those wanted: a first start changes nothing.
fn relaid_intervals(spec: &TableSpec, existing: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for jail in &spec.jails {
        for family in [Family::V4, Family::V6] {
            let interval = crate::firewall::set_name(jail, family, SetKind::Interval);
            if !existing.contains(&interval) {
                continue;
            }
            let mut had: Vec<u8> = existing.iter().filter_map(|s| masked_length(jail, family, s)).collect();
            had.sort_unstable_by(|a, b| b.cmp(a));
            if had != spec.prefix_sets.lengths(family) {
                out.push(interval);
            }
        }
    }
    out
}

impl Netlink {
    /// One atomic batch: table; per configured hook its chain (replaced if
    /// it has another hook, priority or type) and a flush of its rules;
    /// deletion of nftban's chains of hooks no longer configured; deletion
    /// of sets no jail owns any more (and of jail sets of another type or
    /// flags); creation of missing sets; then one rule per set and hook.
    /// Existing sets are kept with their elements. The sets and chains are
    /// looked up first, with a GETSET dump and GETCHAINs of nftban's own
    /// table only.
    pub(super) fn setup_table(&mut self, spec: &TableSpec) -> Result<()> {
        let table = spec.table.as_str();
        let wanted = wanted_shapes(spec);
        let existing = self.existing_sets(table)?;
        let mut chains = BTreeMap::new();
        for hook in Hook::ALL {
            if let Some(info) = self.existing_chain(table, hook.chain())? {
                chains.insert(hook, info);
            }
        }
        let sip_chain = self.existing_chain(table, SIP_CHAIN)?;

        let mut ops = vec![messages::new_table(table)];
        for hook in Hook::ALL {
            let Some(chain) = chains.get(&hook) else { continue };
            // A chain of that name with another hook, priority or type (an
            // older nftban, or another tool) cannot be updated in place:
            // the kernel refuses with EEXIST. Replace it in the same batch.
            // And the chain of a hook no longer configured goes.
            let fits = chain.hook == Some(messages::hook_number(hook))
                && chain.priority == Some(hook.priority())
                && chain.kind == "filter";
            if !fits || !spec.hooks.contains(&hook) {
                ops.push(messages::del_chain(table, hook.chain()));
            }
        }
        // The SIP meter's chain, likewise: replaced if it is of another
        // shape, deleted once the meter is off.
        if let Some(chain) = &sip_chain {
            let fits = chain.hook == Some(messages::hook_number(Hook::Prerouting))
                && chain.priority == Some(Hook::Prerouting.priority())
                && chain.kind == "filter";
            if !fits || spec.sip.is_none() {
                ops.push(messages::del_chain(table, SIP_CHAIN));
            }
        }
        for &hook in &spec.hooks {
            ops.push(messages::new_chain(table, hook));
            ops.push(messages::flush_chain(table, hook.chain()));
        }
        if spec.sip.is_some() {
            ops.push(sip::new_chain(table));
            ops.push(messages::flush_chain(table, SIP_CHAIN));
        }
        let mut deleted = Vec::new();
        for set in &existing {
            if set.flags & abi::NFT_SET_ANONYMOUS != 0 {
                continue;
            }
            let keep = wanted.get(&set.name).is_some_and(|&(flags, key_type, key_len, size)| {
                set.flags == flags
                    && set.key_type == key_type
                    && set.key_len == key_len
                    && (size.is_none() || set.size == size)
            });
            if !keep {
                ops.push(messages::del_set(table, &set.name));
                deleted.push(set.name.as_str());
            }
        }
        let names: Vec<String> = existing.iter().map(|s| s.name.clone()).collect();
        let mut emptied = Vec::new();
        for interval in relaid_intervals(spec, &names) {
            if wanted.contains_key(&interval) && !deleted.contains(&interval.as_str()) {
                ops.push(messages::del_set(table, &interval));
                emptied.push(interval);
            }
        }
        let sets: Vec<SetDef> = spec
            .jails
            .iter()
            .flat_map(|jail| spec.prefix_sets.jail_sets(jail))
            .collect();
        for (id, d) in sets.iter().enumerate() {
            ops.push(messages::new_set(table, &d.name, d.family, d.interval(), id as u32 + 1));
        }
        if let Some(meter) = &spec.sip {
            for (id, d) in meter.sets().iter().enumerate() {
                ops.push(sip::new_set(table, meter, d, (sets.len() + id) as u32 + 1));
            }
            ops.extend(sip::trusted_ops(table, meter));
        }
        for &hook in &spec.hooks {
            for d in &sets {
                ops.push(messages::new_rule(table, hook, d, spec.action));
            }
        }
        if let Some(meter) = &spec.sip {
            ops.extend(sip::rules(table, meter, spec.prefix_sets));
        }
        // One batch, never split: all of it or nothing.
        self.sock.batch(&ops).map_err(|f| match f {
            // Kernels before 5.9 take `reject` in input and forward only.
            Failure::Kernel {
                what,
                errno: libc::EOPNOTSUPP,
            } if what.contains("chain prerouting") => Error::Kernel {
                what: format!(
                    "{what}: this kernel has no `reject` in the prerouting hook (Linux 5.9 or later has); \
                     set nftables.action to drop, or remove prerouting from nftables.hooks"
                ),
                error: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            },
            f => error(f),
        })?;
        if !emptied.is_empty() {
            tracing::info!(
                "the prefix lengths with a set of their own changed: emptied {}; the restore puts their bans back where they now belong",
                emptied.join(", ")
            );
        }
        self.table = spec.table.clone();
        self.sip = spec.sip.clone();
        self.prefix_sets = spec.prefix_sets;
        Ok(())
    }

    /// GETCHAIN, a GETSET dump and a GETRULE dump of nftban's table only,
    /// then one GETSETELEM lookup per probe: never a set listing.
    pub(super) fn missing_parts(&mut self, spec: &TableSpec, probes: &[(String, IpNet)]) -> Result<Vec<String>> {
        let table = spec.table.as_str();
        let mut chains = Vec::new();
        for &hook in &spec.hooks {
            chains.push((hook.chain(), self.existing_chain(table, hook.chain())?.is_some()));
        }
        let sets = self.existing_sets(table)?;
        if chains.iter().all(|(_, there)| !there) && sets.is_empty() {
            return Ok(vec![format!("{} is missing", messages::describe_table(table))]);
        }
        let mut out = Vec::new();
        let wanted = wanted_sets(spec);
        for (chain, there) in chains {
            if !there {
                out.push(format!("chain {chain} is missing"));
                continue;
            }
            let rules = self.rule_count(table, chain)?;
            if rules < wanted.len() {
                out.push(format!("chain {chain} has {rules} of its {} rules", wanted.len()));
            }
        }
        if let Some(meter) = &spec.sip {
            if self.existing_chain(table, SIP_CHAIN)?.is_none() {
                out.push(format!("chain {SIP_CHAIN} is missing"));
            } else {
                let rules = self.rule_count(table, SIP_CHAIN)?;
                let want = sip::rule_count(meter, spec.prefix_sets);
                if rules < want {
                    out.push(format!("chain {SIP_CHAIN} has {rules} of its {want} rules"));
                }
            }
        }
        for set in wanted_shapes(spec).keys() {
            if !sets.iter().any(|s| &s.name == set) {
                out.push(format!("set {set} is missing"));
            }
        }
        for (jail, net) in probes {
            let set = spec.prefix_sets.set_of(jail, net);
            if !sets.iter().any(|s| s.name == set) {
                continue;
            }
            if !self.lookup(table, &set, net)? {
                out.push(format!("element {net} is missing from set {set}"));
            }
        }
        Ok(out)
    }
}
