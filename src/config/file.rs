//! The config file's shape, as serde reads it: one struct per section,
//! every unknown key an error (`deny_unknown_fields`), every field
//! documented, which is also where `docs/config.schema.json` takes its
//! descriptions from (schemars). Validation into a [`super::Config`] is
//! the parent module's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::Dur;
use crate::firewall::{Action, Hook};

/// What an `ignoreip` entry looks like (the parser decides the rest).
const ADDRESS_PATTERN: &str = r"^\s*\[?[0-9A-Fa-f:.]+\]?(/[0-9]{1,3})?\s*$";
/// Jail and table names: they become nftables names (`<jail>_v4`).
const NAME_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_-]{0,59}$";

/// nftban's configuration (/etc/nftban/nftban.yaml; docs/config.md).
/// Unknown keys are errors.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nftban configuration")]
pub struct FileConfig {
    /// Control socket for `nftban status`, `ban`, `unban`, created with
    /// mode 0600 (default /run/nftban/nftban.sock).
    pub socket: Option<PathBuf>,
    /// Ban history database, SQLite (default /var/lib/nftban/nftban.db):
    /// running bans are restored from it at start.
    pub database: Option<PathBuf>,
    /// How long ban history is kept after a ban ends (default 30d).
    pub history_keep: Option<Dur>,
    /// Where logs go and how much.
    #[serde(default)]
    pub log: LogConfig,
    /// The kernel table nftban owns, what it does to banned sources and
    /// where.
    #[serde(default)]
    pub nftables: NftablesConfig,
    /// Values every jail inherits unless it sets its own.
    #[serde(default)]
    pub defaults: DefaultsConfig,
    /// Jails by name. A name is a letter, then letters, digits, `_`, `-`
    /// (it becomes the set names NAME_v4, NAME_v6); `manual` is reserved.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"pattern": NAME_PATTERN}))]
    pub jails: BTreeMap<String, JailConfig>,
    /// Longer bans for addresses banned again and again, across jails.
    pub recidive: Option<RecidiveConfig>,
    /// Prometheus endpoint; off unless given.
    pub metrics: Option<MetricsConfig>,
    /// Every ban, unban and expiry as JSON lines to a file and/or a Unix
    /// socket, for SIEMs and chat-ops (the events of `nftban events`).
    #[serde(default)]
    pub events: EventsConfig,
    /// SIP floods stopped in the kernel: per-source meters whose offenders
    /// the kernel itself bans (docs/config.md, `sip:`). `sip: {}` turns it
    /// on with the defaults.
    pub sip: Option<SipConfig>,
    /// Bans shared with other nftban nodes over NATS JetStream
    /// (docs/fleet.md): this node's bans published, its peers' applied.
    pub fleet: Option<FleetConfig>,
    /// Blocklists by name (docs/feeds.md): APIBAN, FireHOL, Spamhaus DROP,
    /// lists of one's own, each refreshed as one kernel transaction into
    /// sets of its own. A name is a letter, then letters, digits, `_`, `-`.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"pattern": NAME_PATTERN}))]
    pub feeds: BTreeMap<String, super::FeedConfig>,
}

/// `fleet:` — a fleet of nodes that ban together over NATS JetStream.
#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The NATS servers (one, or the servers of a cluster):
    /// `nats://host:4222`, `tls://host:4222` or `host:port`.
    #[schemars(length(min = 1))]
    pub servers: Vec<String>,
    /// This node's name in the fleet: 1 to 64 letters, digits, `_`, `-`
    /// (default: the host name, other characters made `-`). Its bans
    /// show on its peers with origin `fleet:<node>`.
    #[schemars(pattern(r"^[A-Za-z0-9_-]{1,64}$"))]
    pub node: Option<String>,
    /// Credentials for the NATS servers; at most one kind.
    #[serde(default)]
    pub auth: FleetAuth,
    /// TLS to the NATS servers.
    pub tls: Option<FleetTls>,
    /// The JetStream stream the fleet shares (default `NFTBAN`), made by
    /// the first node that finds it missing.
    #[schemars(pattern(r"^[A-Za-z0-9_-]{1,64}$"))]
    pub stream: Option<String>,
    /// The first token of the fleet's subjects (default `nftban`): a node
    /// publishes on `<prefix>.<node>.<jail>`.
    #[schemars(pattern(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"))]
    pub subject_prefix: Option<String>,
    /// The jails whose bans (and unbans) this node publishes (default:
    /// every jail, `manual` included).
    pub publish: Option<Vec<String>>,
    /// The jails that take the peers' bans of the same jail (default:
    /// every jail). A peer's ban of a jail not listed is refused.
    pub accept: Option<Vec<String>>,
    /// How long the stream keeps a message (default: the longest bantime
    /// of the config, so a node that starts catches up on every running
    /// ban). Also the window in which the stream drops a message it
    /// already holds (`Nats-Msg-Id`).
    pub retention: Option<Dur>,
    /// Copies of the stream in a NATS cluster (default 1; 3 in a cluster
    /// of three servers keeps every ban through the loss of one).
    #[schemars(range(min = 1, max = 5))]
    pub replicas: Option<u8>,
    /// Limits on what peers may ban here.
    #[serde(default)]
    pub limits: FleetLimitsConfig,
}

/// `fleet.auth:` — user and password, a token, an NKey seed file or a
/// creds file (JWT and NKey), as the NATS servers ask.
#[derive(Debug, Deserialize, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetAuth {
    /// User name, with `password`.
    pub user: Option<String>,
    /// Password, with `user`.
    pub password: Option<String>,
    /// A token.
    pub token: Option<String>,
    /// A file holding an NKey seed (`SU...`), read at start.
    pub nkey_file: Option<PathBuf>,
    /// A NATS creds file (a user JWT and its NKey seed), read at start.
    pub creds_file: Option<PathBuf>,
}

/// `fleet.tls:` — TLS to the NATS servers.
#[derive(Debug, Deserialize, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetTls {
    /// PEM file of the CAs the servers' certificates are checked against
    /// (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate for mutual TLS, with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// `fleet.limits:` — what a peer may make this node ban.
#[derive(Debug, Deserialize, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetLimitsConfig {
    /// IPv4 prefixes wider than `/N` from a peer are refused (default 24;
    /// `0.0.0.0/0` is refused whatever this says).
    #[schemars(range(min = 1, max = 32))]
    pub ipv4_prefix: Option<u8>,
    /// IPv6 prefixes wider than `/N` from a peer are refused (default 48;
    /// `::/0` is refused whatever this says).
    #[schemars(range(min = 1, max = 128))]
    pub ipv6_prefix: Option<u8>,
    /// Bans one peer may make here, sustained: `N/second` or `N/minute`
    /// (default 100/second); counted on the stream's own time stamps, so a
    /// catch-up judges them as they came.
    #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(second|minute)\s*$"))]
    pub rate: Option<String>,
    /// Bans one peer may make at once, beyond the rate (default 10000).
    #[schemars(range(min = 1))]
    pub burst: Option<u32>,
}

/// `sip:` — the kernel meter for SIP floods: a source sending new SIP
/// requests over `rate` is added by the kernel itself to a ban set and
/// dropped, before conntrack and before the SIP server sees a packet; the
/// daemon then makes it a ban of `jail` (origin `kernel meter`).
#[derive(Debug, Deserialize, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// The jail the kernel's bans belong to (its sets, its `ignoreip`, its
    /// bantime). At the top level only (a jail's own `sip:` names it).
    /// Default: the jail named `sip`, made (with no log source) if the
    /// config has none.
    #[schemars(pattern(NAME_PATTERN))]
    pub jail: Option<String>,
    /// The ports metered (default UDP 5060, TCP 5060, TLS 5061).
    pub ports: Option<SipPorts>,
    /// New SIP requests per source over which it is banned: `N/second` or
    /// `N/minute` (default 20/second).
    #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(second|minute)\s*$"))]
    pub rate: Option<String>,
    /// Requests a source may send at once before the rate applies
    /// (default twice the rate's N).
    #[schemars(range(min = 1))]
    pub burst: Option<u32>,
    /// Length of the kernel's bans (default: the jail's bantime).
    pub bantime: Option<Dur>,
    /// IPv6 sources are metered and banned per prefix of this length, 1
    /// to 128 (default 64; 128: per address).
    #[schemars(range(min = 1, max = 128))]
    pub ipv6_prefix: Option<u8>,
    /// Sources each meter (and each set of caught sources) holds at once,
    /// per address family (default 65536).
    #[schemars(range(min = 1, max = 16_777_216))]
    pub size: Option<u32>,
}

/// `sip.ports:` — a list given replaces its default; `[]` meters none of
/// that transport.
#[derive(Debug, Deserialize, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SipPorts {
    /// UDP ports (default [5060]).
    #[schemars(inner(range(min = 1)))]
    pub udp: Option<Vec<u16>>,
    /// TCP ports (default [5060]); new connections and requests (SYN or PSH segments) are metered.
    #[schemars(inner(range(min = 1)))]
    pub tcp: Option<Vec<u16>>,
    /// SIP over TLS ports (default [5061]); metered as TCP.
    #[schemars(inner(range(min = 1)))]
    pub tls: Option<Vec<u16>>,
}

/// `log:` — where logs go and how much.
#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `stderr` (the journal, under systemd), `journald`, `syslog` or an
    /// absolute file path.
    #[serde(default = "default_log_target")]
    #[schemars(pattern("^(stderr|journald|syslog|/.*)$"))]
    pub target: String,
    /// `error`, `warn`, `info`, `debug` or `trace` (`$NFTBAN_LOG`
    /// overrides).
    #[serde(default = "default_log_level")]
    #[schemars(extend("enum" = ["error", "warn", "info", "debug", "trace"]))]
    pub level: String,
}

fn default_log_target() -> String {
    "stderr".into()
}
fn default_log_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            target: default_log_target(),
            level: default_log_level(),
        }
    }
}

/// `nftables:` — the table nftban owns, the verdict for banned sources
/// and the hooks where it applies.
#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NftablesConfig {
    /// Name of the `inet` table nftban owns.
    #[serde(default = "default_table")]
    #[schemars(pattern(NAME_PATTERN))]
    pub table: String,
    /// What happens to packets from banned sources.
    #[serde(default)]
    pub action: Action,
    /// Where packets are dropped: `input` (traffic to this host),
    /// `forward` (routed traffic: containers, VMs), `prerouting` (raw
    /// priority, before conntrack). One chain per hook, each hook at most
    /// once.
    #[serde(default = "default_hooks")]
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub hooks: Vec<Hook>,
    /// The prefix lengths that get a hash set of their own in every jail
    /// (looked up with the source masked to the length): a prefix of such
    /// a length is banned and lifted in microseconds whatever the set
    /// holds; one of any other length goes to the jail's interval set,
    /// milliseconds at 100,000 prefixes. Each length is one more rule per
    /// jail and hook. Default: /24 and /64.
    #[serde(default)]
    pub prefix_sets: PrefixSetsConfig,
}

/// `nftables.prefix_sets:` — per family, the prefix lengths with a masked
/// hash set of their own.
#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefixSetsConfig {
    /// IPv4 lengths, 1 to 31 (default `[24]`).
    #[serde(default = "default_masked_v4")]
    #[schemars(extend("uniqueItems" = true))]
    pub ipv4: Vec<u8>,
    /// IPv6 lengths, 1 to 127 (default `[64]`).
    #[serde(default = "default_masked_v6")]
    #[schemars(extend("uniqueItems" = true))]
    pub ipv6: Vec<u8>,
}

fn default_masked_v4() -> Vec<u8> {
    vec![crate::firewall::MASKED_V4]
}

fn default_masked_v6() -> Vec<u8> {
    vec![crate::firewall::MASKED_V6]
}

impl Default for PrefixSetsConfig {
    fn default() -> Self {
        PrefixSetsConfig {
            ipv4: default_masked_v4(),
            ipv6: default_masked_v6(),
        }
    }
}

fn default_table() -> String {
    "nftban".into()
}

fn default_hooks() -> Vec<Hook> {
    vec![Hook::Input]
}

impl Default for NftablesConfig {
    fn default() -> Self {
        NftablesConfig {
            table: default_table(),
            action: Action::Drop,
            hooks: default_hooks(),
            prefix_sets: PrefixSetsConfig::default(),
        }
    }
}

/// `defaults:` — fail2ban's `[DEFAULT]`: what every jail inherits.
#[derive(Debug, Deserialize, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultsConfig {
    /// Window in which failures are counted (default 10m).
    pub findtime: Option<Dur>,
    /// Failures within `findtime` that earn a ban (default 5).
    #[schemars(range(min = 1))]
    pub maxretry: Option<u32>,
    /// Ban length (default 1h); also the `manual` jail's.
    pub bantime: Option<Dur>,
    /// Addresses and CIDR prefixes never counted nor banned (default
    /// 127.0.0.0/8 and ::1).
    #[schemars(inner(pattern(ADDRESS_PATTERN)))]
    pub ignoreip: Option<Vec<String>>,
    /// Longer bans for repeat offenders (off by default).
    pub bantime_increment: Option<IncrementConfig>,
    /// At most this many addresses with failures are tracked per jail
    /// (default 100000).
    #[schemars(range(min = 1))]
    pub max_tracked: Option<usize>,
    /// Ban a whole IPv6 prefix once enough of its addresses are banned
    /// (off by default).
    pub ipv6_escalation: Option<EscalationConfig>,
    /// `yes` resolves host names in `<HOST>`, `no` never does (default
    /// no): docs/faq.md row 1, docs/config.md "Host names in log lines".
    pub usedns: Option<super::UseDns>,
}

/// `bantime_increment:` — repeat offenders get longer bans: the n-th ban of
/// an address in a jail lasts `bantime * factor^(n-1)`, at most `max`.
/// Earlier bans are counted from the ban history, so this survives restarts.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementConfig {
    /// How many times longer each further ban lasts, 1 to 100.
    #[schemars(range(min = 1, max = 100))]
    pub factor: f64,
    /// The longest a ban gets.
    pub max: Dur,
}

/// `ipv6_escalation:` — once a jail's running bans hold `threshold`
/// distinct IPv6 addresses inside one `/prefix`, the jail bans the whole
/// prefix: an IPv6 attacker usually holds a /64 (or more) and can hop to a
/// fresh address for every attempt.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// Length of the prefix banned, 1 to 127 (64 is a typical end site).
    #[schemars(range(min = 1, max = 127))]
    pub prefix: u8,
    /// Distinct banned addresses inside one prefix that ban it, at least 2.
    #[schemars(range(min = 2))]
    pub threshold: u32,
}

/// `recidive:` — across all jails, an address banned `maxretry` times
/// within `findtime` is banned in the `recidive` jail for `bantime`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecidiveConfig {
    /// Window in which bans are counted.
    pub findtime: Dur,
    /// Bans within `findtime` that earn a recidive ban, at least 2.
    #[schemars(range(min = 2))]
    pub maxretry: u32,
    /// Length of the recidive ban.
    pub bantime: Dur,
}

/// `metrics:` — where the Prometheus endpoint listens.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address and port, e.g. `127.0.0.1:9477`.
    pub listen: std::net::SocketAddr,
}

/// `events:` — where the daemon also writes every ban, unban and expiry,
/// one JSON object each (the `nftban events --json` format, docs/cli.md).
/// A sink that fails is logged and tried again at the next event; it never
/// stops the daemon nor holds its bans.
#[derive(Debug, Deserialize, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// A file the events are appended to as JSON lines, created with mode
    /// 0600 (its folder 0700), e.g. `/var/log/nftban/events.jsonl`; opened
    /// again when rotation moves it away.
    pub file: Option<PathBuf>,
    /// A Unix socket the events are sent to: a datagram socket gets one
    /// JSON object per datagram, a stream socket JSON lines.
    pub socket: Option<PathBuf>,
}

/// One jail: which lines (ruleset) from where (files, journal, stdin), and
/// when to ban. Unset values come from `defaults`.
#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JailConfig {
    /// A shipped ruleset name, a path to a ruleset YAML file, or a path to
    /// a fail2ban filter `.conf` with its options as jail.conf writes them
    /// (`filter.d/sshd.conf[mode=aggressive]`); paths are relative to the
    /// config's folder.
    pub ruleset: String,
    /// Absolute paths of log files, or glob patterns with `*`, `?` or
    /// `[...]` in the file name (not in folders).
    #[serde(default)]
    #[schemars(inner(pattern("^/")))]
    pub files: Vec<PathBuf>,
    /// journald matches `FIELD=value`, e.g. `_SYSTEMD_UNIT=ssh.service`.
    #[serde(default)]
    #[schemars(inner(pattern("^[A-Z_][A-Z0-9_]*=")))]
    pub journal: Vec<String>,
    /// Read lines from standard input (`journalctl -f -o cat | nftban
    /// run`); jails that set it share one reader.
    #[serde(default)]
    pub stdin: bool,
    /// `false` skips the jail.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Window in which failures are counted.
    pub findtime: Option<Dur>,
    /// Failures within `findtime` that earn a ban.
    #[schemars(range(min = 1))]
    pub maxretry: Option<u32>,
    /// Ban length.
    pub bantime: Option<Dur>,
    /// Replaces (does not extend) `defaults.ignoreip` for this jail.
    #[schemars(inner(pattern(ADDRESS_PATTERN)))]
    pub ignoreip: Option<Vec<String>>,
    /// Longer bans for repeat offenders.
    pub bantime_increment: Option<IncrementConfig>,
    /// Cap on addresses with failures tracked at once.
    #[schemars(range(min = 1))]
    pub max_tracked: Option<usize>,
    /// Ban a whole IPv6 prefix once enough of its addresses are banned.
    pub ipv6_escalation: Option<EscalationConfig>,
    /// A mode of the ruleset (its `modes:`): its rules are added to the
    /// base rules. No shipped ruleset has modes today (sshd's probe rules
    /// are the ruleset `sshd-aggressive`).
    pub mode: Option<String>,
    /// The kernel meter for SIP floods, its bans in this jail (the keys of
    /// the top-level `sip:` but `jail`). One `sip:` per config.
    pub sip: Option<SipConfig>,
    /// `yes`: a host name where the rule's `<HOST>` expects an address is
    /// resolved through the system resolver (/etc/hosts, DNS), on a thread
    /// of its own with a cache and a timeout, and each address it gives
    /// gets the line's failure (`ignoreip` applies as to any address).
    /// `no` (the default): never resolved, the line bans nobody. An
    /// attacker who controls a name's records chooses what gets banned:
    /// only for logs whose names the attacker cannot write.
    pub usedns: Option<super::UseDns>,
}

fn yes() -> bool {
    true
}
