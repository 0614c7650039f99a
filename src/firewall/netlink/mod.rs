//! nf_tables over netlink: the [`Firewall`] the daemon runs with.
//!
//! Why this stack (see docs/firewall.md): netlink-packet-netfilter has
//! typed messages for everything nftban needs, including per-element
//! timeouts and interval-end flags, in pure Rust. What it leaves out, the
//! batch framing, acks and a fast dump reader, lives in [`socket`] and
//! [`dump`]; the requests themselves are built in [`messages`]. No `nft`
//! process is ever spawned.

mod dump;
mod messages;
pub mod monitor;
mod socket;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use ipnet::IpNet;

use self::messages::Change;
use self::socket::{Failure, NfSocket, Op};
use super::{
    is_host, jail_sets, set_of, Ban, Element, Error, Family, Firewall, Result, SetDef, TableSpec, INPUT_CHAIN,
    INPUT_PRIORITY,
};

/// Table used until [`Firewall::setup`] names another one.
pub const DEFAULT_TABLE: &str = "nftban";

/// How often a dump interrupted by concurrent changes is started over.
const DUMP_RETRIES: usize = 10;

/// A NETLINK_NETFILTER socket speaking nf_tables for nftban's one table.
pub struct Netlink {
    sock: NfSocket,
    table: String,
}

impl Netlink {
    /// Open the socket and check that nf_tables answers: fails with
    /// [`Error::NotSupported`] when the kernel has no nf_tables and
    /// [`Error::PermissionDenied`] without CAP_NET_ADMIN.
    pub fn open() -> Result<Netlink> {
        let mut sock = NfSocket::open().map_err(|e| match e.raw_os_error() {
            Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT) => Error::NotSupported(e),
            Some(libc::EPERM | libc::EACCES) => Error::PermissionDenied,
            _ => Error::Io(e),
        })?;
        sock.probe().map_err(|f| match f {
            Failure::Kernel {
                errno: libc::EPERM | libc::EACCES,
                ..
            } => Error::PermissionDenied,
            Failure::Kernel { errno, .. } => Error::NotSupported(io::Error::from_raw_os_error(errno)),
            Failure::Io(e) => Error::Io(e),
        })?;
        Ok(Netlink {
            sock,
            table: DEFAULT_TABLE.into(),
        })
    }

    /// Use `table` for `add`, `delete` and `list` before any `setup` (which
    /// sets it from its spec).
    pub fn with_table(mut self, table: impl Into<String>) -> Netlink {
        self.table = table.into();
        self
    }

    /// The table this instance works on.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The sets in the table, or none if the table does not exist.
    fn existing_sets(&mut self, table: &str) -> Result<Vec<dump::SetInfo>> {
        let what = format!("list the sets of {}", messages::describe_table(table));
        for _ in 0..DUMP_RETRIES {
            let mut sets = Vec::new();
            match self
                .sock
                .dump(messages::get_sets(table), &what, |p| sets.extend(dump::set_info(p)))
            {
                Ok(true) => return Ok(sets),
                Ok(false) => continue,
                Err(Failure::Kernel {
                    errno: libc::ENOENT, ..
                }) => return Ok(Vec::new()),
                Err(f) => return Err(error(f)),
            }
        }
        Err(interrupted(what))
    }

    /// The input chain of the table, if there is one.
    fn existing_chain(&mut self, table: &str) -> Result<Option<dump::ChainInfo>> {
        let what = format!("look up chain {} in {}", INPUT_CHAIN, messages::describe_table(table));
        let mut info = None;
        match self
            .sock
            .get(messages::get_chain(table), &what, |p| info = Some(dump::chain_info(p)))
        {
            Ok(()) => Ok(info),
            Err(Failure::Kernel {
                errno: libc::ENOENT, ..
            }) => Ok(None),
            Err(f) => Err(error(f)),
        }
    }

    /// How many rules the input chain has (0 if it is gone).
    fn rule_count(&mut self, table: &str) -> Result<usize> {
        let what = format!(
            "list the rules of chain {INPUT_CHAIN} in {}",
            messages::describe_table(table)
        );
        for _ in 0..DUMP_RETRIES {
            let mut n = 0;
            match self
                .sock
                .dump(messages::get_rules(table, INPUT_CHAIN), &what, |_| n += 1)
            {
                Ok(true) => return Ok(n),
                Ok(false) => continue,
                Err(Failure::Kernel {
                    errno: libc::ENOENT, ..
                }) => return Ok(0),
                Err(f) => return Err(error(f)),
            }
        }
        Err(interrupted(what))
    }

    /// The start and end elements of one set, or none if it does not exist.
    fn raw_elements(&mut self, set: &str, family: Family) -> Result<Vec<dump::RawElement>> {
        let table = self.table.clone();
        let what = format!("list the elements of set {set} in {}", messages::describe_table(&table));
        for _ in 0..DUMP_RETRIES {
            let mut raw = Vec::new();
            let msg = messages::get_elements(&table, set);
            match self.sock.dump(msg, &what, |p| dump::elements(p, family, &mut raw)) {
                Ok(true) => return Ok(raw),
                Ok(false) => continue,
                Err(Failure::Kernel {
                    errno: libc::ENOENT, ..
                }) => return Ok(Vec::new()),
                Err(f) => return Err(error(f)),
            }
        }
        Err(interrupted(what))
    }
}

/// A set by jail, family and kind (interval or not), without its name.
type SetKey<'a> = (&'a str, Family, bool);

/// The sets `spec` asks for, by name.
fn wanted_sets(spec: &TableSpec) -> BTreeMap<String, SetDef> {
    spec.jails
        .iter()
        .flat_map(|jail| jail_sets(jail))
        .map(|d| (d.name.clone(), d))
        .collect()
}

/// Map a socket failure to the firewall's error.
fn error(f: Failure) -> Error {
    match f {
        Failure::Kernel {
            errno: libc::EPERM | libc::EACCES,
            ..
        } => Error::PermissionDenied,
        Failure::Kernel { what, errno } => Error::Kernel {
            what,
            error: io::Error::from_raw_os_error(errno),
        },
        Failure::Io(e) => Error::Io(e),
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

impl Firewall for Netlink {
    /// One atomic batch: table, chain (replaced if it has another hook or
    /// priority), flush of the chain's rules, deletion of sets no jail owns
    /// any more (and of jail sets of another type or flags), creation of
    /// missing sets, then one rule per set. Existing sets are kept with
    /// their elements. The sets and chain are looked up first, with a GETSET
    /// dump and a GETCHAIN of nftban's own table only.
    fn setup(&mut self, spec: &TableSpec) -> Result<()> {
        let table = spec.table.as_str();
        let wanted = wanted_sets(spec);
        let existing = self.existing_sets(table)?;
        let chain = self.existing_chain(table)?;

        let mut ops = vec![messages::new_table(table)];
        // A chain of that name with another hook, priority or type (an
        // older nftban, or another tool) cannot be updated in place: the
        // kernel refuses with EEXIST. Replace it in the same batch.
        let chain_fits = |c: &dump::ChainInfo| {
            c.hook == Some(messages::HOOK_INPUT) && c.priority == Some(INPUT_PRIORITY) && c.kind == "filter"
        };
        if chain.as_ref().is_some_and(|c| !chain_fits(c)) {
            ops.push(messages::del_chain(table));
        }
        ops.push(messages::new_chain(table));
        ops.push(messages::flush_chain(table));
        for set in &existing {
            if set.flags & dump::NFT_SET_ANONYMOUS != 0 {
                continue;
            }
            let keep = wanted.get(&set.name).is_some_and(|d| {
                let (key_type, key_len) = messages::key_type(d.family);
                set.flags == messages::set_flags(d.interval).bits()
                    && set.key_type == key_type
                    && set.key_len == key_len
            });
            if !keep {
                ops.push(messages::del_set(table, &set.name));
            }
        }
        let sets: Vec<SetDef> = spec.jails.iter().flat_map(|jail| jail_sets(jail)).collect();
        for (id, d) in sets.iter().enumerate() {
            ops.push(messages::new_set(table, &d.name, d.family, d.interval, id as u32 + 1));
        }
        for d in &sets {
            ops.push(messages::new_rule(table, &d.name, d.family, spec.action));
        }
        // One batch, never split: all of it or nothing.
        self.sock.batch(&ops).map_err(error)?;
        self.table = spec.table.clone();
        Ok(())
    }

    /// NEWSETELEM messages of up to ~1,000 elements, as few batches as the
    /// socket buffer takes. The same prefix twice keeps the last timeout.
    fn add(&mut self, bans: &[Ban]) -> Result<()> {
        // Grouped by set without a per-ban allocation; a sort (stable, so
        // the last of equal prefixes wins) rather than a map per set: this
        // runs for a million bans at start or after healing.
        let mut sets: BTreeMap<SetKey<'_>, Vec<(IpNet, u64)>> = BTreeMap::new();
        for ban in bans {
            let net = ban.net.trunc();
            sets.entry((ban.jail.as_str(), Family::of(&net), !is_host(&net)))
                .or_default()
                .push((net, messages::timeout_ms(ban.timeout)));
        }
        let mut ops: Vec<Op> = Vec::new();
        for ((jail, _, interval), items) in &mut sets {
            items.reverse();
            items.sort_by_key(|(net, _)| *net);
            items.dedup_by_key(|(net, _)| *net);
            let set = set_of(jail, &items[0].0);
            ops.extend(messages::element_ops(&self.table, &set, *interval, Change::Add, items));
        }
        self.sock.transact(&ops).map_err(error)
    }

    /// DELSETELEM of each prefix's start and end elements. If the kernel
    /// says ENOENT (some element expired or was never there), every prefix
    /// is deleted on its own and ENOENT ignored.
    fn delete(&mut self, jail: &str, nets: &[IpNet]) -> Result<()> {
        let mut unique: BTreeMap<(String, bool), BTreeSet<IpNet>> = BTreeMap::new();
        for net in nets {
            let net = net.trunc();
            unique
                .entry((set_of(jail, &net), !is_host(&net)))
                .or_default()
                .insert(net);
        }
        // (No timeout when deleting: the 0 is not sent.)
        let sets: BTreeMap<(String, bool), Vec<(IpNet, u64)>> = unique
            .into_iter()
            .map(|(set, nets)| (set, nets.into_iter().map(|n| (n, 0)).collect()))
            .collect();
        let mut ops: Vec<Op> = Vec::new();
        for ((set, interval), items) in &sets {
            ops.extend(messages::element_ops(
                &self.table,
                set,
                *interval,
                Change::Delete,
                items,
            ));
        }
        match self.sock.transact(&ops) {
            Err(Failure::Kernel {
                errno: libc::ENOENT, ..
            }) => {}
            other => return other.map_err(error),
        }
        for ((set, interval), items) in &sets {
            for item in items {
                let ops =
                    messages::element_ops(&self.table, set, *interval, Change::Delete, std::slice::from_ref(item));
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

    /// GETCHAIN, a GETSET dump and a GETRULE dump of nftban's table only,
    /// then one GETSETELEM lookup per probe: never a set listing.
    fn missing(&mut self, spec: &TableSpec, probes: &[(String, IpNet)]) -> Result<Vec<String>> {
        let table = spec.table.as_str();
        let chain = self.existing_chain(table)?;
        let sets = self.existing_sets(table)?;
        if chain.is_none() && sets.is_empty() {
            return Ok(vec![format!("{} is missing", messages::describe_table(table))]);
        }
        let mut out = Vec::new();
        let wanted = wanted_sets(spec);
        if chain.is_none() {
            out.push(format!("chain {INPUT_CHAIN} is missing"));
        } else {
            let rules = self.rule_count(table)?;
            if rules < wanted.len() {
                out.push(format!("chain {INPUT_CHAIN} has {rules} of its {} rules", wanted.len()));
            }
        }
        for set in wanted.keys() {
            if !sets.iter().any(|s| &s.name == set) {
                out.push(format!("set {set} is missing"));
            }
        }
        for (jail, net) in probes {
            let set = set_of(jail, net);
            if !sets.iter().any(|s| s.name == set) {
                continue;
            }
            let what = format!("look up {net} in set {set} of {}", messages::describe_table(table));
            let key = messages::interval_keys(net).0;
            match self.sock.get(messages::get_element(table, &set, key), &what, |_| {}) {
                Ok(()) => {}
                Err(Failure::Kernel {
                    errno: libc::ENOENT, ..
                }) => out.push(format!("element {net} is missing from set {set}")),
                Err(f) => return Err(error(f)),
            }
        }
        Ok(out)
    }

    /// GETSETELEM dumps of the jail's four sets: addresses from the hash
    /// sets, start and end elements of the interval sets paired back into
    /// prefixes. A jail without sets has no elements.
    fn list(&mut self, jail: &str) -> Result<Vec<Element>> {
        let mut out = Vec::new();
        for d in jail_sets(jail) {
            let raw = self.raw_elements(&d.name, d.family)?;
            if d.interval {
                out.extend(dump::pair(d.family, raw));
            } else {
                out.extend(dump::hosts(d.family, raw));
            }
        }
        Ok(out)
    }
}
