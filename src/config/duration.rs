//! Durations as admins write them: `90`, `30s`, `10m`, `1h`, `2d`, `1w`, or
//! a sum like `1h30m`. A bare number is seconds, as in fail2ban.
//!
//! Every duration nftban accepts, from the config or the command line, is
//! at most [`MAX_DURATION`] (10 years). A longer one is refused where it is
//! parsed, so no ban, expiry or saved time downstream can ever overflow the
//! clock: `bantime: 10000000000000000000` used to pass `check` and then
//! crash the daemon at its first ban.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

/// The longest duration accepted anywhere (config, `--bantime`, the control
/// socket): 10 years of 365 days. Long enough to mean "banned for good",
/// short enough that now plus it is far from any clock's limit.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// How [`MAX_DURATION`] is named in messages and docs.
pub const MAX_DURATION_TEXT: &str = "10 years (3650d)";

/// A duration read from config or the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

/// Why a text is not a duration; each names the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing but white space.
    #[error("empty duration")]
    Empty,
    /// Something other than a number where a number must be.
    #[error("`{0}` is not a duration (use e.g. 90s, 10m, 1h, 1d, 1w)")]
    NotADuration(String),
    /// A number with more digits than fit 64 bits.
    #[error("`{0}`: number too large (the maximum is {MAX_DURATION_TEXT})")]
    NumberTooLarge(String),
    /// A number without a unit after a number with one (`1h30`).
    #[error("`{0}`: a number inside a duration needs a unit (s, m, h, d, w)")]
    NoUnit(String),
    /// A unit other than ms, s, m, h, d, w (and their long forms).
    #[error("`{text}`: unknown unit `{unit}` (use s, m, h, d or w)")]
    UnknownUnit { text: String, unit: String },
    /// Longer than [`MAX_DURATION`].
    #[error("`{0}` is longer than the maximum of {MAX_DURATION_TEXT}")]
    TooLong(String),
    /// A negative number.
    #[error("`{0}`: a duration cannot be negative")]
    Negative(String),
    /// A number with a fraction or an exponent (`1.5`, `1e30`).
    #[error("`{0}` is not a duration: not a whole number of seconds (use e.g. 90, 90s, 1h30m)")]
    NotWhole(String),
}

/// `secs` seconds, if not longer than [`MAX_DURATION`]; the error names
/// `text`, the duration as it was written.
pub fn checked_secs(secs: u64, text: &str) -> Result<Duration, DurationError> {
    let d = Duration::from_secs(secs);
    if d > MAX_DURATION {
        return Err(DurationError::TooLong(text.into()));
    }
    Ok(d)
}

/// Parse `1h30m`, `10m`, `45` (seconds) and the like, at most
/// [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return checked_secs(secs, text);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::NotADuration(text.into()));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::NumberTooLarge(text.into()))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit {
            "ms" => {
                total = total.saturating_add(n / 1000);
                continue;
            }
            "s" | "sec" | "secs" => 1,
            "m" | "min" | "mins" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            "" => return Err(DurationError::NoUnit(text.into())),
            other => {
                return Err(DurationError::UnknownUnit {
                    text: text.into(),
                    unit: other.into(),
                })
            }
        };
        total = n
            .checked_mul(mult)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| DurationError::TooLong(text.into()))?;
    }
    checked_secs(total, text)
}

/// Print a duration the way it is written in config: `1h30m`, `45s`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// A duration in YAML: a number of seconds or a text. A visitor rather than
/// an untagged enum, so that the YAML library places an error at the value
/// itself (`jails.sshd.bantime`) and says what is wrong with it.
impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        d.deserialize_any(DurVisitor)
    }
}

struct DurVisitor;

impl serde::de::Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration: seconds, or a text like 90s, 10m, 1h30m, 1d, 1w")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
        checked_secs(v, &v.to_string()).map(Dur).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(DurationError::Negative(v.to_string()))),
        }
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Dur, E> {
        Err(E::custom(DurationError::TooLong(v.to_string())))
    }

    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Dur, E> {
        match u128::try_from(v) {
            Ok(v) => self.visit_u128(v),
            Err(_) => Err(E::custom(DurationError::Negative(v.to_string()))),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
        Err(E::custom(DurationError::NotWhole(v.to_string())))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
        parse_duration(v).map(Dur).map_err(E::custom)
    }
}

/// What [`parse_duration`] reads, as a regex for the JSON Schema (a test
/// keeps the two in step).
const PATTERN: &str = r"^\s*([0-9]+|([0-9]+(ms|s|secs?|m|mins?|h|hours?|d|days?|w|weeks?))+)\s*$";

/// In the JSON Schema a duration is a number of seconds or a text
/// [`parse_duration`] reads.
impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Seconds, or a sum of numbers with units s, m, h, d, w: 90, 90s, 10m, 1h30m, 1d, 1w. At most 10 years (3650d).",
            "type": ["string", "integer"],
            "pattern": PATTERN,
            "minimum": 0,
            "maximum": MAX_DURATION.as_secs()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! dur {
        ($name:ident, $text:expr, $secs:expr) => {
            #[test]
            fn $name() {
                assert_eq!(parse_duration($text), Ok(Duration::from_secs($secs)));
            }
        };
    }
    dur!(bare_seconds, "90", 90);
    dur!(seconds, "30s", 30);
    dur!(minutes, "10m", 600);
    dur!(hours, "1h", 3600);
    dur!(days, "2d", 172_800);
    dur!(weeks, "1w", 604_800);
    dur!(sum, "1h30m", 5400);
    dur!(spaces_trimmed, " 5m ", 300);

    #[test]
    fn rejects_garbage_with_reason() {
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").unwrap_err().to_string().contains("not a duration"));
        assert!(parse_duration("10x")
            .unwrap_err()
            .to_string()
            .contains("unknown unit `x`"));
        assert!(parse_duration("1h30").unwrap_err().to_string().contains("needs a unit"));
        assert!(parse_duration("99999999999999999999w").is_err());
    }

    /// The schema's pattern accepts what the parser does, and only that.
    #[test]
    fn schema_pattern_agrees_with_the_parser() {
        let re = regex::Regex::new(PATTERN).unwrap();
        for text in [
            "90", "30s", "10m", "1h30m", " 5m ", "2days", "1w2d", "500ms", "3secs", "", "h", "10x", "1h30", "1 h",
            "m5", "-5s", "1.5h",
        ] {
            assert_eq!(re.is_match(text), parse_duration(text).is_ok(), "`{text}`");
        }
    }

    /// Ten years is the longest duration; one second more, or a number
    /// that used to pass and then overflow the clock, is refused by name.
    #[test]
    fn the_maximum_is_ten_years() {
        assert_eq!(parse_duration("3650d"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("315360000"), Ok(MAX_DURATION));
        for text in [
            "3650d1s",
            "315360001",
            "10000000000000000000",
            "10000000000000000000s",
            "522w",
        ] {
            let e = parse_duration(text).unwrap_err();
            assert_eq!(e, DurationError::TooLong(text.into()));
            assert_eq!(
                e.to_string(),
                format!("`{text}` is longer than the maximum of 10 years (3650d)")
            );
        }
        assert_eq!(checked_secs(315_360_000, "x"), Ok(MAX_DURATION));
        assert_eq!(checked_secs(u64::MAX, "x"), Err(DurationError::TooLong("x".into())));
    }

    #[test]
    fn formats_round_trip() {
        for text in ["45s", "10m", "1h30m", "2d", "1d1h1m1s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
