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
    /// Adds first, then removals, in one batch. A batch too big for the
    /// socket (EMSGSIZE before anything was sent) goes as several, adds
    /// still first: the only moment between is one holding both lists.
    /// ENOENT on a removal (an element another tool deleted) is retried
    /// with the removals one by one, ENOENT ignored.
    pub(super) fn diff_feed(&mut self, jail: &str, add: &[IpNet], remove: &[IpNet]) -> Result<()> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let mut all = self.feed_ops(jail, add, Change::Insert);
        all.extend(self.feed_ops(jail, remove, Change::Delete));
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

    /// The adds, then each removal on its own, ENOENT ignored.
    fn diff_slowly(&mut self, jail: &str, add: &[IpNet], remove: &[IpNet]) -> std::result::Result<(), Failure> {
        let adds = self.feed_ops(jail, add, Change::Insert);
        self.sock.transact(&adds)?;
        for net in remove {
            let ops = self.feed_ops(jail, std::slice::from_ref(net), Change::Delete);
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
    /// set, per family), each set's items sorted and once.
    fn feed_ops(&self, jail: &str, nets: &[IpNet], change: Change) -> Vec<Op> {
        let mut sets: BTreeMap<(String, bool), Vec<(IpNet, u64)>> = BTreeMap::new();
        for net in nets {
            let net = net.trunc();
            sets.entry((self.prefix_sets.set_of(jail, &net), self.prefix_sets.is_interval(&net)))
                .or_default()
                .push((net, 0));
        }
        let mut ops = Vec::new();
        for ((set, interval), items) in &mut sets {
            items.sort_unstable();
            items.dedup();
            ops.extend(elements::element_ops(&self.table, set, *interval, change, items));
        }
        ops
    }
}
