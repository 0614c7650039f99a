//! `nftban test LOG RULE`: what a rule finds in a log, like fail2ban-regex.
//! Needs no daemon and no root.
//!
//! The command is the thin part: it turns RULE into a ruleset (a ruleset
//! name, a ruleset YAML file, a regex with `<HOST>`, or a fail2ban filter
//! `.conf`), picks the input (a file or stdin), draws a progress bar on a
//! terminal for big files, prints the report for people or as JSON, and
//! gives the exit code (0: something matched, 1: nothing did). Reading and
//! counting are the library's [`crate::scan`], which says why it is fast.

use std::fs::File;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle};

use crate::matcher::{fail2ban, Matcher, Ruleset};
use crate::scan::{self, Keep, Report, SkippedRule};

/// What to print besides the counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Output {
    pub(crate) json: bool,
    pub(crate) print_missed: bool,
    pub(crate) print_matched: bool,
}

impl Output {
    /// The lines the report must keep to print them.
    fn keep(self) -> Keep {
        Keep {
            missed: self.print_missed,
            matched: self.print_matched,
        }
    }
}

/// A rule to test and what was left out of it.
#[derive(Debug)]
struct Loaded {
    ruleset: Ruleset,
    skipped: Vec<SkippedRule>,
}

/// RULE is a path to a ruleset file, a fail2ban filter `.conf` (with
/// options as a jail gives them: `sshd.conf[mode=aggressive]`), a shipped
/// ruleset name, or a regex.
fn load(rule: &str) -> anyhow::Result<Loaded> {
    let path = Path::new(rule);
    let plain = |ruleset| Loaded {
        ruleset,
        skipped: vec![],
    };
    if (rule.ends_with(".yaml") || rule.ends_with(".yml")) && path.exists() {
        return Ok(plain(Ruleset::from_file(path)?));
    }
    // A fail2ban filter, maybe with options: `sshd.conf[mode=aggressive]`.
    let (conf, options) = fail2ban::parse_spec(rule);
    let is_filter = |p: &Path| p.extension().is_some_and(|e| e == "conf" || e == "local");
    if is_filter(&conf) && conf.exists() {
        let imp = fail2ban::load_with(&conf, &options)?;
        return Ok(Loaded {
            ruleset: imp.ruleset,
            skipped: imp
                .skipped
                .into_iter()
                .map(|(regex, reason)| SkippedRule { regex, reason })
                .collect(),
        });
    }
    if rule.contains('<') {
        return Ok(plain(Ruleset::from_regex(rule)));
    }
    if rule.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Ok(plain(Ruleset::resolve(rule, Path::new("."))?));
    }
    anyhow::bail!("`{rule}` is neither a ruleset file, a fail2ban .conf, a ruleset name, nor a regex with <HOST>")
}

/// Files at least this big get a progress bar on a terminal.
const PROGRESS_FROM: u64 = 32 * 1024 * 1024;

/// The progress bar on stderr, `[###   ]  12.3% 45678 lines`: how far into
/// a file of known size, and how many lines so far. The scan tells it once
/// per block (from every thread); indicatif draws at most 5 times a
/// second, and not at all unless stderr is a terminal whose `TERM` is set
/// and not `dumb`. Cleared when dropped.
struct Bar {
    bar: ProgressBar,
    lines: Arc<AtomicU64>,
}

impl Bar {
    /// A bar for `total` bytes, drawn at once (so that even a fast scan
    /// shows it).
    fn new(total: u64) -> Bar {
        let lines = Arc::new(AtomicU64::new(0));
        let shown = lines.clone();
        let style = ProgressStyle::with_template("[{bar:30}] {pct} {lines} lines")
            .expect("a valid template")
            .progress_chars("# ")
            .with_key("pct", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:5.1}%", s.fraction() * 100.0);
            })
            .with_key("lines", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", shown.load(Ordering::Relaxed));
            });
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(5))
            .with_style(style)
            .with_finish(ProgressFinish::AndClear);
        bar.tick();
        Bar { bar, lines }
    }
}

impl scan::Progress for Bar {
    fn advance(&self, bytes: u64, lines: u64) {
        // Lines first: moving the bar may draw it.
        self.lines.fetch_add(lines, Ordering::Relaxed);
        self.bar.inc(bytes);
    }
}

/// A scan error as the user reads it: a read error is the I/O error itself
/// (the caller says which input).
fn read_error(e: scan::Error) -> anyhow::Error {
    match e {
        scan::Error::Read(io) => io.into(),
        e => e.into(),
    }
}

pub(crate) fn run(log: &Path, rule: &str, out: Output) -> anyhow::Result<u8> {
    let loaded = load(rule)?;
    let matcher = Matcher::new(&loaded.ruleset)?;
    let mut report = if log == Path::new("-") {
        scan::scan_reader(&matcher, std::io::stdin().lock(), out.keep(), &()).map_err(read_error)?
    } else {
        let cannot_read = || format!("cannot read {}", log.display());
        let f = File::open(log).with_context(cannot_read)?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        let bar = (!out.json && size >= PROGRESS_FROM && std::io::stderr().is_terminal()).then(|| Bar::new(size));
        let progress: &dyn scan::Progress = match &bar {
            Some(bar) => bar,
            None => &(),
        };
        let report = scan::scan_file(&matcher, &f, out.keep(), progress);
        // Cleared before anything else is printed.
        drop(bar);
        report.map_err(read_error).with_context(cannot_read)?
    };
    report.skipped_rules = loaded.skipped;
    if out.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!("{}", format_report(&report, out))?;
    }
    Ok(if report.matched > 0 { 0 } else { 1 })
}

/// The human-readable report.
pub(crate) fn format_report(r: &Report, out: Output) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "Ruleset: {}", r.ruleset);
    let _ = writeln!(
        o,
        "Lines: {} lines, {} ignored, {} matched, {} missed",
        r.lines, r.ignored, r.matched, r.missed
    );
    if r.invalid_utf8 > 0 {
        let _ = writeln!(
            o,
            "       ({} lines with invalid UTF-8, read with replacement characters)",
            r.invalid_utf8
        );
    }
    if r.too_long > 0 {
        let _ = writeln!(
            o,
            "       ({} lines longer than {} bytes, skipped unmatched, as the daemon skips them)",
            r.too_long,
            crate::sources::MAX_LINE
        );
    }
    let _ = writeln!(o, "\nFailregex: {} total", r.matched);
    let _ = writeln!(o, "|-  #) [# of hits] regular expression");
    for (i, rule) in r.rules.iter().enumerate() {
        let _ = writeln!(o, "|  {:>2}) [{}] {}", i + 1, rule.hits, rule.regex);
    }
    let _ = writeln!(o, "`-");
    if !r.skipped_rules.is_empty() {
        let _ = writeln!(o, "\nSkipped rules (nftban cannot run them): {}", r.skipped_rules.len());
        for s in &r.skipped_rules {
            let _ = writeln!(o, "|  {}: {}", s.reason, s.regex);
        }
        let _ = writeln!(o, "`-");
    }
    let _ = writeln!(o, "\nDate formats: matched lines starting with each");
    for (f, n) in &r.date_formats {
        let _ = writeln!(o, "|  [{n}] {f}");
    }
    let _ = writeln!(o, "|  [{}] no date (the daemon uses the time it reads them)", r.no_date);
    let _ = writeln!(o, "`-");
    let _ = writeln!(o, "\nHosts: {} addresses", r.hosts.len());
    let mut hosts: Vec<(&String, &u64)> = r.hosts.iter().collect();
    hosts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (h, n) in hosts {
        let _ = writeln!(o, "|  {h}: {n}");
    }
    if r.not_an_address > 0 {
        let _ = writeln!(
            o,
            "|  not an address (hostnames are never resolved, never banned): {}",
            r.not_an_address
        );
    }
    let _ = writeln!(o, "`-");
    if out.print_matched {
        let _ = writeln!(o, "\nMatched lines:");
        for l in &r.matched_lines {
            let _ = writeln!(o, "{l}");
        }
    }
    if out.print_missed {
        let _ = writeln!(o, "\nMissed lines:");
        for l in &r.missed_lines {
            let _ = writeln!(o, "{l}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `load`, then the scan of `log`.
    fn test(log: &[u8], rule: &str, out: Output) -> Report {
        let m = Matcher::new(&load(rule).unwrap().ruleset).unwrap();
        scan::scan_reader(&m, log, out.keep(), &()).unwrap()
    }

    /// docs/faq.md row 4: the regex from the FAQ, on a log of such lines.
    #[test]
    fn faq_regex_counts_lines_matches_and_hosts() {
        const LOG: &str = "\
[2015-01-28 05:40:16] NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer
[2015-01-28 05:40:17] NOTICE[2116] chan_sip.c: Registration from '<sip:100@10.0.0.2>' succeeded
[2015-01-28 05:40:18] NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer
[2015-01-28 05:40:19] NOTICE[-1] Ext. 1: Incoming SIP connection from unknown peer failed for pbx.example.com - Unknown connection from peer
";
        let r = test(
            LOG.as_bytes(),
            "NOTICE.* .*: Incoming SIP connection from unknown peer failed for <HOST> - Unknown connection from peer",
            Output {
                print_missed: true,
                ..Default::default()
            },
        );
        assert_eq!((r.lines, r.matched, r.missed, r.not_an_address), (4, 3, 1, 1));
        assert_eq!(r.hosts.get("31.3.244.234"), Some(&2));
        assert_eq!(r.missed_lines.len(), 1);
        assert!(r.missed_lines[0].contains("succeeded"));
    }

    /// Debian's dropbear.conf (with common.conf, copied to tests/data) gives
    /// what `fail2ban-regex tests/data/fail2ban/dropbear.log
    /// /etc/fail2ban/filter.d/dropbear.conf` printed: 9 lines, 6 matched,
    /// 3 missed; hits per rule 2, 3, 1; syslog dates (on the 6 matched lines).
    #[test]
    fn fail2ban_filter_gives_fail2ban_regex_hits() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fail2ban");
        let conf = dir.join("dropbear.conf");
        assert!(load(conf.to_str().unwrap()).unwrap().skipped.is_empty());
        let log = std::fs::read(dir.join("dropbear.log")).unwrap();
        let r = test(&log, conf.to_str().unwrap(), Output::default());
        assert_eq!((r.lines, r.matched, r.missed, r.ignored), (9, 6, 3, 0));
        assert_eq!(r.rules.iter().map(|h| h.hits).collect::<Vec<_>>(), vec![2, 3, 1]);
        for host in [
            "198.51.100.7",
            "198.51.100.8",
            "203.0.113.5",
            "192.0.2.77",
            "198.51.100.215",
        ] {
            assert!(r.hosts.contains_key(host), "{host} in {:?}", r.hosts);
        }
        assert!(
            !r.hosts.contains_key("198.51.100.1"),
            "the user name's address is not taken"
        );
        assert_eq!(
            r.date_formats.get(crate::matcher::DateFormat::Syslog.describe()),
            Some(&6)
        );
    }

    /// A rule Rust's regex cannot run runs on the fallback engine (and
    /// matches as Python would); one neither engine runs is skipped and
    /// listed with both reasons, not fatal.
    #[test]
    fn unsupported_fail2ban_rules_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("x.conf");
        std::fs::write(
            &conf,
            "[Definition]\nfailregex = ^fail (?!bad)<HOST>$\n            ^broken (<HOST>$\n            ^oops <HOST>$\nignoreregex =\n",
        )
        .unwrap();
        let loaded = load(conf.to_str().unwrap()).unwrap();
        assert_eq!(
            loaded.ruleset.failregex,
            vec!["^fail (?!bad)<HOST>$".to_string(), "^oops <HOST>$".to_string()]
        );
        assert_eq!(loaded.skipped.len(), 1);
        assert!(
            loaded.skipped[0].reason.contains("with Python's semantics"),
            "{}",
            loaded.skipped[0].reason
        );
        let r = test(
            b"fail 192.0.2.1\nfail bad\noops 192.0.2.2\n",
            conf.to_str().unwrap(),
            Output::default(),
        );
        assert_eq!((r.lines, r.matched), (3, 2));
        assert_eq!(r.rules.iter().map(|h| h.hits).collect::<Vec<_>>(), vec![1, 1]);
    }

    /// `FILE.conf[k=v]`: the filter with the options a jail would give it.
    #[test]
    fn fail2ban_filter_with_options() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("m.conf");
        std::fs::write(
            &conf,
            "[Definition]\nmode = normal\nre-normal = ^n <HOST>$\nre-aggressive = ^a <HOST>$\nfailregex = <re-<mode>>\n",
        )
        .unwrap();
        let spec = format!("{}[mode=aggressive]", conf.display());
        let loaded = load(&spec).unwrap();
        assert_eq!(loaded.ruleset.failregex, ["^a <HOST>$"]);
        let r = test(b"a 192.0.2.1\nn 192.0.2.2\n", &spec, Output::default());
        assert_eq!(r.matched, 1);
        assert!(r.hosts.contains_key("192.0.2.1"));
    }

    #[test]
    fn shipped_name_and_bad_rule() {
        assert_eq!(load("asterisk").unwrap().ruleset.name, "asterisk");
        assert!(load("nosuch").unwrap_err().to_string().contains("unknown ruleset"));
        assert!(load("foo bar").is_err());
    }
}
