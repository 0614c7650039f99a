//! `nftban test LOG RULE`: what a rule finds in a log, like fail2ban-regex.
//! Needs no daemon and no root. Counts lines, matched, ignored, missed,
//! hits per rule and per host, and the date formats matched lines start
//! with; hostnames are reported, never resolved. Reads plain or gzip'd
//! files (by their magic bytes) and stdin a block at a time; shows
//! progress on a terminal for big files.
//!
//! Speed: a block of lines goes through the rules' literal scan as a
//! whole, and only lines holding a literal are classified one by one; the
//! others are counted (newlines) and missed in bulk. A plain regular file
//! is split at line starts over one thread per core (std::thread::scope,
//! `pread`), and the threads' tallies are merged in file order, so the
//! report is the one a single pass gives.

use ipnet::IpNet;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::address::show as show_net;
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
    /// Date format → matched lines starting with it (the lines whose time the daemon uses).
    pub date_formats: BTreeMap<String, u64>,
    /// Matched lines with no date nftban recognises (the daemon uses the time it reads them).
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
    /// Draws the bar: at once the first time (so that even a fast scan
    /// shows it), then at most every 200 ms.
    fn tick(&mut self, lines: u64) {
        if self.shown && self.last.elapsed().as_millis() < 200 {
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

/// Bytes read at a time (and the least a thread gets of a file).
const BLOCK: usize = 1 << 20;

/// What one part of the input holds; parts are merged in input order.
struct Tally {
    lines: u64,
    matched: u64,
    ignored: u64,
    missed: u64,
    not_an_address: u64,
    invalid_utf8: u64,
    hits: Vec<u64>,
    /// Keyed by address while scanning (no allocation per line), by text at the end.
    /// Addresses, and the prefixes of rules that capture one.
    hosts: HashMap<IpNet, u64>,
    formats: [u64; DateFormat::ALL.len()],
    no_date: u64,
    missed_lines: Vec<String>,
    matched_lines: Vec<String>,
}

impl Tally {
    fn new(rules: usize) -> Tally {
        Tally {
            lines: 0,
            matched: 0,
            ignored: 0,
            missed: 0,
            not_an_address: 0,
            invalid_utf8: 0,
            hits: vec![0; rules],
            hosts: HashMap::new(),
            formats: [0; DateFormat::ALL.len()],
            no_date: 0,
            missed_lines: vec![],
            matched_lines: vec![],
        }
    }

    fn merge(&mut self, o: Tally) {
        self.lines += o.lines;
        self.matched += o.matched;
        self.ignored += o.ignored;
        self.missed += o.missed;
        self.not_an_address += o.not_an_address;
        self.invalid_utf8 += o.invalid_utf8;
        for (a, b) in self.hits.iter_mut().zip(o.hits) {
            *a += b;
        }
        for (h, n) in o.hosts {
            *self.hosts.entry(h).or_default() += n;
        }
        for (a, b) in self.formats.iter_mut().zip(o.formats) {
            *a += b;
        }
        self.no_date += o.no_date;
        self.missed_lines.extend(o.missed_lines);
        self.matched_lines.extend(o.matched_lines);
    }
}

/// Classifies blocks of whole lines into a [`Tally`].
struct Scanner<'m> {
    sm: SourceMatcher<'m>,
    now: SystemTime,
    out: Output,
    tally: Tally,
}

impl<'m> Scanner<'m> {
    fn new(matcher: &'m Matcher, now: SystemTime, out: Output) -> Scanner<'m> {
        Scanner {
            sm: SourceMatcher::single(matcher),
            now,
            out,
            tally: Tally::new(matcher.sources.len()),
        }
    }

    /// `block` holds whole lines, each ending in `\n` except maybe a last
    /// one at the end of the input. Only lines holding a rule's literal are
    /// looked at one by one (unless every missed line is to be printed);
    /// the others are counted as missed in bulk.
    fn block(&mut self, block: &[u8]) {
        if block.is_empty() {
            return;
        }
        let lines = memchr::memchr_iter(b'\n', block).count() as u64 + u64::from(!block.ends_with(b"\n"));
        self.tally.lines += lines;
        let valid = self.count_invalid_utf8(block);
        let mut seen = 0;
        if self.out.print_missed || !self.sm.skips_lines() {
            for line in block.strip_suffix(b"\n").unwrap_or(block).split(|&b| b == b'\n') {
                self.line(line, valid, false);
                seen += 1;
            }
        } else {
            let mut from = 0;
            while let Some((s, e)) = self.sm.next_candidate(block, from) {
                self.line(&block[s..e], valid, true);
                seen += 1;
                from = e + 1;
            }
        }
        // Lines not looked at hold no literal: missed.
        self.tally.missed += lines - seen;
    }

    /// Counts lines holding invalid UTF-8 (read with replacement
    /// characters); `true` when the whole block is valid.
    fn count_invalid_utf8(&mut self, block: &[u8]) -> bool {
        let mut rest = block;
        let mut valid = true;
        while let Err(e) = std::str::from_utf8(rest) {
            self.tally.invalid_utf8 += 1;
            valid = false;
            let bad = e.valid_up_to();
            match memchr::memchr(b'\n', &rest[bad..]) {
                Some(i) => rest = &rest[bad + i + 1..],
                None => break,
            }
        }
        valid
    }

    /// One line of a block (`valid`: the block is valid UTF-8;
    /// `candidate`: [`SourceMatcher::next_candidate`] returned it).
    fn line(&mut self, bytes: &[u8], valid: bool, candidate: bool) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let line = if valid {
            // SAFETY: a line of a valid UTF-8 block, cut at `\n` (and `\r`),
            // which are never inside a multi-byte character.
            std::borrow::Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes) })
        } else {
            match std::str::from_utf8(bytes) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => String::from_utf8_lossy(bytes),
            }
        };
        if candidate {
            self.sm.match_candidate(&line, self.now);
        } else {
            self.sm.match_line(&line, self.now);
        }
        let t = &mut self.tally;
        let m = &self.sm.results()[0];
        match m {
            LineMatch::Missed => {
                t.missed += 1;
                if self.out.print_missed {
                    t.missed_lines.push(line.into_owned());
                }
                return;
            }
            LineMatch::Ignored => {
                t.ignored += 1;
                return;
            }
            m @ LineMatch::Failure { rule, .. } => {
                t.matched += 1;
                t.hits[*rule] += 1;
                if let Some(net) = m.failure_net() {
                    *t.hosts.entry(net).or_default() += 1;
                }
            }
            LineMatch::NotAnAddress { rule, .. } => {
                t.matched += 1;
                t.not_an_address += 1;
                t.hits[*rule] += 1;
            }
        }
        // The dates of the lines that count (the daemon reads no other).
        match self.sm.parse_date(&line, self.now) {
            Some(f) => t.formats[f.format as usize] += 1,
            None => t.no_date += 1,
        }
        if self.out.print_matched {
            t.matched_lines.push(line.into_owned());
        }
    }
}

/// Reads `input` a block at a time and hands whole lines to `scanner`.
fn scan_stream(scanner: &mut Scanner, mut input: impl Read, progress: &mut Option<Progress>) -> std::io::Result<()> {
    let mut buf = vec![0u8; BLOCK];
    // Bytes of an unfinished line kept at the start of `buf`.
    let mut kept = 0;
    loop {
        if kept == buf.len() {
            // A line longer than the buffer.
            buf.resize(buf.len() * 2, 0);
        }
        let n = match input.read(&mut buf[kept..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            scanner.block(&buf[..kept]);
            return Ok(());
        }
        let filled = kept + n;
        match memchr::memrchr(b'\n', &buf[kept..filled]) {
            Some(i) => {
                let end = kept + i + 1;
                scanner.block(&buf[..end]);
                buf.copy_within(end..filled, 0);
                kept = filled - end;
            }
            None => kept = filled,
        }
        if let Some(p) = progress.as_mut() {
            p.tick(scanner.tally.lines);
        }
    }
}

/// Threads for a file of `size` bytes: one per core, each with at least a block.
fn threads_for(size: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(8).min((size / BLOCK as u64).max(1) as usize)
}

/// A regular file split at line starts into `parts` ranges, scanned on as
/// many threads; the tallies are merged in file order, so the report is
/// the one a single pass gives.
fn scan_file_parallel(
    matcher: &Matcher,
    file: &File,
    size: u64,
    parts: usize,
    out: Output,
    progress: Option<Progress>,
) -> std::io::Result<Tally> {
    use std::os::unix::fs::FileExt;
    let now = SystemTime::now();
    let mut bounds = vec![0u64];
    for i in 1..parts {
        let mut at = size * i as u64 / parts as u64;
        if at == 0 {
            bounds.push(0);
            continue;
        }
        // The first line start at or after `at`: after the `\n` at or after `at - 1`.
        at -= 1;
        let mut buf = [0u8; 4096];
        let start = loop {
            let n = file.read_at(&mut buf, at)?;
            if n == 0 {
                break size;
            }
            if let Some(j) = memchr::memchr(b'\n', &buf[..n]) {
                break at + j as u64 + 1;
            }
            at += n as u64;
        };
        bounds.push(start.max(*bounds.last().unwrap_or(&0)));
    }
    bounds.push(size);
    let read = progress.as_ref().map(|p| p.read.clone());
    let done = std::sync::atomic::AtomicU64::new(0);
    let lines = std::sync::atomic::AtomicU64::new(0);
    let tallies = std::thread::scope(|s| {
        let workers: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (from, to) = (w[0], w[1]);
                let (done, lines) = (&done, &lines);
                s.spawn(move || -> std::io::Result<Tally> {
                    let mut scanner = Scanner::new(matcher, now, out);
                    let part = PartReader {
                        file,
                        at: from,
                        end: to,
                        done,
                    };
                    let mut none = None;
                    scan_stream(&mut scanner, part, &mut none)?;
                    lines.fetch_add(scanner.tally.lines, std::sync::atomic::Ordering::Relaxed);
                    Ok(scanner.tally)
                })
            })
            .collect();
        if let (Some(mut p), Some(read)) = (progress, read) {
            p.tick(0);
            while !workers.iter().all(|w| w.is_finished()) {
                std::thread::sleep(std::time::Duration::from_millis(50));
                read.set(done.load(std::sync::atomic::Ordering::Relaxed));
                p.tick(lines.load(std::sync::atomic::Ordering::Relaxed));
            }
            p.finish();
        }
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a scanning thread panicked")))
            })
            .collect::<Vec<_>>()
    });
    let mut total = Tally::new(matcher.sources.len());
    for t in tallies {
        total.merge(t?);
    }
    Ok(total)
}

/// One range of a file, read with `pread` (threads share the file).
struct PartReader<'a> {
    file: &'a File,
    at: u64,
    end: u64,
    done: &'a std::sync::atomic::AtomicU64,
}

impl Read for PartReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (self.end - self.at).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        self.done.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

fn new_report(matcher: &Matcher) -> Report {
    Report {
        ruleset: matcher.name.clone(),
        rules: matcher
            .sources
            .iter()
            .zip(matcher.literals())
            .map(|(r, literals)| RuleHits {
                regex: r.clone(),
                hits: 0,
                literals,
            })
            .collect(),
        ..Default::default()
    }
}

fn finish_report(mut report: Report, t: Tally) -> Report {
    report.lines = t.lines;
    report.matched = t.matched;
    report.ignored = t.ignored;
    report.missed = t.missed;
    report.not_an_address = t.not_an_address;
    report.invalid_utf8 = t.invalid_utf8;
    for (r, n) in report.rules.iter_mut().zip(t.hits) {
        r.hits = n;
    }
    report.hosts = t.hosts.into_iter().map(|(a, n)| (show_net(&a), n)).collect();
    for (f, n) in DateFormat::ALL.iter().zip(t.formats) {
        if n > 0 {
            report.date_formats.insert(f.describe().to_string(), n);
        }
    }
    report.no_date = t.no_date;
    report.missed_lines = t.missed_lines;
    report.matched_lines = t.matched_lines;
    report
}

fn scan_with(
    matcher: &Matcher,
    input: impl Read,
    out: Output,
    mut progress: Option<Progress>,
) -> std::io::Result<Report> {
    let mut scanner = Scanner::new(matcher, SystemTime::now(), out);
    scan_stream(&mut scanner, open_lines(input)?, &mut progress)?;
    if let Some(p) = progress {
        p.finish();
    }
    Ok(finish_report(new_report(matcher), scanner.tally))
}

/// A plain (not gzip'd) regular file on `parts` threads.
fn scan_file(
    matcher: &Matcher,
    file: &File,
    out: Output,
    parts: usize,
    progress: Option<Progress>,
) -> std::io::Result<Report> {
    let size = file.metadata()?.len();
    let t = scan_file_parallel(matcher, file, size, parts, out, progress)?;
    Ok(finish_report(new_report(matcher), t))
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
        let mut magic = [0u8; 2];
        let plain = f.metadata().is_ok_and(|m| m.is_file())
            && !(std::os::unix::fs::FileExt::read_at(&f, &mut magic, 0).unwrap_or(0) == 2 && magic == [0x1f, 0x8b]);
        if plain {
            scan_file(&matcher, &f, out, threads_for(size), progress)
        } else {
            scan_with(&matcher, Counting { inner: f, read }, out, progress)
        }
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

    /// A rule that captures a prefix reports it under hosts, host bits
    /// cleared, beside plain addresses.
    #[test]
    fn captured_prefixes_are_reported_as_prefixes() {
        let m = Matcher::new(&load_rule("blocked <SUBNET> by policy$").unwrap()).unwrap();
        let log = "blocked 192.0.2.77/24 by policy\nblocked 192.0.2.1/24 by policy\nblocked 198.51.100.7 by policy\n";
        let r = scan(&m, log.as_bytes(), Output::default()).unwrap();
        assert_eq!(r.matched, 3);
        assert_eq!(r.hosts.get("192.0.2.0/24"), Some(&2));
        assert_eq!(r.hosts.get("198.51.100.7"), Some(&1));
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
        // Dates are those of the matched lines.
        assert_eq!(plain.date_formats.get(DateFormat::Asterisk.describe()), Some(&3));
        assert_eq!(plain.no_date, 0);
    }

    /// Debian's dropbear.conf (with common.conf, copied to tests/data) gives
    /// what `fail2ban-regex tests/data/fail2ban/dropbear.log
    /// /etc/fail2ban/filter.d/dropbear.conf` printed: 9 lines, 6 matched,
    /// 3 missed; hits per rule 2, 3, 1; syslog dates (on the 6 matched lines).
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
        assert_eq!(r.date_formats.get(DateFormat::Syslog.describe()), Some(&6));
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

    /// The report line by line, the simple way: what the block scanner
    /// (whole-buffer literal scan, threads) must give exactly.
    fn per_line(m: &Matcher, log: &[u8], out: Output) -> Report {
        let mut sm = SourceMatcher::single(m);
        let now = SystemTime::now();
        let mut t = Tally::new(m.sources.len());
        let body = log.strip_suffix(b"\n").unwrap_or(log);
        for line in body.split(|&b| b == b'\n') {
            t.lines += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if std::str::from_utf8(line).is_err() {
                t.invalid_utf8 += 1;
            }
            let text = String::from_utf8_lossy(line).into_owned();
            sm.match_line(&text, now);
            match sm.results()[0].clone() {
                LineMatch::Missed => {
                    t.missed += 1;
                    if out.print_missed {
                        t.missed_lines.push(text);
                    }
                    continue;
                }
                LineMatch::Ignored => {
                    t.ignored += 1;
                    continue;
                }
                m @ LineMatch::Failure { rule, .. } => {
                    t.hits[rule] += 1;
                    if let Some(net) = m.failure_net() {
                        *t.hosts.entry(net).or_default() += 1;
                    }
                }
                LineMatch::NotAnAddress { rule, .. } => {
                    t.not_an_address += 1;
                    t.hits[rule] += 1;
                }
            }
            t.matched += 1;
            match sm.parse_date(&text, now) {
                Some(f) => t.formats[f.format as usize] += 1,
                None => t.no_date += 1,
            }
            if out.print_matched {
                t.matched_lines.push(text);
            }
        }
        finish_report(new_report(m), t)
    }

    /// Streamed and split over 1 to 7 threads, every shipped ruleset gives
    /// on a log of all their examples (mixed with ordinary lines, CRLF, empty
    /// lines, invalid UTF-8, a last line without `\n`) exactly the line by
    /// line report, in every output mode.
    #[test]
    fn block_and_parallel_scans_equal_the_line_by_line_report() {
        let log = crate::matcher::tests::mixed_log();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.log");
        std::fs::write(&path, &log).unwrap();
        let file = File::open(&path).unwrap();
        for (name, _) in crate::matcher::ruleset::SHIPPED {
            let m = Matcher::new(&Ruleset::shipped(name).unwrap()).unwrap();
            for out in [
                Output::default(),
                Output {
                    print_matched: true,
                    ..Default::default()
                },
                Output {
                    print_missed: true,
                    print_matched: true,
                    ..Default::default()
                },
            ] {
                let want = per_line(&m, &log, out);
                assert!(want.matched > 0 && want.invalid_utf8 > 0, "{name}: {want:?}");
                assert_eq!(scan(&m, &log[..], out).unwrap(), want, "{name} streamed");
                for parts in 1..=7 {
                    assert_eq!(
                        scan_file(&m, &file, out, parts, None).unwrap(),
                        want,
                        "{name} on {parts} threads"
                    );
                }
            }
        }
    }
}
