//! What nftban reports: the status of its jails and sources, and the
//! results of `ban` and `unban`.
//!
//! The engine and the sources build these; the control protocol carries
//! them as they are and the CLI prints them (for people, or as JSON with
//! `--json`). Their JSON field names are a stable contract that scripts
//! rely on (docs/cli.md): add fields, never rename or remove one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One banned address or prefix and its remaining time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banned {
    /// Address, or prefix in CIDR form (`198.51.100.0/24`).
    pub ip: String,
    /// Seconds until the kernel lifts the ban.
    pub expires_in: u64,
    /// Why, when it is not the jail's usual rule: `escalated: 3 addresses
    /// in 2001:db8:1:2::/64` for an IPv6 escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One source of a jail, and why it may be silent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub path: String,
    /// `starting`, `missing`, `unreadable`, `reading`, `no_match` (a glob
    /// pattern that matches no file yet) or `closed` (stdin at its end).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub lines: u64,
    pub matched: u64,
    /// Matched lines dated before their jail's `findtime`: not counted.
    /// Missing from an older daemon's answer: 0.
    #[serde(default)]
    pub too_old: u64,
    pub truncated: u64,
    pub invalid_utf8: u64,
    /// Seconds since a line last matched.
    pub last_match_ago: Option<u64>,
    /// In plain words: why this source has given no ban, or that it is fine.
    pub diagnosis: String,
    /// For a glob pattern: each file it matches now, with its own figures
    /// (the pattern's figures are their sums, including files it no
    /// longer matches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SourceStatus>,
}

/// `nftban status JAIL --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailStatus {
    pub name: String,
    pub ruleset: String,
    pub files: Vec<String>,
    pub journal: Vec<String>,
    pub currently_failed: u64,
    pub total_failed: u64,
    /// Failures matched but not counted since start, by why (absent when
    /// none, and from an older daemon's answer).
    #[serde(default, skip_serializing_if = "NotCounted::is_empty")]
    pub not_counted: NotCounted,
    pub currently_banned: u64,
    pub total_banned: u64,
    /// `total_banned` by origin, under the names the ban history gives
    /// them: `auto` (the jail's rules, and the prefixes they capture),
    /// `manual` (`nftban ban`), `escalated` (IPv6 escalation), `kernel
    /// meter` (the SIP kernel meter). Origins without a ban are left out.
    /// Missing from an older daemon's answer: empty.
    #[serde(default)]
    pub bans_by_origin: BTreeMap<String, u64>,
    /// Bans lifted by hand since start.
    pub total_unbanned: u64,
    pub banned: Vec<Banned>,
    /// Packets dropped (or rejected) by this jail's rules, summed over both
    /// families and every hook, since the rules were last set up.
    #[serde(default)]
    pub packets: u64,
    /// Bytes of those packets.
    #[serde(default)]
    pub bytes: u64,
    /// Bans of this jail the kernel refused (e.g. a full set) since start.
    #[serde(default)]
    pub kernel_errors: u64,
    pub findtime: u64,
    pub maxretry: u32,
    pub bantime: u64,
    /// Addresses whose failures were forgotten because of `max_tracked`.
    pub evicted: u64,
    pub sources: Vec<SourceStatus>,
    /// Lines whose host was a name instead of an address, and what became
    /// of them: absent when the jail has `usedns: no` and met no name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<NameStatus>,
}

/// A jail's failures that matched but were not counted, since start: the
/// answer to "the lines match, why is nothing banned?".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NotCounted {
    /// From an address of the jail's `ignoreip`.
    pub ignoreip: u64,
    /// From an address nftban never bans (loopback, multicast, ...).
    pub never_banned: u64,
    /// Lines dated before `findtime` (summed over the jail's sources).
    pub too_old: u64,
}

impl NotCounted {
    pub fn is_empty(&self) -> bool {
        *self == NotCounted::default()
    }
}

/// A jail's lines that named a host (`usedns:`, docs/config.md), since
/// start. Counted in lines: a name on ten lines counts ten.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NameStatus {
    /// The jail resolves names (`usedns: yes`).
    pub usedns: bool,
    /// Lines whose host was a name (with `usedns: no`, none banned anyone).
    pub names: u64,
    /// Lookups started (system resolver) for this jail's lines.
    pub lookups: u64,
    /// Lines answered from the resolver's cache.
    pub cache_hits: u64,
    /// Lines whose name gave addresses: each address got the failure.
    pub resolved: u64,
    /// Lines whose name gave no address.
    pub unresolved: u64,
    /// Lines dropped because their name's lookup took too long.
    pub timeouts: u64,
    /// Lines dropped because too many lines were waiting for lookups.
    pub dropped: u64,
}

/// `nftban status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub jails: Vec<JailStatus>,
    /// Bans the kernel refused and other failed kernel requests (conntrack
    /// removal, replacing contained bans) since start, all jails.
    #[serde(default)]
    pub kernel_errors: u64,
    /// Ban history writes that failed since start (e.g. disk full); each
    /// retry that fails counts again.
    #[serde(default)]
    pub history_errors: u64,
    /// Ban history records (bans, unbans) not written yet because writing
    /// fails: kept in memory and written again about once a second. Lost
    /// if the daemon stops before.
    #[serde(default)]
    pub history_waiting: u64,
    /// Records dropped since start because too many waited (the oldest
    /// bans first): those bans are not restored after a restart.
    #[serde(default)]
    pub history_dropped: u64,
    /// The addresses banned most often since the daemon started, all jails
    /// together (recidive included), most first: at most
    /// [`TOP_OFFENDERS`]. Missing from an older daemon's answer: empty.
    #[serde(default)]
    pub most_banned: Vec<Offender>,
    /// The addresses with the most failures within findtime and no ban now
    /// (what `currently_failed` counts), all jails together, most first: at
    /// most [`TOP_OFFENDERS`].
    #[serde(default)]
    pub most_failed: Vec<Offender>,
    /// Bans shared with other nodes over NATS JetStream (`fleet:`),
    /// absent when the config has no fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetStatus>,
    /// Blocklists (`feeds:`), in name order; absent when the config has
    /// none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<FeedStatus>,
}

/// One blocklist feed in `status` (docs/feeds.md).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FeedStatus {
    pub name: String,
    /// `feed:<name>`: how `status` and the logs name what the feed blocks.
    pub origin: String,
    /// The jail whose `ignoreip` binds it.
    pub jail: String,
    /// The file, or the URL as configured (`{key}`, never the key).
    pub source: String,
    /// `plain`, `netset`, `drop` or `apiban`.
    pub format: String,
    /// Seconds between refreshes (after the polite minimum).
    pub refresh: u64,
    /// `starting` (nothing loaded yet), `ok`, or `failing` (the last
    /// refresh failed: the previous list stays).
    pub state: String,
    /// Entries in the kernel now.
    pub entries: u64,
    /// Entries of the list skipped, by reason: `loopback`, `own address`,
    /// `ignoreip`, `private`, `never banned`.
    pub skipped: BTreeMap<String, u64>,
    /// Entries merged into another (the same twice, or inside a prefix).
    pub merged: u64,
    /// Unix time of the last refresh tried, and of the last that worked.
    pub last_refresh: Option<u64>,
    pub last_success: Option<u64>,
    /// Unix time of the next refresh.
    pub next_refresh: Option<u64>,
    /// Why the last refresh failed (the feed, the line, the HTTP status);
    /// `None` once one works again.
    pub last_error: Option<String>,
    /// Refreshes since start by result: `ok` (applied), `unchanged` (HTTP
    /// 304, or the same list), `error`.
    pub refreshes: BTreeMap<String, u64>,
    /// Packets and bytes the feed's sets dropped (or rejected), every hook.
    pub packets: u64,
    pub bytes: u64,
}

/// How many addresses `most_banned` and `most_failed` list.
pub const TOP_OFFENDERS: usize = 5;

/// An address among the top offenders of `status`: how often it was banned
/// and how many of its failures count now, whichever list it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offender {
    /// Address, or prefix in CIDR form.
    pub ip: String,
    /// Its bans since the daemon started, all jails.
    pub bans: u64,
    /// Its failures within findtime now, all jails but recidive; 0 while a
    /// ban holds it.
    pub failures: u64,
}

/// `status.fleet`: this node's part in a fleet (docs/fleet.md). Counts are
/// since start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FleetStatus {
    /// This node's name, as its peers see it (`fleet:<node>`).
    pub node: String,
    /// `connected`, `connecting` (never connected yet) or `disconnected`.
    pub state: String,
    /// The last connection or publishing error, while not connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The JetStream stream the fleet shares.
    pub stream: String,
    /// This node's bans and unbans the stream stored.
    pub published: u64,
    /// Publishes the stream already held (same `Nats-Msg-Id`: a retry, or
    /// a ban told again after a restart): stored once.
    pub duplicates: u64,
    /// This node's decisions not published yet (NATS unreachable): sent
    /// when it is back.
    pub waiting: u64,
    /// Peers' messages read from the stream (catch-up included).
    pub received: u64,
    /// Peers' bans handed to the jails (a ban already running as long is
    /// then counted as covered by the jail, not banned again).
    pub applied: u64,
    /// Peers' unbans handed to the jails.
    pub lifted: u64,
    /// Peers' bans that had ended already (catch-up): skipped.
    pub expired: u64,
    /// Whether the catch-up from the stream is done: every message stored
    /// before this node connected has been read.
    pub caught_up: bool,
    /// Peers' bans refused, by why: `ignoreip`, `never banned`, `too wide`
    /// (a prefix wider than the limit, the world included), `rate` (the
    /// peer's rate limit), `jail` (a jail that does not accept fleet bans),
    /// `malformed` (not a message of a known version).
    pub refused: BTreeMap<String, u64>,
    /// The limits on what peers may ban here.
    pub limits: FleetLimits,
}

/// `status.fleet.limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FleetLimits {
    /// IPv4 prefixes wider than this (shorter) are refused.
    pub ipv4_prefix: u8,
    /// IPv6 prefixes wider than this are refused.
    pub ipv6_prefix: u8,
    /// Bans one peer may publish, sustained (`N/second`, `N/minute`).
    pub rate: String,
    /// Bans one peer may publish at once, beyond the rate.
    pub burst: u32,
}

/// Result of a ban request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BanResult {
    pub jail: String,
    pub banned: Vec<Banned>,
    /// Addresses already covered by a wider banned prefix.
    pub already_covered: Vec<String>,
    /// Bans the kernel refused (`address: reason`); the others went in.
    #[serde(default)]
    pub failed: Vec<String>,
}

/// Result of an unban request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UnbanResult {
    /// (address, jail) pairs lifted.
    pub unbanned: Vec<(String, String)>,
    /// Addresses found in no jail, or still inside a banned prefix after
    /// their own ban was lifted, with the reason.
    pub not_banned: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bans_by_origin` goes out and comes back as it was, keyed by the
    /// history's names of origins; an older daemon's answer without it
    /// still parses, as empty.
    #[test]
    fn bans_by_origin_round_trips_and_may_be_missing() {
        let text = r#"{"name": "asterisk", "ruleset": "asterisk", "files": [], "journal": [],
            "currently_failed": 0, "total_failed": 3, "currently_banned": 2, "total_banned": 2,
            "total_unbanned": 0, "banned": [], "findtime": 600, "maxretry": 3, "bantime": 3600,
            "evicted": 0, "sources": []}"#;
        let mut st: JailStatus = serde_json::from_str(text).unwrap();
        assert!(st.bans_by_origin.is_empty());
        st.bans_by_origin = BTreeMap::from([("auto".into(), 1), ("kernel meter".into(), 1)]);
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(
            json["bans_by_origin"],
            serde_json::json!({"auto": 1, "kernel meter": 1})
        );
        let back: JailStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, st);
    }
}
