//! One enabled fail2ban jail turned into an nftban jail, and every
//! setting of it that nftban does not carry over, with the reason, so the
//! report leaves nothing unsaid: a jail that silently lost its mail
//! action or its `ignorecommand` would be a surprise on the first bad day.

use std::path::{Path, PathBuf};

use super::tree::{Tree, TreeError};
use super::values::{self, Time};
use crate::matcher::fail2ban;

/// A setting not carried over: which jail (`DEFAULT` when every jail
/// inherits it), the key, its value, the file that set it, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Note {
    pub jail: String,
    pub key: String,
    pub value: String,
    pub file: Option<PathBuf>,
    pub reason: String,
}

/// A ban-time increment in nftban's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    pub factor: f64,
    pub max: String,
}

/// The values a jail (or `[DEFAULT]`) bans with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Banning {
    pub maxretry: Option<u32>,
    pub findtime: Option<String>,
    pub bantime: Option<String>,
    pub ignoreip: Option<Vec<String>>,
    pub increment: Option<Increment>,
    /// fail2ban's `usedns`: `Some(true)` only for an explicit `yes`;
    /// `warn` (its default), `raw` and `no` do not resolve here.
    pub usedns: Option<bool>,
}

/// An nftban jail to write.
#[derive(Debug, Clone)]
pub struct Jail {
    pub name: String,
    /// `filter.d/NAME.conf[options]`, relative to the output folder.
    pub ruleset: String,
    /// The filter's file in the fail2ban tree.
    pub filter: PathBuf,
    pub files: Vec<String>,
    pub journal: Vec<String>,
    pub banning: Banning,
}

/// Collects notes for one jail.
pub struct Notes<'t> {
    tree: &'t Tree,
    pub list: Vec<Note>,
}

impl<'t> Notes<'t> {
    pub fn new(tree: &'t Tree) -> Self {
        Notes { tree, list: Vec::new() }
    }

    /// A note on `key` of `jail`, filed under `DEFAULT` when the jail only
    /// inherits it (so it is said once for all jails) unless `own`.
    pub fn add(&mut self, jail: &str, key: &str, value: &str, reason: impl Into<String>, own: bool) {
        let at = match own || self.tree.sets(jail, key) || jail == "DEFAULT" {
            true => jail,
            false => "DEFAULT",
        };
        let note = Note {
            jail: at.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            file: self.tree.origin(at, key).map(Path::to_path_buf),
            reason: reason.into(),
        };
        if !self.list.contains(&note) {
            self.list.push(note);
        }
    }
}

/// fail2ban actions that ban by address in a firewall (or pretend to):
/// nftban's own ban takes their place.
const BANNING_ACTIONS: &[&str] = &[
    "iptables",
    "ip6tables",
    "nftables",
    "firewallcmd",
    "shorewall",
    "ufw",
    "pf",
    "ipfw",
    "ipfilter",
    "npf",
    "bsd-ipfw",
    "route",
    "apf",
    "csf-ip-deny",
    "hostsdeny",
    "dummy",
    "symbiosis-blacklist-allports",
];
/// Actions that send mail.
const MAIL_ACTIONS: &[&str] = &["sendmail", "mail", "mynetwatchman", "complain", "xarf"];

/// The banning values of `section` (a jail or `DEFAULT`), with notes on
/// what changed on the way.
pub fn banning(tree: &Tree, section: &str, notes: &mut Notes) -> Result<Banning, TreeError> {
    let mut b = Banning::default();
    if let Some(v) = tree.get(section, "maxretry")? {
        match v.trim().parse::<i64>() {
            Ok(n) if n >= 1 => b.maxretry = Some(n.min(u32::MAX as i64) as u32),
            Ok(_) => {
                notes.add(
                    section,
                    "maxretry",
                    &v,
                    "below 1: nftban bans at the first failure (maxretry 1)",
                    false,
                );
                b.maxretry = Some(1);
            }
            Err(_) => notes.add(
                section,
                "maxretry",
                &v,
                "not a number: nftban's default (5) is used",
                false,
            ),
        }
    }
    for key in ["findtime", "bantime"] {
        let Some(v) = tree.get(section, key)? else { continue };
        match values::parse_time(&v) {
            Ok(t) => {
                let (text, changed) = values::nftban_time(t);
                if let Some(why) = changed {
                    notes.add(section, key, &v, why, false);
                }
                match key {
                    "findtime" => b.findtime = Some(text),
                    _ => b.bantime = Some(text),
                }
            }
            Err(e) => notes.add(section, key, &v, format!("{e}: nftban's default is used"), false),
        }
    }
    if let Some(v) = tree.get(section, "ignoreip")? {
        let mut list = Vec::new();
        for item in values::list(&v) {
            // fail2ban takes `127.0.0.1/8` (host bits set) as its prefix.
            let net = crate::address::parse_net(&item)
                .ok()
                .or_else(|| item.parse::<ipnet::IpNet>().ok().map(|n| n.trunc()));
            match net {
                Some(net) => list.push(crate::address::show(&net)),
                None => notes.add(
                    section,
                    "ignoreip",
                    &item,
                    "not an address nor a CIDR prefix (a host name?): nftban never resolves names; add its addresses to `ignoreip`",
                    false,
                ),
            }
        }
        b.ignoreip = Some(list);
    }
    if let Some(v) = tree.get(section, "usedns")? {
        b.usedns = Some(v.trim().eq_ignore_ascii_case("yes"));
    }
    let on = tree
        .get(section, "bantime.increment")?
        .and_then(|v| values::parse_bool(&v));
    if on == Some(true) {
        let get = |k: &str| tree.get(section, k);
        let (factor, why) = values::increment(
            get("bantime.factor")?.as_deref(),
            get("bantime.formula")?.as_deref(),
            get("bantime.multipliers")?.as_deref(),
        );
        if let Some(why) = why {
            let key = ["bantime.multipliers", "bantime.formula", "bantime.factor"]
                .into_iter()
                .find(|k| why.contains(k))
                .unwrap_or("bantime.increment");
            notes.add(section, key, &get(key)?.unwrap_or_default(), why, false);
        }
        let max = match get("bantime.maxtime")?.map(|m| (values::parse_time(&m), m)) {
            Some((Ok(t), _)) => values::nftban_time(t).0,
            Some((Err(e), m)) => {
                notes.add(section, "bantime.maxtime", &m, format!("{e}: 3650d is used"), false);
                values::nftban_time(Time::Forever).0
            }
            None => {
                notes.add(
                    section,
                    "bantime.maxtime",
                    "",
                    "not set: fail2ban caps the growth at 2^20 bantimes; nftban needs a `max`: 3650d (10 years), its longest",
                    false,
                );
                values::nftban_time(Time::Forever).0
            }
        };
        b.increment = Some(Increment { factor, max });
        if let Some(r) = get("bantime.rndtime")?.filter(|r| !r.trim().is_empty()) {
            notes.add(
                section,
                "bantime.rndtime",
                &r,
                "nftban adds no random time to bans",
                false,
            );
        }
        if let Some(o) = get("bantime.overalljails")?.filter(|o| values::parse_bool(o) == Some(true)) {
            notes.add(
                section,
                "bantime.overalljails",
                &o,
                "nftban counts earlier bans per jail; across jails, the top-level `recidive:` bans repeat offenders",
                false,
            );
        }
    }
    Ok(b)
}

/// One enabled jail: `None` (with the reason noted) if it cannot be
/// imported.
pub fn convert(tree: &Tree, dir: &Path, name: &str, notes: &mut Notes) -> Result<Option<Jail>, TreeError> {
    let left_out = |notes: &mut Notes, key: &str, value: &str, why: String| {
        notes.add(name, key, value, format!("jail left out: {why}"), true);
    };
    let spec = tree.get(name, "filter")?.unwrap_or_default();
    let (filter_name, options) = fail2ban::parse_spec(spec.trim());
    let filter_name = filter_name.to_string_lossy().trim().to_string();
    if filter_name.is_empty() {
        left_out(notes, "filter", &spec, "no filter".into());
        return Ok(None);
    }
    let filter = dir.join("filter.d").join(format!("{filter_name}.conf"));
    let imported = match fail2ban::load_with(&filter, &options) {
        Ok(i) => i,
        Err(e) => {
            left_out(notes, "filter", &spec, format!("nftban cannot use its filter: {e}"));
            return Ok(None);
        }
    };
    for (rule, why) in &imported.skipped {
        notes.add(
            name,
            "filter",
            rule,
            format!("rule left out of filter.d/{filter_name}.conf: {why}"),
            true,
        );
        if let Some(n) = notes.list.last_mut() {
            n.file = Some(filter.clone());
        }
    }
    let mut ruleset = format!("filter.d/{filter_name}.conf");
    if !options.is_empty() {
        let opts: Vec<String> = options
            .iter()
            .map(|(k, v)| match v.contains([',', ' ', ']', '"']) {
                true => format!("{k}='{v}'"),
                false => format!("{k}={v}"),
            })
            .collect();
        ruleset = format!("{ruleset}[{}]", opts.join(", "));
    }

    let backend_raw = tree.get(name, "backend")?.unwrap_or_else(|| "auto".into());
    let (backend, backend_opts) = fail2ban::parse_spec(backend_raw.trim());
    let backend = backend.to_string_lossy().trim().to_string();
    let (mut files, mut journal) = (Vec::new(), Vec::new());
    if backend == "systemd" {
        if !backend_opts.is_empty() {
            notes.add(
                name,
                "backend",
                &backend_raw,
                "systemd's options: nftban reads the system journal",
                false,
            );
        }
        let matches = match tree.get(name, "journalmatch")? {
            Some(j) => j,
            None => imported.ruleset.journalmatch.join(" "),
        };
        // `+` joins alternatives; nftban's matches on different fields must
        // all hold, so one group is carried: the process name (`_COMM=`)
        // if a group is only that, since it is the same whatever the unit
        // is called (Debian's sshd runs as ssh.service, not sshd.service);
        // else the first.
        let mut groups: Vec<Vec<String>> = matches.split(" + ").map(values::list).collect();
        let pick = groups
            .iter()
            .position(|g| !g.is_empty() && g.iter().all(|m| m.starts_with("_COMM=")))
            .unwrap_or(0);
        journal = if groups.is_empty() {
            Vec::new()
        } else {
            groups.remove(pick)
        };
        let rest: Vec<String> = groups.iter().map(|g| g.join(" ")).collect();
        if !rest.is_empty() {
            notes.add(
                name,
                "journalmatch",
                &matches,
                format!(
                    "alternatives joined by `+` across different fields cannot be said in nftban's `journal:` (same field: alternatives; different fields: all must hold): only `{}` is carried; left out: `{}`",
                    journal.join(" "),
                    rest.join("` and `")
                ),
                true,
            );
        }
        if journal.is_empty() {
            left_out(
                notes,
                "journalmatch",
                "",
                "backend systemd without a journalmatch: give the jail `journal:` matches by hand".into(),
            );
            return Ok(None);
        }
    } else {
        if !matches!(backend.as_str(), "auto" | "polling" | "pyinotify" | "gamin") {
            notes.add(
                name,
                "backend",
                &backend_raw,
                "unknown backend: the log files are read (inotify)",
                false,
            );
        }
        let logpath = tree.get(name, "logpath")?.unwrap_or_default();
        for path in values::logpaths(&logpath) {
            let p = Path::new(&path);
            let wild_folder = p.parent().is_some_and(|d| {
                d.components()
                    .any(|c| crate::sources::glob::has_wildcard(c.as_os_str()))
            });
            if !p.is_absolute() {
                notes.add(name, "logpath", &path, "not an absolute path: left out", true);
            } else if wild_folder {
                notes.add(
                    name,
                    "logpath",
                    &path,
                    "a wildcard in a folder: nftban's patterns take wildcards in the file name only; list the folders",
                    true,
                );
            } else if !files.contains(&path) {
                files.push(path);
            }
        }
        if files.is_empty() {
            left_out(notes, "logpath", &logpath, "no log file nftban can follow".into());
            return Ok(None);
        }
    }
    extra_settings(tree, name, notes)?;
    Ok(Some(Jail {
        name: name.to_string(),
        ruleset,
        filter,
        files,
        journal,
        banning: banning(tree, name, notes)?,
    }))
}

/// What fail2ban does for a jail beyond banning, each said in a note.
fn extra_settings(tree: &Tree, name: &str, notes: &mut Notes) -> Result<(), TreeError> {
    let action = soft(tree, name, "action", notes).unwrap_or_default();
    let mut scoped = false;
    for line in action.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (action_name, opts) = fail2ban::parse_spec(line);
        let action_name = action_name.to_string_lossy();
        let is = |list: &[&str]| list.iter().any(|a| action_name.starts_with(a));
        if is(BANNING_ACTIONS) {
            let all = action_name.contains("allports") || opts.iter().any(|(k, v)| k == "port" && v == "0:65535");
            scoped |= !all;
        } else if is(MAIL_ACTIONS) {
            notes.add(
                name,
                "action",
                line,
                "mail is not sent: nftban's `events:` sinks (a JSON lines file or socket, docs/cli.md) feed a mailer or chat-ops",
                true,
            );
        } else {
            notes.add(
                name,
                "action",
                line,
                "an action other than banning is not run: hook it to nftban's `events:` sinks (docs/cli.md)",
                true,
            );
        }
    }
    if scoped {
        let port = soft(tree, name, "port", notes).unwrap_or_default();
        let protocol = soft(tree, name, "protocol", notes).unwrap_or_default();
        notes.add(
            name,
            "port",
            &format!("{port} ({protocol})"),
            "nftban drops every packet of a banned address (all ports, as fail2ban's *-allports actions); fail2ban scoped this jail's bans to these ports",
            true,
        );
    }
    if tree.sets(name, "action_") {
        let value = soft(tree, name, "action_", notes).unwrap_or_default();
        notes.add(
            name,
            "action_",
            &value,
            "a custom action_ of this jail: nftban bans in its own table instead",
            true,
        );
    }
    // `yes` is carried (`usedns: yes`), `no` is nftban's default.
    if let Some(v) = soft(tree, name, "usedns", notes)
        .filter(|v| !v.trim().eq_ignore_ascii_case("no") && !v.trim().eq_ignore_ascii_case("yes"))
    {
        notes.add(
            name,
            "usedns",
            &v,
            "nftban resolves a host name found in a log line only in a jail with `usedns: yes` (docs/faq.md row 1), \
             and this is not that explicit `yes`: such lines are not counted, as with `usedns = no`; \
             write `usedns: yes` in a jail whose log names hosts an attacker cannot choose",
            false,
        );
    }
    if let Some(v) = soft(tree, name, "ignorecommand", notes).filter(|v| !v.trim().is_empty()) {
        notes.add(
            name,
            "ignorecommand",
            &v,
            "nftban runs no command to decide; list the addresses in `ignoreip`",
            false,
        );
    }
    let ignoreself = soft(tree, name, "ignoreself", notes);
    if ignoreself.as_deref().map(|v| values::parse_bool(v).unwrap_or(true)) != Some(false) {
        notes.add(
            "DEFAULT",
            "ignoreself",
            &ignoreself.unwrap_or_else(|| "true (fail2ban's default)".into()),
            "nftban does not look up this host's own addresses: add them to `ignoreip` (loopback is there by default)",
            false,
        );
    }
    if let Some(v) = soft(tree, name, "logencoding", notes)
        .filter(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "auto" | "utf-8" | "utf8"))
    {
        notes.add(
            name,
            "logencoding",
            &v,
            "nftban reads logs as UTF-8 (bad bytes replaced)",
            false,
        );
    }
    for key in [
        "logtimezone",
        "ignorecache",
        "maxlines",
        "datepattern",
        "failregex",
        "ignoreregex",
        "prefregex",
    ] {
        if let Some(v) = soft(tree, name, key, notes).filter(|v| !v.trim().is_empty()) {
            notes.add(
                name,
                key,
                &v,
                "set for the jail, not in its filter: not carried; put it into the copied filter (filter.d/*.local)",
                false,
            );
        }
    }
    Ok(())
}

/// `key` of `name` for a note: a value that cannot be interpolated is
/// itself noted (it would not have been carried either), not an error
/// that stops the import.
fn soft(tree: &Tree, name: &str, key: &str, notes: &mut Notes) -> Option<String> {
    match tree.get(name, key) {
        Ok(v) => v,
        Err(e) => {
            notes.add(name, key, "", format!("cannot be read ({e}); not carried"), false);
            None
        }
    }
}
