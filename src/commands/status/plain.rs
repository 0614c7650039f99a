//! The stable plain forms of `status`: fail2ban-client's layout for one
//! jail (on a terminal too), and the overview as it is printed when stdout
//! is not a terminal. Scripts read these lines: extend, never reshape.

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::format_duration;
use crate::status::{JailStatus, Offender, Status};

/// The ruleset a jail without log sources reports.
pub(super) const NO_RULESET: &str = "-";

/// fail2ban-client's layout, plus a Sources block that says why a jail may
/// be silent.
pub fn format_jail(st: &JailStatus) -> String {
    let mut o = String::new();
    let banned: Vec<String> = st
        .banned
        .iter()
        .map(|b| {
            let left = format_duration(Duration::from_secs(b.expires_in));
            match &b.reason {
                Some(why) => format!("{} ({left} left; {why})", b.ip),
                None => format!("{} ({left} left)", b.ip),
            }
        })
        .collect();
    let _ = writeln!(o, "Status for the jail: {}", st.name);
    let bantime = format_duration(Duration::from_secs(st.bantime));
    if st.ruleset == NO_RULESET {
        // `manual`, `sip` (the kernel meter's): no log read, no failure
        // counted; its maxretry and findtime mean nothing.
        let _ = writeln!(
            o,
            "|- Filter (none: no log is read; bans by hand or from other origins, for {bantime})"
        );
    } else {
        let _ = writeln!(
            o,
            "|- Filter (ruleset {}; ban after {} failures within {} for {bantime})",
            st.ruleset,
            st.maxretry,
            format_duration(Duration::from_secs(st.findtime)),
        );
    }
    let _ = writeln!(o, "|  |- Currently failed: {}", st.currently_failed);
    let _ = writeln!(o, "|  |- Total failed:     {}", st.total_failed);
    // Only when some failure matched and was not counted: why nothing is
    // banned although the lines match.
    if !st.not_counted.is_empty() {
        let n = &st.not_counted;
        let why: Vec<String> = [
            (n.ignoreip, "from ignoreip"),
            (n.never_banned, "never banned (loopback, ...)"),
            (n.too_old, "older than findtime"),
        ]
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| format!("{count} {what}"))
        .collect();
        let _ = writeln!(o, "|  |- Not counted:      {}", why.join(", "));
    }
    // Only for a jail that resolves names or met some (`usedns`).
    if let Some(n) = &st.names {
        let what = match n.usedns {
            true => format!(
                "{} line(s): {} resolved, {} without address, {} timed out, {} dropped (usedns: yes)",
                n.names, n.resolved, n.unresolved, n.timeouts, n.dropped
            ),
            false => format!("{} line(s), not resolved (usedns: no)", n.names),
        };
        let _ = writeln!(o, "|  |- Host names:       {what}");
    }
    let _ = writeln!(o, "|  `- File list:        {}", st.files.join(" "));
    let _ = writeln!(o, "{}- Actions", if st.sources.is_empty() { '`' } else { '|' });
    let pad = if st.sources.is_empty() { "   " } else { "|  " };
    let _ = writeln!(o, "{pad}|- Currently banned: {}", st.currently_banned);
    let _ = writeln!(o, "{pad}|- Total banned:     {}", st.total_banned);
    // Only when some ban is not the jail's rules' own (`auto`).
    if st.bans_by_origin.keys().any(|origin| origin != "auto") {
        let by: Vec<String> = st
            .bans_by_origin
            .iter()
            .map(|(origin, n)| format!("{origin} {n}"))
            .collect();
        let _ = writeln!(o, "{pad}|- Total by origin:  {}", by.join(", "));
    }
    let _ = writeln!(
        o,
        "{pad}|- Dropped:          {} packets, {} bytes",
        st.packets, st.bytes
    );
    if st.kernel_errors > 0 {
        let _ = writeln!(
            o,
            "{pad}|- Kernel refused:   {} ban(s) (see the daemon's log)",
            st.kernel_errors
        );
    }
    let _ = writeln!(o, "{pad}`- Banned IP list:   {}", banned.join(" "));
    if !st.sources.is_empty() {
        let _ = writeln!(o, "`- Sources");
        for (i, s) in st.sources.iter().enumerate() {
            let corner = if i + 1 == st.sources.len() { '`' } else { '|' };
            let last = s
                .last_match_ago
                .map(|a| format!("; last match {} ago", format_duration(Duration::from_secs(a))))
                .unwrap_or_default();
            let _ = writeln!(o, "   {corner}- {}: {}{last}", s.path, s.diagnosis);
            let pad = if corner == '`' { ' ' } else { '|' };
            for (k, f) in s.files.iter().enumerate() {
                let corner = if k + 1 == s.files.len() { '`' } else { '|' };
                let _ = writeln!(o, "   {pad}  {corner}- {}: {}", f.path, f.diagnosis);
            }
        }
    }
    o
}

pub fn format_all(st: &Status) -> String {
    let mut o = String::new();
    let names: Vec<&str> = st.jails.iter().map(|j| j.name.as_str()).collect();
    let _ = writeln!(o, "Status");
    let _ = writeln!(o, "|- Number of jail:      {}", st.jails.len());
    let _ = writeln!(o, "|- Kernel errors:       {}", st.kernel_errors);
    if st.history_errors > 0 || st.history_waiting > 0 || st.history_dropped > 0 {
        let _ = writeln!(
            o,
            "|- History errors:      {} ({} record(s) waiting to be written, {} dropped; see the daemon's log)",
            st.history_errors, st.history_waiting, st.history_dropped
        );
    }
    if let Some(f) = &st.fleet {
        let refused: Vec<String> = f.refused.iter().map(|(why, n)| format!("{why} {n}")).collect();
        let _ = writeln!(
            o,
            "|- Fleet:               node {} {} (stream {}{}); published {}, waiting {}; from peers {} read, {} banned, {} lifted, {} refused{}",
            f.node,
            f.state,
            f.stream,
            f.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default(),
            f.published,
            f.waiting,
            f.received,
            f.applied,
            f.lifted,
            f.refused.values().sum::<u64>(),
            if refused.is_empty() { String::new() } else { format!(" ({})", refused.join(", ")) }
        );
    }
    let _ = writeln!(o, "`- Jail list:   {}", names.join(", "));
    for j in &st.jails {
        let _ = writeln!(
            o,
            "   {}: {} currently failed, {} banned now, {} banned in total, {} packets ({} bytes) dropped",
            j.name, j.currently_failed, j.currently_banned, j.total_banned, j.packets, j.bytes
        );
        for s in &j.sources {
            let _ = writeln!(o, "      {}: {}", s.path, s.diagnosis);
            for f in &s.files {
                let _ = writeln!(o, "         {}: {}", f.path, f.diagnosis);
            }
        }
    }
    // Added last, only when there are any: scripts reading the lines above
    // see them as they were.
    let list = |top: &[Offender], n: fn(&Offender) -> u64| -> String {
        top.iter()
            .map(|t| format!("{} ({})", t.ip, n(t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !st.most_banned.is_empty() {
        let _ = writeln!(o, "Most banned:   {}", list(&st.most_banned, |t| t.bans));
    }
    if !st.most_failed.is_empty() {
        let _ = writeln!(o, "Most failed:   {}", list(&st.most_failed, |t| t.failures));
    }
    o.push_str(&feed_lines(st, std::time::SystemTime::now()));
    o
}

/// One line per blocklist feed (none without feeds): entries, what was
/// skipped, the last and next refresh, and why the last one failed.
pub fn feed_lines(st: &Status, now: std::time::SystemTime) -> String {
    let now = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut o = String::new();
    for f in &st.feeds {
        let skipped: Vec<String> = f.skipped.iter().map(|(why, n)| format!("{why} {n}")).collect();
        let last = f.last_refresh.map_or("never".into(), |t| {
            format!("{} ago", format_duration(Duration::from_secs(now.saturating_sub(t))))
        });
        let next = f.next_refresh.map_or("now".into(), |t| {
            format!("in {}", format_duration(Duration::from_secs(t.saturating_sub(now))))
        });
        let _ = write!(
            o,
            "Feed {} ({}, {} from {}): {}, {} entries",
            f.name, f.origin, f.format, f.source, f.state, f.entries
        );
        if !skipped.is_empty() {
            let _ = write!(o, ", skipped {}", skipped.join(", "));
        }
        let _ = write!(o, "; last refresh {last}, next {next}");
        if let Some(e) = &f.last_error {
            let _ = write!(o, "; last error: {e}");
        }
        o.push('\n');
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each feed gets a line with its figures and its error.
    #[test]
    fn feeds_are_shown_with_their_error() {
        let mut st = super::super::golden::fixture();
        assert_eq!(feed_lines(&st, std::time::UNIX_EPOCH), "");
        st.feeds.push(crate::status::FeedStatus {
            name: "level1".into(),
            origin: "feed:level1".into(),
            format: "netset".into(),
            source: "https://example.org/l1.netset".into(),
            state: "failing".into(),
            entries: 4521,
            skipped: [("private".to_string(), 4)].into(),
            last_refresh: Some(1000),
            next_refresh: Some(1060),
            last_error: Some("feed level1: line 2: `x` is not an address or prefix".into()),
            ..Default::default()
        });
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1030);
        assert_eq!(
            feed_lines(&st, at),
            "Feed level1 (feed:level1, netset from https://example.org/l1.netset): failing, 4521 entries, skipped private 4; last refresh 30s ago, next in 30s; last error: feed level1: line 2: `x` is not an address or prefix\n"
        );
        assert!(format_all(&st).contains("Feed level1"));
        assert!(super::super::table::render(&st).contains("Feed level1"));
    }

    /// The people's overview says when the history fails and what waits,
    /// and says nothing of it while all is well.
    #[test]
    fn history_errors_and_waiting_records_are_shown() {
        let mut st = Status {
            jails: vec![],
            kernel_errors: 0,
            history_errors: 4,
            history_waiting: 3,
            history_dropped: 0,
            most_banned: vec![],
            most_failed: vec![],
            fleet: None,
            feeds: Vec::new(),
        };
        let text = format_all(&st);
        assert!(
            text.contains("|- Kernel errors:       0\n|- History errors:      4 (3 record(s) waiting to be written, 0 dropped; see the daemon's log)\n"),
            "{text}"
        );
        st.history_errors = 0;
        st.history_waiting = 0;
        assert!(!format_all(&st).contains("History"));
    }

    /// The people's view of a jail shows what its rules dropped.
    #[test]
    fn a_jails_dropped_packets_are_shown() {
        let st = JailStatus {
            name: "asterisk".into(),
            ruleset: "asterisk".into(),
            files: vec!["/var/log/asterisk/messages".into()],
            journal: vec![],
            currently_failed: 0,
            total_failed: 0,
            not_counted: Default::default(),
            currently_banned: 0,
            total_banned: 0,
            bans_by_origin: Default::default(),
            total_unbanned: 0,
            banned: vec![],
            packets: 6,
            bytes: 280,
            kernel_errors: 0,
            findtime: 600,
            maxretry: 3,
            bantime: 3600,
            evicted: 0,
            sources: vec![],
            names: None,
        };
        let text = format_jail(&st);
        assert!(text.contains("|- Dropped:          6 packets, 280 bytes\n"), "{text}");
        assert!(
            text.contains("|- Filter (ruleset asterisk; ban after 3 failures within 10m for 1h)\n"),
            "{text}"
        );
        // A jail that reads no log (`manual`, the kernel meter's `sip`) does
        // not claim a failure threshold.
        let manual = JailStatus {
            name: "sip".into(),
            ruleset: "-".into(),
            files: vec![],
            ..st
        };
        let text = format_jail(&manual);
        assert!(
            text.contains("|- Filter (none: no log is read; bans by hand or from other origins, for 1h)\n"),
            "{text}"
        );
    }

    /// Lines naming a host show under the failures, resolved or not; a
    /// jail that met none and does not resolve looks as it did.
    #[test]
    fn host_name_lines_are_shown_when_there_are_some() {
        let mut st: JailStatus = serde_json::from_value(serde_json::json!({
            "name": "sshd", "ruleset": "sshd", "files": [], "journal": [],
            "currently_failed": 0, "total_failed": 9, "currently_banned": 0, "total_banned": 0,
            "total_unbanned": 0, "banned": [], "findtime": 600, "maxretry": 3, "bantime": 3600,
            "evicted": 0, "sources": []
        }))
        .unwrap();
        assert!(!format_jail(&st).contains("Host names"));
        st.names = Some(crate::status::NameStatus {
            names: 4,
            ..Default::default()
        });
        assert!(format_jail(&st).contains("|  |- Host names:       4 line(s), not resolved (usedns: no)\n"));
        st.names = Some(crate::status::NameStatus {
            usedns: true,
            names: 4,
            resolved: 2,
            unresolved: 1,
            timeouts: 1,
            ..Default::default()
        });
        assert!(format_jail(&st).contains(
            "|  |- Host names:       4 line(s): 2 resolved, 1 without address, 1 timed out, 0 dropped (usedns: yes)\n"
        ));
    }

    /// Bans by origin are shown under the total only when some ban is
    /// not the jail's rules' own: a jail of log bans looks as it did.
    #[test]
    fn bans_by_origin_are_shown_when_not_all_from_the_rules() {
        let mut st: JailStatus = serde_json::from_value(serde_json::json!({
            "name": "asterisk", "ruleset": "asterisk", "files": [], "journal": [],
            "currently_failed": 0, "total_failed": 9, "currently_banned": 4, "total_banned": 4,
            "total_unbanned": 0, "banned": [], "findtime": 600, "maxretry": 3, "bantime": 3600,
            "evicted": 0, "sources": []
        }))
        .unwrap();
        let plain = format_jail(&st);
        assert!(!plain.contains("by origin"), "{plain}");
        st.bans_by_origin.insert("auto".into(), 4);
        assert_eq!(format_jail(&st), plain);
        st.bans_by_origin.insert("auto".into(), 3);
        st.bans_by_origin.insert("kernel meter".into(), 1);
        let text = format_jail(&st);
        assert!(
            text.contains("   |- Total banned:     4\n   |- Total by origin:  auto 3, kernel meter 1\n   |- Dropped:"),
            "{text}"
        );
        st.bans_by_origin = [("manual".to_string(), 4)].into();
        assert!(format_jail(&st).contains("|- Total by origin:  manual 4\n"));
    }
}
