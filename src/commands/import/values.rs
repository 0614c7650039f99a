//! fail2ban's value syntaxes that have an nftban equivalent: its times
//! (`10m`, `1h 30m`, `3600`, `-1` for ever), its booleans, its lists
//! (`ignoreip`, `logpath`, `journalmatch`), and what its ban-time
//! increment computes, said in nftban's terms.

use std::time::Duration;

use crate::config::duration::MAX_DURATION;

/// A fail2ban time: seconds, or for ever (`-1` and other negatives).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Time {
    Secs(u64),
    Forever,
}

/// fail2ban's `MyTime.str2seconds`: a number of seconds, or numbers with
/// units (`1h 30m`, `2days`, `1w`), fractions allowed; a negative number
/// is "for ever".
pub fn parse_time(text: &str) -> Result<Time, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<f64>() {
        return Ok(if n < 0.0 { Time::Forever } else { Time::Secs(n as u64) });
    }
    let bad = || format!("`{t}` is not a fail2ban time (e.g. 600, 10m, 1h30m, 1d, 1w, -1)");
    let mut total = 0f64;
    let mut rest = t;
    while !rest.trim_start().is_empty() {
        rest = rest.trim_start();
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = if num_len == 0 {
            1.0
        } else {
            rest[..num_len].parse().map_err(|_| bad())?
        };
        rest = rest[num_len..].trim_start();
        let unit_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = rest[..unit_len].to_ascii_lowercase();
        rest = &rest[unit_len..];
        let mult = match unit.as_str() {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "mi" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "week" | "weeks" => 604_800.0,
            "mo" | "mon" | "month" | "months" => 30.4375 * 86_400.0,
            "y" | "year" | "years" => 365.25 * 86_400.0,
            _ => return Err(bad()),
        };
        if num_len == 0 && unit.is_empty() {
            return Err(bad());
        }
        total += n * mult;
    }
    Ok(Time::Secs(total as u64))
}

/// A fail2ban time as nftban writes it (`10m`, `1w`), capped at nftban's
/// longest (10 years); `Err` says why the value changed, for the report.
pub fn nftban_time(time: Time) -> (String, Option<String>) {
    match time {
        Time::Forever => (
            crate::config::format_duration(MAX_DURATION),
            Some("for ever (negative) is 3650d, nftban's longest ban (10 years)".into()),
        ),
        Time::Secs(s) if Duration::from_secs(s) > MAX_DURATION => (
            crate::config::format_duration(MAX_DURATION),
            Some("longer than nftban's longest (10 years): 3650d".into()),
        ),
        Time::Secs(0) => ("1s".into(), Some("0 is 1s: nftban needs a time above zero".into())),
        Time::Secs(s) => (crate::config::format_duration(Duration::from_secs(s)), None),
    }
}

/// configparser's booleans.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" | "" => Some(false),
        _ => None,
    }
}

/// A list value: items separated by new lines, spaces or commas.
pub fn list(value: &str) -> Vec<String> {
    value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// `logpath` lines: one path per line (a path may hold spaces; fail2ban
/// also lets `skip`/`tail`/`head` follow it, which say where reading
/// starts: nftban starts new files at their end).
pub fn logpaths(value: &str) -> Vec<String> {
    value
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut words: Vec<&str> = l.split_whitespace().collect();
            if words.len() > 1 && matches!(*words.last().unwrap(), "tail" | "head" | "skip") {
                words.pop();
            }
            words.join(" ")
        })
        .collect()
}

/// fail2ban's increment in nftban's form (`factor`, `max`): the n-th ban
/// lasts `bantime * factor^(n-1)`. fail2ban's default formula,
/// `bantime * 2^count * bantime.factor` for an address banned `count`
/// times before, is exactly nftban's factor 2 when `bantime.factor` is 1;
/// `multipliers` are exact when they grow by one ratio from the second.
/// What cannot be said so is returned as the reason, with the nearest
/// factor.
pub fn increment(factor: Option<&str>, formula: Option<&str>, multipliers: Option<&str>) -> (f64, Option<String>) {
    let default_formula = "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor";
    let bantime_factor = factor.map(str::trim).filter(|f| !f.is_empty()).unwrap_or("1");
    let f: Option<f64> = bantime_factor.parse().ok();
    if let Some(m) = multipliers.map(list).filter(|m| !m.is_empty()) {
        let m: Vec<f64> = m.iter().filter_map(|x| x.parse().ok()).collect();
        // multipliers[count] for count >= 1; nftban: factor^(n-1) = factor^count.
        let ratio = m.get(1).copied().unwrap_or(1.0);
        let geometric = m
            .iter()
            .enumerate()
            .skip(1)
            .all(|(i, x)| (x - ratio.powi(i as i32)).abs() < 1e-9);
        let ratio = ratio.clamp(1.0, 100.0);
        return match (geometric && f == Some(1.0), m.len()) {
            (true, _) => (ratio, None),
            _ => (
                ratio,
                Some(format!(
                    "bans grow as `bantime.multipliers = {}` times bantime.factor {bantime_factor}; nftban grows them by one factor: {ratio} (each ban {ratio} times the last)",
                    multipliers.unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ")
                )),
            ),
        };
    }
    if let Some(formula) = formula
        .map(str::trim)
        .filter(|f| !f.is_empty() && *f != default_formula)
    {
        return (
            2.0,
            Some(format!(
                "`bantime.formula = {formula}` is Python; nftban grows each ban by one factor: 2 (fail2ban's default formula)"
            )),
        );
    }
    match f {
        Some(x) if (x - 1.0).abs() < 1e-9 => (2.0, None),
        _ => (
            2.0,
            Some(format!(
                "`bantime.factor = {bantime_factor}` multiplies every ban after the first in fail2ban; nftban doubles each ban (factor 2), without that extra factor"
            )),
        ),
    }
}
