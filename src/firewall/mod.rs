//! The firewall stage: turns ban decisions into nftables state in the kernel.
//!
//! nftban owns exactly one table (`table inet nftban` by default) and never
//! touches another. Per jail and family it keeps a hash set for single
//! addresses, `<jail>_v4` (flag `timeout`), a hash set per configured
//! prefix length looked up with the source masked, `<jail>_v4_24` (/24 by
//! default), and an interval set for other prefixes, `<jail>_v4_net` (flags
//! `interval,timeout`); likewise `_v6`, `_v6_64` and `_v6_net` ([`layout`]).
//! Every element
//! carries its own timeout: a ban expires in the kernel even when nftban is
//! stopped. One base chain per configured [`Hook`] (`input` by default;
//! `forward` for routed and container traffic; `prerouting` at raw priority,
//! before conntrack) has one rule per set: `ip saddr @<jail>_v4 counter drop`
//! (or `reject`).
//!
//! With `sip:` on, a chain `sip` in prerouting at raw priority meters new
//! SIP requests per source and has the kernel itself ban those over the
//! rate in small caught sets ([`sip`]); [`Firewall::catches`] hands out the
//! reader the daemon learns those bans with.
//!
//! Besides the sets, banning an address also removes its existing
//! conntrack entries ([`Firewall::forget_connections`]), so an ongoing flow
//! stops at once, and the rules' counters say how much each jail dropped
//! ([`Firewall::counters`]).
//!
//! Other tools can change nftban's table too (a firewall reload flushing
//! the whole ruleset would lift every ban): [`Firewall::watch`] hands out a
//! [`Watcher`] that reports their deletions, so the daemon can restore what
//! went. The backend keeps the watcher out of its own big batches and says
//! when it did ([`Firewall::take_unwatched`]), so the daemon needs to know
//! nothing of netlink.
//!
//! The [`Firewall`] trait is what the daemon talks to. [`netlink::Netlink`]
//! speaks nf_tables over netlink (see docs/firewall.md for why this stack),
//! [`memory::Memory`] keeps the same state in memory for tests and dry runs.
//! [`render_ruleset`] prints, in `nft` syntax, what [`Firewall::setup`]
//! creates, for `nftban ruleset` and for the docs.

mod layout;
pub mod memory;
pub mod netlink;
mod ruleset;
pub mod sip;

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;

pub use layout::PrefixSets;
pub(crate) use layout::{masked_length, set_name, SetDef, SetKind, MASKED_V4, MASKED_V6};
pub use ruleset::render_ruleset;

/// What to do with a packet from a banned source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Drop silently (the default): an attacker learns nothing.
    #[default]
    Drop,
    /// Reject: what plain `reject` is in an inet table, an ICMP (ICMPv6)
    /// port-unreachable, so the sender learns at once that it is refused.
    Reject,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Drop => "drop",
            Action::Reject => "reject",
        })
    }
}

/// Address family of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of an address or prefix.
    pub(crate) fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    /// Suffix of the set names: `v4` or `v6`.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
}

/// Where packets from banned sources are stopped: one base chain per hook,
/// named after it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// Before routing and before conntrack (raw priority, -300): a flood
    /// from a banned source never creates conntrack entries. Covers local
    /// and forwarded traffic alike.
    Prerouting,
    /// Traffic to this host (the default).
    Input,
    /// Routed traffic: containers, VMs, a router's clients. Docker's
    /// published ports are forwarded and never reach `input`.
    Forward,
}

impl Hook {
    /// Every hook, in the order chains are created and printed.
    pub const ALL: [Hook; 3] = [Hook::Prerouting, Hook::Input, Hook::Forward];

    /// Name of the base chain (the same word as the hook).
    pub fn chain(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
        }
    }

    /// Chain priority: input and forward run before the usual filter
    /// chains (0), so a banned source is dropped before another table
    /// accepts it; prerouting runs at raw priority, before conntrack
    /// (-200) sees the packet.
    pub(crate) fn priority(self) -> i32 {
        match self {
            Hook::Prerouting => -300,
            Hook::Input | Hook::Forward => -10,
        }
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.chain())
    }
}

/// Everything [`Firewall::setup`] needs to build the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Name of the `inet` table nftban owns.
    pub table: String,
    /// Verdict for banned sources.
    pub action: Action,
    /// Hooks that get a chain, each at most once, in [`Hook::ALL`] order.
    pub hooks: Vec<Hook>,
    /// Jail names, in config order; each gets its sets (six by default,
    /// see [`PrefixSets`]).
    pub jails: Vec<String>,
    /// The prefix lengths with a masked hash set of their own.
    pub prefix_sets: PrefixSets,
    /// The kernel meter for SIP floods (`sip:`), if on: its chain and sets
    /// (see [`sip`]).
    pub sip: Option<sip::SipSpec>,
}

/// One ban to put into the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub jail: String,
    /// A single address is a /32 or /128.
    pub net: IpNet,
    /// The element's own timeout: when the kernel drops it by itself.
    pub timeout: Duration,
}

/// An element found in one of nftban's sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub net: IpNet,
    /// Time left before the kernel drops it; `None` if it has no timeout.
    pub expires_in: Option<Duration>,
}

/// Packets and bytes a rule (or several, summed) has matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// A ban the kernel refused while the others of its batch went in.
#[derive(Debug)]
pub struct Refused {
    pub ban: Ban,
    pub error: Error,
}

/// What can go wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel has no nf_tables (module missing or not built in).
    #[error(
        "nf_tables is not available in this kernel: load the nf_tables module (modprobe nf_tables) or use a kernel with CONFIG_NF_TABLES ({0})"
    )]
    NotSupported(#[source] std::io::Error),
    /// The process lacks CAP_NET_ADMIN in its network namespace.
    #[error(
        "permission denied talking to nf_tables: nftban needs CAP_NET_ADMIN (run as root or grant the capability)"
    )]
    PermissionDenied,
    /// The kernel refused a request; `what` says which. The errno is part
    /// of the message, since logs and control answers print the message
    /// alone; it is not also the `#[source]`, which chain printers (`{:#}`)
    /// would then print a second time.
    #[error("kernel refused to {what}: {error}")]
    Kernel { what: String, error: std::io::Error },
    /// The netlink socket itself failed.
    #[error("netlink socket error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What the watcher of nftban's table reports (see [`Watcher`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Another process deleted parts of nftban's table.
    Changed {
        /// What went, in words: `table inet nftban deleted`, `3 elements
        /// deleted from set sshd_v4`.
        what: Vec<String>,
        /// The process that did it (from the kernel's end-of-transaction
        /// event).
        pid: u32,
        process: String,
    },
    /// Events were lost (the kernel's queue overflowed): the table must be
    /// checked (see [`Firewall::missing`]).
    Lost,
}

/// Reads nf_tables events about nftban's table made by other processes;
/// runs on its own thread, so the daemon can heal the table when another
/// tool (a firewall reload's `nft flush ruleset`, say) deletes parts of it.
pub trait Watcher: Send {
    /// Wait for the next change another process made to the table, or for
    /// lost events. `Ok(None)` when about a second passed without either,
    /// so the thread can check whether it should stop.
    fn wait(&mut self) -> Result<Option<Notice>>;
}

/// Reads what the kernel meter for SIP floods caught (see [`sip`]): the
/// kernel adds offenders to its small caught sets from the packet path and
/// announces nothing, so the meter's origin of bans reads them on its own
/// thread, about every [`sip::CAUGHT_POLL`].
pub trait Catches: Send {
    /// The sources in the caught sets: each as the ban it stands for (an
    /// IPv4 address, an IPv6 prefix of the meter's length), with time left.
    fn caught(&mut self) -> Result<Vec<Element>>;

    /// Take sources out of the caught sets, once they are banned in the
    /// jail's own sets. One that is not there is no error.
    fn release(&mut self, nets: &[IpNet]) -> Result<()>;
}

/// The kernel side of nftban. Implemented over netlink for real use and in
/// memory for tests.
pub trait Firewall: Send {
    /// Create the table, sets, chain and rules, or adopt them if they exist.
    /// Existing set elements (bans from an earlier run) are kept. Sets of
    /// jails that are no longer in `spec` are removed. Rules are replaced
    /// atomically, so repeated calls never duplicate them.
    fn setup(&mut self, spec: &TableSpec) -> Result<()>;

    /// Add bans; each element gets its own timeout. Adding an element that
    /// already exists refreshes its timeout and is not an error. One element
    /// the kernel refuses (a full set, say) does not keep the others out:
    /// it comes back in the list of refused bans. `Err` means none went in
    /// (no table, no permission, a broken socket).
    fn add(&mut self, bans: &[Ban]) -> Result<Vec<Refused>>;

    /// Remove elements from a jail's sets. An element that is not there
    /// (already expired) is not an error. For the jail of the SIP meter,
    /// also from the meter's caught sets and from the meter itself (so an
    /// unbanned source starts with a full bucket).
    fn delete(&mut self, jail: &str, nets: &[IpNet]) -> Result<()>;

    /// Apply one refresh of a blocklist feed to the sets of `jail` (a
    /// feed's own sets, see `daemon::origin::feed`): `add` goes in without
    /// a timeout (a feed entry lasts while the feed lists it), `remove`
    /// comes out, both in ONE kernel transaction, so no packet ever meets
    /// the sets halfway, and entries kept from the last refresh are never
    /// touched (no moment in which they pass). Adds come before removals in
    /// the batch. An element to remove that is already gone is no error.
    /// The default (for firewalls of tests that have no feeds) refuses.
    fn apply_diff(&mut self, jail: &str, add: &[IpNet], remove: &[IpNet]) -> Result<()> {
        let _ = (add, remove);
        Err(Error::Io(std::io::Error::other(format!(
            "this firewall cannot hold the feed sets of {jail}"
        ))))
    }

    /// List a jail's elements with their remaining time. The daemon never
    /// calls it for a jail (a set of a million elements takes over a minute
    /// to list; nftban keeps its own record in the ban history instead),
    /// only for a blocklist feed's own sets, once per start: it is for
    /// that, `nftban demo`, tests and benchmarks.
    fn list(&mut self, jail: &str) -> Result<Vec<Element>>;

    /// Remove the conntrack entries whose original source lies in one of
    /// `nets`, so flows that began before the ban stop at once. Returns how
    /// many entries went. Entries that vanish meanwhile are not an error.
    fn forget_connections(&mut self, nets: &[IpNet]) -> Result<usize>;

    /// Packet and byte counters of the rules, summed per set name over
    /// every hook. Read from nftban's chains only (never the sets).
    fn counters(&mut self) -> Result<BTreeMap<String, Counter>>;

    /// What of `spec` is missing from the kernel, in words (empty if
    /// nothing): the table, chain, sets, rules, and any of the `probes`
    /// (jail, banned prefix) whose element is gone. Cheap, never lists a
    /// set: used after nf_tables events were lost, to decide whether to heal.
    fn missing(&mut self, spec: &TableSpec, probes: &[(String, IpNet)]) -> Result<Vec<String>>;

    /// How many batches the kernel has applied since open: the daemon logs
    /// how many a restore took.
    fn batches(&self) -> u64 {
        0
    }

    /// Start watching `table` for other processes' changes (subscribe
    /// before setup so nothing is missed). The firewall filters out its own
    /// events and, from then on, pauses the watcher by itself during its own
    /// big batches (where the kernel would otherwise build one event per
    /// element for it). `Ok(None)`: this firewall cannot watch.
    fn watch(&mut self, table: &str) -> Result<Option<Box<dyn Watcher>>> {
        let _ = table;
        Ok(None)
    }

    /// A reader of what the kernel meter of `spec` catches, to run on
    /// another thread (its own socket). `Ok(None)`: `spec` has no meter.
    fn catches(&mut self, spec: &TableSpec) -> Result<Option<Box<dyn Catches>>> {
        let _ = spec;
        Ok(None)
    }

    /// Whether some of the firewall's own changes ran with the watcher
    /// paused since the last call (other tools' changes in that window went
    /// unseen, so the caller should check the table). Resets it.
    fn take_unwatched(&mut self) -> bool {
        false
    }
}

/// The kernel backend, over netlink. Errors say whether nf_tables is
/// missing or the process lacks CAP_NET_ADMIN (docs/faq.md row 2).
pub fn open_kernel() -> Result<Box<dyn Firewall>> {
    Ok(Box::new(netlink::Netlink::open()?))
}
