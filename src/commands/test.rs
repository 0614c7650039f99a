//! `nftban test LOG RULE`: what a rule finds in a log, like fail2ban-regex.
//! Needs no daemon and no root. Counts lines, matched, ignored, missed,
//! hits per rule and per host, and the date formats lines start with;
//! hostnames are reported, never resolved. Reads plain or gzip'd files
//! (by their magic bytes) and stdin, with one reused line buffer; shows
//! progress on a terminal for big files.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::matcher::{fail2ban, DateFormat, LineMatch, Matcher, Ruleset, SourceMatcher};

/// What to print besides the counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    pub json: bool,
    pub print_missed: bool,
    pub print_matched: bool,
}

/// One failregex and how many lines it matched.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RuleHits {
    pub regex: String,
    pub hits: u64,
    /// Sets of fixed strings: a line must contain one string of each set
    /// before the regex runs (empty: the regex runs on every line).
    pub literals: Vec<Vec<String>>,
}

/// The result of a test run (`--json` prints it).
#[derive(Debug, Serialize, Default, PartialEq, Eq)]
pub struct Report {
    pub ruleset: String,
    pub lines: u64,
    pub matched: u64,
    pub ignored: u64,
    pub missed: u64,
    /// Matched lines whose host is no address (never resolved, never banned).
    pub not_an_address: u64,
    pub invalid_utf8: u64,
    pub rules: Vec<RuleHits>,
    /// Address → number of matching lines.
    pub hosts: BTreeMap<String, u64>,
    /// Date format → lines starting with it (fail2ban-regex's "Date template hits").
    pub date_formats: BTreeMap<String, u64>,
    /// Lines with no date nftban recognises (the daemon uses the time it reads them).
    pub no_date: u64,
    /// Rules of a fail2ban filter that nftban cannot run, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_rules: Vec<SkippedRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missed_lines: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_lines: Vec<String>,
}

/// A rule left out of an imported fail2ban filter.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SkippedRule {
    pub regex: String,
    pub reason: String,
}

/// A rule to test and what was left out of it.
pub struct Loaded {
    pub ruleset: Ruleset,
    pub skipped: Vec<SkippedRule>,
}

/// RULE is a path to a ruleset file, a fail2ban filter `.conf`, a shipped
/// ruleset name, or a regex.
pub fn load_rule(rule: &str) -> anyhow::Result<Ruleset> {
    Ok(load(rule)?.ruleset)
}

fn load(rule: &str) -> anyhow::Result<Loaded> {
    let path = Path::new(rule);
    let plain = |ruleset| Loaded {
        ruleset,
        skipped: vec![],
    };
    if (rule.ends_with(".yaml") || rule.ends_with(".yml")) && path.exists() {
        return Ok(plain(Ruleset::from_file(path)?));
    }
    if (rule.ends_with(".conf") || rule.ends_with(".local")) && path.exists() {
        let imp = fail2ban::load(path)?;
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

/// Counts bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// Plain or gzip'd, decided by the first two bytes.
fn open_lines<'a>(input: impl Read + 'a) -> std::io::Result<Box<dyn BufRead + 'a>> {
    let mut r = BufReader::with_capacity(256 * 1024, input);
    let gz = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::bufread::MultiGzDecoder::new(r),
        ))
    } else {
        Box::new(r)
    })
}

/// Progress on stderr: how far into a file of `total` bytes.
struct Progress {
    total: u64,
    read: Rc<Cell<u64>>,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn tick(&mut self, lines: u64) {
        if self.last.elapsed().as_millis() < 200 {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let pct = self.read.get() as f64 * 100.0 / self.total.max(1) as f64;
        let width = 30;
        let done = ((pct / 100.0) * width as f64) as usize;
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\r[{}{}] {pct:5.1}% {lines} lines",
            "#".repeat(done.min(width)),
            " ".repeat(width - done.min(width))
        );
        let _ = e.flush();
    }

    fn finish(&self) {
        if self.shown {
            let _ = write!(std::io::stderr().lock(), "\r{}\r", " ".repeat(60));
        }
    }
}

/// Classify every line of `input` (plain or gzip'd).
pub fn scan(matcher: &Matcher, input: impl Read, out: Output) -> std::io::Result<Report> {
    scan_with(matcher, input, out, None)
}

fn scan_with(
    matcher: &Matcher,
    input: impl Read,
    out: Output,
    mut progress: Option<Progress>,
) -> std::io::Result<Report> {
    let literals = matcher.literals();
    let mut report = Report {
        ruleset: matcher.name.clone(),
        rules: matcher
            .sources
            .iter()
            .zip(literals)
            .map(|(r, literals)| RuleHits {
                regex: r.clone(),
                hits: 0,
                literals,
            })
            .collect(),
        ..Default::default()
    };
    let mut sm = SourceMatcher::single(matcher);
    let now = SystemTime::now();
    let mut formats = [0u64; DateFormat::ALL.len()];
    // Keyed by address while scanning (no allocation per line), by text at the end.
    let mut hosts: std::collections::HashMap<std::net::IpAddr, u64> = Default::default();
    let mut reader = open_lines(input)?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        let bytes = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let line = match std::str::from_utf8(bytes) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => {
                report.invalid_utf8 += 1;
                String::from_utf8_lossy(bytes)
            }
        };
        report.lines += 1;
        if let Some(p) = progress.as_mut() {
            if report.lines % 65536 == 0 {
                p.tick(report.lines);
            }
        }
        match sm.parse_date(&line, now) {
            Some(f) => formats[f.format as usize] += 1,
            None => report.no_date += 1,
        }
        sm.match_line(&line, now);
        let m = &sm.results()[0];
        match m {
            LineMatch::Missed => {
                report.missed += 1;
                if out.print_missed {
                    report.missed_lines.push(line.into_owned());
                }
                continue;
            }
            LineMatch::Ignored => report.ignored += 1,
            LineMatch::Failure { rule, addr } => {
                report.matched += 1;
                report.rules[*rule].hits += 1;
                *hosts.entry(*addr).or_default() += 1;
            }
            LineMatch::NotAnAddress { rule, .. } => {
                report.matched += 1;
                report.not_an_address += 1;
                report.rules[*rule].hits += 1;
            }
        }
        if out.print_matched && !matches!(m, LineMatch::Ignored) {
            report.matched_lines.push(line.into_owned());
        }
    }
    if let Some(p) = progress {
        p.finish();
    }
    report.hosts = hosts.into_iter().map(|(a, n)| (a.to_string(), n)).collect();
    for (f, n) in DateFormat::ALL.iter().zip(formats) {
        if n > 0 {
            report.date_formats.insert(f.describe().to_string(), n);
        }
    }
    Ok(report)
}

/// Files at least this big get a progress bar on a terminal.
const PROGRESS_FROM: u64 = 32 * 1024 * 1024;

pub fn run(log: &Path, rule: &str, out: Output) -> anyhow::Result<u8> {
    let loaded = load(rule)?;
    let matcher = Matcher::new(&loaded.ruleset)?;
    let mut report = if log == Path::new("-") {
        scan(&matcher, std::io::stdin().lock(), out)?
    } else {
        let f = File::open(log).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", log.display()))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        let read = Rc::new(Cell::new(0));
        let progress = (!out.json && size >= PROGRESS_FROM && std::io::stderr().is_terminal()).then(|| Progress {
            total: size,
            read: read.clone(),
            last: Instant::now(),
            shown: false,
        });
        scan_with(&matcher, Counting { inner: f, read }, out, progress)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", log.display()))?
    };
    report.skipped_rules = loaded.skipped;
    if out.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", format_report(&report, out));
    }
    Ok(if report.matched > 0 { 0 } else { 1 })
}

/// The human-readable report.
pub fn format_report(r: &Report, out: Output) -> String {
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
    let _ = writeln!(o, "\nDate formats: lines starting with each");
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

    const LOG: &str = "\
[2015-01-28 05:40:16] NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer
[2015-01-28 05:40:17] NOTICE[2116] chan_sip.c: Registration from '<sip:100@10.0.0.2>' succeeded
[2015-01-28 05:40:18] NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer
[2015-01-28 05:40:19] NOTICE[-1] Ext. 1: Incoming SIP connection from unknown peer failed for pbx.example.com - Unknown connection from peer
";

    /// Seed FAQ row 4: the regex from the FAQ, on a log of such lines.
    #[test]
    fn faq_regex_counts_lines_matches_and_hosts() {
        let rs = load_rule(
            "NOTICE.* .*: Incoming SIP connection from unknown peer failed for <HOST> - Unknown connection from peer",
        )
        .unwrap();
        let m = Matcher::new(&rs).unwrap();
        let r = scan(
            &m,
            LOG.as_bytes(),
            Output {
                print_missed: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((r.lines, r.matched, r.missed, r.not_an_address), (4, 3, 1, 1));
        assert_eq!(r.hosts.get("31.3.244.234"), Some(&2));
        assert_eq!(r.missed_lines.len(), 1);
        assert!(r.missed_lines[0].contains("succeeded"));
    }

    /// The same log gzip'd gives the same report; dates are counted.
    #[test]
    fn gzip_input_is_read() {
        use std::io::Write;
        let m = Matcher::new(&load_rule("asterisk").unwrap()).unwrap();
        let plain = scan(&m, LOG.as_bytes(), Output::default()).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(LOG.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let unzipped = scan(&m, &gz[..], Output::default()).unwrap();
        assert_eq!(plain, unzipped);
        assert_eq!((plain.lines, plain.matched), (4, 3));
        assert_eq!(plain.date_formats.get(DateFormat::Asterisk.describe()), Some(&4));
        assert_eq!(plain.no_date, 0);
    }

    /// Debian's dropbear.conf (with common.conf, copied to tests/data) gives
    /// what `fail2ban-regex tests/data/fail2ban/dropbear.log
    /// /etc/fail2ban/filter.d/dropbear.conf` printed: 9 lines, 6 matched,
    /// 3 missed; hits per rule 2, 3, 1; 9 syslog dates.
    #[test]
    fn fail2ban_filter_gives_fail2ban_regex_hits() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fail2ban");
        let loaded = load(dir.join("dropbear.conf").to_str().unwrap()).unwrap();
        assert!(loaded.skipped.is_empty());
        let m = Matcher::new(&loaded.ruleset).unwrap();
        let log = std::fs::read(dir.join("dropbear.log")).unwrap();
        let r = scan(&m, &log[..], Output::default()).unwrap();
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
        assert_eq!(r.date_formats.get(DateFormat::Syslog.describe()), Some(&9));
    }

    /// A rule Rust's regex cannot run is skipped and listed, not fatal.
    #[test]
    fn unsupported_fail2ban_rules_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("x.conf");
        std::fs::write(
            &conf,
            "[Definition]\nfailregex = ^fail (?!bad)<HOST>$\n            ^oops <HOST>$\nignoreregex =\n",
        )
        .unwrap();
        let loaded = load(conf.to_str().unwrap()).unwrap();
        assert_eq!(loaded.ruleset.failregex, vec!["^oops <HOST>$".to_string()]);
        assert_eq!(loaded.skipped.len(), 1);
        assert!(
            loaded.skipped[0].reason.contains("look-around"),
            "{}",
            loaded.skipped[0].reason
        );
    }

    #[test]
    fn shipped_name_and_bad_rule() {
        assert_eq!(load_rule("asterisk").unwrap().name, "asterisk");
        assert!(load_rule("nosuch").unwrap_err().to_string().contains("unknown ruleset"));
        assert!(load_rule("foo bar").is_err());
    }

    #[test]
    fn invalid_utf8_and_partial_last_line_are_counted() {
        let m = Matcher::new(&Ruleset::from_regex("fail from <HOST>$")).unwrap();
        let r = scan(
            &m,
            &b"fail from 192.0.2.1\n\xff\xfe\nfail from 192.0.2.2"[..],
            Output::default(),
        )
        .unwrap();
        assert_eq!((r.lines, r.matched, r.invalid_utf8), (3, 2, 1));
    }
}
