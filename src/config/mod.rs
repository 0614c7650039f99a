//! The configuration file: what users write, checked as a whole before
//! anything runs.
//!
//! Two layers, as in vector: the `*Config` structs mirror the YAML
//! (`deny_unknown_fields` everywhere, so a typo is an error that names the
//! key and its line), and [`Config::load`] turns them into a validated
//! [`Config`] with compiled rulesets and parsed durations. A config that
//! loads is one the daemon can run.

pub mod duration;
mod locate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::firewall::{Action, TableSpec};
use crate::matcher::{Matcher, Ruleset};
pub use duration::{format_duration, parse_duration, Dur};
pub use locate::{locate, locate_item};

/// Where the config is read from when no `--config` is given.
pub const DEFAULT_CONFIG: &str = "/etc/nftban/nftban.yaml";
/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/nftban/nftban.sock";
/// The jail that `nftban ban` uses when no `--jail` is given. It always
/// exists and watches nothing.
pub const MANUAL_JAIL: &str = "manual";

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

/// The top of the YAML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Control socket (mode 0600).
    pub socket: Option<PathBuf>,
    /// Ban history database. Accepted now; used once ban history lands.
    pub database: Option<PathBuf>,
    /// Where logs go and how much.
    #[serde(default)]
    pub log: LogConfig,
    /// The kernel table.
    #[serde(default)]
    pub nftables: NftablesConfig,
    /// Values every jail inherits unless it sets its own.
    #[serde(default)]
    pub defaults: DefaultsConfig,
    /// Jails by name.
    #[serde(default)]
    pub jails: BTreeMap<String, JailConfig>,
}

/// `log:` — `target` is `stderr` or a file path (journald and syslog targets
/// are recognised and refused with a clear message until they land).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "default_log_target")]
    pub target: String,
    #[serde(default = "default_log_level")]
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

/// `nftables:` — the table nftban owns and the verdict for banned sources.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NftablesConfig {
    #[serde(default = "default_table")]
    pub table: String,
    #[serde(default)]
    pub action: Action,
}

fn default_table() -> String {
    "nftban".into()
}

impl Default for NftablesConfig {
    fn default() -> Self {
        NftablesConfig {
            table: default_table(),
            action: Action::Drop,
        }
    }
}

/// `defaults:` — fail2ban's `[DEFAULT]`.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct DefaultsConfig {
    pub findtime: Option<Dur>,
    pub maxretry: Option<u32>,
    pub bantime: Option<Dur>,
    pub ignoreip: Option<Vec<String>>,
}

/// One jail: which lines (ruleset) from where (files, journal), and when to ban.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct JailConfig {
    /// A shipped ruleset name or a path to a ruleset YAML file.
    pub ruleset: String,
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// journald matches; read once the journal source lands.
    #[serde(default)]
    pub journal: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub findtime: Option<Dur>,
    pub maxretry: Option<u32>,
    pub bantime: Option<Dur>,
    /// Replaces `defaults.ignoreip` for this jail.
    pub ignoreip: Option<Vec<String>>,
    /// A mode of the ruleset (`aggressive` for sshd): its rules are added.
    pub mode: Option<String>,
}

fn yes() -> bool {
    true
}

/// A validated jail.
#[derive(Debug, Clone)]
pub struct Jail {
    pub name: String,
    pub ruleset: String,
    /// The ruleset as read (with the jail's mode applied), for `check`.
    pub rules: Arc<Ruleset>,
    pub matcher: Arc<Matcher>,
    pub files: Vec<PathBuf>,
    pub journal: Vec<String>,
    pub findtime: Duration,
    pub maxretry: u32,
    pub bantime: Duration,
    pub ignoreip: Vec<IpNet>,
}

/// A validated configuration: everything the daemon needs, nothing left to check.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub socket: PathBuf,
    pub database: Option<PathBuf>,
    pub log: LogConfig,
    pub table: String,
    pub action: Action,
    /// The `manual` jail's ban time (`defaults.bantime`).
    pub default_bantime: Duration,
    pub jails: Vec<Jail>,
}

/// A config error: the file, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            at: None,
            message: format!("cannot read config: {e}"),
        })?;
        Config::from_text(path, &text)
    }

    /// Parse and validate config text; `path` is used in messages and to
    /// resolve relative ruleset paths.
    pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: FileConfig = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(path, text, &e))?;
        build(path, text, raw)
    }

    /// The kernel objects this config asks for.
    pub fn table_spec(&self) -> TableSpec {
        let mut jails: Vec<String> = self.jails.iter().map(|j| j.name.clone()).collect();
        jails.push(MANUAL_JAIL.to_string());
        TableSpec {
            table: self.table.clone(),
            action: self.action,
            jails,
        }
    }
}

/// Turn a YAML library error into ours, adding a position when the library
/// gave none (it omits it for unknown keys at the top level).
fn yaml_error(path: &Path, text: &str, e: &serde_yaml_ng::Error) -> ConfigError {
    let (message, at) = yaml_error_parts(text, e);
    ConfigError {
        file: path.to_path_buf(),
        at,
        message,
    }
}

/// A YAML library error as message and position (also for ruleset files).
pub fn yaml_error_parts(text: &str, e: &serde_yaml_ng::Error) -> (String, Option<(usize, usize)>) {
    let full = e.to_string();
    // The library appends " at line L column C"; we print that ourselves.
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    let mut at = e.location().map(|l| (l.line(), l.column()));
    if at.is_none() {
        if let Some(key) = unknown_field(&message) {
            let mut keys: Vec<&str> = match message.split_once(": unknown field") {
                Some((prefix, _)) => prefix.split('.').collect(),
                None => vec![],
            };
            keys.push(key);
            at = locate(text, &keys);
        }
    }
    (message, at)
}

fn unknown_field(message: &str) -> Option<&str> {
    let i = message.find("unknown field `")? + "unknown field `".len();
    let rest = &message[i..];
    Some(&rest[..rest.find('`')?])
}

/// Jail names become nft set names (`<jail>_v4`): letters, digits, `_`, `-`.
fn valid_jail_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 60
}

fn parse_ignoreip(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| crate::matcher::parse_net(s).map_err(|e| format!("`{s}` is not an address or CIDR prefix: {e}")))
        .collect()
}

fn build(path: &Path, text: &str, raw: FileConfig) -> Result<Config, ConfigError> {
    let err = |keys: &[&str], message: String| ConfigError {
        file: path.to_path_buf(),
        at: locate(text, keys),
        message,
    };
    let base_dir = path.parent().unwrap_or(Path::new("."));

    match raw.log.target.as_str() {
        "stderr" => {}
        "journald" | "syslog" => {
            return Err(err(
                &["log", "target"],
                format!(
                    "log.target: `{}` is not supported yet in this version; use `stderr` or a file path",
                    raw.log.target
                ),
            ))
        }
        t if t.starts_with('/') => {}
        t => {
            return Err(err(
                &["log", "target"],
                format!("log.target: `{t}` must be stderr, journald, syslog or an absolute file path"),
            ))
        }
    }
    if !["error", "warn", "info", "debug", "trace"].contains(&raw.log.level.as_str()) {
        return Err(err(
            &["log", "level"],
            format!(
                "log.level: `{}` must be one of error, warn, info, debug, trace",
                raw.log.level
            ),
        ));
    }
    if !valid_jail_name(&raw.nftables.table) {
        return Err(err(
            &["nftables", "table"],
            format!("nftables.table: `{}` is not a valid table name", raw.nftables.table),
        ));
    }

    let d = &raw.defaults;
    let def_findtime = d.findtime.map(|x| x.0).unwrap_or(Duration::from_secs(600));
    let def_maxretry = d.maxretry.unwrap_or(5);
    let def_bantime = d.bantime.map(|x| x.0).unwrap_or(Duration::from_secs(3600));
    let def_ignore = match &d.ignoreip {
        Some(list) => {
            parse_ignoreip(list).map_err(|m| err(&["defaults", "ignoreip"], format!("defaults.ignoreip: {m}")))?
        }
        None => vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
    };
    if def_maxretry == 0 {
        return Err(err(
            &["defaults", "maxretry"],
            "defaults.maxretry: must be at least 1".into(),
        ));
    }
    if def_bantime.is_zero() {
        return Err(err(
            &["defaults", "bantime"],
            "defaults.bantime: must be longer than 0s".into(),
        ));
    }

    let mut jails = Vec::new();
    for (name, j) in raw.jails {
        let at = |key: &'static str| -> [&str; 3] { ["jails", name.as_str(), key] };
        if !valid_jail_name(&name) {
            return Err(err(
                &["jails", &name],
                format!("jails.{name}: a jail name starts with a letter and holds only letters, digits, `_` and `-`"),
            ));
        }
        if name == MANUAL_JAIL {
            return Err(err(
                &["jails", &name],
                format!("jails.{name}: `{MANUAL_JAIL}` is reserved for `nftban ban`"),
            ));
        }
        if !j.enabled {
            continue;
        }
        let ruleset = Ruleset::resolve(&j.ruleset, base_dir)
            .map_err(|m| err(&at("ruleset"), format!("jails.{name}.ruleset: {m}")))?;
        let ruleset = ruleset
            .with_mode(j.mode.as_deref())
            .map_err(|m| err(&at("mode"), format!("jails.{name}.mode: {}", m.message)))?;
        let matcher = Matcher::new(&ruleset).map_err(|m| err(&at("ruleset"), format!("jails.{name}.ruleset: {m}")))?;
        if j.files.is_empty() && j.journal.is_empty() {
            return Err(err(
                &["jails", &name],
                format!("jails.{name}: no source; give `files` (or `journal`)"),
            ));
        }
        if let Some(f) = j.files.iter().find(|f| !f.is_absolute()) {
            return Err(err(
                &at("files"),
                format!("jails.{name}.files: `{}` must be an absolute path", f.display()),
            ));
        }
        if !j.journal.is_empty() {
            return Err(err(
                &at("journal"),
                format!("jails.{name}.journal: the journald source is not supported yet in this version; use `files`"),
            ));
        }
        let maxretry = j.maxretry.unwrap_or(def_maxretry);
        if maxretry == 0 {
            return Err(err(
                &at("maxretry"),
                format!("jails.{name}.maxretry: must be at least 1"),
            ));
        }
        let bantime = j.bantime.map(|x| x.0).unwrap_or(def_bantime);
        if bantime.is_zero() {
            return Err(err(
                &at("bantime"),
                format!("jails.{name}.bantime: must be longer than 0s"),
            ));
        }
        let ignoreip = match &j.ignoreip {
            Some(list) => {
                parse_ignoreip(list).map_err(|m| err(&at("ignoreip"), format!("jails.{name}.ignoreip: {m}")))?
            }
            None => def_ignore.clone(),
        };
        jails.push(Jail {
            name: name.clone(),
            ruleset: ruleset.name.clone(),
            rules: Arc::new(ruleset),
            matcher: Arc::new(matcher),
            files: j.files,
            journal: j.journal,
            findtime: j.findtime.map(|x| x.0).unwrap_or(def_findtime),
            maxretry,
            bantime,
            ignoreip,
        });
    }

    Ok(Config {
        path: path.to_path_buf(),
        socket: raw.socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        database: raw.database,
        log: raw.log,
        table: raw.nftables.table,
        action: raw.nftables.action,
        default_bantime: def_bantime,
        jails,
    })
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
mod tests;
