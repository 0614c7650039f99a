//! A blocklist feed's refresh as one kernel transaction: NEWSETELEM of
//! the entries it gained (no timeout: an entry lasts while the feed lists
//! it) and DELSETELEM of those it lost, in one batch, so the packet path
//! sees the old list or the new one and nothing between, and entries the
//! feed keeps are never touched.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::elements::{self, Change};
use super::socket::{Failure, Op};
use super::{error, Netlink, BIG_BATCH};
use crate::firewall::Result;

impl Netlink {
    /// In one batch: the removals from interval sets, the adds, the other
    /// removals. An interval set takes no prefix overlapping one it holds,
    /// so a listed prefix that widens, narrows or splits (Spamhaus DROP and
    /// FireHOL do) must leave before its successor comes (adds first made
    /// every refresh after such a change fail with EEXIST, for good); the
    /// batch is one transaction, so the packet path still sees the old
    /// list or the new one and nothing between. A batch too big for the
    /// socket (EMSGSIZE before anything was sent) goes as several in the
    /// same order: the moments between lack only entries the new list
    /// drops. ENOENT on a removal (an element another tool deleted) is
    /// retried with the removals one by one, ENOENT ignored.
    pub(super) fn diff_feed(&mut self, jail: &str, add: &[IpNet], remove: &[IpNet]) -> Result<()> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let (mut all, other) = self.feed_ops(jail, remove, Change::Delete);
        let (ranges, exact) = self.feed_ops(jail, add, Change::Insert);
        all.extend(ranges);
        all.extend(exact);
        all.extend(other);
        let paused = add.len() + remove.len() >= BIG_BATCH && self.pause_watcher();
        let result = match self.sock.batch(&all) {
            Err(Failure::Io(e)) if e.raw_os_error() == Some(libc::EMSGSIZE) => self.sock.transact(&all),
            other => other,
        };
        let result = match result {
            Err(Failure::Kernel {
                errno: libc::ENOENT, ..
            }) if !remove.is_empty() => self.diff_slowly(jail, add, remove),
            other => other,
        };
        if paused {
            self.resume_watcher();
        }
        result.map_err(error)
    }

    /// Each removal on its own, ENOENT ignored, those of interval sets
    /// before the adds (as [`Netlink::diff_feed`]), the others after.
    fn diff_slowly(&mut self, jail: &str, add: &[IpNet], remove: &[IpNet]) -> std::result::Result<(), Failure> {
        let in_range = |net: &&IpNet| self.prefix_sets.is_interval(&net.trunc());
        let (before, after): (Vec<&IpNet>, Vec<&IpNet>) = remove.iter().partition(in_range);
        self.remove_each(jail, &before)?;
        let (mut adds, exact) = self.feed_ops(jail, add, Change::Insert);
        adds.extend(exact);
        self.sock.transact(&adds)?;
        self.remove_each(jail, &after)
    }

    fn remove_each(&mut self, jail: &str, nets: &[&IpNet]) -> std::result::Result<(), Failure> {
        for net in nets {
            let (mut ops, exact) = self.feed_ops(jail, std::slice::from_ref(*net), Change::Delete);
            ops.extend(exact);
            match self.sock.transact(&ops) {
                Ok(())
                | Err(Failure::Kernel {
                    errno: libc::ENOENT, ..
                }) => {}
                Err(f) => return Err(f),
            }
        }
        Ok(())
    }

    /// Element messages for `nets`, grouped by set (address or prefix
    /// set, per family), each set's items sorted and once: those of the
    /// interval sets, and those of the others.
    fn feed_ops(&self, jail: &str, nets: &[IpNet], change: Change) -> (Vec<Op>, Vec<Op>) {
        let mut sets: BTreeMap<(String, bool), Vec<(IpNet, u64)>> = BTreeMap::new();
        for net in nets {
            let net = net.trunc();
            sets.entry((self.prefix_sets.set_of(jail, &net), self.prefix_sets.is_interval(&net)))
                .or_default()
                .push((net, 0));
        }
        let (mut ranges, mut exact) = (Vec::new(), Vec::new());
        for ((set, interval), items) in &mut sets {
            items.sort_unstable();
            items.dedup();
            let ops = elements::element_ops(&self.table, set, *interval, change, items);
            match interval {
                true => ranges.extend(ops),
                false => exact.extend(ops),
            }
        }
        (ranges, exact)
    }
}
