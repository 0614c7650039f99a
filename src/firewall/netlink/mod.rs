//! nf_tables over netlink: the [`Firewall`] the daemon runs with.
//!
//! Why this stack (see docs/firewall.md): netlink-packet-netfilter has
//! typed messages for everything nftban needs, including per-element
//! timeouts and interval-end flags, in pure Rust. What it leaves out, the
//! batch framing, acks and a fast dump reader, lives in `socket.rs` and
//! `dump.rs`; the requests themselves are built in `messages.rs` (table,
//! chains, sets, rules) and `elements.rs` (set elements), with the
//! kernel's numbers from [`abi`]. No `nft` process is ever spawned.
//!
//! This file holds the socket's state and the [`Firewall`] methods; the
//! work behind them is in `setup.rs` (the table made to match the
//! configuration, and the cheap checks), `bans.rs` (elements added,
//! deleted and listed) and `query.rs` (dumps and lookups, counters).

pub mod abi;
mod bans;
mod conntrack;
mod diff;
mod dump;
mod elements;
mod expr;
mod messages;
pub mod monitor;
mod query;
mod remove;
mod setup;
mod sip;
mod socket;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;

use ipnet::IpNet;

use self::bans::MeterCatches;
use self::monitor::{Monitor, Pauser};
pub use self::socket::event_socket;
use self::socket::{Failure, NfSocket};
use super::sip::SipSpec;
use super::{Ban, Catches, Counter, Element, Error, Firewall, PrefixSets, Refused, Result, TableSpec, Watcher};

/// Table used until [`Firewall::setup`] names another one.
const DEFAULT_TABLE: &str = "nftban";

/// From this many bans on, one [`Firewall::add`] runs with the watcher
/// paused: the kernel then skips building an event per element, which a
/// restore of many bans would otherwise pay for (docs/performance.md,
/// section "Restore with and without a listener"). Half a fleet peer's
/// largest batch, so that the batches of a peer's bulk ban (8,192 each)
/// pause too, as a command's chunks of 10,000 do; a pause costs one cheap
/// check of the table after it (docs/firewall.md).
pub const BIG_BATCH: usize = 4_096;

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
    /// The prefix lengths of the last setup, which say which set holds a
    /// prefix (the default layout before any).
    prefix_sets: PrefixSets,
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
            prefix_sets: PrefixSets::default(),
        })
    }

    /// Whether the set named `set` of this firewall's table holds `net`:
    /// one lookup, never a listing. For benchmarks and tests that watch a
    /// set fill without listening to nf_tables events (a listener makes the
    /// kernel build an event per element added, in the adder's time). A
    /// set that is not there holds nothing (the kernel's ENOENT either way).
    pub fn holds(&mut self, set: &str, net: &IpNet) -> Result<bool> {
        let table = self.table.clone();
        self.lookup(&table, set, net)
    }
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

impl Firewall for Netlink {
    /// One atomic batch that makes the table match `spec`, keeping the
    /// existing sets' elements (see `setup.rs`).
    fn setup(&mut self, spec: &TableSpec) -> Result<()> {
        self.setup_table(spec)
    }

    /// Batches of NEWSETELEM, split where the kernel refuses (see
    /// `bans.rs`); from [`BIG_BATCH`] bans on, with the watcher paused.
    fn add(&mut self, bans: &[Ban]) -> Result<Vec<Refused>> {
        self.add_bans(bans)
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
        nl.prefix_sets = spec.prefix_sets;
        Ok(Some(Box::new(MeterCatches::new(nl, meter))))
    }

    /// One batch of NEWSETELEM (no timeout) and DELSETELEM (see `diff.rs`).
    fn apply_diff(&mut self, jail: &str, add: &[IpNet], remove: &[IpNet]) -> Result<()> {
        self.diff_feed(jail, add, remove)
    }

    /// DELSETELEM of each prefix, ENOENT ignored (see `bans.rs`).
    fn delete(&mut self, jail: &str, nets: &[IpNet]) -> Result<()> {
        self.delete_bans(jail, nets)
    }

    /// Lookups of nftban's table only, never a set listing (see `setup.rs`).
    fn missing(&mut self, spec: &TableSpec, probes: &[(String, IpNet)]) -> Result<Vec<String>> {
        self.missing_parts(spec, probes)
    }

    /// GETSETELEM dumps of the jail's sets (see `bans.rs`).
    fn list(&mut self, jail: &str) -> Result<Vec<Element>> {
        self.list_jail(jail)
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

    /// A GETRULE dump of nftban's table, summed per set (see `query.rs`).
    fn counters(&mut self) -> Result<BTreeMap<String, Counter>> {
        self.read_counters()
    }
}
