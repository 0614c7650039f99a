//! `nftban check`: what the daemon would refuse at start is an error (exit
//! 2: the config, the rulesets' examples, an unwritable or damaged ban
//! history); what it would trip on or not see once running is a warning
//! ([`warnings`], exit code unchanged); and every section accepted is
//! summarised, so that a reader sees what the daemon will do.
//!
//! The shipped unit runs it as `ExecStartPre`, under the same sandbox as
//! the daemon: its warnings land in the journal right before the start.

pub mod warnings;

use serde::Serialize;

use crate::cli::ConfigArg;
use crate::config::{config_path, format_duration, Config};
use warnings::Warning;

/// `check --json`: the config checked, its warnings, and the summary lines
/// the text output prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub config: String,
    pub warnings: Vec<Warning>,
    pub summary: Vec<String>,
}

/// Run `nftban check`; errors (exit 2) are returned, warnings are printed
/// on stderr (`nftban: warning: KEY: PATH: ...`) or in the JSON.
pub fn run(c: &ConfigArg, json: bool) -> anyhow::Result<u8> {
    let path = config_path(c.config.as_deref());
    let config = Config::load(&path)?;
    // A ruleset whose examples fail would ban the wrong hosts or none.
    let mut bad = 0;
    for j in &config.jails {
        for e in example_failures(&j.rules, &j.matcher) {
            eprintln!("{e}");
            bad += 1;
        }
    }
    if bad > 0 {
        anyhow::bail!("{bad} ruleset example(s) do not hold");
    }
    // The daemon writes every ban there before the kernel gets it:
    // a read-only or foreign folder must fail here, not at start.
    crate::store::check_writable(&config.database)?;
    // Read only: a damaged history is reported, not moved (the
    // daemon moves it aside when it starts).
    crate::store::check_intact(&config.database)?;
    let report = Report {
        config: path.display().to_string(),
        warnings: warnings::of(&config),
        summary: summary(&config),
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(0);
    }
    for w in &report.warnings {
        eprintln!("nftban: warning: {w}");
    }
    outln!("{}: OK", report.config)?;
    for line in &report.summary {
        outln!("{line}")?;
    }
    if !report.warnings.is_empty() {
        outln!(
            "warnings: {} (on stderr; the daemon starts anyway)",
            report.warnings.len()
        )?;
    }
    Ok(0)
}

/// One line per section accepted (a jail's files and journal matches
/// indented under it).
pub fn summary(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!(
        "logs go to: {}",
        match config.log.target.as_str() {
            "stderr" => "stderr (under systemd: the journal)".to_string(),
            "journald" => "the systemd journal (journalctl -t nftban)".to_string(),
            "syslog" => format!("syslog via {} (facility daemon, tag nftban)", crate::logging::DEV_LOG),
            path => format!("the file {path}"),
        }
    ));
    out.push(format!("control socket: {}", config.socket.display()));
    out.push(format!("ban history: {} (writable)", config.database.display()));
    let hooks: Vec<String> = config.hooks.iter().map(ToString::to_string).collect();
    out.push(format!(
        "nftables: table inet {}, {} banned sources on hook(s) {}",
        config.table,
        config.action,
        hooks.join(", ")
    ));
    if config.prefix_sets != crate::firewall::PrefixSets::default() {
        let show = |family| {
            let lengths: Vec<String> = config
                .prefix_sets
                .lengths(family)
                .iter()
                .map(|l| format!("/{l}"))
                .collect();
            if lengths.is_empty() {
                "none".to_string()
            } else {
                lengths.join(" ")
            }
        };
        out.push(format!(
            "prefix sets: IPv4 {}, IPv6 {} (each a hash set per jail; other lengths in its interval set)",
            show(crate::firewall::Family::V4),
            show(crate::firewall::Family::V6)
        ));
    }
    if let Some(m) = &config.metrics {
        out.push(format!("metrics: http://{}/metrics (Prometheus)", m.listen));
    }
    let sinks: Vec<String> = [("the file", &config.events.file), ("the socket", &config.events.socket)]
        .into_iter()
        .filter_map(|(what, p)| Some(format!("{what} {}", p.as_ref()?.display())))
        .collect();
    if !sinks.is_empty() {
        out.push(format!("ban events: JSON lines to {}", sinks.join(" and ")));
    }
    if let Some(f) = &config.fleet {
        let list = |names: Vec<String>| match names.is_empty() {
            true => "nothing".to_string(),
            false => names.join(", "),
        };
        out.push(format!(
            "fleet: node {} on {} (stream {}, subjects {}.>); publishes {}; accepts {}; peers' prefixes up to /{} (IPv4), /{} (IPv6), at most {} bans each (burst {})",
            f.node,
            f.servers.join(", "),
            f.stream,
            f.subject_prefix,
            list(f.publish.clone()),
            list(f.accept.keys().cloned().collect()),
            f.ipv4_prefix,
            f.ipv6_prefix,
            f.rate,
            f.burst
        ));
    }
    for f in &config.feeds {
        out.push(format!(
            "feed {}: {} from {} every {} into sets {}_*, never blocking what jail {}'s ignoreip holds{}",
            f.name,
            f.format.as_str(),
            f.source_text(),
            format_duration(f.refresh),
            f.sets,
            f.jail,
            if f.trusted_private { "" } else { " nor private ranges" }
        ));
    }
    if let Some(r) = &config.recidive {
        out.push(format!(
            "recidive: an address banned {} times within {} (in any jail) is banned in jail {} for {}",
            r.maxretry,
            format_duration(r.findtime.0),
            crate::config::RECIDIVE_JAIL,
            format_duration(r.bantime.0)
        ));
    }
    for j in &config.jails {
        let journal = match j.journal.len() {
            0 => String::new(),
            n => format!(", {n} journal match(es)"),
        };
        out.push(format!(
            "jail {}: ruleset {}{}, {} file(s){journal}{}, ban after {} failures within {} for {}{}",
            j.name,
            j.ruleset,
            j.rules
                .mode
                .as_deref()
                .map(|m| format!(" (mode {m})"))
                .unwrap_or_default(),
            j.files.len(),
            if j.stdin { " and stdin" } else { "" },
            j.maxretry,
            format_duration(j.findtime),
            format_duration(j.bantime),
            if j.usedns.resolves() {
                "; host names in <HOST> resolved (usedns: yes)"
            } else {
                ""
            }
        ));
        for f in j.files.iter().filter(|f| crate::sources::glob::is_pattern(f)) {
            let found = crate::sources::glob::expand(f);
            out.push(match found.len() {
                0 => format!("  {}: no file matches yet (files created later are read)", f.display()),
                n => format!(
                    "  {}: matches {n} file(s) now: {}",
                    f.display(),
                    found
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            });
        }
        if !j.journal.is_empty() {
            out.push(format!("  journal: {}", j.journal.join(" ")));
        }
    }
    if let Some(sip) = &config.sip {
        let ports = |kind: &str, ports: &[u16]| {
            (!ports.is_empty()).then(|| {
                let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                format!("{kind} {}", list.join(","))
            })
        };
        let metered: Vec<String> = [ports("UDP", &sip.udp), ports("TCP", &sip.tcp), ports("TLS", &sip.tls)]
            .into_iter()
            .flatten()
            .collect();
        out.push(format!(
            "sip kernel meter: {}; a source over {} (burst {}) is dropped and banned in jail {}{} for {}; IPv6 per /{}; {} trusted prefix(es) never metered",
            metered.join(", "),
            sip.rate,
            sip.burst,
            sip.jail,
            if config.sip_implicit_jail { " (made for it)" } else { "" },
            format_duration(sip.bantime),
            sip.ipv6_prefix,
            sip.trusted.len()
        ));
    }
    out
}

/// The examples of a ruleset (for its mode) that do not give their host,
/// as `file:line:column: ...` messages.
fn example_failures(rules: &crate::matcher::Ruleset, matcher: &crate::matcher::Matcher) -> Vec<String> {
    use crate::matcher::LineMatch;
    let mut out = Vec::new();
    for (i, ex) in rules.examples.iter().enumerate() {
        let applies = ex.mode == rules.mode || (ex.mode.is_none() && ex.host.is_some());
        if !applies {
            continue;
        }
        let got = match matcher.match_line(&ex.line) {
            m @ LineMatch::Failure { .. } => m.failure_net().map(|n| crate::address::show(&n)),
            _ => None,
        };
        let want = ex
            .host
            .as_deref()
            .and_then(crate::address::parse_addr)
            .map(|a| a.to_string());
        if got != want {
            let e = rules.error_at(
                &["examples"],
                Some(i),
                format!(
                    "examples[{i}]: expected {}, got {}: {}",
                    want.as_deref().unwrap_or("no match"),
                    got.as_deref().unwrap_or("no match"),
                    ex.line
                ),
            );
            out.push(e.to_string());
        }
    }
    out
}
