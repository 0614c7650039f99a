//! The docs say what the code does: every key and `log.target` value they
//! name exists and loads, every YAML example loads (or is marked as a
//! deliberate error), every key of the config types is documented, and
//! every subcommand and flag of the CLI is in docs/cli.md.
//!
//! Marker comments, on the line before a fence:
//! - `<!-- yaml: error -->`: the block is an example of a refused config.
//! - `<!-- yaml: not nftban -->`: the block is another program's YAML.
//!
//! A YAML block whose top level has `failregex` is a ruleset and goes
//! through the ruleset parser; any other is a config and goes through
//! the config loader, as `/etc/nftban/nftban.yaml`.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;
use nftban::config::Config;
use nftban::matcher::Ruleset;

use super::keys::{keys, normalise, schema};
use super::markdown::{blocks, code_spans, pages, read, row};

fn load(text: &str) -> Result<Config, String> {
    Config::from_text(Path::new("/etc/nftban/nftban.yaml"), text).map_err(|e| e.to_string())
}

/// The prefix of the keys in the tables under a heading: a heading that
/// names `sip:` or `fleet:` holds that section's keys, written without it.
fn section_of(heading: &str) -> &'static str {
    if heading.contains("`sip:`") {
        "sip."
    } else if heading.contains("`fleet:`") {
        "fleet."
    } else {
        ""
    }
}

/// The keys of docs/config.md's tables, each with its row's text. A
/// table under a heading naming `sip:` holds keys of `sip.`; in a cell
/// listing several keys, the later ones replace the end of the first
/// (`jails.NAME.findtime`, `maxretry` is `jails.NAME.maxretry`).
fn config_md_rows() -> Vec<(String, String)> {
    let text = read("docs/config.md");
    let mut prefix = "";
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            prefix = section_of(line);
        }
        let Some(cells) = row(line) else { continue };
        if cells.len() < 2 || !cells[0].starts_with('`') {
            continue;
        }
        let names: Vec<&str> = cells[0].split(", ").map(|c| c.trim_matches('`')).collect();
        let first: Vec<&str> = names[0].split('.').collect();
        for n in &names {
            let parts: Vec<&str> = n.split('.').collect();
            let keep = first.len().saturating_sub(parts.len());
            let mut full: Vec<&str> = first[..keep].to_vec();
            full.extend(parts);
            out.push((format!("{prefix}{}", full.join(".")), cells.join(" | ")));
        }
    }
    out
}

/// Where a key of the types is documented in docs/config.md: its own row,
/// or the row of its nearest documented parent naming it (`{factor: 2,
/// max: 1w}`). A jail's `sip:` has the keys of the top-level one, and a
/// jail's own settings the defaults' sub-keys.
fn documented(path: &str, rows: &[(String, String)]) -> bool {
    let own = |p: &str| rows.iter().any(|(k, _)| k == p);
    if own(path) {
        return true;
    }
    // A section is documented by the rows of its keys (`log.target`, ...).
    let section = format!("{path}.");
    if rows.iter().any(|(k, _)| k.starts_with(&section)) {
        return true;
    }
    if let Some(rest) = path.strip_prefix("jails.NAME.sip.") {
        return documented(&format!("sip.{rest}"), rows);
    }
    let parts: Vec<&str> = path.split('.').collect();
    let leaf = parts[parts.len() - 1];
    for i in (1..parts.len()).rev() {
        let parent = parts[..i].join(".");
        if let Some((_, text)) = rows.iter().find(|(k, _)| *k == parent) {
            if text
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == leaf)
            {
                return true;
            }
            break;
        }
    }
    if let Some(rest) = path.strip_prefix("jails.NAME.") {
        return documented(&format!("defaults.{rest}"), rows);
    }
    false
}

#[test]
fn every_key_of_the_config_types_is_in_config_md() {
    let rows = config_md_rows();
    let missing: Vec<String> = keys()
        .into_iter()
        .map(|k| k.path)
        // One `sip:` per config: a jail's own names its jail itself.
        .filter(|p| p != "jails.NAME.sip.jail")
        .filter(|p| !documented(p, &rows))
        .collect();
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "keys of src/config/file.rs that docs/config.md does not document"
    );
}

#[test]
fn every_key_config_md_documents_exists() {
    let all: BTreeSet<String> = keys().into_iter().map(|k| k.path).collect();
    let rows = config_md_rows();
    assert!(rows.len() > 30, "docs/config.md's tables were not found");
    let unknown: Vec<&String> = rows.iter().map(|(k, _)| k).filter(|k| !all.contains(*k)).collect();
    assert_eq!(
        unknown,
        Vec::<&String>::new(),
        "docs/config.md documents keys the types do not have"
    );
}

/// A dotted key in backticks anywhere in the docs (`defaults.ignoreip`,
/// `jails.asterisk.files`) names a key the config has. Only words whose
/// first part is a top-level key are read as keys.
#[test]
fn every_dotted_key_the_pages_name_exists() {
    let all: BTreeSet<String> = keys().into_iter().map(|k| k.path).collect();
    let top: BTreeSet<&str> = all.iter().filter(|k| !k.contains('.')).map(String::as_str).collect();
    let mut unknown = Vec::new();
    for page in pages() {
        for span in code_spans(&read(&page)) {
            let word = span.trim_end_matches(':');
            let file = [
                ".rs", ".conf", ".yaml", ".yml", ".md", ".json", ".cfg", ".log", ".db", ".sock", ".local",
            ];
            let is_key = word.contains('.')
                && !file.iter().any(|ext| word.ends_with(ext))
                && word
                    .split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                && top.contains(word.split('.').next().unwrap());
            if is_key && !all.contains(&normalise(word)) {
                unknown.push(format!("{page}: `{span}`"));
            }
        }
    }
    assert_eq!(
        unknown,
        Vec::<String>::new(),
        "keys named in the docs that the config does not have"
    );
}

/// Every YAML example of every page loads: configs through the config
/// loader, rulesets through the ruleset parser; those marked as errors
/// are refused.
#[test]
fn every_yaml_example_loads_or_is_marked_as_an_error() {
    let mut wrong = Vec::new();
    let mut n = 0;
    for page in pages() {
        for b in blocks(&read(&page)) {
            if b.lang != "yaml" || b.marker.as_deref() == Some("yaml: not nftban") {
                continue;
            }
            n += 1;
            let ruleset = b.text.lines().any(|l| l.starts_with("failregex:"));
            let result = if ruleset {
                Ruleset::parse("example.yaml", &b.text)
                    .map(drop)
                    .map_err(|e| e.to_string())
            } else {
                load(&b.text).map(drop)
            };
            let want_error = b.marker.as_deref() == Some("yaml: error");
            match (result, want_error) {
                (Ok(()), true) => wrong.push(format!("{page}:{}: marked as an error, but loads", b.line)),
                (Err(e), false) => wrong.push(format!("{page}:{}: {e}", b.line)),
                _ => {}
            }
        }
    }
    assert!(n >= 8, "only {n} YAML examples found");
    assert!(
        wrong.is_empty(),
        "YAML examples that do not do what the page says:\n{}",
        wrong.join("\n")
    );
}

/// The commented default config: the file loads (tests/schema.rs) and so
/// does each commented-out setting, uncommented in its place.
#[test]
fn the_default_configs_commented_settings_load() {
    let text = read("deploy/nftban.yaml");
    let all: BTreeSet<String> = keys().into_iter().map(|k| k.path).collect();
    let lines: Vec<&str> = text.lines().collect();
    let mut tried = 0;
    for (i, line) in lines.iter().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let Some(setting) = line.trim_start().strip_prefix("# ") else {
            continue;
        };
        let Some((key, _)) = setting.split_once(": ") else {
            continue;
        };
        // Its place: the keys above it with less indentation.
        let mut path = vec![key.to_string()];
        let mut want = indent;
        for above in lines[..i].iter().rev() {
            let ind = above.len() - above.trim_start().len();
            if ind < want && !above.trim_start().starts_with('#') && !above.trim().is_empty() {
                path.insert(
                    0,
                    above
                        .trim()
                        .trim_end_matches(':')
                        .split(':')
                        .next()
                        .unwrap()
                        .to_string(),
                );
                want = ind;
            }
        }
        if !all.contains(&normalise(&path.join("."))) {
            continue; // words in a comment, not a setting
        }
        let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        edited[i] = format!("{}{setting}", " ".repeat(indent));
        load(&edited.join("\n")).unwrap_or_else(|e| panic!("deploy/nftban.yaml:{}: {setting}: {e}", i + 1));
        tried += 1;
    }
    assert!(tried >= 1, "no commented setting found in deploy/nftban.yaml");
}

/// The `log.target` values: those the schema allows, named wherever the
/// docs say where logs go, each loaded as written.
#[test]
fn log_targets_agree_everywhere() {
    let s = schema();
    let pattern = s["$defs"]["LogConfig"]["properties"]["target"]["pattern"]
        .as_str()
        .unwrap()
        .to_string();
    let names: Vec<&str> = pattern
        .trim_start_matches("^(")
        .trim_end_matches(")$")
        .split('|')
        .filter(|n| !n.starts_with('/'))
        .collect();
    assert_eq!(names, ["stderr", "journald", "syslog"], "{pattern}");
    let config_md = read("docs/config.md");
    let faq = read("docs/faq.md");
    let default = read("deploy/nftban.yaml");
    let schema_text = s["$defs"]["LogConfig"]["properties"]["target"]["description"]
        .as_str()
        .unwrap()
        .to_string();
    let places = [
        (
            "docs/config.md, row log.target",
            config_md
                .lines()
                .find(|l| l.starts_with("| `log.target`"))
                .unwrap_or("")
                .to_string(),
        ),
        (
            "docs/faq.md, row 5",
            faq.lines().find(|l| l.starts_with("| 5 ")).unwrap_or("").to_string(),
        ),
        ("deploy/nftban.yaml, above log:", {
            let lines: Vec<&str> = default.lines().collect();
            let i = lines.iter().position(|l| l.starts_with("log:")).unwrap();
            lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.starts_with('#'))
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        }),
        ("docs/config.schema.json", schema_text),
    ];
    for (place, text) in &places {
        for n in &names {
            assert!(text.contains(n), "{place} does not name log.target `{n}`:\n{text}");
        }
        assert!(
            text.contains("path"),
            "{place} does not say a file path is a target:\n{text}"
        );
    }
    for target in names.iter().copied().chain(["/var/log/nftban.log"]) {
        let c = load(&format!("log: {{target: {target}}}\n")).unwrap();
        assert_eq!(c.log.target, target);
    }
    for bad in ["journal", "syslogd", "nftban.log"] {
        assert!(load(&format!("log: {{target: {bad}}}\n")).is_err(), "{bad} is taken");
    }
}

/// Every subcommand of src/cli.rs has its row in docs/cli.md's command
/// table, and every flag and argument of it is named in that row or in
/// the page's section on that command.
#[test]
fn every_subcommand_and_flag_is_in_cli_md() {
    let text = read("docs/cli.md");
    let mut missing = Vec::new();
    let cli = nftban::cli::Cli::command();
    let mut n = 0;
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        n += 1;
        let Some(row) = text.lines().find(|l| l.starts_with(&format!("| `nftban {name}"))) else {
            missing.push(format!("`nftban {name}` has no row in the command table"));
            continue;
        };
        // The row, and the section `## `name``... up to the next `## `.
        let section = text
            .split("\n## ")
            .find(|s| s.starts_with(&format!("`{name}`")) || s.starts_with(&format!("`{name} ")))
            .unwrap_or("");
        let here = format!("{row}\n{section}");
        for arg in sub.get_arguments() {
            if arg.is_hide_set() {
                continue;
            }
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let names: Vec<String> = match (arg.get_long(), arg.get_short()) {
                (Some(l), s) => std::iter::once(format!("--{l}"))
                    .chain(s.map(|s| format!("-{s}")))
                    .collect(),
                (None, _) => arg
                    .get_value_names()
                    .unwrap_or_default()
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
            };
            for word in names {
                let found = if word.starts_with("--") || !word.starts_with('-') {
                    here.contains(&word)
                } else {
                    // A short flag is named anywhere on the page, beside its long one.
                    text.contains(&format!("`{word}`"))
                };
                if !found {
                    missing.push(format!("nftban {name}: {word}"));
                }
            }
        }
    }
    assert!(n >= 9, "only {n} subcommands");
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "what src/cli.rs has and docs/cli.md does not say"
    );
}

/// Every relative link of every page leads to a file of the repository.
#[test]
fn every_relative_link_exists() {
    let mut broken = Vec::new();
    let mut n = 0;
    for page in pages() {
        // Prose only: a regex in a code block or span may hold `](`.
        let mut in_fence = false;
        let mut text = String::new();
        for line in read(&page).lines() {
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
            } else if !in_fence {
                text.extend(line.split('`').step_by(2));
                text.push('\n');
            }
        }
        let dir = super::markdown::root().join(&page).parent().unwrap().to_path_buf();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            n += 1;
            if !dir.join(target).exists() {
                broken.push(format!("{page}: ({target})"));
            }
        }
    }
    assert!(n > 30, "only {n} links found");
    assert_eq!(broken, Vec::<String>::new(), "links to no file");
}

/// The defaults docs/config.md's tables give are the defaults: a config
/// that sets a key to its documented default loads to the same `Config`
/// as one that leaves it out. Rows whose default is words (`off`, `from
/// defaults`, `the jail's`) are not values and are left out.
#[test]
fn documented_defaults_are_the_defaults() {
    let text = read("docs/config.md");
    // (key, value) from each row: a cell of one backticked value per key.
    let mut pairs = Vec::new();
    let mut prefix = "";
    for line in text.lines() {
        if line.starts_with('#') {
            prefix = section_of(line);
        }
        let Some(cells) = row(line) else { continue };
        if cells.len() < 3 || !cells[0].starts_with('`') {
            continue;
        }
        let keys: Vec<&str> = cells[0].split(", ").map(|c| c.trim_matches('`')).collect();
        let values: Vec<&str> = cells[1].split("`, `").map(|c| c.trim_matches('`')).collect();
        let all_code = cells[1].starts_with('`') && cells[1].ends_with('`');
        if !all_code || keys.len() != values.len() {
            continue;
        }
        for (k, v) in keys.iter().zip(values) {
            pairs.push((format!("{prefix}{k}"), v.to_string()));
        }
    }
    // `sip.jail`'s `sip` names a jail nftban makes when there is none; set
    // explicitly it must name one of the config's.
    pairs.retain(|(k, _)| k != "sip.jail");
    assert!(pairs.len() >= 20, "{pairs:?}");
    let wrong: Vec<String> = pairs.iter().filter_map(|(k, v)| is_the_default(k, v).err()).collect();
    assert_eq!(
        wrong,
        Vec::<String>::new(),
        "docs/config.md's defaults against the loader"
    );
}

/// A config with `key` (`jails.NAME.x`, `sip.ports.udp`, ...) set to
/// `value`, or left out: the SIP meter on, one jail `j`, which reads a
/// file (the journal when the key is `files`).
fn config_with(key: &str, value: Option<&str>) -> String {
    let jail = if key == "jails.NAME.files" {
        "  j: {ruleset: sshd, journal: [_SYSTEMD_UNIT=ssh.service]"
    } else {
        "  j: {ruleset: sshd, files: [/var/log/auth.log]"
    };
    let mut top = String::from("sip: {}\n");
    let mut jail_extra = String::new();
    // `fleet:` cannot be written without a server: both sides get one.
    if let Some(rest) = key.strip_prefix("fleet.").filter(|k| *k != "servers") {
        let set = value.map_or(String::new(), |v| {
            let nest = rest
                .split('.')
                .rev()
                .fold(v.to_string(), |acc, p| format!("{{{p}: {acc}}}"));
            let nest = &nest[1..nest.len() - 1];
            format!(", {nest}")
        });
        top.push_str(&format!("fleet: {{servers: [nats://127.0.0.1:4222]{set}}}\n"));
        return format!("{top}jails:\n{jail}}}\n");
    }
    if let Some(v) = value {
        let parts: Vec<&str> = key.split('.').collect();
        let nest = |rest: &[&str]| {
            rest.iter()
                .rev()
                .fold(v.to_string(), |acc, p| format!("{{{p}: {acc}}}"))
        };
        match parts.as_slice() {
            ["jails", "NAME", k] => jail_extra = format!(", {k}: {v}"),
            [a] => top.push_str(&format!("{a}: {v}\n")),
            ["sip", rest @ ..] => top = format!("sip: {}\n", nest(rest)),
            [a, rest @ ..] => top.push_str(&format!("{a}: {}\n", nest(rest))),
            [] => unreachable!(),
        }
    }
    format!("{top}jails:\n{jail}{jail_extra}}}\n")
}

/// Whether setting `key` to `value` loads to the same `Config` as leaving
/// it out.
fn is_the_default(key: &str, value: &str) -> Result<(), String> {
    let base = format!("{:?}", load(&config_with(key, None)).unwrap());
    match load(&config_with(key, Some(value))) {
        Ok(c) if format!("{c:?}") == base => Ok(()),
        Ok(_) => Err(format!("{key}: `{value}` is not the default")),
        Err(e) => Err(format!("{key}: `{value}` does not load: {e}")),
    }
}

/// The defaults the config types' doc comments give, `(default X)` (the
/// descriptions of docs/config.schema.json and docs/config-reference.md),
/// are the loader's, where X is one value.
#[test]
fn defaults_in_the_doc_comments_are_the_defaults() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for k in keys() {
        let Some((_, rest)) = k.description.split_once("(default ") else {
            continue;
        };
        let value = rest.split(')').next().unwrap().trim_matches('`');
        if value.contains(' ') || k.path == "sip.jail" || k.path.starts_with("jails.NAME.sip") {
            continue; // words, not a value
        }
        // A section with keys of its own that must be given (a server to
        // reach) cannot be written with this key alone.
        let parent = k.path.rsplit_once('.').map_or("", |(p, _)| p);
        if !parent.is_empty() && !parent.contains("NAME") && load(&config_with(parent, Some("{}"))).is_err() {
            continue;
        }
        checked += 1;
        if let Err(e) = is_the_default(&k.path, value) {
            wrong.push(e);
        }
    }
    assert!(checked >= 8, "only {checked} defaults found in the doc comments");
    assert_eq!(
        wrong,
        Vec::<String>::new(),
        "src/config/file.rs's doc comments against the loader"
    );
}

/// A key written as YAML in backticks (`sip:`, `modes:`) anywhere in the
/// docs is a key of the config or of a ruleset file.
#[test]
fn every_key_with_a_colon_the_pages_name_exists() {
    let mut known: BTreeSet<String> = keys()
        .into_iter()
        .map(|k| k.path.rsplit('.').next().unwrap().to_string())
        .collect();
    let ruleset: serde_json::Value =
        serde_json::from_str(&crate::schema::generate::<nftban::matcher::Ruleset>()).unwrap();
    known.extend(ruleset["properties"].as_object().unwrap().keys().cloned());
    let mut unknown = Vec::new();
    let mut n = 0;
    for page in pages() {
        for span in code_spans(&read(&page)) {
            let Some(word) = span.strip_suffix(':') else { continue };
            if word.is_empty() || !word.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                continue;
            }
            n += 1;
            if !known.contains(word) {
                unknown.push(format!("{page}: `{span}`"));
            }
        }
    }
    assert!(n >= 20, "only {n} keys found");
    assert_eq!(
        unknown,
        Vec::<String>::new(),
        "keys named in the docs that neither the config nor a ruleset has"
    );
}
