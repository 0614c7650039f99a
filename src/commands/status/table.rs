//! The overview of `status` on a terminal: one table of jails and the top
//! offenders, read at a glance and never wider than 80 columns.
//!
//! Only for people: when stdout is not a terminal the stable plain form
//! (`plain`) is printed instead, and scripts use `--json`. The layout is
//! reviewed through golden files (tests/golden/status-*.txt).

use std::fmt::Write as _;

use crate::status::{JailStatus, Offender, SourceStatus, Status};

/// The widest the table gets.
pub const WIDTH: usize = 80;

/// Jail names longer than this are cut (with `~`) to keep the width.
const NAME: usize = 20;
/// The sources column, at least: wider when a jail's sources need it
/// and the table stays within [`WIDTH`].
const SOURCES: usize = 20;
/// Each figure column: up to 99999 in full, then `100k`, `1.2M`.
const FIGURE: usize = 9;

/// The whole overview: a headline, the table, the top offenders.
pub fn render(st: &Status) -> String {
    let mut o = String::new();
    let banned: u64 = st.jails.iter().map(|j| j.currently_banned).sum();
    let failed: u64 = st.jails.iter().map(|j| j.currently_failed).sum();
    let _ = write!(
        o,
        "{} jail(s): {banned} banned now, {failed} address(es) failing",
        st.jails.len()
    );
    if st.kernel_errors > 0 {
        let _ = write!(o, "; {} kernel error(s)", st.kernel_errors);
    }
    if st.history_errors > 0 || st.history_waiting > 0 || st.history_dropped > 0 {
        let _ = write!(
            o,
            "; history: {} error(s), {} waiting, {} dropped",
            st.history_errors, st.history_waiting, st.history_dropped
        );
    }
    o.push('\n');
    if let Some(f) = &st.fleet {
        let _ = writeln!(
            o,
            "fleet: node {} {}; {} published, {} waiting; from peers {} banned, {} refused",
            f.node,
            f.state,
            f.published,
            f.waiting,
            f.applied,
            f.refused.values().sum::<u64>()
        );
    }
    let name = st
        .jails
        .iter()
        .map(|j| j.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, NAME);
    let room = WIDTH.saturating_sub(name + 2 + 4 * FIGURE).max(SOURCES);
    let sources = st
        .jails
        .iter()
        .map(|j| health(j).chars().count() + 1)
        .max()
        .unwrap_or(0)
        .clamp(SOURCES, room);
    let _ = writeln!(
        o,
        "\n{:<name$}  {:<sources$}{:>FIGURE$}{:>FIGURE$}{:>FIGURE$}{:>FIGURE$}",
        "JAIL", "SOURCES", "FAILED", "BANNED", "BANS", "DROPPED"
    );
    for j in &st.jails {
        let _ = writeln!(
            o,
            "{:<name$}  {:<sources$}{:>FIGURE$}{:>FIGURE$}{:>FIGURE$}{:>FIGURE$}",
            cut(&j.name, name),
            cut(&health(j), sources),
            short(j.currently_failed),
            short(j.currently_banned),
            short(j.total_banned),
            short(j.packets),
        );
    }
    let _ = writeln!(
        o,
        "FAILED: failing, no ban yet; BANNED: now; BANS: since start; DROPPED: packets"
    );
    let top = offenders(st);
    if !top.is_empty() {
        let addr = top.iter().map(|t| t.ip.len()).max().unwrap_or(0).max(15);
        let _ = writeln!(o, "\n{:<addr$}{:>FIGURE$}{:>10}", "TOP OFFENDERS", "BANS", "FAILURES");
        for t in top {
            let _ = writeln!(o, "{:<addr$}{:>FIGURE$}{:>10}", t.ip, short(t.bans), short(t.failures));
        }
    }
    if !st.feeds.is_empty() {
        o.push('\n');
        o.push_str(&super::plain::feed_lines(st, std::time::SystemTime::now()));
    }
    o
}

/// The most banned, then the most failing not among them: one list.
fn offenders(st: &Status) -> Vec<&Offender> {
    let mut out: Vec<&Offender> = st.most_banned.iter().collect();
    for t in &st.most_failed {
        if !out.iter().any(|o| o.ip == t.ip) {
            out.push(t);
        }
    }
    out
}

/// A jail's sources in a few words: `ok` when every one reads, otherwise
/// how many are in each state (`1 missing, 1 ok`); `-` for a jail that
/// reads no log (`manual`, `recidive`, the kernel meter's).
pub fn health(j: &JailStatus) -> String {
    if j.sources.is_empty() {
        return if j.ruleset == super::plain::NO_RULESET {
            "-".into()
        } else {
            "none".into()
        };
    }
    // Worst first, so that a cut column still shows the trouble.
    const ORDER: [&str; 6] = ["unreadable", "missing", "no_match", "closed", "starting", "reading"];
    let word = |s: &SourceStatus| match s.state.as_str() {
        "reading" => "ok".to_string(),
        "no_match" => "no match".to_string(),
        other => other.to_string(),
    };
    if j.sources.iter().all(|s| s.state == "reading") {
        return "ok".into();
    }
    let mut parts = Vec::new();
    let rank = |s: &SourceStatus| ORDER.iter().position(|o| *o == s.state).unwrap_or(0);
    let mut sorted: Vec<&SourceStatus> = j.sources.iter().collect();
    sorted.sort_by_key(|s| rank(s));
    let mut i = 0;
    while i < sorted.len() {
        let same = sorted[i..].iter().take_while(|s| s.state == sorted[i].state).count();
        parts.push(format!("{same} {}", word(sorted[i])));
        i += same;
    }
    parts.join(", ")
}

/// `text` in at most `width` characters, cut with `~`.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('~');
    s
}

/// A figure in at most 6 characters: in full up to 99999, then `123k`,
/// `1.2M`, `45M`, `1.2G`.
pub fn short(n: u64) -> String {
    if n < 100_000 {
        return n.to_string();
    }
    for (unit, size) in [
        ("k", 1_000u64),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ] {
        let whole = n / size;
        if whole < 10 {
            return format!("{whole}.{}{unit}", (n % size) * 10 / size);
        }
        if whole < 1000 {
            return format!("{whole}{unit}");
        }
    }
    format!("{}T", n / 1_000_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_stay_short() {
        let cases = [
            (0, "0"),
            (99_999, "99999"),
            (100_000, "100k"),
            (999_999, "999k"),
            (1_000_000, "1.0M"),
            (1_250_000, "1.2M"),
            (45_000_000, "45M"),
            (7_100_000_000, "7.1G"),
            (u64::MAX, "18446744T"),
        ];
        for (n, want) in cases {
            assert_eq!(short(n), want, "{n}");
        }
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(cut("asterisk", 20), "asterisk");
        assert_eq!(cut("a-very-long-jail-name-indeed", 10), "a-very-lo~");
    }
}
