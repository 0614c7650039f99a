//! Ruleset files: the detection rules for one service, with examples that
//! the test suite runs. Shipped rulesets are built into the binary; a file of
//! the same name in `/etc/nftban/rulesets/` overrides one.

use std::path::{Path, PathBuf};

use serde::Deserialize;

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
pub const OVERRIDE_DIR: &str = "/etc/nftban/rulesets";

/// A ruleset as written in YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ruleset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A regex put in front of every failregex (the log's fixed prefix:
    /// timestamp, level, source file). Rules are anchored at the start of
    /// the line: `^` + prefix + rule.
    #[serde(default)]
    pub prefix: String,
    /// A line matching any of these is a failure of the captured host.
    pub failregex: Vec<String>,
    /// A line matching any of these is never a failure.
    #[serde(default)]
    pub ignoreregex: Vec<String>,
    /// Sample lines and the host each must yield (`null`: must not match).
    #[serde(default)]
    pub examples: Vec<Example>,
    /// Where it came from, for messages.
    #[serde(skip)]
    pub origin: String,
}

/// One example line of a ruleset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub line: String,
    pub host: Option<String>,
}

impl Ruleset {
    /// Parse ruleset YAML; `origin` names the file in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Ruleset, String> {
        let mut r: Ruleset = serde_yaml_ng::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        if r.failregex.is_empty() {
            return Err(format!("{origin}: failregex is empty"));
        }
        r.origin = origin.to_string();
        Ok(r)
    }

    /// A ruleset by shipped name (overridable in [`OVERRIDE_DIR`]) or by
    /// path (anything with a `/` or ending in `.yaml`/`.yml`; relative paths
    /// are taken from `base_dir`, the config file's folder).
    pub fn resolve(name_or_path: &str, base_dir: &Path) -> Result<Ruleset, String> {
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
    pub fn shipped(name: &str) -> Result<Ruleset, String> {
        match SHIPPED.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Ruleset::parse(&format!("rulesets/{n}.yaml (built in)"), text),
            None => Err(format!(
                "unknown ruleset `{name}` (shipped: {}; or give a path to a ruleset file)",
                SHIPPED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// A ruleset read from a file.
    pub fn from_file(path: &Path) -> Result<Ruleset, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read ruleset {}: {e}", path.display()))?;
        Ruleset::parse(&path.display().to_string(), &text)
    }

    /// A one-rule ruleset from a regex given on the command line.
    pub fn from_regex(regex: &str) -> Ruleset {
        Ruleset {
            name: "command-line regex".into(),
            description: String::new(),
            prefix: String::new(),
            failregex: vec![regex.to_string()],
            ignoreregex: vec![],
            examples: vec![],
            origin: "command line".into(),
        }
    }
}
