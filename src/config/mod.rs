//! The configuration file: what users write, checked as a whole before
//! anything runs.
//!
//! Two layers, as in vector: the `*Config` structs mirror the YAML
//! (`deny_unknown_fields` everywhere, so a typo is an error that names the
//! key and its line), and [`Config::load`] turns them into a validated
//! [`Config`] with compiled rulesets and parsed durations. A config that
//! loads is one the daemon can run.

pub mod duration;
mod feeds;
mod file;
mod fleet;
mod problem;
mod sip;
mod usedns;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::address::AddressError;
use crate::firewall::sip::{Rate, SipSpec, SIP_SET_STEMS};
use crate::firewall::{Action, Hook, TableSpec};
use crate::matcher::{Matcher, Ruleset, RulesetError};
use crate::sources::journal::MatchError;
use crate::yaml::{locate_nearest, Located};
pub use duration::{format_duration, parse_duration, Dur, DurationError};
pub use feeds::{feed_sets, FeedConfig, FeedFormat, FeedSource, FeedSpec};
pub use file::{
    DefaultsConfig, EscalationConfig, EventsConfig, FileConfig, FleetAuth, FleetConfig, FleetLimitsConfig, FleetTls,
    IncrementConfig, JailConfig, LogConfig, MetricsConfig, NftablesConfig, RecidiveConfig, SipConfig, SipPorts,
};
pub use fleet::{Credentials, FleetSpec};
pub use problem::Problem;
use sip::build_sip;
pub use usedns::UseDns;

/// Where the config is read from when no `--config` is given.
const DEFAULT_CONFIG: &str = "/etc/nftban/nftban.yaml";
/// Default ban history database.
const DEFAULT_DATABASE: &str = "/var/lib/nftban/nftban.db";
/// Default control socket path.
const DEFAULT_SOCKET: &str = "/run/nftban/nftban.sock";
/// The jail that `nftban ban` uses when no `--jail` is given. It always
/// exists and watches nothing.
pub const MANUAL_JAIL: &str = "manual";

/// Name of the jail that holds recidive bans.
pub const RECIDIVE_JAIL: &str = "recidive";

/// The jail of the SIP meter's bans when `sip.jail` is not given; made,
/// without log sources, when the config has no jail of that name.
pub const SIP_JAIL: &str = "sip";

/// Lengths per family in `nftables.prefix_sets` at most: each is one more
/// rule, and one more hash lookup for every packet, in every jail.
pub const MAX_PREFIX_SETS: usize = 8;

/// Most slots a SIP meter set may have (each holds a bucket in kernel
/// memory, about 100 bytes).
pub const MAX_SIP_SIZE: u32 = 16_777_216;

/// The config file's path: `--config`, else `$NFTBAN_CONFIG`, else the default.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("NFTBAN_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG),
    }
}

/// A validated jail.
#[derive(Debug, Clone)]
pub struct Jail {
    pub name: String,
    pub ruleset: String,
    /// The ruleset as read (with the jail's mode applied), for `check`.
    pub rules: Arc<Ruleset>,
    /// The compiled ruleset, shared by every jail of the config on the same
    /// ruleset and mode (per-jail state lives in the readers and engine).
    pub matcher: Arc<Matcher>,
    pub files: Vec<PathBuf>,
    pub journal: Vec<String>,
    /// Reads standard input (shared by every jail that sets it).
    pub stdin: bool,
    pub findtime: Duration,
    pub maxretry: u32,
    pub bantime: Duration,
    pub ignoreip: Vec<IpNet>,
    pub increment: Option<IncrementConfig>,
    pub max_tracked: usize,
    /// IPv6 prefix escalation; `None` (the default) never escalates.
    pub escalation: Option<EscalationConfig>,
    /// Whether host names in `<HOST>` are resolved (`usedns:`).
    pub usedns: UseDns,
}

/// A validated configuration: everything the daemon needs, nothing left to check.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub socket: PathBuf,
    pub database: PathBuf,
    pub history_keep: Duration,
    pub log: LogConfig,
    pub table: String,
    pub action: Action,
    /// Hooks with a chain, each once, in [`Hook::ALL`] order.
    pub hooks: Vec<Hook>,
    /// `nftables.prefix_sets`: the prefix lengths with a masked set.
    pub prefix_sets: crate::firewall::PrefixSets,
    /// The `manual` jail's ban time (`defaults.bantime`).
    pub default_bantime: Duration,
    /// `defaults.ignoreip`: what the `manual` and `recidive` jails, which
    /// have no config section of their own, never ban.
    pub default_ignoreip: Vec<IpNet>,
    pub jails: Vec<Jail>,
    pub recidive: Option<RecidiveConfig>,
    pub metrics: Option<MetricsConfig>,
    /// Where ban events also go (`events:`); both off by default.
    pub events: EventsConfig,
    /// The kernel meter for SIP floods (`sip:`), if on.
    pub sip: Option<SipSpec>,
    /// The meter's jail is none of `jails`: the daemon makes it (named
    /// [`SIP_JAIL`], no sources, `defaults`' bantime and `ignoreip`).
    pub sip_implicit_jail: bool,
    /// Bans shared with other nodes over NATS JetStream (`fleet:`), if on.
    pub fleet: Option<FleetSpec>,
    /// Blocklists (`feeds:`), each in sets of its own, in name order.
    pub feeds: Vec<FeedSpec>,
}

/// A config error: the file, where in it (line, column, key), and the
/// [`Problem`] as its source.
pub type ConfigError = Located<Problem>;

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::regular::read_text(path).map_err(|e| Located {
            file: path.display().to_string(),
            at: None,
            key: None,
            error: Problem::Read(e),
        })?;
        Config::from_text(path, &text)
    }

    /// Parse and validate config text; `path` is used in messages and to
    /// resolve relative ruleset paths.
    pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        // Before anything walks the aliases: each would build its copy.
        if let Some(e) = crate::yaml::expansion(text) {
            return Err(Located {
                file: path.display().to_string(),
                at: e.at,
                key: Some(e.key).filter(|k| !k.is_empty()),
                error: Problem::Aliases(e.error),
            });
        }
        if let Some(dup) = crate::yaml::duplicate_key(text) {
            return Err(Located {
                file: path.display().to_string(),
                at: dup.at,
                key: Some(dup.key),
                error: Problem::DuplicateKey {
                    first: dup.first.map(|(line, _)| line),
                },
            });
        }
        let raw: FileConfig = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(path, text, &e))?;
        build(path, text, raw)
    }

    /// The kernel objects this config asks for.
    pub fn table_spec(&self) -> TableSpec {
        let mut jails: Vec<String> = self.jails.iter().map(|j| j.name.clone()).collect();
        if self.sip_implicit_jail {
            jails.push(SIP_JAIL.to_string());
        }
        if self.recidive.is_some() {
            jails.push(RECIDIVE_JAIL.to_string());
        }
        jails.push(MANUAL_JAIL.to_string());
        // A feed's sets are made and dropped as a jail's are: a feed gone
        // from the config takes its sets (and entries) with it.
        jails.extend(self.feeds.iter().map(|f| f.sets.clone()));
        TableSpec {
            table: self.table.clone(),
            action: self.action,
            hooks: self.hooks.clone(),
            jails,
            prefix_sets: self.prefix_sets,
            sip: self.sip.clone(),
        }
    }
}

/// Turn a YAML library error into ours, adding a position when the library
/// gave none (it omits it for unknown keys at the top level).
fn yaml_error(path: &Path, text: &str, e: &serde_yaml_ng::Error) -> ConfigError {
    let (message, at) = crate::yaml::parse_error(text, e);
    Located {
        file: path.display().to_string(),
        at,
        key: None,
        error: Problem::Yaml(message),
    }
}

/// Jail names become nft set names (`<jail>_v4`): letters, digits, `_`, `-`.
/// A jail's `ruleset:`: a fail2ban filter file (`filter.d/sshd.conf`,
/// with options as a jail.conf names them, `filter.d/sshd.conf[mode=aggressive]`;
/// relative to the config's folder), as `nftban import-fail2ban` writes
/// them, or a ruleset name or YAML file. A filter's rules nftban cannot
/// run are left out as `nftban test` leaves them out; a filter with none
/// left is an error naming the file.
fn resolve_ruleset(spec: &str, base_dir: &Path) -> Result<Ruleset, RulesetError> {
    let file = spec.split('[').next().unwrap_or(spec).trim();
    if !(file.ends_with(".conf") || file.ends_with(".local")) {
        return Ruleset::resolve(spec, base_dir);
    }
    let (file, options) = crate::matcher::fail2ban::parse_spec(spec.trim());
    crate::matcher::fail2ban::load_with(&base_dir.join(file), &options).map(|imported| imported.ruleset)
}

fn valid_jail_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 60
}

fn parse_ignoreip(list: &[String]) -> Result<Vec<IpNet>, Problem> {
    list.iter()
        .map(|s| {
            crate::address::parse_net(s).map_err(|error| Problem::Address {
                text: s.clone(),
                error: Box::new(error),
            })
        })
        .collect()
}

fn build(path: &Path, text: &str, raw: FileConfig) -> Result<Config, ConfigError> {
    // A key that cannot be found (set through an alias, `sshd: *base`)
    // is given the line of its nearest parent instead. `err_at` is for a
    // key (`defaults.bantime_increment.factor`) located at another
    // (`defaults.bantime_increment`).
    let err_at = |keys: &[&str], key: String, error: Problem| Located {
        file: path.display().to_string(),
        at: locate_nearest(text, keys),
        key: Some(key),
        error,
    };
    let err = |keys: &[&str], error: Problem| err_at(keys, keys.join("."), error);
    let base_dir = path.parent().unwrap_or(Path::new("."));

    match raw.log.target.as_str() {
        "stderr" => {}
        "journald" | "syslog" => {}
        t if t.starts_with('/') => {}
        t => return Err(err(&["log", "target"], Problem::LogTarget(t.into()))),
    }
    if !["error", "warn", "info", "debug", "trace"].contains(&raw.log.level.as_str()) {
        return Err(err(&["log", "level"], Problem::LogLevel(raw.log.level.clone())));
    }
    // The daemon runs from `/` under systemd: a relative path would land
    // wherever it was started.
    for (key, path) in [("file", &raw.events.file), ("socket", &raw.events.socket)] {
        if let Some(p) = path.as_ref().filter(|p| !p.is_absolute()) {
            return Err(err(&["events", key], Problem::RelativeFile(p.clone())));
        }
    }
    if !valid_jail_name(&raw.nftables.table) {
        return Err(err(
            &["nftables", "table"],
            Problem::TableName(raw.nftables.table.clone()),
        ));
    }
    let mut hooks = raw.nftables.hooks.clone();
    hooks.sort();
    if let Some(dup) = hooks.windows(2).find(|w| w[0] == w[1]) {
        return Err(err(&["nftables", "hooks"], Problem::HookTwice(dup[0])));
    }
    if hooks.is_empty() {
        return Err(err(&["nftables", "hooks"], Problem::NoHook));
    }
    let masked = &raw.nftables.prefix_sets;
    for (key, lengths, max) in [("ipv4", &masked.ipv4, 31), ("ipv6", &masked.ipv6, 127)] {
        let at = ["nftables", "prefix_sets", key];
        if lengths.len() > MAX_PREFIX_SETS {
            return Err(err(&at, Problem::PrefixSetsMany(lengths.len())));
        }
        if let Some(&got) = lengths.iter().find(|&&l| l == 0 || l > max) {
            return Err(err(&at, Problem::PrefixSetLength { got, max }));
        }
        if let Some((_, &l)) = lengths.iter().enumerate().find(|(i, l)| lengths[..*i].contains(l)) {
            return Err(err(&at, Problem::PrefixSetTwice(l)));
        }
    }
    let prefix_sets = crate::firewall::PrefixSets::new(&masked.ipv4, &masked.ipv6);

    let d = &raw.defaults;
    let def_findtime = d.findtime.map(|x| x.0).unwrap_or(Duration::from_secs(600));
    let def_maxretry = d.maxretry.unwrap_or(5);
    let def_bantime = d.bantime.map(|x| x.0).unwrap_or(Duration::from_secs(3600));
    let check_increment = |inc: &Option<IncrementConfig>, keys: &[&str]| -> Result<(), ConfigError> {
        let key = |k: &str| format!("{}.{k}", keys.join("."));
        match inc {
            Some(i) if !(i.factor >= 1.0 && i.factor <= 100.0) => {
                Err(err_at(keys, key("factor"), Problem::Factor(i.factor)))
            }
            Some(i) if i.max.0.is_zero() => Err(err_at(keys, key("max"), Problem::ZeroDuration)),
            _ => Ok(()),
        }
    };
    check_increment(&d.bantime_increment, &["defaults", "bantime_increment"])?;
    let check_escalation = |e: &Option<EscalationConfig>, keys: &[&str]| -> Result<(), ConfigError> {
        match e {
            Some(e) if !(1..=127).contains(&e.prefix) => {
                Err(err(&[keys, &["prefix"]].concat(), Problem::EscalationPrefix(e.prefix)))
            }
            Some(e) if e.threshold < 2 => Err(err(
                &[keys, &["threshold"]].concat(),
                Problem::EscalationThreshold(e.threshold),
            )),
            _ => Ok(()),
        }
    };
    check_escalation(&d.ipv6_escalation, &["defaults", "ipv6_escalation"])?;
    let def_max_tracked = d.max_tracked.unwrap_or(crate::tracker::DEFAULT_MAX_TRACKED);
    if def_max_tracked == 0 {
        return Err(err(&["defaults", "max_tracked"], Problem::Zero));
    }
    let recidive = raw.recidive;
    if let Some(r) = recidive {
        if r.maxretry < 2 {
            return Err(err(&["recidive", "maxretry"], Problem::RecidiveMaxretry));
        }
        if r.bantime.0.is_zero() || r.findtime.0.is_zero() {
            return Err(err(&["recidive"], Problem::RecidiveZero));
        }
    }
    let def_ignore = match &d.ignoreip {
        Some(list) => parse_ignoreip(list).map_err(|e| err(&["defaults", "ignoreip"], e))?,
        None => vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
    };
    if def_maxretry == 0 {
        return Err(err(&["defaults", "maxretry"], Problem::Zero));
    }
    if def_bantime.is_zero() {
        return Err(err(&["defaults", "bantime"], Problem::ZeroDuration));
    }

    let mut jails = Vec::new();
    // `sip:` sections of the jails, with their keys.
    let mut jail_sips: Vec<(String, SipConfig)> = Vec::new();
    // Rulesets compiled for this load: jails on the same ruleset and mode
    // share one matcher (it holds no per-jail state). Built anew by each
    // load, so a reload reads the ruleset files again.
    let mut compiled: Vec<(Arc<Ruleset>, Arc<Matcher>)> = Vec::new();
    for (name, j) in raw.jails {
        let at = |key: &'static str| -> [&str; 3] { ["jails", name.as_str(), key] };
        let jail = ["jails", name.as_str()];
        if !valid_jail_name(&name) {
            return Err(err(&jail, Problem::JailName));
        }
        if name == RECIDIVE_JAIL && raw.recidive.is_some() {
            return Err(err(&jail, Problem::RecidiveJail));
        }
        if name == MANUAL_JAIL {
            return Err(err(&jail, Problem::ManualJail));
        }
        if !j.enabled {
            continue;
        }
        if let Some(sip) = j.sip.clone() {
            jail_sips.push((name.clone(), sip));
        }
        let ruleset =
            resolve_ruleset(&j.ruleset, base_dir).map_err(|e| err(&at("ruleset"), Problem::Ruleset(Box::new(e))))?;
        let ruleset = ruleset
            .with_mode(j.mode.as_deref())
            .map_err(|e| err(&at("mode"), Problem::Mode(Box::new(e))))?;
        let (rules, matcher) = match compiled.iter().find(|(r, _)| r.compiles_like(&ruleset)) {
            Some((r, m)) => (Arc::clone(r), Arc::clone(m)),
            None => {
                let m = Matcher::new(&ruleset).map_err(|e| err(&at("ruleset"), Problem::Ruleset(Box::new(e))))?;
                let shared = (Arc::new(ruleset), Arc::new(m));
                compiled.push(shared.clone());
                shared
            }
        };
        if j.files.is_empty() && j.journal.is_empty() && !j.stdin {
            return Err(err(&jail, Problem::NoSource));
        }
        if let Some(f) = j.files.iter().find(|f| !f.is_absolute()) {
            return Err(err(&at("files"), Problem::RelativeFile(f.clone())));
        }
        // A pattern's folder is watched with inotify: wildcards in the file name only.
        if let Some(f) = j.files.iter().find(|f| {
            f.parent().is_some_and(|d| {
                d.components()
                    .any(|c| crate::sources::glob::has_wildcard(c.as_os_str()))
            })
        }) {
            return Err(err(&at("files"), Problem::WildcardFolder(f.clone())));
        }
        for f in j.files.iter().filter(|f| crate::sources::glob::is_pattern(f)) {
            if let Err(source) = crate::sources::glob::check_pattern(f) {
                let file = f.to_path_buf();
                return Err(err(&at("files"), Problem::BadPattern { file, source }));
            }
        }
        if let Some(e) = j
            .journal
            .iter()
            .find_map(|m| crate::sources::journal::parse_match(m).err())
        {
            return Err(err(&at("journal"), Problem::Journal(e)));
        }
        let maxretry = j.maxretry.unwrap_or(def_maxretry);
        if maxretry == 0 {
            return Err(err(&at("maxretry"), Problem::Zero));
        }
        let bantime = j.bantime.map(|x| x.0).unwrap_or(def_bantime);
        if bantime.is_zero() {
            return Err(err(&at("bantime"), Problem::ZeroDuration));
        }
        let ignoreip = match &j.ignoreip {
            Some(list) => parse_ignoreip(list).map_err(|e| err(&at("ignoreip"), e))?,
            None => def_ignore.clone(),
        };
        check_increment(&j.bantime_increment, &at("bantime_increment"))?;
        let increment = j.bantime_increment.or(d.bantime_increment);
        check_escalation(&j.ipv6_escalation, &at("ipv6_escalation"))?;
        let escalation = j.ipv6_escalation.or(d.ipv6_escalation);
        let max_tracked = j.max_tracked.unwrap_or(def_max_tracked);
        if max_tracked == 0 {
            return Err(err(&at("max_tracked"), Problem::Zero));
        }
        jails.push(Jail {
            name: name.clone(),
            ruleset: rules.name.clone(),
            rules,
            matcher,
            files: j.files,
            journal: j.journal,
            stdin: j.stdin,
            findtime: j.findtime.map(|x| x.0).unwrap_or(def_findtime),
            maxretry,
            bantime,
            ignoreip,
            increment,
            max_tracked,
            escalation,
            usedns: j.usedns.or(d.usedns).unwrap_or_default(),
        });
    }

    let (sip, sip_implicit_jail) = build_sip(raw.sip, jail_sips, &jails, def_bantime, &def_ignore, &err)?;

    let mut config = Config {
        path: path.to_path_buf(),
        socket: raw.socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        database: raw.database.unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE)),
        history_keep: raw
            .history_keep
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(30 * 86_400)),
        log: raw.log,
        table: raw.nftables.table,
        action: raw.nftables.action,
        hooks,
        prefix_sets,
        default_bantime: def_bantime,
        default_ignoreip: def_ignore,
        jails,
        recidive,
        metrics: raw.metrics,
        events: raw.events,
        sip,
        sip_implicit_jail,
        fleet: None,
        feeds: Vec::new(),
    };
    if let Some(f) = raw.fleet {
        config.fleet = Some(fleet::build_fleet(f, &config, &err)?);
    }
    config.feeds = feeds::build_feeds(raw.feeds, &config, &err)?;
    Ok(config)
}

/// Just the socket path of a config, for client commands: they must work
/// even when the config has an error the daemon does not (yet) have.
pub fn socket_of(path: &Path) -> PathBuf {
    #[derive(Deserialize)]
    struct Only {
        socket: Option<PathBuf>,
    }
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_yaml_ng::from_str::<Only>(&t).ok())
        .and_then(|o| o.socket)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
