//! Reading nftban's table back from the kernel: whole dumps, started over
//! when a concurrent change interrupts them, and the lookups of sets,
//! chains, rules and elements that setup, the cheap checks, listing and the
//! meter's catches build on; and the rule counters. Only nftban's own table
//! is ever asked for, never a whole ruleset.

use std::collections::BTreeMap;
use std::io;

use ipnet::IpNet;

use super::socket::Failure;
use super::{dump, elements, error, messages, Netlink};
use crate::firewall::{Counter, Error, Family, Result};

/// How often a dump interrupted by concurrent changes is started over.
const DUMP_RETRIES: usize = 10;

impl Netlink {
    /// A whole dump folded into `T`: started again (with a fresh `T`) when
    /// the kernel says it was interrupted by a change, `T::default()` when
    /// the object asked for does not exist (ENOENT).
    fn dump_all<T: Default>(
        &mut self,
        request: impl Fn() -> netlink_packet_netfilter::nftables::NfTablesMessage,
        what: String,
        mut fold: impl FnMut(&mut T, &[u8]),
    ) -> Result<T> {
        for _ in 0..DUMP_RETRIES {
            let mut acc = T::default();
            match self.sock.dump(request(), &what, |p| fold(&mut acc, p)) {
                Ok(true) => return Ok(acc),
                Ok(false) => continue,
                Err(Failure::Kernel {
                    errno: libc::ENOENT, ..
                }) => return Ok(T::default()),
                Err(f) => return Err(error(f)),
            }
        }
        Err(interrupted(what))
    }

    /// The sets in the table, or none if the table does not exist.
    pub(super) fn existing_sets(&mut self, table: &str) -> Result<Vec<dump::SetInfo>> {
        let what = format!("list the sets of {}", messages::describe_table(table));
        self.dump_all(
            || messages::get_sets(table),
            what,
            |sets: &mut Vec<_>, p| sets.extend(dump::set_info(p)),
        )
    }

    /// The chain of that name in the table, if there is one.
    pub(super) fn existing_chain(&mut self, table: &str, chain: &str) -> Result<Option<dump::ChainInfo>> {
        let what = format!("look up chain {chain} in {}", messages::describe_table(table));
        let mut info = None;
        match self.sock.get(messages::get_chain(table, chain), &what, |p| {
            info = Some(dump::chain_info(p))
        }) {
            Ok(()) => Ok(info),
            Err(Failure::Kernel {
                errno: libc::ENOENT, ..
            }) => Ok(None),
            Err(f) => Err(error(f)),
        }
    }

    /// How many rules a chain has (0 if it is gone).
    pub(super) fn rule_count(&mut self, table: &str, chain: &str) -> Result<usize> {
        let what = format!("list the rules of chain {chain} in {}", messages::describe_table(table));
        self.dump_all(
            || messages::get_chain_rules(table, chain),
            what,
            |n: &mut usize, _| *n += 1,
        )
    }

    /// The start and end elements of one set, or none if it does not exist.
    pub(super) fn raw_elements(&mut self, set: &str, family: Family) -> Result<Vec<dump::RawElement>> {
        let table = self.table.clone();
        let what = format!("list the elements of set {set} in {}", messages::describe_table(&table));
        self.dump_all(
            || elements::get_elements(&table, set),
            what,
            |raw, p| dump::elements(p, family, raw),
        )
    }

    /// Whether `set` of `table` holds the element of `net`: one GETSETELEM
    /// lookup (not a dump), ENOENT being "no" (also when the set is not
    /// there: callers that care check the sets first). Interval sets answer
    /// for the interval that starts at `net`.
    pub(super) fn lookup(&mut self, table: &str, set: &str, net: &IpNet) -> Result<bool> {
        let what = format!("look up {net} in set {set} of {}", messages::describe_table(table));
        let key = elements::interval_keys(net).0;
        match self.sock.get(elements::get_element(table, set, key), &what, |_| {}) {
            Ok(()) => Ok(true),
            Err(Failure::Kernel {
                errno: libc::ENOENT, ..
            }) => Ok(false),
            Err(f) => Err(error(f)),
        }
    }

    /// A GETRULE dump of nftban's table (a few rules, never the sets): the
    /// counter of each rule that looks a set up, summed per set.
    pub(super) fn read_counters(&mut self) -> Result<BTreeMap<String, Counter>> {
        let table = self.table.clone();
        let what = format!("list the rules of {}", messages::describe_table(&table));
        self.dump_all(
            || messages::get_rules(&table),
            what,
            |sums: &mut BTreeMap<String, Counter>, p| {
                let rule = dump::rule_info(p);
                if let (Some(set), Some(c)) = (rule.set, rule.counter) {
                    let sum = sums.entry(set).or_default();
                    sum.packets += c.packets;
                    sum.bytes += c.bytes;
                }
            },
        )
    }
}

fn interrupted(what: String) -> Error {
    Error::Kernel {
        what,
        error: io::Error::new(
            io::ErrorKind::Interrupted,
            "dump kept being interrupted by concurrent changes",
        ),
    }
}
