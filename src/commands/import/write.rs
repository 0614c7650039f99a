//! nftban.yaml as text: written by hand rather than serialised, so that
//! it reads like a config a person wrote (comments saying where each jail
//! came from, `defaults:` for what fail2ban's `[DEFAULT]` said, and in a
//! jail only what differs from it).

use std::fmt::Write as _;

use super::jail::{Banning, Jail};

/// What the import writes into nftban.yaml.
pub struct Output<'a> {
    pub source: &'a str,
    pub defaults: &'a Banning,
    pub jails: &'a [Jail],
    /// recidive's findtime, maxretry, bantime.
    pub recidive: Option<(String, u32, String)>,
}

/// A YAML scalar in single quotes (the one quoting with no escapes but `''`).
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", "))
}

/// The banning keys of `b` that differ from `base`, at `indent`.
fn banning(out: &mut String, b: &Banning, base: &Banning, indent: &str) {
    if b.findtime != base.findtime {
        if let Some(v) = &b.findtime {
            let _ = writeln!(out, "{indent}findtime: {v}");
        }
    }
    if b.maxretry != base.maxretry {
        if let Some(v) = b.maxretry {
            let _ = writeln!(out, "{indent}maxretry: {v}");
        }
    }
    if b.bantime != base.bantime {
        if let Some(v) = &b.bantime {
            let _ = writeln!(out, "{indent}bantime: {v}");
        }
    }
    if b.ignoreip != base.ignoreip {
        if let Some(v) = &b.ignoreip {
            let _ = writeln!(out, "{indent}ignoreip: {}", list(v));
        }
    }
    // `no` is nftban's default: written only against a `yes` above it.
    if b.usedns.unwrap_or(false) != base.usedns.unwrap_or(false) {
        let v = if b.usedns == Some(true) { "yes" } else { "no" };
        let _ = writeln!(out, "{indent}usedns: {v}");
    }
    if b.increment != base.increment {
        if let Some(i) = &b.increment {
            let _ = writeln!(
                out,
                "{indent}bantime_increment: {{factor: {}, max: {}}}",
                i.factor, i.max
            );
        }
    }
}

/// The whole file.
pub fn config(o: &Output) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported from the fail2ban configuration in {} by `nftban import-fail2ban`.\n\
         # What was not carried over, and why, is in import-report.txt beside this file.\n\
         # The rulesets are fail2ban's filters, copied into filter.d/ here.",
        o.source
    );
    let none = Banning::default();
    // nftban has no way for a jail to turn off the increment of
    // `defaults:` (a jail's own `bantime_increment` replaces it, and its
    // absence inherits it): when a jail has none (`bantime.increment =
    // false` under fail2ban's `[DEFAULT]` true), the increment is written
    // in each jail that has one instead.
    let mut base = o.defaults.clone();
    if o.jails.iter().any(|j| j.banning.increment.is_none()) {
        base.increment = None;
    }
    let mut defaults = String::new();
    banning(&mut defaults, &base, &none, "  ");
    if !defaults.is_empty() {
        let _ = write!(out, "defaults:\n{defaults}");
    }
    if let Some((findtime, maxretry, bantime)) = &o.recidive {
        let _ = writeln!(
            out,
            "# fail2ban's [recidive] jail: bans counted across all jails.\n\
             recidive: {{findtime: {findtime}, maxretry: {maxretry}, bantime: {bantime}}}"
        );
    }
    let _ = writeln!(out, "jails:");
    if o.jails.is_empty() {
        out.truncate(out.len() - 1);
        let _ = writeln!(out, " {{}}");
    }
    for j in o.jails {
        let _ = writeln!(out, "  {}:", j.name);
        let _ = writeln!(out, "    ruleset: {}", quote(&j.ruleset));
        if !j.files.is_empty() {
            let _ = writeln!(out, "    files: {}", list(&j.files));
        }
        if !j.journal.is_empty() {
            let _ = writeln!(out, "    journal: {}", list(&j.journal));
        }
        banning(&mut out, &j.banning, &base, "    ");
    }
    out
}
