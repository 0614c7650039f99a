//! `nftban test LOG RULE`: what a rule finds in a log, like fail2ban-regex.
//! Needs no daemon and no root. Counts lines, matched, ignored, missed,
//! hits per rule and per host; hostnames are reported, never resolved.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use crate::matcher::{LineMatch, Matcher, Ruleset};

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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missed_lines: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_lines: Vec<String>,
}

/// RULE is a path to a ruleset file, a shipped ruleset name, or a regex.
pub fn load_rule(rule: &str) -> anyhow::Result<Ruleset> {
    let path = Path::new(rule);
    if (rule.ends_with(".yaml") || rule.ends_with(".yml")) && path.exists() {
        return Ruleset::from_file(path).map_err(anyhow::Error::msg);
    }
    if rule.contains('<') {
        return Ok(Ruleset::from_regex(rule));
    }
    if rule.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Ruleset::resolve(rule, Path::new(".")).map_err(anyhow::Error::msg);
    }
    anyhow::bail!("`{rule}` is neither a ruleset file, a ruleset name, nor a regex with <HOST>")
}

/// Classify every line of `input`.
pub fn scan(matcher: &Matcher, input: impl Read, out: Output) -> std::io::Result<Report> {
    let mut report = Report {
        ruleset: matcher.name.clone(),
        rules: matcher
            .sources
            .iter()
            .map(|r| RuleHits {
                regex: r.clone(),
                hits: 0,
            })
            .collect(),
        ..Default::default()
    };
    let mut reader = BufReader::with_capacity(256 * 1024, input);
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
        let m = matcher.match_line(&line);
        match &m {
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
                *report.hosts.entry(addr.to_string()).or_default() += 1;
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
    Ok(report)
}

pub fn run(log: &Path, rule: &str, out: Output) -> anyhow::Result<u8> {
    let ruleset = load_rule(rule)?;
    let matcher = Matcher::new(&ruleset).map_err(anyhow::Error::msg)?;
    let report = if log == Path::new("-") {
        scan(&matcher, std::io::stdin().lock(), out)?
    } else {
        let f = File::open(log).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", log.display()))?;
        scan(&matcher, f, out)?
    };
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
