//! Bans into and out of the kernel: NEWSETELEM batches split until the
//! elements the kernel refuses are found, with the watcher paused for big
//! ones; DELSETELEM that shrugs off elements already gone; the elements of
//! a jail's sets read back; and the SIP meter's caught sets, read and
//! released from a socket of their own.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::elements::{self, Change};
use super::socket::{Failure, Op};
use super::{dump, error, Netlink, BIG_BATCH};
use crate::firewall::sip::{sip_set_name, SipSetKind, SipSpec, SIP_SET_STEMS};
use crate::firewall::{set_name, Ban, Catches, Element, Family, Refused, Result, SetKind};

/// A set by jail, family and kind, without its name.
type SetKey<'a> = (&'a str, Family, SetKind);

impl Netlink {
    /// NEWSETELEM messages of up to ~1,000 elements, as few batches as the
    /// socket buffer takes. The same prefix twice keeps the last timeout.
    /// A batch the kernel refuses is split until the failing elements are
    /// found (see `add_split`); they come back as refused. From
    /// [`BIG_BATCH`] bans on, the watcher (if any) is paused meanwhile.
    pub(super) fn add_bans(&mut self, bans: &[Ban]) -> Result<Vec<Refused>> {
        let mut refused = Vec::new();
        if bans.is_empty() {
            return Ok(refused);
        }
        let paused = bans.len() >= BIG_BATCH && self.pause_watcher();
        let result = self.add_split(bans, &mut refused);
        if paused {
            self.resume_watcher();
        }
        result.map(|()| refused)
    }

    /// One batch for `bans`; on a kernel error, the bans are split in halves
    /// and each half tried again, down to single bans, so one bad element
    /// costs O(log n) extra batches and never keeps the others out. A
    /// missing table or set (ENOENT), no permission or a socket failure
    /// fail the whole call: every element would fail the same way.
    fn add_split(&mut self, bans: &[Ban], refused: &mut Vec<Refused>) -> Result<()> {
        // Grouped by set without a per-ban allocation; a sort (stable, so
        // the last of equal prefixes wins) rather than a map per set: this
        // runs for a million bans at start or after healing.
        let mut sets: BTreeMap<SetKey<'_>, Vec<(IpNet, u64)>> = BTreeMap::new();
        for ban in bans {
            let net = ban.net.trunc();
            sets.entry((ban.jail.as_str(), Family::of(&net), self.prefix_sets.kind_of(&net)))
                .or_default()
                .push((net, elements::timeout_ms(ban.timeout)));
        }
        let mut ops: Vec<Op> = Vec::new();
        for ((jail, family, kind), items) in &mut sets {
            items.reverse();
            items.sort_by_key(|(net, _)| *net);
            items.dedup_by_key(|(net, _)| *net);
            let set = set_name(jail, *family, *kind);
            let interval = *kind == SetKind::Interval;
            ops.extend(elements::element_ops(&self.table, &set, interval, Change::Add, items));
        }
        match self.sock.transact(&ops) {
            Ok(()) => Ok(()),
            Err(
                f @ Failure::Kernel {
                    errno: libc::ENOENT | libc::EPERM | libc::EACCES,
                    ..
                },
            ) => Err(error(f)),
            Err(Failure::Kernel { mut what, errno }) if bans.len() == 1 => {
                if errno == libc::ENFILE {
                    // The kernel's word for a set at its `size`.
                    what.push_str(" (the set is full)");
                }
                refused.push(Refused {
                    ban: bans[0].clone(),
                    error: error(Failure::Kernel { what, errno }),
                });
                Ok(())
            }
            Err(Failure::Kernel { .. }) => {
                // `transact` may have applied earlier batches of a big call:
                // re-adding those elements is harmless (idempotent).
                let (a, b) = bans.split_at(bans.len() / 2);
                self.add_split(a, refused)?;
                self.add_split(b, refused)
            }
            Err(f) => Err(error(f)),
        }
    }

    /// Pause the watcher before a big batch; false when not watching.
    pub(super) fn pause_watcher(&self) -> bool {
        let Some(pauser) = &self.pauser else { return false };
        if let Err(e) = pauser.pause() {
            tracing::debug!(error = %e, "cannot pause the nf_tables event monitor");
        }
        true
    }

    /// Resume the watcher after a big batch, and remember that other tools'
    /// changes meanwhile went unseen.
    pub(super) fn resume_watcher(&mut self) {
        if let Some(pauser) = &self.pauser {
            if let Err(e) = pauser.resume() {
                tracing::warn!(error = %e, "cannot resume the nf_tables event monitor: changes by other tools will go unseen");
            }
        }
        self.unwatched = true;
    }

    /// DELSETELEM of each prefix's start and end elements. If the kernel
    /// says ENOENT (some element expired or was never there), every prefix
    /// is deleted on its own and ENOENT ignored.
    pub(super) fn delete_bans(&mut self, jail: &str, nets: &[IpNet]) -> Result<()> {
        let mut unique: BTreeMap<(String, bool), BTreeSet<IpNet>> = BTreeMap::new();
        for net in nets {
            let net = net.trunc();
            unique
                .entry((self.prefix_sets.set_of(jail, &net), self.prefix_sets.is_interval(&net)))
                .or_default()
                .insert(net);
        }
        // (No timeout when deleting: the 0 is not sent.)
        let mut sets: BTreeMap<(String, bool), Vec<(IpNet, u64)>> = unique
            .into_iter()
            .map(|(set, nets)| (set, nets.into_iter().map(|n| (n, 0)).collect()))
            .collect();
        let mut ops: Vec<Op> = Vec::new();
        for ((set, interval), items) in &sets {
            ops.extend(elements::element_ops(
                &self.table,
                set,
                *interval,
                Change::Delete,
                items,
            ));
        }
        if let Some(meter) = self.sip.as_ref().filter(|m| m.jail == jail) {
            sets.extend(meter_keys(meter, nets));
            ops.clear();
            for ((set, interval), items) in &sets {
                ops.extend(elements::element_ops(
                    &self.table,
                    set,
                    *interval,
                    Change::Delete,
                    items,
                ));
            }
        }
        // A big delete (`unban -`) leaves the watcher out, as a big add.
        let paused = nets.len() >= BIG_BATCH && self.pause_watcher();
        let once = self.sock.transact(&ops);
        if paused {
            self.resume_watcher();
        }
        match once {
            Err(Failure::Kernel {
                errno: libc::ENOENT, ..
            }) => {}
            other => return other.map_err(error),
        }
        for ((set, interval), items) in &sets {
            for item in items {
                let ops =
                    elements::element_ops(&self.table, set, *interval, Change::Delete, std::slice::from_ref(item));
                match self.sock.transact(&ops) {
                    Ok(())
                    | Err(Failure::Kernel {
                        errno: libc::ENOENT, ..
                    }) => {}
                    Err(f) => return Err(error(f)),
                }
            }
        }
        Ok(())
    }

    /// GETSETELEM dumps of the jail's six sets: addresses from the hash
    /// sets, prefixes of their length from the masked ones, start and end elements of the interval sets paired back into
    /// prefixes. A jail without sets has no elements.
    pub(super) fn list_jail(&mut self, jail: &str) -> Result<Vec<Element>> {
        let mut out = Vec::new();
        for d in self.prefix_sets.jail_sets(jail) {
            // Tests of the daemon check that this line never appears.
            tracing::debug!("listing the elements of set {} (a GETSETELEM dump)", d.name);
            let raw = self.raw_elements(&d.name, d.family)?;
            match d.kind {
                SetKind::Interval => out.extend(dump::pair(d.family, raw)),
                SetKind::Hosts => out.extend(dump::hosts(d.family, raw, None)),
                SetKind::Masked(len) => out.extend(dump::hosts(d.family, raw, Some(len))),
            }
        }
        Ok(out)
    }
}

/// The keys of `nets` in the meter's caught and meter sets (each a hash
/// set of addresses, IPv6 ones masked to the meter's prefix), grouped by
/// set as `delete` sends them.
fn meter_keys(meter: &SipSpec, nets: &[IpNet]) -> BTreeMap<(String, bool), Vec<(IpNet, u64)>> {
    let mut out: BTreeMap<(String, bool), Vec<(IpNet, u64)>> = BTreeMap::new();
    for net in nets {
        let Some(key) = meter.caught_key(net) else { continue };
        let key = IpNet::from(key);
        let family = Family::of(&key);
        for kind in [SipSetKind::Caught, SipSetKind::Meter] {
            let items = out.entry((sip_set_name(kind, family), false)).or_default();
            if !items.iter().any(|(n, _)| *n == key) {
                items.push((key, 0));
            }
        }
    }
    out
}

/// [`Catches`] over netlink: a dump of the two caught sets (small: the
/// daemon empties them twice a second), and deletes from them.
pub(super) struct MeterCatches {
    nl: Netlink,
    meter: SipSpec,
}

impl MeterCatches {
    /// The catches of `meter`, read over `nl`, a socket no other thread uses.
    pub(super) fn new(nl: Netlink, meter: SipSpec) -> MeterCatches {
        MeterCatches { nl, meter }
    }
}

impl Catches for MeterCatches {
    fn caught(&mut self) -> Result<Vec<Element>> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            let raw = self
                .nl
                .raw_elements(&sip_set_name(SipSetKind::Caught, family), family)?;
            for e in dump::hosts(family, raw, None) {
                out.push(Element {
                    net: self.meter.caught_net(e.net.addr()),
                    expires_in: e.expires_in,
                });
            }
        }
        Ok(out)
    }

    fn release(&mut self, nets: &[IpNet]) -> Result<()> {
        let table = self.nl.table.clone();
        for ((set, _), items) in meter_keys(&self.meter, nets) {
            if !set.starts_with(SIP_SET_STEMS[2]) {
                continue;
            }
            for item in items {
                let ops = elements::element_ops(&table, &set, false, Change::Delete, &[item]);
                match self.nl.sock.transact(&ops) {
                    Ok(())
                    | Err(Failure::Kernel {
                        errno: libc::ENOENT, ..
                    }) => {}
                    Err(f) => return Err(error(f)),
                }
            }
        }
        Ok(())
    }
}
