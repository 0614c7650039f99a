//! `nftban import-fail2ban DIR -o OUTDIR`: a fail2ban configuration
//! (jail.conf, jail.d, jail.local, the paths files, filter.d) turned into
//! an nftban config for its enabled jails, in one command, because almost
//! every nftban user arrives with a fail2ban they tuned for years.
//!
//! The jails keep fail2ban's own filters (copied into OUTDIR/filter.d and
//! named by the jails' `ruleset:`), so what is matched stays what fail2ban
//! matched; the tree is read with fail2ban's precedence and interpolation
//! ([`tree`]); each jail's values are carried where nftban can say them
//! ([`jail`]), and everything else is listed with the reason and what to
//! do, never dropped in silence (docs/migrating-from-fail2ban.md).

mod filters;
mod jail;
mod tree;
mod values;
mod write;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use jail::Note;
use jail::{Jail, Notes};
use tree::Tree;

/// What an import made, as `--json` prints it (docs/cli.md).
#[derive(Debug, serde::Serialize)]
pub struct Imported {
    /// The nftban config written.
    pub config: PathBuf,
    /// The jails imported, by name.
    pub jails: Vec<String>,
    /// Whether fail2ban's `[recidive]` jail became `recidive:`.
    pub recidive: bool,
    /// The filter files copied, relative to the output folder.
    pub filters: Vec<PathBuf>,
    /// Every setting not carried over, with the reason.
    pub not_carried: Vec<Note>,
}

/// The import as a library call: reads `dir`, writes `out`.
pub fn import(dir: &Path, out: &Path, force: bool) -> anyhow::Result<Imported> {
    if out.exists() && !force {
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("{}: cannot read the output folder", out.display()))?
            .next()
            .is_none();
        anyhow::ensure!(
            empty,
            "{}: the output folder is not empty; give --force to write over the files the import writes",
            out.display()
        );
    }
    let tree = Tree::read(dir)?;
    let mut notes = Notes::new(&tree);
    let defaults = jail::banning(&tree, "DEFAULT", &mut notes)?;
    let mut jails: Vec<Jail> = Vec::new();
    let mut recidive = None;
    for name in tree.jails() {
        let enabled = tree.get(name, "enabled")?.unwrap_or_default();
        match values::parse_bool(&enabled) {
            Some(true) => {}
            Some(false) => continue,
            None => {
                notes.add(name, "enabled", &enabled, "not a boolean: the jail is left out", true);
                continue;
            }
        }
        if name == "recidive" {
            recidive = Some(recidive_of(&tree, &defaults, &mut notes)?);
            continue;
        }
        // A jail fail2ban itself would refuse (a value naming nothing) is
        // left out and said so; the others are still imported.
        let mut j = match jail::convert(&tree, dir, name, &mut notes) {
            Ok(Some(j)) => j,
            Ok(None) => continue,
            Err(e) => {
                notes.add(name, "enabled", "true", format!("jail left out: {e}"), true);
                continue;
            }
        };
        let valid = |n: &str| {
            n.len() <= 60
                && n.starts_with(|c: char| c.is_ascii_alphabetic())
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && n != "manual"
        };
        if !valid(&j.name) {
            let mut new: String = j
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
                .collect();
            if !new.starts_with(|c: char| c.is_ascii_alphabetic()) || new == "manual" {
                new = format!("f2b-{new}");
            }
            new.truncate(60);
            notes.add(
                name,
                "name",
                name,
                format!("not an nftban jail name (letters, digits, `_`, `-`; not `manual`): the jail is `{new}`"),
                true,
            );
            j.name = new;
        }
        jails.push(j);
    }

    let mut copy = BTreeSet::new();
    for j in &jails {
        let (inside, outside) = filters::needed(dir, &j.filter);
        copy.extend(inside);
        for o in outside {
            notes.add(
                &j.name,
                "filter",
                &o.display().to_string(),
                "an include outside the fail2ban folder is not copied: copy it by hand",
                true,
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the output folder", out.display()))?;
    for rel in &copy {
        let to = out.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
        }
        std::fs::copy(dir.join(rel), &to)
            .with_context(|| format!("{}: cannot copy to {}", dir.join(rel).display(), to.display()))?;
    }
    let source = dir.display().to_string();
    let text = write::config(&write::Output {
        source: &source,
        defaults: &defaults,
        jails: &jails,
        recidive: recidive.clone(),
    });
    let config = out.join("nftban.yaml");
    std::fs::write(&config, text).with_context(|| format!("{}: cannot write", config.display()))?;
    let mut not_carried = notes.list;
    not_carried.sort();
    not_carried.dedup();
    let imported = Imported {
        config,
        jails: jails.iter().map(|j| j.name.clone()).collect(),
        recidive: recidive.is_some(),
        filters: copy.into_iter().collect(),
        not_carried,
    };
    let report = out.join("import-report.txt");
    std::fs::write(&report, report_text(&imported)).with_context(|| format!("{}: cannot write", report.display()))?;
    Ok(imported)
}

/// fail2ban's `[recidive]` jail as nftban's `recidive:` (bans counted
/// across all jails): its findtime, maxretry (at least 2) and bantime.
fn recidive_of(tree: &Tree, defaults: &jail::Banning, notes: &mut Notes) -> anyhow::Result<(String, u32, String)> {
    let b = jail::banning(tree, "recidive", notes)?;
    let mut maxretry = b.maxretry.or(defaults.maxretry).unwrap_or(5);
    if maxretry < 2 {
        notes.add(
            "recidive",
            "maxretry",
            &maxretry.to_string(),
            "nftban's recidive needs at least 2 bans: 2",
            true,
        );
        maxretry = 2;
    }
    if b.increment.is_some() {
        notes.add(
            "recidive",
            "bantime.increment",
            "true",
            "recidive bans do not grow in nftban",
            true,
        );
    }
    if let Some(ip) = b.ignoreip.filter(|ip| Some(ip) != defaults.ignoreip.as_ref()) {
        notes.add(
            "recidive",
            "ignoreip",
            &ip.join(" "),
            "nftban's recidive uses each jail's ignoreip",
            true,
        );
    }
    notes.add(
        "recidive",
        "logpath",
        &tree.get("recidive", "logpath")?.unwrap_or_default(),
        "nftban counts bans in its own history, not in fail2ban's log; the filter is not needed",
        true,
    );
    Ok((
        b.findtime.or(defaults.findtime.clone()).unwrap_or_else(|| "10m".into()),
        maxretry,
        b.bantime.or(defaults.bantime.clone()).unwrap_or_else(|| "10m".into()),
    ))
}

/// The report for people (also written to OUTDIR/import-report.txt).
pub fn report_text(i: &Imported) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let recidive = if i.recidive { " and recidive" } else { "" };
    let _ = writeln!(
        s,
        "imported {} jail{} ({}){recidive} into {}",
        i.jails.len(),
        if i.jails.len() == 1 { "" } else { "s" },
        i.jails.join(", "),
        i.config.display()
    );
    if !i.filters.is_empty() {
        let list: Vec<String> = i.filters.iter().map(|f| f.display().to_string()).collect();
        let _ = writeln!(s, "filters copied: {}", list.join(", "));
    }
    if i.not_carried.is_empty() {
        let _ = writeln!(s, "every setting was carried over");
    } else {
        let _ = writeln!(s, "not carried over ({}):", i.not_carried.len());
        for n in &i.not_carried {
            let file = n
                .file
                .as_ref()
                .map(|f| format!(" ({})", f.display()))
                .unwrap_or_default();
            let value = n.value.replace('\n', " | ");
            let _ = writeln!(s, "  [{}] {} = {}{file}: {}", n.jail, n.key, value, n.reason);
        }
    }
    let _ = writeln!(s, "next: nftban check --config {}", i.config.display());
    s
}

/// `nftban import-fail2ban`: exit 0 with at least one jail imported, 1
/// when none is enabled (the config is still written), 2 on errors.
pub fn run(dir: &Path, out: &Path, force: bool, json: bool) -> anyhow::Result<u8> {
    let imported = import(dir, out, force)?;
    if json {
        outln!("{}", serde_json::to_string(&imported)?)?;
    } else {
        out!("{}", report_text(&imported))?;
    }
    Ok(if imported.jails.is_empty() && !imported.recidive {
        1
    } else {
        0
    })
}
