//! Ruleset files: the detection rules for one service, with examples that
//! the test suite runs. Shipped rulesets are built into the binary; a file of
//! the same name in `/etc/nftban/rulesets/` overrides one.
//!
//! The format holds what a fail2ban filter says (prefregex, failregex,
//! ignoreregex, datepattern, journalmatch, modes) in YAML; docs/rulesets.md
//! and docs/ruleset.schema.json describe it for people and for editors.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use super::date::{CustomDate, DateFormat};
use crate::yaml::{locate, locate_item, Place, Position};

/// Rulesets built into the binary: (name, YAML text).
pub const SHIPPED: &[(&str, &str)] = &[
    ("asterisk", include_str!("../../rulesets/asterisk.yaml")),
    ("sshd", include_str!("../../rulesets/sshd.yaml")),
    ("sshd-aggressive", include_str!("../../rulesets/sshd-aggressive.yaml")),
    ("kamailio", include_str!("../../rulesets/kamailio.yaml")),
    ("freeswitch", include_str!("../../rulesets/freeswitch.yaml")),
    ("postfix", include_str!("../../rulesets/postfix.yaml")),
    ("dovecot", include_str!("../../rulesets/dovecot.yaml")),
    ("nginx", include_str!("../../rulesets/nginx.yaml")),
];

/// Where admins put their own rulesets or overrides of shipped ones.
const OVERRIDE_DIR: &str = "/etc/nftban/rulesets";

/// An nftban ruleset: the detection rules for one service
/// (rulesets/*.yaml, /etc/nftban/rulesets/*.yaml; docs/rulesets.md).
/// Unknown keys are errors.
#[derive(Debug, Clone, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nftban ruleset")]
pub struct Ruleset {
    /// The ruleset's name; shipped rulesets are named like their file.
    #[schemars(length(min = 1))]
    pub name: String,
    /// What the rules detect, for people.
    #[serde(default)]
    pub description: String,
    /// A regex put in front of every failregex (the log's fixed prefix:
    /// timestamp, level, source file). Rules are anchored at the start of
    /// the line: `^` + prefix + rule.
    #[serde(default)]
    pub prefix: String,
    /// fail2ban's prefregex: a regex the whole line must match, with one
    /// `<F-CONTENT>...</F-CONTENT>` part; the failregexes then run on that
    /// part only. Mostly for imported fail2ban filters; `prefix` is faster.
    #[serde(default)]
    pub prefregex: Option<String>,
    /// A line matching any of these is a failure of the address captured by
    /// its one `<HOST>` (or `<ADDR>`, `<IP4>`, `<IP6>`, `<SUBNET>`).
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub failregex: Vec<String>,
    /// A line a failregex matched is not a failure if it matches one of
    /// these.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub ignoreregex: Vec<String>,
    /// A fixed string every failure line contains; a line without it is
    /// missed before any regex runs. Optional: each rule also gets a literal
    /// derived from its regex where one exists.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub prefilter: Option<String>,
    /// Which date formats the log's lines start with (`asterisk`, `syslog`,
    /// `iso8601`, `epoch`); absent: all of them are tried; empty: lines
    /// carry no date and the time they are read is used.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true))]
    pub datepattern: Option<Vec<DatePattern>>,
    /// journald matches (`_SYSTEMD_UNIT=sshd.service`), for when the journal
    /// source lands; kept so fail2ban filters translate without loss.
    #[serde(default)]
    pub journalmatch: Vec<String>,
    /// Named modes a jail can pick with `mode:` (fail2ban's sshd
    /// `normal`/`aggressive`); a mode's rules are added to the base ones.
    #[serde(default)]
    pub modes: BTreeMap<String, Mode>,
    /// Sample lines the test suite and `nftban check` run, each with the
    /// host it must yield (`null`: it must give no ban).
    #[serde(default)]
    pub examples: Vec<Example>,
    /// Where it came from, for messages.
    #[serde(skip)]
    pub origin: String,
    /// The YAML text, to give errors a line and column.
    #[serde(skip)]
    pub text: Option<String>,
    /// Match rules on the line with its leading date removed, as fail2ban
    /// does (set for imported fail2ban filters only).
    #[serde(skip)]
    pub strip_date: bool,
    /// Rules the fast engine cannot run (Python regex syntax, fail2ban
    /// fields whose branch matters, several address tags) run on the
    /// fallback engine instead of being refused (imported fail2ban filters
    /// only; shipped rulesets keep to the fast engine).
    #[serde(skip)]
    pub fallback: bool,
    /// fail2ban's `datepattern = ^REGEX{DATE}` (rfc5424's
    /// `^<\d+>\d+\s+{DATE}`): the date is read right after the regex
    /// (imported filters only).
    #[serde(skip)]
    pub date_lead: Option<DateLead>,
    /// The mode the rules were built for (after [`Ruleset::with_mode`]).
    #[serde(skip)]
    pub mode: Option<String>,
    /// Where each failregex came from (`failregex[0]`, `modes.aggressive.failregex[1]`).
    #[serde(skip)]
    pub rule_keys: Vec<RuleKey>,
    /// What an imported fail2ban filter holds that nftban cannot run, left
    /// out: (the rule or setting, why). `nftban check` warns of each and
    /// the daemon logs them at start: a typo in a hand-edited filter must
    /// not quietly stop a rule.
    #[serde(skip)]
    pub left_out: Vec<(String, String)>,
}

/// A regex a line's date follows (fail2ban's `datepattern = ^REGEX{DATE}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateLead {
    /// The regex, anchored (`^(?:...)`), as the matcher compiles it.
    pub regex: String,
    /// Cut out with the date (`^REGEX{DATE}`: fail2ban cuts its whole
    /// template match), or left in the line (`^REGEX({DATE})`: the group
    /// is the date fail2ban cuts).
    pub cut: bool,
    /// A date where the filter's other patterns find one is read when
    /// none follows the regex (tine20's second line, `{^LN-BEG}`).
    pub or_else: bool,
}

/// One `datepattern` entry: a named format, or strftime directives
/// (`%d/%b/%Y:%H:%M:%S %z`) for a log the named formats do not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatePattern {
    Named(DateFormat),
    Custom(CustomDate),
}

/// The named date formats, as `datepattern` names them.
const NAMED_DATES: [(&str, DateFormat); 4] = [
    ("asterisk", DateFormat::Asterisk),
    ("syslog", DateFormat::Syslog),
    ("iso8601", DateFormat::Iso8601),
    ("epoch", DateFormat::Epoch),
];

impl<'de> Deserialize<'de> for DatePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DatePattern, D::Error> {
        use serde::de::Error;
        let s = String::deserialize(d)?;
        let named = NAMED_DATES.iter().find(|(n, _)| *n == s).map(|(_, f)| *f);
        match named {
            Some(f) => Ok(DatePattern::Named(f)),
            None if s.contains('%') => CustomDate::new(&s).map(DatePattern::Custom).map_err(D::Error::custom),
            None => Err(D::Error::custom(format!(
                "unknown date format `{s}`: use asterisk, syslog, iso8601, epoch, or strftime directives such as `%d/%b/%Y:%H:%M:%S %z`"
            ))),
        }
    }
}

/// In the JSON Schema an entry is a format's name or a text with `%`
/// directives (which the parser then checks directive by directive).
impl JsonSchema for DatePattern {
    fn schema_name() -> Cow<'static, str> {
        "datepattern".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = NAMED_DATES.iter().map(|(n, _)| *n).collect();
        json_schema!({
            "anyOf": [
                {"enum": names, "description": "A named date format."},
                {
                    "type": "string",
                    "pattern": "%",
                    "description": "strftime directives read at the line's start: %Y %y %m %b %B %d %e %a %H %k %I %p %M %S %f %z %Z %s %%; a space matches one or more spaces; `\\x` is a literal x."
                }
            ]
        })
    }
}

impl DatePattern {
    /// The named formats of a `datepattern` list (`Custom` standing for
    /// all its own patterns), and its own patterns.
    pub fn split(list: &[DatePattern]) -> (Vec<DateFormat>, Vec<CustomDate>) {
        let mut named = Vec::new();
        let mut custom = Vec::new();
        for p in list {
            match p {
                DatePattern::Named(f) => named.push(*f),
                DatePattern::Custom(c) => custom.push(c.clone()),
            }
        }
        if !custom.is_empty() {
            named.push(DateFormat::Custom);
        }
        (named, custom)
    }
}

/// Extra rules of a mode, added to the base rules.
#[derive(Debug, Clone, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mode {
    /// What the mode adds, for people.
    #[serde(default)]
    pub description: String,
    /// Added to the ruleset's `failregex`.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub failregex: Vec<String>,
    /// Added to the ruleset's `ignoreregex`.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub ignoreregex: Vec<String>,
}

/// One example line of a ruleset.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// A log line.
    pub line: String,
    /// The address the line must yield; `null` or absent: it must give no
    /// ban.
    pub host: Option<String>,
    /// The mode the example is for; absent: the base rules (and, when it
    /// names a host, every mode, since modes only add rules).
    #[serde(default)]
    pub mode: Option<String>,
}

/// Where a rule sits in its ruleset file: key path and list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleKey {
    pub path: Vec<String>,
    pub index: usize,
}

impl fmt::Display for RuleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.path.join("."), self.index)
    }
}

/// A ruleset error: `file:line:column: message`, the position when known,
/// the message alone when no file is involved (an unknown shipped name).
/// The message starts with the key (`failregex[1]: ...`) where there is
/// one; causes (regex, date pattern and YAML errors) are part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Place { file: &self.origin, at: self.at, key: Some(&self.message) })]
pub struct RulesetError {
    /// The file, as messages name it.
    pub origin: String,
    pub at: Option<Position>,
    pub message: String,
}

impl Ruleset {
    /// Parse ruleset YAML; `origin` names the file in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Ruleset, RulesetError> {
        // Aliases that would make the file far larger than its text.
        if let Some(e) = crate::yaml::expansion(text) {
            return Err(RulesetError {
                origin: origin.to_string(),
                at: e.at,
                message: match e.key.as_str() {
                    "" => e.error.to_string(),
                    key => format!("{key}: {}", e.error),
                },
            });
        }
        // A mode or rule key given twice would silently replace the first.
        if let Some(dup) = crate::yaml::duplicate_key(text) {
            let first = dup
                .first
                .map(|(line, _)| format!(" (first at line {line})"))
                .unwrap_or_default();
            return Err(RulesetError {
                origin: origin.to_string(),
                at: dup.at,
                message: format!(
                    "{}: given twice{first}; the last would silently replace the others",
                    dup.key
                ),
            });
        }
        let mut r: Ruleset = serde_yaml_ng::from_str(text).map_err(|e| {
            let (message, at) = crate::yaml::parse_error(text, &e);
            RulesetError {
                origin: origin.to_string(),
                at,
                message,
            }
        })?;
        r.origin = origin.to_string();
        r.text = Some(text.to_string());
        if r.failregex.is_empty() {
            return Err(r.error_at(&["failregex"], None, "failregex is empty".into()));
        }
        if let Some(p) = &r.prefilter {
            if p.is_empty() {
                return Err(r.error_at(&["prefilter"], None, "prefilter is empty".into()));
            }
        }
        r.rule_keys = (0..r.failregex.len())
            .map(|index| RuleKey {
                path: vec!["failregex".into()],
                index,
            })
            .collect();
        for (i, ex) in r.examples.iter().enumerate() {
            if let Some(m) = &ex.mode {
                if !r.modes.contains_key(m) {
                    return Err(r.error_at(&["examples"], Some(i), format!("examples[{i}]: unknown mode `{m}`")));
                }
            }
        }
        Ok(r)
    }

    /// An error at a key (and list item) of this ruleset's file.
    pub fn error_at(&self, path: &[&str], index: Option<usize>, message: String) -> RulesetError {
        let at = self.text.as_deref().and_then(|t| match index {
            Some(i) => locate_item(t, path, i),
            None => locate(t, path),
        });
        RulesetError {
            origin: self.origin.clone(),
            at,
            message,
        }
    }

    /// The rules of a mode: the base rules plus the mode's. `None` or
    /// `normal` (when no mode of that name exists) is the base.
    pub fn with_mode(&self, mode: Option<&str>) -> Result<Ruleset, RulesetError> {
        let Some(name) = mode else {
            return Ok(self.clone());
        };
        let Some(m) = self.modes.get(name) else {
            if name == "normal" {
                return Ok(self.clone());
            }
            let known: Vec<&str> = self.modes.keys().map(|k| k.as_str()).collect();
            return Err(RulesetError {
                origin: self.origin.clone(),
                at: None,
                message: format!(
                    "no mode `{name}` in ruleset {} (modes: {})",
                    self.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        };
        let mut r = self.clone();
        for (index, re) in m.failregex.iter().enumerate() {
            r.failregex.push(re.clone());
            r.rule_keys.push(RuleKey {
                path: vec!["modes".into(), name.into(), "failregex".into()],
                index,
            });
        }
        r.ignoreregex.extend(m.ignoreregex.iter().cloned());
        r.mode = Some(name.to_string());
        Ok(r)
    }

    /// A ruleset by shipped name (overridable in [`OVERRIDE_DIR`]) or by
    /// path (anything with a `/` or ending in `.yaml`/`.yml`; relative paths
    /// are taken from `base_dir`, the config file's folder).
    pub fn resolve(name_or_path: &str, base_dir: &Path) -> Result<Ruleset, RulesetError> {
        let is_path = name_or_path.contains('/') || name_or_path.ends_with(".yaml") || name_or_path.ends_with(".yml");
        if is_path {
            let path = base_dir.join(name_or_path);
            return Self::from_file(&path);
        }
        let over = PathBuf::from(OVERRIDE_DIR).join(format!("{name_or_path}.yaml"));
        if over.exists() {
            return Self::from_file(&over);
        }
        Self::shipped(name_or_path)
    }

    /// A shipped ruleset by name.
    pub fn shipped(name: &str) -> Result<Ruleset, RulesetError> {
        match SHIPPED.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Ruleset::parse(&format!("rulesets/{n}.yaml (built in)"), text),
            None => Err(RulesetError {
                origin: String::new(),
                at: None,
                message: format!(
                    "unknown ruleset `{name}` (shipped: {}; or give a path to a ruleset file)",
                    SHIPPED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }

    /// A ruleset read from a file.
    pub fn from_file(path: &Path) -> Result<Ruleset, RulesetError> {
        let text = crate::regular::read_text(path).map_err(|e| RulesetError {
            origin: path.display().to_string(),
            at: None,
            message: format!("cannot read ruleset: {e}"),
        })?;
        Ruleset::parse(&path.display().to_string(), &text)
    }

    /// A one-rule ruleset from a regex given on the command line.
    pub fn from_regex(regex: &str) -> Ruleset {
        Ruleset {
            name: "command-line regex".into(),
            failregex: vec![regex.to_string()],
            origin: "command line".into(),
            rule_keys: vec![RuleKey {
                path: vec!["failregex".into()],
                index: 0,
            }],
            ..Default::default()
        }
    }

    /// Where rule `i` sits, for messages.
    fn rule_key(&self, i: usize) -> RuleKey {
        self.rule_keys.get(i).cloned().unwrap_or(RuleKey {
            path: vec!["failregex".into()],
            index: i,
        })
    }

    /// An error about rule `i`, with its line and column when the text is known.
    /// Whether [`crate::matcher::Matcher::new`] makes the same matcher of
    /// both (what it reads, the mode, where they came from): jails on such
    /// rulesets share one.
    pub fn compiles_like(&self, other: &Ruleset) -> bool {
        self.origin == other.origin
            && self.name == other.name
            && self.mode == other.mode
            && self.prefix == other.prefix
            && self.prefregex == other.prefregex
            && self.failregex == other.failregex
            && self.ignoreregex == other.ignoreregex
            && self.prefilter == other.prefilter
            && self.datepattern == other.datepattern
            && self.date_lead == other.date_lead
            && self.strip_date == other.strip_date
            && self.fallback == other.fallback
    }

    pub fn rule_error(&self, i: usize, message: String) -> RulesetError {
        let key = self.rule_key(i);
        let path: Vec<&str> = key.path.iter().map(|s| s.as_str()).collect();
        self.error_at(&path, Some(key.index), format!("{key}: {message}"))
    }
}
