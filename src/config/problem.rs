//! What can be wrong in a config file. [`super::ConfigError`] says where
//! (file, line, column, key); this says what.

use super::*;

/// What is wrong in a config file; [`ConfigError`] says where.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file cannot be read.
    #[error("cannot read config")]
    Read(#[source] crate::regular::OpenError),
    /// Not YAML, or not the config's shape: an unknown key, a value of the
    /// wrong type, a bad duration. The YAML library's message, which names
    /// the key path.
    #[error("{0}")]
    Yaml(String),
    /// A key given twice in one mapping (`jails: {sshd: ..., sshd: ...}`):
    /// the YAML library would keep the last without a word. The error's
    /// place is the second occurrence; `first` is the line of the first,
    /// when it can be found.
    #[error("given twice{}; the last would silently replace the others", first.map(|l| format!(" (first at line {l})")).unwrap_or_default())]
    DuplicateKey { first: Option<usize> },
    /// YAML aliases that expand the file far past its size (one long list
    /// named by hundreds of jails); the place is the alias that takes it
    /// over.
    #[error("{0}; a jail without `ignoreip` takes `defaults.ignoreip`")]
    Aliases(crate::yaml::TooLarge),
    /// `log.target` is no known target.
    #[error("`{0}` must be stderr, journald, syslog or an absolute file path")]
    LogTarget(String),
    /// `log.level` is no known level.
    #[error("`{0}` must be one of error, warn, info, debug, trace")]
    LogLevel(String),
    /// `nftables.table` cannot name an nftables table.
    #[error("`{0}` is not a valid table name")]
    TableName(String),
    /// A hook appears twice in `nftables.hooks`.
    #[error("`{0}` is listed twice")]
    HookTwice(Hook),
    /// `nftables.hooks` is empty.
    #[error("give at least one of input, forward, prerouting (bans would drop nothing)")]
    NoHook,
    /// A length in `nftables.prefix_sets` out of its family's range.
    #[error("{got} is no prefix length with a set of its own: give 1 to {max} (a /{full} is an address, in the jail's address set)", full = max + 1)]
    PrefixSetLength { got: u8, max: u8 },
    /// A length listed twice in `nftables.prefix_sets`.
    #[error("/{0} is listed twice")]
    PrefixSetTwice(u8),
    /// Too many lengths in one family of `nftables.prefix_sets`.
    #[error("{0} lengths: give at most {MAX_PREFIX_SETS} (each is one more rule and lookup per packet in every jail)")]
    PrefixSetsMany(usize),
    /// `bantime_increment.factor` outside 1 to 100.
    #[error("must be between 1 and 100 (got {0})")]
    Factor(f64),
    /// `ipv6_escalation.prefix` outside 1 to 127.
    #[error("must be between 1 and 127 (got {0})")]
    EscalationPrefix(u8),
    /// `ipv6_escalation.threshold` below 2.
    #[error("must be at least 2 (banned addresses of one prefix; got {0})")]
    EscalationThreshold(u32),
    /// A count (`maxretry`, `max_tracked`) of 0.
    #[error("must be at least 1")]
    Zero,
    /// A duration (`bantime`, `bantime_increment.max`) of 0.
    #[error("must be longer than 0s")]
    ZeroDuration,
    /// `recidive.maxretry` below 2.
    #[error("must be at least 2 (bans before a recidive ban)")]
    RecidiveMaxretry,
    /// `recidive.findtime` or `recidive.bantime` of 0.
    #[error("findtime and bantime must be longer than 0s")]
    RecidiveZero,
    /// An `ignoreip` entry that is no address or prefix.
    #[error("`{text}` is not an address or CIDR prefix")]
    Address {
        text: String,
        #[source]
        error: Box<AddressError>,
    },
    /// A jail name that cannot be part of a set name.
    #[error("a jail name starts with a letter and holds only letters, digits, `_` and `-`")]
    JailName,
    /// A jail named `recidive` while the `recidive:` rule is on.
    #[error("`{RECIDIVE_JAIL}` is the jail of the top-level `recidive:` rule; rename this jail")]
    RecidiveJail,
    /// A jail named `manual`.
    #[error("`{MANUAL_JAIL}` is reserved for `nftban ban`")]
    ManualJail,
    /// The jail's ruleset cannot be found, read or compiled; the ruleset
    /// error names its own file and line.
    #[error(transparent)]
    Ruleset(Box<RulesetError>),
    /// The jail's `mode` is not a mode of its ruleset.
    #[error("{}", .0.message)]
    Mode(Box<RulesetError>),
    /// A jail with neither files, journal nor stdin.
    #[error("no source; give `files` (or `journal`, or `stdin: true`)")]
    NoSource,
    /// A relative path in `files`, `events.file` or `events.socket`.
    #[error("`{}` must be an absolute path", .0.display())]
    RelativeFile(PathBuf),
    /// A wildcard in a folder of a `files` pattern.
    #[error("`{}`: wildcards (`*`, `?`, `[`) are allowed in the file name only, not in folders", .0.display())]
    WildcardFolder(PathBuf),
    /// A `files` pattern whose file name is not a valid pattern.
    #[error("`{}`: not a valid pattern: {source}", .file.display())]
    BadPattern {
        file: PathBuf,
        source: ::glob::PatternError,
    },
    /// A `journal` match that is not `FIELD=value`.
    #[error(transparent)]
    Journal(MatchError),
    /// A second `sip:` (top level and in a jail, or in two jails).
    #[error("one `sip:` per config: it is given at {first} already")]
    SipTwice { first: String },
    /// `jail` inside a jail's own `sip:`.
    #[error("`jail` is for the top-level `sip:` only; a jail's `sip:` belongs to that jail")]
    SipJailKey,
    /// `sip.jail` names no enabled jail.
    #[error("`{0}` is no enabled jail of this config (leave `jail` out to have nftban make a jail `sip`)")]
    SipNoJail(String),
    /// `sip.rate` is not `N/second` or `N/minute`.
    #[error("`{0}` is not a rate: give N/second or N/minute, N at least 1 (e.g. 20/second)")]
    SipRate(String),
    /// `sip.ipv6_prefix` outside 1 to 128.
    #[error("must be between 1 and 128 (got {0}; 128 meters each address)")]
    SipPrefix(u8),
    /// A port 0 in `sip.ports`.
    #[error("port 0 is no port")]
    SipPort,
    /// `sip.ports` with every list empty.
    #[error("meters no port: give at least one of udp, tcp, tls")]
    SipNoPort,
    /// `sip.size` outside 1 to [`MAX_SIP_SIZE`].
    #[error("must be between 1 and {MAX_SIP_SIZE} (got {0})")]
    SipSize(u32),
    /// A jail whose sets would have the SIP meter's names.
    #[error("with `sip:` on, a jail cannot be named `{0}`: its sets would be the SIP meter's (`{0}_v4`); rename it")]
    SipSetName(String),
    /// `fleet.servers` is empty.
    #[error("give at least one NATS server (`nats://host:4222`)")]
    FleetNoServer,
    /// A `fleet.servers` entry the NATS client cannot take.
    #[error("{0} (give nats://host:4222, tls://host:4222 or host:port)")]
    FleetServer(String),
    /// `fleet.node` (or the host name it defaults to) is no node name.
    #[error("`{0}` is not a node name: 1 to 64 letters, digits, `_`, `-` (it is a NATS subject token)")]
    FleetNode(String),
    /// A stream or subject prefix NATS would not take.
    #[error("`{0}` cannot be a NATS stream name or subject prefix: letters, digits, `_`, `-` (and `.` between tokens of a prefix)")]
    FleetName(String),
    /// `fleet.publish` or `fleet.accept` names no jail.
    #[error("`{0}` is no jail of this config (jails: {1})")]
    FleetJail(Box<str>, Box<str>),
    /// Two kinds of credentials, or half of user and password.
    #[error("{0}")]
    FleetAuth(&'static str),
    /// `fleet.tls` with a certificate and no key, or the other way round.
    #[error("give both `cert_file` and `key_file`, or neither")]
    FleetTlsPair,
    /// `fleet.limits.rate` is not `N/second` or `N/minute`.
    #[error("`{0}` is not a rate: give N/second or N/minute, N at least 1 (e.g. 100/second)")]
    FleetRate(String),
    /// A prefix limit outside its family's range.
    #[error("must be between 1 and {max} (got {got})")]
    FleetPrefix { got: u8, max: u8 },
    /// `fleet.replicas` outside 1 to 5.
    #[error("must be between 1 and 5 (got {0})")]
    FleetReplicas(u8),
    /// A feed name that cannot name nftables sets.
    #[error("`{0}` is not a feed name: a letter, then up to 49 letters, digits, `_`, `-` (it names the sets feed_NAME_v4, ...)")]
    FeedName(String),
    /// A feed's sets would be a jail's.
    #[error("the feed's sets `{0}_v4`, ... would be those of the jail `{0}`: rename the feed or the jail")]
    FeedSetsTaken(String),
    /// A feed with both or neither of `file` and `url`.
    #[error("give one source: `file: /path` or `url: https://...`")]
    FeedSource,
    /// `headers` or `key_file` on a file feed.
    #[error("`headers` and `key_file` are for `url` feeds; a file feed reads no key")]
    FeedFileHeaders,
    /// A feed URL that is not http(s) with a host.
    #[error("`{0}` is not an http:// or https:// URL with a host")]
    FeedUrl(String),
    /// `{key}` in the URL or a header, and no `key_file`.
    #[error("the URL or a header says `{{key}}`: give `key_file`, the file holding the key")]
    FeedNoKeyFile,
    /// A header name or value HTTP cannot carry.
    #[error("header `{0}`: a name of letters, digits, `-`, `_`, and a value on one line")]
    FeedHeader(String),
    /// `format: apiban` from a file.
    #[error("`apiban` is APIBAN's HTTP API: give its `url` (https://apiban.org/api/{{key}}/banned)")]
    FeedApibanFile,
    /// `feeds.NAME.jail` names no jail.
    #[error("`{0}` is no jail of this config (jails: {1})")]
    FeedJail(Box<str>, Box<str>),
}
