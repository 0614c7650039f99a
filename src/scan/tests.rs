//! The scan against the simplest reading of a log: line by line.

use std::sync::atomic::{AtomicU64, Ordering};

use super::report::Tally;
use super::*;
use crate::matcher::{DateFormat, LineMatch, Ruleset, SourceMatcher};
use crate::sources::MAX_LINE;

const LOG: &str = "\
[2015-01-28 05:40:16] NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer
[2015-01-28 05:40:17] NOTICE[2116] chan_sip.c: Registration from '<sip:100@10.0.0.2>' succeeded
[2015-01-28 05:40:18] NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer
[2015-01-28 05:40:19] NOTICE[-1] Ext. 1: Incoming SIP connection from unknown peer failed for pbx.example.com - Unknown connection from peer
";

fn scan(m: &Matcher, input: &[u8], keep: Keep) -> Report {
    scan_reader(m, input, keep, &()).unwrap()
}

/// A rule that captures a prefix reports it under hosts, host bits
/// cleared, beside plain addresses.
#[test]
fn captured_prefixes_are_reported_as_prefixes() {
    let m = Matcher::new(&Ruleset::from_regex("blocked <SUBNET> by policy$")).unwrap();
    let log = "blocked 192.0.2.77/24 by policy\nblocked 192.0.2.1/24 by policy\nblocked 198.51.100.7 by policy\n";
    let r = scan(&m, log.as_bytes(), Keep::default());
    assert_eq!(r.matched, 3);
    assert_eq!(r.hosts.get("192.0.2.0/24"), Some(&2));
    assert_eq!(r.hosts.get("198.51.100.7"), Some(&1));
}

/// The same log gzip'd gives the same report; dates are counted.
#[test]
fn gzip_input_is_read() {
    use std::io::Write;
    let m = Matcher::new(&Ruleset::shipped("asterisk").unwrap()).unwrap();
    let plain = scan(&m, LOG.as_bytes(), Keep::default());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(LOG.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    let unzipped = scan(&m, &gz[..], Keep::default());
    assert_eq!(plain, unzipped);
    assert_eq!((plain.lines, plain.matched), (4, 3));
    // Dates are those of the matched lines.
    assert_eq!(plain.date_formats.get(DateFormat::Asterisk.describe()), Some(&3));
    assert_eq!(plain.no_date, 0);
}

#[test]
fn invalid_utf8_and_partial_last_line_are_counted() {
    let m = Matcher::new(&Ruleset::from_regex("fail from <HOST>$")).unwrap();
    let r = scan(
        &m,
        &b"fail from 192.0.2.1\n\xff\xfe\nfail from 192.0.2.2"[..],
        Keep::default(),
    );
    assert_eq!((r.lines, r.matched, r.invalid_utf8), (3, 2, 1));
}

/// Adds up what it is told, from any thread.
#[derive(Default)]
struct Told {
    bytes: AtomicU64,
    lines: AtomicU64,
    calls: AtomicU64,
}

impl Progress for Told {
    fn advance(&self, bytes: u64, lines: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.lines.fetch_add(lines, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// Progress hears of every byte of the file as stored (compressed, for a
/// gzip'd one) and every line, on one thread or several, a block at a time.
#[test]
fn progress_is_told_every_byte_and_line_per_block() {
    use std::io::Write;
    let line = "fail from 192.0.2.1 and some more text to fill the line\n";
    let log = line.repeat(3 * blocks::BLOCK / line.len());
    let lines = log.lines().count() as u64;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.log");
    std::fs::write(&plain, &log).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(log.as_bytes()).unwrap();
    let gzipped = dir.path().join("log.gz");
    std::fs::write(&gzipped, gz.finish().unwrap()).unwrap();
    let m = Matcher::new(&Ruleset::from_regex("fail from <HOST> ")).unwrap();
    for path in [&plain, &gzipped] {
        let told = Told::default();
        let r = scan_file(&m, &File::open(path).unwrap(), Keep::default(), &told).unwrap();
        assert_eq!(r.lines, lines);
        assert_eq!(told.lines.into_inner(), lines, "{path:?}");
        assert_eq!(
            told.bytes.into_inner(),
            std::fs::metadata(path).unwrap().len(),
            "{path:?}"
        );
        assert!(told.calls.into_inner() < 1000, "{path:?}: per block, not per line");
    }
}

/// The report line by line, the simple way: what the block scanner
/// (whole-buffer literal scan, threads) must give exactly.
fn per_line(m: &Matcher, log: &[u8], keep: Keep) -> Report {
    let mut sm = SourceMatcher::single(m);
    let now = SystemTime::now();
    let mut t = Tally::new(m.sources.len());
    let body = log.strip_suffix(b"\n").unwrap_or(log);
    for line in body.split(|&b| b == b'\n') {
        t.lines += 1;
        if line.len() > MAX_LINE {
            t.too_long += 1;
            continue;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if std::str::from_utf8(line).is_err() {
            t.invalid_utf8 += 1;
        }
        let text = String::from_utf8_lossy(line).into_owned();
        sm.match_line(&text, now);
        match sm.results()[0].clone() {
            LineMatch::Missed => {
                t.missed += 1;
                if keep.missed {
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
        if keep.matched {
            t.matched_lines.push(text);
        }
    }
    t.into_report(m)
}

/// Streamed and split over 1 to 7 threads, every shipped ruleset gives
/// on a log of all their examples (mixed with ordinary lines, CRLF, empty
/// lines, invalid UTF-8, a last line without `\n`) exactly the line by
/// line report, whichever lines are kept.
#[test]
fn block_and_parallel_scans_equal_the_line_by_line_report() {
    let log = crate::matcher::tests::mixed_log();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.log");
    std::fs::write(&path, &log).unwrap();
    let file = File::open(&path).unwrap();
    let size = log.len() as u64;
    for (name, _) in crate::matcher::ruleset::SHIPPED {
        let m = Matcher::new(&Ruleset::shipped(name).unwrap()).unwrap();
        for keep in [
            Keep::default(),
            Keep {
                matched: true,
                ..Default::default()
            },
            Keep {
                missed: true,
                matched: true,
            },
        ] {
            let want = per_line(&m, &log, keep);
            assert!(want.matched > 0 && want.invalid_utf8 > 0, "{name}: {want:?}");
            assert_eq!(scan(&m, &log[..], keep), want, "{name} streamed");
            for parts in 1..=7 {
                let got = parallel::scan_parts(&m, &file, size, parts, keep, &()).unwrap();
                assert_eq!(got.into_report(&m), want, "{name} on {parts} threads");
            }
        }
    }
}

/// `len` bytes of `A` (no newline), then `rest`; remembers the most bytes
/// the scan asked for at once, which is its buffer when it keeps nothing.
struct Huge {
    left: usize,
    rest: &'static [u8],
    widest: usize,
}

impl Read for Huge {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.widest = self.widest.max(buf.len());
        if self.left > 0 {
            let n = self.left.min(buf.len());
            buf[..n].fill(b'A');
            self.left -= n;
            return Ok(n);
        }
        let n = self.rest.len().min(buf.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// A line many times the limit is skipped and counted, and the scan's
/// buffer stays a line at the limit (it used to double until the line
/// fit: a newline-less input took all memory).
#[test]
fn a_line_over_the_limit_is_skipped_in_bounded_memory() {
    let m = Matcher::new(&Ruleset::from_regex("fail from <HOST>$")).unwrap();
    let mut input = Huge {
        left: 5 * MAX_LINE,
        rest: b" fail from 6.6.6.6\nfail from 192.0.2.1\n",
        widest: 0,
    };
    let r = scan_reader(&m, &mut input, Keep::default(), &()).unwrap();
    assert!(input.widest <= MAX_LINE + 1, "asked for {} bytes at once", input.widest);
    assert_eq!((r.lines, r.matched, r.missed), (2, 1, 0));
    assert_eq!(r.too_long, 1);
    assert_eq!(r.hosts.keys().collect::<Vec<_>>(), ["192.0.2.1"]);
}

/// Lines around the limit (at it, one byte over, with a `\r`, with
/// invalid UTF-8 inside, several times over, and a last line over it
/// without its newline), streamed and split over threads, give the line by
/// line report: a line over the limit is counted, never classified.
#[test]
fn lines_around_the_limit_equal_the_line_by_line_report() {
    let pad = |len: usize, end: &str| format!("{}{end}", "A".repeat(len - end.len()));
    let mut log = Vec::new();
    for line in [
        pad(MAX_LINE, " fail from 192.0.2.1"),
        pad(MAX_LINE + 1, " fail from 6.6.6.1"),
        pad(MAX_LINE, " fail from 192.0.2.2\r"),
        pad(MAX_LINE + 1, " fail from 6.6.6.2\r"),
        "fail from 192.0.2.3".to_string(),
        pad(3 * MAX_LINE + 5, " fail from 6.6.6.3"),
        String::new(),
        pad(MAX_LINE - 1, " fail from 192.0.2.4"),
    ] {
        log.extend_from_slice(line.as_bytes());
        log.push(b'\n');
    }
    let mut bad = vec![b'A'; MAX_LINE + 10];
    bad[100] = 0xff;
    bad.extend_from_slice(b" fail from 6.6.6.4\n");
    log.extend_from_slice(&bad);
    log.extend_from_slice(pad(MAX_LINE + 2, " fail from 6.6.6.5").as_bytes());
    let m = Matcher::new(&Ruleset::from_regex("fail from <HOST>$")).unwrap();
    let want = per_line(&m, &log, Keep::default());
    assert_eq!(
        (want.lines, want.too_long, want.matched, want.invalid_utf8),
        (10, 5, 4, 0)
    );
    assert!(want.hosts.keys().all(|h| h.starts_with("192.0.2.")), "{:?}", want.hosts);
    assert_eq!(scan(&m, &log, Keep::default()), want, "streamed");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.log");
    std::fs::write(&path, &log).unwrap();
    let file = File::open(&path).unwrap();
    for parts in 1..=4 {
        let got = parallel::scan_parts(&m, &file, log.len() as u64, parts, Keep::default(), &()).unwrap();
        assert_eq!(got.into_report(&m), want, "on {parts} threads");
    }
}
