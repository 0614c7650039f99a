//! nf_tables over netlink: the [`Firewall`] the daemon runs with.
//!
//! Why this stack (see docs/firewall.md): netlink-packet-netfilter has
//! typed messages for everything nftban needs, including per-element
//! timeouts and interval-end flags, in pure Rust. What it leaves out, the
//! batch framing, acks and a fast dump reader, lives in `socket.rs` and
//! `dump.rs`; the requests themselves are built in `messages.rs`, with the
//! kernel's numbers from [`abi`]. No `nft` process is ever spawned.

pub mod abi;
mod conntrack;
mod dump;
mod expr;
mod messages;
pub mod monitor;
mod remove;
mod sip;
mod socket;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use ipnet::IpNet;

use self::messages::Change;
use self::monitor::{Monitor, Pauser};
pub use self::socket::event_socket;
use self::socket::{Failure, NfSocket, Op};
use super::sip::{sip_set_name, SipSetKind, SipSpec, SIP_CHAIN};
use super::{
    jail_sets, set_of, Ban, Catches, Counter, Element, Error, Family, Firewall, Hook, Refused, Result, SetDef,
    TableSpec, Watcher,
};

/// Table used until [`Firewall::setup`] names another one.
const DEFAULT_TABLE: &str = "nftban";

/// How often a dump interrupted by concurrent changes is started over.
const DUMP_RETRIES: usize = 10;

/// From this many bans on, one [`Firewall::add`] runs with the watcher
/// paused: the kernel then skips building an event per element, which a
/// restore of many bans would otherwise pay for (docs/performance.md,
/// section "Restore with and without a listener").
pub const BIG_BATCH: usize = 10_000;

/// A NETLINK_NETFILTER socket speaking nf_tables for nftban's one table.
pub struct Netlink {
    sock: NfSocket,
    table: String,
    /// `nf_conntrack_count` of the namespace the socket was opened in (a
    /// sysctl file belongs to its opener's namespace), if conntrack is loaded.
    conntrack_count: Option<std::fs::File>,
    /// Pauses the watcher [`Firewall::watch`] handed out, during batches of
    /// [`BIG_BATCH`] bans or more; `None` when not watching.
    pauser: Option<Pauser>,
    /// A batch ran with the watcher paused since [`Firewall::take_unwatched`]
    /// was last called.
    unwatched: bool,
    /// The SIP meter of the last setup: `delete` of its jail also clears
    /// its caught and meter sets.
    sip: Option<SipSpec>,
}

impl Netlink {
    /// Open the socket and check that nf_tables answers: fails with
    /// [`Error::NotSupported`] when the kernel has no nf_tables and
    /// [`Error::PermissionDenied`] without CAP_NET_ADMIN.
    pub fn open() -> Result<Netlink> {
        let mut sock = NfSocket::open().map_err(|e| match e.raw_os_error() {
            Some(errno) => open_error(errno, "open a NETLINK_NETFILTER socket"),
            None => Error::Io(e),
        })?;
        sock.probe().map_err(|f| match f {
            Failure::Kernel { what, errno } => open_error(errno, &what),
            Failure::Io(e) => Error::Io(e),
        })?;
        Ok(Netlink {
            sock,
            table: DEFAULT_TABLE.into(),
            conntrack_count: conntrack::count_file(),
            pauser: None,
            unwatched: false,
            sip: None,
        })
    }

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
    fn existing_sets(&mut self, table: &str) -> Result<Vec<dump::SetInfo>> {
        let what = format!("list the sets of {}", messages::describe_table(table));
        self.dump_all(
            || messages::get_sets(table),
            what,
            |sets: &mut Vec<_>, p| sets.extend(dump::set_info(p)),
        )
    }

    /// The chain of that name in the table, if there is one.
    fn existing_chain(&mut self, table: &str, chain: &str) -> Result<Option<dump::ChainInfo>> {
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
    fn rule_count(&mut self, table: &str, chain: &str) -> Result<usize> {
        let what = format!("list the rules of chain {chain} in {}", messages::describe_table(table));
        self.dump_all(
            || messages::get_chain_rules(table, chain),
            what,
            |n: &mut usize, _| *n += 1,
        )
    }

    /// The start and end elements of one set, or none if it does not exist.
    fn raw_elements(&mut self, set: &str, family: Family) -> Result<Vec<dump::RawElement>> {
        let table = self.table.clone();
        let what = format!("list the elements of set {set} in {}", messages::describe_table(&table));
        self.dump_all(
            || messages::get_elements(&table, set),
            what,
            |raw, p| dump::elements(p, family, raw),
        )
    }
}

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
            (
                d.name,
                (messages::set_flags(d.interval).bits(), key_type, key_len, None),
            )
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

/// What an errno met while opening nf_tables (creating the socket, or the
/// GETGEN probe) means. Without nfnetlink the socket cannot be created
/// (EPROTONOSUPPORT from netlink_create, EAFNOSUPPORT without netlink at
/// all). With nfnetlink but no nf_tables subsystem registered (module not
/// loaded and not loadable), nfnetlink answers a plain request such as
/// GETGEN with EINVAL (nfnetlink_rcv_msg) and a batch with EOPNOTSUPP
/// (nfnetlink_rcv_batch). Each of these says nf_tables is missing; EPERM
/// and EACCES say the capability is.
fn open_error(errno: i32, what: &str) -> Error {
    match errno {
        libc::EPERM | libc::EACCES => Error::PermissionDenied,
        libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT | libc::EOPNOTSUPP | libc::EINVAL => {
            Error::NotSupported(io::Error::from_raw_os_error(errno))
        }
        _ => Error::Kernel {
            what: what.into(),
            error: io::Error::from_raw_os_error(errno),
        },
    }
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

impl Netlink {
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
            sets.entry((ban.jail.as_str(), Family::of(&net), !crate::address::is_host(&net)))
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
}

impl Netlink {
    /// Pause the watcher before a big batch; false when not watching.
    fn pause_watcher(&self) -> bool {
        let Some(pauser) = &self.pauser else { return false };
        if let Err(e) = pauser.pause() {
            tracing::debug!(error = %e, "cannot pause the nf_tables event monitor");
        }
        true
    }

    /// Resume the watcher after a big batch, and remember that other tools'
    /// changes meanwhile went unseen.
    fn resume_watcher(&mut self) {
        if let Some(pauser) = &self.pauser {
            if let Err(e) = pauser.resume() {
                tracing::warn!(error = %e, "cannot resume the nf_tables event monitor: changes by other tools will go unseen");
            }
        }
        self.unwatched = true;
    }
}

impl Firewall for Netlink {
    /// One atomic batch: table; per configured hook its chain (replaced if
    /// it has another hook, priority or type) and a flush of its rules;
    /// deletion of nftban's chains of hooks no longer configured; deletion
    /// of sets no jail owns any more (and of jail sets of another type or
    /// flags); creation of missing sets; then one rule per set and hook.
    /// Existing sets are kept with their elements. The sets and chains are
    /// looked up first, with a GETSET dump and GETCHAINs of nftban's own
    /// table only.
    fn setup(&mut self, spec: &TableSpec) -> Result<()> {
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
            }
        }
        let sets: Vec<SetDef> = spec.jails.iter().flat_map(|jail| jail_sets(jail)).collect();
        for (id, d) in sets.iter().enumerate() {
            ops.push(messages::new_set(table, &d.name, d.family, d.interval, id as u32 + 1));
        }
        if let Some(meter) = &spec.sip {
            for (id, d) in meter.sets().iter().enumerate() {
                ops.push(sip::new_set(table, meter, d, (sets.len() + id) as u32 + 1));
            }
            ops.extend(sip::trusted_ops(table, meter));
        }
        for &hook in &spec.hooks {
            for d in &sets {
                ops.push(messages::new_rule(table, hook, &d.name, d.family, spec.action));
            }
        }
        if let Some(meter) = &spec.sip {
            ops.extend(sip::rules(table, meter));
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
        self.table = spec.table.clone();
        self.sip = spec.sip.clone();
        Ok(())
    }

    /// NEWSETELEM messages of up to ~1,000 elements, as few batches as the
    /// socket buffer takes. The same prefix twice keeps the last timeout.
    /// A batch the kernel refuses is split until the failing elements are
    /// found (see `add_split`); they come back as refused. From
    /// [`BIG_BATCH`] bans on, the watcher (if any) is paused meanwhile.
    fn add(&mut self, bans: &[Ban]) -> Result<Vec<Refused>> {
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

    /// Opens a [`Monitor`] of `table` and has the kernel drop the events of
    /// this firewall's own socket before they reach it; keeps its [`Pauser`]
    /// for [`Firewall::add`]. Events of nftban's other sockets (none in the
    /// daemon) are still told apart by process id.
    fn watch(&mut self, table: &str) -> Result<Option<Box<dyn Watcher>>> {
        let monitor = Monitor::open(table)?;
        if let Ok(port) = self.sock.port() {
            if let Err(e) = monitor.ignore_port(port) {
                tracing::debug!(error = %e, "cannot filter nftban's own nf_tables events; they are told apart by process id");
            }
        }
        self.pauser = monitor.pauser().ok();
        Ok(Some(Box::new(monitor)))
    }

    fn take_unwatched(&mut self) -> bool {
        std::mem::take(&mut self.unwatched)
    }

    /// A second socket of its own, for the meter's thread.
    fn catches(&mut self, spec: &TableSpec) -> Result<Option<Box<dyn Catches>>> {
        let Some(meter) = spec.sip.clone() else { return Ok(None) };
        let mut nl = Netlink::open()?;
        nl.table = spec.table.clone();
        Ok(Some(Box::new(MeterCatches { nl, meter })))
    }

    /// DELSETELEM of each prefix's start and end elements. If the kernel
    /// says ENOENT (some element expired or was never there), every prefix
    /// is deleted on its own and ENOENT ignored.
    fn delete(&mut self, jail: &str, nets: &[IpNet]) -> Result<()> {
        let mut unique: BTreeMap<(String, bool), BTreeSet<IpNet>> = BTreeMap::new();
        for net in nets {
            let net = net.trunc();
            unique
                .entry((set_of(jail, &net), !crate::address::is_host(&net)))
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
            ops.extend(messages::element_ops(
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
                ops.extend(messages::element_ops(
                    &self.table,
                    set,
                    *interval,
                    Change::Delete,
                    items,
                ));
            }
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
                let want = sip::rule_count(meter);
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
            // Tests of the daemon check that this line never appears.
            tracing::debug!("listing the elements of set {} (a GETSETELEM dump)", d.name);
            let raw = self.raw_elements(&d.name, d.family)?;
            if d.interval {
                out.extend(dump::pair(d.family, raw));
            } else {
                out.extend(dump::hosts(d.family, raw));
            }
        }
        Ok(out)
    }

    fn batches(&self) -> u64 {
        self.sock.batches
    }

    /// Dump-and-delete over ctnetlink, see `conntrack.rs`.
    fn forget_connections(&mut self, nets: &[IpNet]) -> Result<usize> {
        // A dump walks every bucket of the conntrack hash (262,144 on a
        // common host) even when it holds nothing: skip it when the
        // network namespace tracks no connection at all.
        if self.conntrack_count.as_ref().and_then(conntrack::tracked) == Some(0) {
            return Ok(0);
        }
        conntrack::forget(&mut self.sock, nets).map_err(error)
    }

    /// A GETRULE dump of nftban's table (a few rules, never the sets): the
    /// counter of each rule that looks a set up, summed per set.
    fn counters(&mut self) -> Result<BTreeMap<String, Counter>> {
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
struct MeterCatches {
    nl: Netlink,
    meter: SipSpec,
}

impl Catches for MeterCatches {
    fn caught(&mut self) -> Result<Vec<Element>> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            let raw = self
                .nl
                .raw_elements(&sip_set_name(SipSetKind::Caught, family), family)?;
            for e in dump::hosts(family, raw) {
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
            if !set.starts_with(super::sip::SIP_SET_STEMS[2]) {
                continue;
            }
            for item in items {
                let ops = messages::element_ops(&table, &set, false, Change::Delete, &[item]);
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
