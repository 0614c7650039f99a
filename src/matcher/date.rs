//! The time a log line was written, read from the line itself, so that the
//! daemon can drop failures older than `findtime` (replaying an old log bans
//! nobody) and `nftban test` can say which date formats a log uses.
//!
//! Dates are looked for at the start of the line only (after an optional
//! `[`), by byte checks, with no regex and no allocation. Times without a
//! zone are local time; the local offset is asked of libc once per hour of
//! log (cached), so the hot path does no system call.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub mod custom;
pub use custom::CustomDate;

/// A date format nftban recognises at the start of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DateFormat {
    /// Asterisk's `[YYYY-MM-DD HH:MM:SS]` (also with `.fff`), local time.
    Asterisk,
    /// syslog's `Mon DD HH:MM:SS` (also in brackets), local time, year inferred.
    Syslog,
    /// RFC 3339 / ISO 8601 `YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM]` (or a space for `T`).
    Iso8601,
    /// Seconds since 1970, `1700000000[.123]`, also in brackets.
    Epoch,
    /// A ruleset's own `datepattern` of strftime directives (tried first).
    Custom,
}

impl DateFormat {
    pub const ALL: [DateFormat; 5] = [
        DateFormat::Asterisk,
        DateFormat::Syslog,
        DateFormat::Iso8601,
        DateFormat::Epoch,
        DateFormat::Custom,
    ];

    /// How `nftban test` names it.
    pub fn describe(self) -> &'static str {
        match self {
            DateFormat::Asterisk => "asterisk [YYYY-MM-DD HH:MM:SS]",
            DateFormat::Syslog => "syslog Mon DD HH:MM:SS",
            DateFormat::Iso8601 => "iso8601 YYYY-MM-DDTHH:MM:SS[zone]",
            DateFormat::Epoch => "epoch seconds",
            DateFormat::Custom => "custom datepattern",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A date found at the start of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub format: DateFormat,
    /// Bytes the date takes, from the line's start (closing `]` included).
    pub end: usize,
    pub time: SystemTime,
    /// The date sat in a `[...]` that the format itself does not write
    /// (`[2015-01-28 05:40:16]`): fail2ban cuts the date out of it and
    /// leaves `[]` (a pattern that writes `\[...\]` cuts them too).
    pub wrapped: bool,
}

/// How times without a zone are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The host's local time (libc `mktime`).
    Local,
    /// UTC (tests).
    Utc,
}

/// Reads dates; keeps a small cache, so one per reading thread.
#[derive(Debug, Clone)]
pub struct DateParser {
    formats: u8,
    zone: Zone,
    /// (year, month, day, hour) → epoch seconds of that hour's start, for
    /// the last few hours seen (logs mixing dates must not call libc, which
    /// stats /etc/localtime, per line).
    cache: [Option<(HourKey, i64)>; CACHE],
    next: usize,
    /// The rulesets' own patterns, tried before the named formats.
    custom: std::sync::Arc<[CustomDate]>,
}

const CACHE: usize = 16;

/// (year, month, day, hour).
type HourKey = (i64, u32, u32, u32);

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

impl DateParser {
    /// A parser for `formats` (`None`: all).
    pub fn new(formats: Option<&[DateFormat]>, zone: Zone) -> DateParser {
        let formats = match formats {
            None => DateFormat::ALL.iter().fold(0, |m, f| m | f.bit()),
            Some(list) => list.iter().fold(0, |m, f| m | f.bit()),
        };
        DateParser {
            formats,
            zone,
            cache: [None; CACHE],
            next: 0,
            custom: std::sync::Arc::new([]),
        }
    }

    /// Also read these patterns (before the named formats).
    pub fn with_custom(mut self, custom: Vec<CustomDate>) -> DateParser {
        if !custom.is_empty() {
            self.formats |= DateFormat::Custom.bit();
        }
        self.custom = custom.into();
        self
    }

    /// Whether this parser looks for dates at all.
    pub fn enabled(&self) -> bool {
        self.formats != 0
    }

    /// The date at the start of `line`, if any; `now` is used to infer the
    /// year of syslog dates (a December line read in January is last year's).
    pub fn parse(&mut self, line: &str, now: SystemTime) -> Option<Found> {
        let b = line.as_bytes();
        if self.formats == 0 || b.is_empty() {
            return None;
        }
        if self.has(DateFormat::Custom) && !self.custom.is_empty() {
            if let Some(found) = self.parse_custom(b, now) {
                return Some(found);
            }
        }
        if b.len() < 10 {
            return None;
        }
        let bracket = b[0] == b'[';
        let start = usize::from(bracket);
        let s = &b[start..];
        let c = s[0];
        let mut found = if c.is_ascii_digit() {
            self.numeric(s, bracket)
        } else if c.is_ascii_uppercase() && self.has(DateFormat::Syslog) {
            self.syslog(s, now)
        } else {
            None
        }?;
        found.end += start;
        if bracket {
            // Must close right after the date (ignoring fractions or zone
            // that the format already took).
            if b.get(found.end) != Some(&b']') {
                return None;
            }
            found.end += 1;
            found.wrapped = true;
        }
        Some(found)
    }

    /// A custom pattern at the line's start, or right after a `[` that
    /// closes right after it.
    fn parse_custom(&mut self, b: &[u8], now: SystemTime) -> Option<Found> {
        let custom = self.custom.clone();
        for c in custom.iter() {
            let (parts, end, wrapped) = match c.read(b) {
                Some(p) => (p, p.end, false),
                None if b[0] == b'[' => match c.read(&b[1..]) {
                    Some(p) if b.get(1 + p.end) == Some(&b']') => (p, p.end + 2, true),
                    _ => continue,
                },
                None => continue,
            };
            if let Some(time) = self.custom_time(&parts, now) {
                return Some(Found {
                    format: DateFormat::Custom,
                    end,
                    time,
                    wrapped,
                });
            }
        }
        None
    }

    /// The instant of what a custom pattern read; missing year, month or
    /// day come from `now` (a date ahead of it by more than a day is last
    /// year's, as for syslog dates).
    fn custom_time(&mut self, p: &custom::Parts, now: SystemTime) -> Option<SystemTime> {
        if let Some(e) = p.epoch {
            return to_time(e, p.nanos);
        }
        let now_secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let (ty, tm, td) = civil_from_days(now_secs.div_euclid(86400));
        let (mo, d) = (p.month.unwrap_or(tm), p.day.unwrap_or(td));
        let at = |y: i64, this: &mut Self| match p.offset {
            Some(off) => days_from_civil(y, mo, d) * 86400 + (p.hour * 3600 + p.minute * 60 + p.second) as i64 - off,
            None => this.local(y, mo, d, p.hour) + (p.minute * 60 + p.second) as i64,
        };
        let mut secs = at(p.year.unwrap_or(ty), self);
        if p.year.is_none() && p.month.is_some() && secs > now_secs + 86400 {
            secs = at(ty - 1, self);
        }
        to_time(secs, p.nanos)
    }

    fn has(&self, f: DateFormat) -> bool {
        self.formats & f.bit() != 0
    }

    fn numeric(&mut self, s: &[u8], bracket: bool) -> Option<Found> {
        // YYYY-MM-DD?HH:MM:SS
        if s.len() >= 19 && s[4] == b'-' && s[7] == b'-' && s[13] == b':' && s[16] == b':' {
            let sep = s[10];
            let format = if bracket && sep == b' ' {
                DateFormat::Asterisk
            } else if sep == b'T' || sep == b' ' {
                DateFormat::Iso8601
            } else {
                return None;
            };
            if !self.has(format) {
                return None;
            }
            let y = num(&s[0..4])? as i64;
            let mo = num(&s[5..7])?;
            let d = num(&s[8..10])?;
            let h = num(&s[11..13])?;
            let mi = num(&s[14..16])?;
            let sec = num(&s[17..19])?;
            if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
                return None;
            }
            let mut end = 19;
            let mut nanos = 0u32;
            if s.get(end) == Some(&b'.') || s.get(end) == Some(&b',') {
                let (n, len) = fraction(&s[end + 1..]);
                if len == 0 {
                    return None;
                }
                nanos = n;
                end += 1 + len;
            }
            let mut offset: Option<i64> = None;
            if format == DateFormat::Iso8601 {
                match s.get(end) {
                    Some(b'Z') | Some(b'z') => {
                        offset = Some(0);
                        end += 1;
                    }
                    Some(&sign @ (b'+' | b'-')) => {
                        let z = &s[end + 1..];
                        let (hh, mm, len) = if z.len() >= 5 && z[2] == b':' {
                            (num(&z[0..2])?, num(&z[3..5])?, 5)
                        } else if z.len() >= 4 {
                            (num(&z[0..2])?, num(&z[2..4])?, 4)
                        } else {
                            return None;
                        };
                        let off = (hh as i64 * 60 + mm as i64) * 60;
                        offset = Some(if sign == b'-' { -off } else { off });
                        end += 1 + len;
                    }
                    _ => {}
                }
            }
            let secs = match offset {
                Some(off) => days_from_civil(y, mo, d) * 86400 + (h * 3600 + mi * 60 + sec) as i64 - off,
                None => self.local(y, mo, d, h) + (mi * 60 + sec) as i64,
            };
            return Some(Found {
                format,
                end,
                time: to_time(secs, nanos)?,
                wrapped: false,
            });
        }
        // Epoch seconds: 10 digits, optional fraction, then a space, `]` or end.
        if self.has(DateFormat::Epoch) && s.len() >= 10 && s[..10].iter().all(u8::is_ascii_digit) {
            // Up to 9999999999 (year 2286): past u32, within i64.
            let secs = i64::try_from(num64(&s[..10])?).ok()?;
            let mut end = 10;
            let mut nanos = 0;
            if s.get(end) == Some(&b'.') {
                let (n, len) = fraction(&s[end + 1..]);
                nanos = n;
                end += 1 + len;
            }
            // `:` and `)` end it in audit records: `msg=audit(1373330717.000:4070)`.
            if !matches!(s.get(end), None | Some(b' ' | b']' | b'\t' | b':' | b')')) {
                return None;
            }
            return Some(Found {
                format: DateFormat::Epoch,
                end,
                time: to_time(secs, nanos)?,
                wrapped: false,
            });
        }
        None
    }

    fn syslog(&mut self, s: &[u8], now: SystemTime) -> Option<Found> {
        // Mon DD HH:MM:SS  (DD may be " 8"; or "8" with one space, as some
        // syslog daemons and fail2ban's samples write it: read as " 8").
        let mut padded = [0u8; 15];
        let s = if s.len() >= 14 && s[3] == b' ' && s[4].is_ascii_digit() && s[5] == b' ' {
            padded[..4].copy_from_slice(&s[..4]);
            padded[4] = b' ';
            padded[5..].copy_from_slice(&s[4..14]);
            return self.syslog(&padded, now).map(|f| Found { end: 14, ..f });
        } else {
            s
        };
        if s.len() < 15 || s[3] != b' ' || s[9] != b':' || s[12] != b':' || s[6] != b' ' {
            return None;
        }
        let mo = MONTHS.iter().position(|m| &s[0..3] == *m)? as u32 + 1;
        let d = if s[4] == b' ' { num(&s[5..6])? } else { num(&s[4..6])? };
        let h = num(&s[7..9])?;
        let mi = num(&s[10..12])?;
        let sec = num(&s[13..15])?;
        if !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let now_secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let (year, _, _) = civil_from_days(now_secs.div_euclid(86400));
        let mut secs = self.local(year, mo, d, h) + (mi * 60 + sec) as i64;
        // A date more than a day ahead is last year's (December read in January).
        if secs > now_secs + 86400 {
            secs = self.local(year - 1, mo, d, h) + (mi * 60 + sec) as i64;
        }
        Some(Found {
            format: DateFormat::Syslog,
            end: 15,
            time: to_time(secs, 0)?,
            wrapped: false,
        })
    }

    /// Epoch seconds of `y-mo-d h:00:00` in the parser's zone (cached).
    fn local(&mut self, y: i64, mo: u32, d: u32, h: u32) -> i64 {
        let key = (y, mo, d, h);
        if let Some((_, v)) = self.cache.iter().flatten().find(|(k, _)| *k == key) {
            return *v;
        }
        let utc = days_from_civil(y, mo, d) * 86400 + h as i64 * 3600;
        let v = match self.zone {
            Zone::Utc => utc,
            Zone::Local => local_to_epoch(y, mo, d, h).unwrap_or(utc),
        };
        self.cache[self.next] = Some((key, v));
        self.next = (self.next + 1) % CACHE;
        v
    }
}

fn local_to_epoch(y: i64, mo: u32, d: u32, h: u32) -> Option<i64> {
    // SAFETY: mktime reads and normalises a tm we own; all-zero is a valid tm.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = i32::try_from(y - 1900).ok()?;
    tm.tm_mon = mo as i32 - 1;
    tm.tm_mday = d as i32;
    tm.tm_hour = h as i32;
    tm.tm_isdst = -1;
    // SAFETY: see above; mktime is thread-safe in glibc and musl.
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t)
}

/// The number `b`'s digits write (`None`: a non-digit, or past `u32`).
fn num(b: &[u8]) -> Option<u32> {
    u32::try_from(num64(b)?).ok()
}

/// The number `b`'s digits write (`None`: a non-digit, or past `u64`).
fn num64(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |n, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// Digits of a fraction as nanoseconds, and how many bytes they take.
fn fraction(b: &[u8]) -> (u32, usize) {
    let mut nanos = 0u32;
    let mut len = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            break;
        }
        if len < 9 {
            nanos = nanos * 10 + (c - b'0') as u32;
        }
        len += 1;
    }
    for _ in len..9 {
        nanos *= 10;
    }
    (nanos, len)
}

fn to_time(secs: i64, nanos: u32) -> Option<SystemTime> {
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The date of a day number since 1970-01-01 (also the time stamps of
/// `nftban events`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> SystemTime {
        let secs = days_from_civil(y, mo, d) * 86400 + (h * 3600 + mi * 60 + s) as i64;
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    }

    /// One table: line, format, bytes taken, time (UTC parser), read "now"
    /// on 2026-01-05; incl. the year rollover of syslog dates.
    #[test]
    fn date_table() {
        let now = utc(2026, 1, 5, 12, 0, 0);
        type Want = Option<(DateFormat, usize, SystemTime)>;
        let cases: &[(&str, Want)] = &[
            (
                "[2015-01-28 05:40:16] NOTICE[1] x",
                Some((DateFormat::Asterisk, 21, utc(2015, 1, 28, 5, 40, 16))),
            ),
            (
                "[2015-01-28 05:40:16.250] NOTICE",
                Some((
                    DateFormat::Asterisk,
                    25,
                    utc(2015, 1, 28, 5, 40, 16) + Duration::from_millis(250),
                )),
            ),
            (
                "Jan  3 05:40:16 host sshd[1]: x",
                Some((DateFormat::Syslog, 15, utc(2026, 1, 3, 5, 40, 16))),
            ),
            // One space before a one-digit day (fail2ban's sshd samples).
            (
                "Jan 3 05:40:16 host sshd[1]: x",
                Some((DateFormat::Syslog, 14, utc(2026, 1, 3, 5, 40, 16))),
            ),
            // December read in January: last year.
            (
                "Dec 31 23:59:59 host sshd[1]: x",
                Some((DateFormat::Syslog, 15, utc(2025, 12, 31, 23, 59, 59))),
            ),
            // Tomorrow is still this year (clocks drift), a week ahead is not.
            (
                "Jan  6 01:00:00 h x",
                Some((DateFormat::Syslog, 15, utc(2026, 1, 6, 1, 0, 0))),
            ),
            (
                "Jan 12 01:00:00 h x",
                Some((DateFormat::Syslog, 15, utc(2025, 1, 12, 1, 0, 0))),
            ),
            (
                "2026-11-25T04:00:00.5+01:00 host sshd[9]: x",
                Some((
                    DateFormat::Iso8601,
                    27,
                    utc(2026, 11, 25, 3, 0, 0) + Duration::from_millis(500),
                )),
            ),
            (
                "2026-11-25T04:00:00Z host",
                Some((DateFormat::Iso8601, 20, utc(2026, 11, 25, 4, 0, 0))),
            ),
            (
                "2026-11-25T04:00:00-0230 host",
                Some((DateFormat::Iso8601, 24, utc(2026, 11, 25, 6, 30, 0))),
            ),
            (
                "2026-11-25 04:00:00 host",
                Some((DateFormat::Iso8601, 19, utc(2026, 11, 25, 4, 0, 0))),
            ),
            (
                "[1700000000.123] x",
                Some((
                    DateFormat::Epoch,
                    16,
                    UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                )),
            ),
            (
                "1700000000 x",
                Some((DateFormat::Epoch, 10, UNIX_EPOCH + Duration::from_secs(1_700_000_000))),
            ),
            // Past 2^32 seconds (2106): read as the time it is.
            (
                "4300000000 x",
                Some((DateFormat::Epoch, 10, UNIX_EPOCH + Duration::from_secs(4_300_000_000))),
            ),
            (
                "[9999999999.5] x",
                Some((
                    DateFormat::Epoch,
                    14,
                    UNIX_EPOCH + Duration::from_millis(9_999_999_999_500),
                )),
            ),
            ("Failed password for root from 198.51.100.1", None),
            ("[2015-13-28 05:40:16] bad month", None),
            ("Foo 28 05:40:16 not a month", None),
            ("[2015-01-28 05:40:16 no bracket", None),
            ("12345678901234 too many digits", None),
            (
                "1373330717.000:4070): audit",
                Some((DateFormat::Epoch, 14, UNIX_EPOCH + Duration::from_secs(1_373_330_717))),
            ),
            ("", None),
        ];
        let mut p = DateParser::new(None, Zone::Utc);
        for (line, want) in cases {
            let got = p.parse(line, now).map(|f| (f.format, f.end, f.time));
            assert_eq!(got, *want, "{line}");
        }
    }

    /// A log mixing dates of many hours reads each right (the cache holds
    /// several hours and never mixes them up).
    #[test]
    fn mixed_hours_read_right() {
        let now = utc(2026, 1, 5, 12, 0, 0);
        let mut p = DateParser::new(None, Zone::Utc);
        for round in 0..3 {
            for h in 0..40u32 {
                let (d, hh) = (1 + h / 24, h % 24);
                let line = format!("[2025-03-{d:02} {hh:02}:0{round}:00] x");
                let got = p.parse(&line, now).map(|f| f.time);
                assert_eq!(got, Some(utc(2025, 3, d, hh, round, 0)), "{line}");
            }
        }
    }

    #[test]
    fn formats_can_be_restricted() {
        let now = utc(2026, 1, 5, 12, 0, 0);
        let mut p = DateParser::new(Some(&[DateFormat::Syslog]), Zone::Utc);
        assert!(p.parse("[2015-01-28 05:40:16] x", now).is_none());
        assert!(p.parse("Jan  3 05:40:16 x", now).is_some());
        let mut none = DateParser::new(Some(&[]), Zone::Utc);
        assert!(!none.enabled());
        assert!(none.parse("Jan  3 05:40:16 x", now).is_none());
    }

    /// Custom datepatterns: nginx/apache access logs (zone), a date in
    /// brackets, a syslog-like date without a year (rollover), 12-hour
    /// times, epoch; and the named formats still work beside them.
    #[test]
    fn custom_patterns() {
        let now = utc(2026, 1, 5, 12, 0, 0);
        let pats = ["%d/%b/%Y:%H:%M:%S %z", "%b %e %H:%M:%S", "%m/%d/%y %I:%M:%S %p", "@%s"];
        let custom = pats.iter().map(|p| CustomDate::new(p).unwrap()).collect();
        let mut p = DateParser::new(None, Zone::Utc).with_custom(custom);
        type Want = Option<(DateFormat, usize, SystemTime)>;
        let cases: &[(&str, Want)] = &[
            (
                "25/Nov/2025:04:05:06 +0100 GET /wp-login.php",
                Some((DateFormat::Custom, 26, utc(2025, 11, 25, 3, 5, 6))),
            ),
            (
                "[25/Nov/2025:04:05:06 -0000] GET /",
                Some((DateFormat::Custom, 28, utc(2025, 11, 25, 4, 5, 6))),
            ),
            (
                "Dec 31 23:59:59 host x",
                Some((DateFormat::Custom, 15, utc(2025, 12, 31, 23, 59, 59))),
            ),
            (
                "Jan  3 05:40:16 host x",
                Some((DateFormat::Custom, 15, utc(2026, 1, 3, 5, 40, 16))),
            ),
            (
                "11/24/25 01:02:03 PM x",
                Some((DateFormat::Custom, 20, utc(2025, 11, 24, 13, 2, 3))),
            ),
            (
                "@1700000000 x",
                Some((DateFormat::Custom, 11, UNIX_EPOCH + Duration::from_secs(1_700_000_000))),
            ),
            (
                "[2015-01-28 05:40:16] NOTICE",
                Some((DateFormat::Asterisk, 21, utc(2015, 1, 28, 5, 40, 16))),
            ),
            // Epoch seconds past 2^32, up to the 12 digits `%s` reads.
            (
                "@4294967296 x",
                Some((DateFormat::Custom, 11, UNIX_EPOCH + Duration::from_secs(1 << 32))),
            ),
            (
                "@999999999999 x",
                Some((
                    DateFormat::Custom,
                    13,
                    UNIX_EPOCH + Duration::from_secs(999_999_999_999),
                )),
            ),
            ("25/Foo/2025:04:05:06 +0100 x", None),
            ("[25/Nov/2025:04:05:06 +0100 no bracket", None),
        ];
        for (line, want) in cases {
            let got = p.parse(line, now).map(|f| (f.format, f.end, f.time));
            assert_eq!(got, *want, "{line}");
        }
        // Restricted to custom patterns only, the named formats are not read.
        let only = DateParser::new(Some(&[DateFormat::Custom]), Zone::Utc);
        let mut only = only.with_custom(vec![CustomDate::new("%s").unwrap()]);
        assert!(only.parse("[2015-01-28 05:40:16] x", now).is_none());
        assert!(only.parse("1700000000 x", now).is_some());
    }

    #[test]
    fn civil_round_trip() {
        for z in [-1000, 0, 59, 10_000, 20_000, 25_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    proptest! {
        /// Any text: no panic; a date found never ends past the line.
        #[test]
        fn never_panics(line in "\\PC{0,40}") {
            let custom = ["%d/%b/%Y:%H:%M:%S %z", "%b %e %H:%M:%S", "%I:%M %p %s", "%Y%m%d%H%M%S%f%Z"];
            let mut p = DateParser::new(None, Zone::Local)
                .with_custom(custom.iter().map(|c| CustomDate::new(c).unwrap()).collect());
            if let Some(f) = p.parse(&line, SystemTime::now()) {
                prop_assert!(f.end <= line.len());
            }
        }

        /// Generated ISO and Asterisk dates read back to the same instant.
        #[test]
        fn round_trip(days in 0i64..40_000, secs in 0u32..86_400) {
            let (y, mo, d) = civil_from_days(days);
            let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
            let want = utc(y, mo, d, h, mi, s);
            let mut p = DateParser::new(None, Zone::Utc);
            let iso = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z rest");
            prop_assert_eq!(p.parse(&iso, SystemTime::now()).map(|f| f.time), Some(want));
            let ast = format!("[{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}] NOTICE");
            prop_assert_eq!(p.parse(&ast, SystemTime::now()).map(|f| f.time), Some(want));
        }
    }
}
