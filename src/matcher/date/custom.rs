//! `datepattern` entries written as strftime directives (`%Y-%m-%d %H:%M:%S`),
//! as fail2ban's filters and jails write them, for logs whose dates none of
//! the named formats reads.
//!
//! A pattern is compiled once into a list of items and read at the start
//! of the line by byte checks, like the named formats: no regex, no
//! allocation per line. fail2ban's anchors (`^`, `{^LN-BEG}`) are accepted
//! and mean what nftban always does (dates are read at the line's start),
//! `%%` from fail2ban's `.conf` files is read as `%`, `\x` as a literal `x`,
//! and a space matches one or more spaces (syslog pads days with one).

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomDate {
    /// As written, for messages and reports.
    pub text: String,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Lit(u8),
    /// One or more spaces.
    Space,
    /// `%Y`: four digits.
    Year,
    /// `%y`: two digits, 2000–2099.
    Year2,
    /// `%m`: one or two digits.
    Month,
    /// `%b`, `%h`: `Jan`…`Dec`, any case; `%B`: the full name.
    MonthName,
    MonthFull,
    /// `%d`, `%e`: one or two digits (`%e` may start with a space).
    Day,
    /// `%a`, `%A`: a weekday name, read and ignored.
    Weekday,
    /// `%H`, `%k`: hour 0–23.
    Hour,
    /// `%I`, `%l`: hour 1–12, with `%p`.
    Hour12,
    /// `%p`: AM or PM.
    AmPm,
    Minute,
    Second,
    /// `%f`: fraction digits (after the separator the pattern writes).
    Fraction,
    /// `%z`: `Z`, `±HH`, `±HHMM`, `±HH:MM`.
    Offset,
    /// `%Z`: `Z` or a zone name of 3 to 5 capitals; only `UTC`, `GMT` and
    /// `Z` give an offset (fail2ban reads other names over, as local time).
    ZoneName,
    /// `%s`: seconds since 1970.
    Epoch,
}

/// What a pattern read from a line; missing parts are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parts {
    pub year: Option<i64>,
    pub month: Option<u32>,
    pub day: Option<u32>,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
    /// Seconds east of UTC, when the line says.
    pub offset: Option<i64>,
    pub epoch: Option<i64>,
    /// Bytes read.
    pub end: usize,
}

/// Why nftban cannot read a pattern; each names the pattern as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A `%` directive nftban does not read.
    #[error(
        "`{text}`: %{directive} is not supported (supported: %Y %y %m %b %B %d %e %a %H %k %I %p %M %S %f %z %Z %s %%)"
    )]
    Unsupported { text: String, directive: char },
    /// A `%` at the end, with no directive.
    #[error("`{0}` ends with a lone %")]
    LonePercent(String),
    /// A regex metacharacter: datepatterns are strftime and plain text.
    #[error("`{text}`: `{found}` is a regex construct; nftban's datepatterns are strftime directives and plain text")]
    RegexConstruct { text: String, found: char },
    /// Neither a time of day nor `%s`: a line's time cannot be known.
    #[error("`{0}` needs at least an hour and minute (%H:%M) or %s")]
    NoTime(String),
    /// `%I` without `%p` or the other way round.
    #[error("`{0}`: %I and %p go together")]
    HalfDay(String),
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl CustomDate {
    /// Compile `text`; the error says which directive or character is not supported.
    pub fn new(text: &str) -> Result<CustomDate, PatternError> {
        let body = text
            .strip_prefix("{^LN-BEG}")
            .or_else(|| text.strip_prefix('^'))
            .unwrap_or(text);
        let b = body.as_bytes();
        let mut items = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' => {
                    i += 1;
                    // fail2ban's .conf files double the `%` (configparser).
                    if b.get(i) == Some(&b'%') && b.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) {
                        i += 1;
                    }
                    // fail2ban's exact-width forms: %ExY, %Exm, ...
                    if b[i..].starts_with(b"Ex") && b.len() > i + 2 {
                        i += 2;
                    }
                    let item = match b.get(i) {
                        Some(b'Y') => Item::Year,
                        Some(b'y') => Item::Year2,
                        Some(b'm') => Item::Month,
                        Some(b'b' | b'h') => Item::MonthName,
                        Some(b'B') => Item::MonthFull,
                        Some(b'd' | b'e') => Item::Day,
                        Some(b'a' | b'A') => Item::Weekday,
                        Some(b'H' | b'k') => Item::Hour,
                        Some(b'I' | b'l') => Item::Hour12,
                        Some(b'p') => Item::AmPm,
                        Some(b'M') => Item::Minute,
                        Some(b'S') => Item::Second,
                        Some(b'f') => Item::Fraction,
                        Some(b'z') => Item::Offset,
                        Some(b'Z') => Item::ZoneName,
                        Some(b's') => Item::Epoch,
                        Some(b'%') => Item::Lit(b'%'),
                        Some(&c) => {
                            return Err(PatternError::Unsupported {
                                text: text.into(),
                                directive: c as char,
                            })
                        }
                        None => return Err(PatternError::LonePercent(text.into())),
                    };
                    items.push(item);
                    i += 1;
                }
                b'\\' if i + 1 < b.len() && !b[i + 1].is_ascii_alphanumeric() => {
                    items.push(Item::Lit(b[i + 1]));
                    i += 2;
                }
                b' ' => {
                    if items.last() != Some(&Item::Space) {
                        items.push(Item::Space);
                    }
                    i += 1;
                }
                c @ (b'(' | b')' | b'|' | b'*' | b'+' | b'?' | b'{' | b'}' | b'$' | b'\\' | b'^') => {
                    return Err(PatternError::RegexConstruct {
                        text: text.into(),
                        found: c as char,
                    })
                }
                c => {
                    items.push(Item::Lit(c));
                    i += 1;
                }
            }
        }
        let has = |it: Item| items.contains(&it);
        if !(has(Item::Epoch) || (has(Item::Hour) || has(Item::Hour12)) && has(Item::Minute)) {
            return Err(PatternError::NoTime(text.into()));
        }
        if has(Item::Hour12) != has(Item::AmPm) {
            return Err(PatternError::HalfDay(text.into()));
        }
        Ok(CustomDate {
            text: text.to_string(),
            items,
        })
    }

    /// Read the pattern at the start of `s`.
    pub fn read(&self, s: &[u8]) -> Option<Parts> {
        let mut p = Parts::default();
        let mut at = 0;
        let mut pm: Option<bool> = None;
        for item in &self.items {
            match *item {
                Item::Lit(c) => {
                    if s.get(at) != Some(&c) {
                        return None;
                    }
                    at += 1;
                }
                Item::Space => {
                    let n = s[at..].iter().take_while(|&&c| c == b' ').count();
                    if n == 0 {
                        return None;
                    }
                    at += n;
                }
                Item::Year => p.year = Some(digits(s, &mut at, 4, 4)? as i64),
                Item::Year2 => p.year = Some(2000 + digits(s, &mut at, 2, 2)? as i64),
                Item::Month => p.month = Some(digits(s, &mut at, 1, 2)?),
                Item::MonthName => p.month = Some(name(s, &mut at, &MONTHS, true)? as u32 + 1),
                Item::MonthFull => p.month = Some(name(s, &mut at, &MONTHS, false)? as u32 + 1),
                Item::Day => {
                    if s.get(at) == Some(&b' ') {
                        at += 1;
                    }
                    p.day = Some(digits(s, &mut at, 1, 2)?);
                }
                Item::Weekday => {
                    name(s, &mut at, &WEEKDAYS, true)
                        .or_else(|| name(s, &mut at, &WEEKDAYS, false))
                        .map(|_| ())?;
                }
                Item::Hour | Item::Hour12 => {
                    if s.get(at) == Some(&b' ') {
                        at += 1;
                    }
                    p.hour = digits(s, &mut at, 1, 2)?;
                }
                Item::AmPm => {
                    let w = s.get(at..at + 2)?;
                    pm = Some(match w.to_ascii_uppercase().as_slice() {
                        b"AM" => false,
                        b"PM" => true,
                        _ => return None,
                    });
                    at += 2;
                }
                Item::Minute => p.minute = digits(s, &mut at, 1, 2)?,
                Item::Second => p.second = digits(s, &mut at, 1, 2)?,
                Item::Fraction => {
                    let (n, len) = super::fraction(&s[at..]);
                    if len == 0 {
                        return None;
                    }
                    p.nanos = n;
                    at += len;
                }
                Item::Offset => {
                    let (off, len) = offset(&s[at..])?;
                    p.offset = Some(off);
                    at += len;
                }
                Item::ZoneName => {
                    // fail2ban's `%Z`: `Z` or a name of 3 to 5 capitals.
                    // Only UTC, GMT and Z say an offset; another name
                    // (monit's `PDT Apr 16 21:05:29`) is read over, the
                    // time taken as local, as fail2ban does.
                    let rest = &s[at..];
                    let len = rest.iter().take(5).take_while(|c| c.is_ascii_uppercase()).count();
                    let name = &rest[..len];
                    if name == b"Z" || name == b"UTC" || name == b"GMT" {
                        p.offset = Some(0);
                    } else if len < 3 {
                        return None;
                    }
                    at += len;
                }
                Item::Epoch => p.epoch = Some(i64::try_from(digits64(s, &mut at, 1, 12)?).ok()?),
            }
        }
        if let Some(pm) = pm {
            if !(1..=12).contains(&p.hour) {
                return None;
            }
            p.hour = p.hour % 12 + if pm { 12 } else { 0 };
        }
        if p.month.is_some_and(|m| !(1..=12).contains(&m))
            || p.day.is_some_and(|d| !(1..=31).contains(&d))
            || p.hour > 23
            || p.minute > 59
            || p.second > 60
        {
            return None;
        }
        p.end = at;
        Some(p)
    }
}

/// `min..=max` ASCII digits at `at` (as many as there are, up to max).
fn digits(s: &[u8], at: &mut usize, min: usize, max: usize) -> Option<u32> {
    u32::try_from(digits64(s, at, min, max)?).ok()
}

/// [`digits`] as a `u64` (epoch seconds pass `u32` in 2106).
fn digits64(s: &[u8], at: &mut usize, min: usize, max: usize) -> Option<u64> {
    let n = s[*at..].iter().take(max).take_while(|c| c.is_ascii_digit()).count();
    if n < min {
        return None;
    }
    let v = s[*at..*at + n]
        .iter()
        .try_fold(0u64, |v, &c| v.checked_mul(10)?.checked_add(u64::from(c - b'0')))?;
    *at += n;
    Some(v)
}

/// Index of the name (`short`: its first three letters) at `at`, any case.
fn name(s: &[u8], at: &mut usize, names: &[&str], short: bool) -> Option<usize> {
    for (i, n) in names.iter().enumerate() {
        let n = if short { &n.as_bytes()[..3] } else { n.as_bytes() };
        if s.get(*at..*at + n.len()).is_some_and(|w| w.eq_ignore_ascii_case(n)) {
            *at += n.len();
            return Some(i);
        }
    }
    None
}

/// `Z`, `±HH`, `±HHMM` or `±HH:MM`: seconds east of UTC and bytes taken.
fn offset(z: &[u8]) -> Option<(i64, usize)> {
    let sign = match z.first()? {
        b'Z' | b'z' => return Some((0, 1)),
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let mut at = 1;
    let hh = digits(z, &mut at, 2, 2)? as i64;
    let mm = if z.get(at) == Some(&b':') {
        at += 1;
        digits(z, &mut at, 2, 2)?
    } else if z.get(at..at + 2).is_some_and(|d| d.iter().all(u8::is_ascii_digit)) {
        digits(z, &mut at, 2, 2)?
    } else {
        0
    } as i64;
    Some((sign * (hh * 3600 + mm * 60), at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail2ban_spellings_compile() {
        for p in [
            "%Y-%m-%d %H:%M:%S",
            "^%%Y-%%m-%%d %%H:%%M:%%S",
            "{^LN-BEG}%ExY%Exm%Exd %ExH:%ExM:%ExS",
            "%d/%b/%Y:%H:%M:%S %z",
            "\\[%d/%b/%Y:%H:%M:%S %z\\]",
            "%s",
            "%a %b %e %H:%M:%S %Y",
            "%I:%M:%S %p",
        ] {
            CustomDate::new(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    #[test]
    fn unsupported_patterns_say_why() {
        let e = CustomDate::new("%Y-%m-%d %q").unwrap_err().to_string();
        assert!(e.contains("%q is not supported"), "{e}");
        let e = CustomDate::new("(?:%Y)").unwrap_err().to_string();
        assert!(e.contains("regex construct"), "{e}");
        let e = CustomDate::new("%Y-%m-%d").unwrap_err().to_string();
        assert!(e.contains("needs at least an hour"), "{e}");
        let e = CustomDate::new("%I:%M").unwrap_err().to_string();
        assert!(e.contains("%I and %p"), "{e}");
        assert_eq!(
            CustomDate::new("%H:%M %"),
            Err(PatternError::LonePercent("%H:%M %".into()))
        );
    }

    #[test]
    fn reads_parts() {
        let p = CustomDate::new("%d/%b/%Y:%H:%M:%S %z").unwrap();
        let got = p.read(b"25/Nov/2026:04:05:06 +0100 GET /").unwrap();
        assert_eq!(
            (got.year, got.month, got.day, got.hour, got.minute, got.second, got.offset, got.end),
            (Some(2026), Some(11), Some(25), 4, 5, 6, Some(3600), 26)
        );
        let p = CustomDate::new("%I:%M:%S %p").unwrap();
        assert_eq!(p.read(b"12:30:00 AM x").unwrap().hour, 0);
        assert_eq!(p.read(b"01:30:00 pm x").unwrap().hour, 13);
        assert!(p.read(b"13:30:00 PM x").is_none());
        let p = CustomDate::new("%b %d %H:%M:%S").unwrap();
        assert_eq!(p.read(b"Jan  3 05:40:16 host").unwrap().day, Some(3));
        assert!(p.read(b"Jan 33 05:40:16 host").is_none());
        assert!(p.read(b"Foo  3 05:40:16 host").is_none());
    }

    /// monit's `[PDT Apr 16 21:05:29]`: a zone name is read over (the time
    /// is local, as fail2ban takes it); UTC, GMT and Z say the offset; a
    /// word that is not a zone name is no date.
    #[test]
    fn zone_names_are_read_over_unless_they_say_the_offset() {
        let p = CustomDate::new("%Z %b %d %H:%M:%S").unwrap();
        let got = p.read(b"PDT Apr 16 21:05:29] error").unwrap();
        assert_eq!(
            (got.month, got.day, got.hour, got.offset, got.end),
            (Some(4), Some(16), 21, None, 19)
        );
        assert_eq!(p.read(b"CEST Aug  6 10:14:52]").unwrap().offset, None);
        assert_eq!(p.read(b"UTC Apr 16 21:05:29").unwrap().offset, Some(0));
        assert_eq!(p.read(b"GMT Apr 16 21:05:29").unwrap().offset, Some(0));
        assert_eq!(p.read(b"Z Apr 16 21:05:29").unwrap().offset, Some(0));
        assert!(p.read(b"pdt Apr 16 21:05:29").is_none(), "capitals only");
        assert!(p.read(b"AB Apr 16 21:05:29").is_none(), "two letters are no zone");
        assert!(p.read(b"ABCDEFG Apr 16 21:05:29").is_none(), "nor seven");
    }
}
