//! One jail's live state inside the engine: its failure windows, its
//! running bans and its counters.

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;

use super::bans::Bans;
use super::counts::BanCounts;
use crate::address::AddrMap;
use crate::config::{EscalationConfig, IncrementConfig, Jail};
use crate::daemon::resolve::NameStats;
use crate::sources::SourceStats;
use crate::store::Origin;
use crate::tracker::{Policy, Tracker};

/// One jail's live state.
pub(super) struct JailState {
    pub(super) name: String,
    pub(super) ruleset: String,
    pub(super) files: Vec<String>,
    pub(super) journal: Vec<String>,
    pub(super) tracker: Tracker,
    /// Banned addresses/prefixes and when their kernel timeout ends.
    pub(super) bans: Bans,
    pub(super) total_banned: u64,
    /// `total_banned` by origin (none at 0), for `status` and the metrics.
    pub(super) bans_by_origin: BTreeMap<Origin, u64>,
    pub(super) total_unbanned: u64,
    /// Failures not counted since start: from an address of `ignoreip`,
    /// or one nftban never bans (loopback, ...), for `status`.
    pub(super) ignored: u64,
    pub(super) never_banned: u64,
    /// Bans of this jail the kernel refused (a full set, say).
    pub(super) kernel_errors: u64,
    /// The sources the daemon reads for this jail, in config order (files,
    /// journal, stdin), for `status`.
    pub(super) sources: Vec<Arc<SourceStats>>,
    /// Longer bans for repeat offenders.
    pub(super) increment: Option<IncrementConfig>,
    /// Ban an IPv6 prefix once enough of its addresses are banned.
    pub(super) escalation: Option<EscalationConfig>,
    /// Why a ban was made, for the bans whose jail rule does not say it
    /// (escalated prefixes); shown by `status`.
    /// One text shared by the bans of a request (a feed's, a fleet peer's
    /// batch), not a copy per ban.
    pub(super) reasons: AddrMap<IpNet, Arc<str>>,
    /// Bans per address since start (bounded: `counts.rs`), for `status`
    /// and, when there is no history to ask, the increment.
    pub(super) times_banned: BanCounts,
    /// The jail's lines that named a host, and whether it resolves them
    /// (`usedns`), for `status`.
    pub(super) names: Option<(Arc<NameStats>, bool)>,
}

impl JailState {
    /// A jail without sources: `recidive` and `manual`, and the base of
    /// [`JailState::of`].
    pub(super) fn new(name: &str, policy: Policy) -> JailState {
        JailState {
            name: name.into(),
            ruleset: "-".into(),
            files: Vec::new(),
            journal: Vec::new(),
            tracker: Tracker::new(policy),
            bans: Bans::default(),
            total_banned: 0,
            bans_by_origin: BTreeMap::new(),
            total_unbanned: 0,
            ignored: 0,
            never_banned: 0,
            kernel_errors: 0,
            sources: Vec::new(),
            increment: None,
            escalation: None,
            reasons: AddrMap::default(),
            times_banned: BanCounts::default(),
            names: None,
        }
    }

    /// A configured jail.
    pub(super) fn of(jail: &Jail) -> JailState {
        let policy = Policy {
            findtime: jail.findtime,
            maxretry: jail.maxretry,
            bantime: jail.bantime,
            ignoreip: jail.ignoreip.clone(),
            max_tracked: jail.max_tracked,
        };
        JailState {
            ruleset: jail.ruleset.clone(),
            files: jail.files.iter().map(|f| f.display().to_string()).collect(),
            journal: jail.journal.clone(),
            increment: jail.increment,
            escalation: jail.escalation,
            ..JailState::new(&jail.name, policy)
        }
    }

    /// Count bans of `origin` decided now, for `status`, the metrics and
    /// the bantime increment: the totals once for all of them.
    pub(super) fn count_bans(&mut self, nets: impl IntoIterator<Item = IpNet>, origin: Origin) {
        let mut n = 0;
        for net in nets {
            self.times_banned.add(net);
            n += 1;
        }
        if n > 0 {
            self.total_banned += n;
            *self.bans_by_origin.entry(origin).or_default() += n;
        }
    }

    /// A ban that did not reach the kernel: out of the record and, if it
    /// was counted (`counted`: as a ban of that origin), out of the counts,
    /// as if it had not been decided. A ban put back (restored at start,
    /// or after a refused prefix) was not counted.
    pub(super) fn drop_refused(&mut self, net: &IpNet, counted: Option<Origin>) {
        self.bans.remove(net);
        self.reasons.remove(net);
        self.kernel_errors += 1;
        let Some(origin) = counted else { return };
        self.total_banned = self.total_banned.saturating_sub(1);
        if let Some(n) = self.bans_by_origin.get_mut(&origin) {
            *n -= 1;
            if *n == 0 {
                self.bans_by_origin.remove(&origin);
            }
        }
    }
}
