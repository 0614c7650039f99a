//! A source's account of itself for `nftban status`: its figures, and in
//! plain words why it has given no ban, or that it is fine (docs/faq.md
//! row 6: a fail2ban that never bans because the service logs elsewhere).

use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use super::{stdin, SourceState, SourceStats};
use crate::status::SourceStatus;

impl SourceStats {
    /// The status of this source; `jail_failures` is how many failures its
    /// jail counted (a source whose matches all came from ignoreip says so).
    pub fn status(&self, jail_failures: u64, now: SystemTime) -> SourceStatus {
        let (state, error) = match self.state() {
            SourceState::Starting => ("starting", None),
            SourceState::Missing => ("missing", None),
            SourceState::Unreadable(e) => ("unreadable", Some(e)),
            SourceState::Reading => ("reading", None),
            SourceState::NoMatch => ("no_match", None),
            SourceState::Closed => ("closed", None),
        };
        let lines = self.lines.load(Relaxed);
        let matched = self.matched.load(Relaxed);
        let too_old = self.too_old.load(Relaxed);
        let members = self.members();
        let diagnosis = match (state, &error) {
            ("no_match", _) => format!("no file matches {} yet", self.path.display()),
            ("closed", _) => format!(
                "stdin closed after {lines} lines ({matched} matched): no more lines will come; other sources go on"
            ),
            _ if !members.is_empty() && lines == 0 => {
                format!("{} file(s) match; no line read yet since nftban started", members.len())
            }
            _ if !members.is_empty() && matched == 0 => format!(
                "{} file(s) match; {lines} lines read, none matched the ruleset",
                members.len()
            ),
            _ if !members.is_empty() => {
                format!("{} file(s) match; {lines} lines read, {matched} matched", members.len())
            }
            ("missing", _) => {
                "file does not exist (yet): nothing to read; check the path, or where the service logs".to_string()
            }
            ("unreadable", Some(e)) => format!("file cannot be read: {e}"),
            ("starting", _) => "not opened yet".to_string(),
            _ if lines == 0 && self.path.as_os_str() == stdin::LABEL => {
                "no line on stdin yet since nftban started".to_string()
            }
            _ if lines == 0 && self.path.to_string_lossy().starts_with("journal:") => {
                super::journal::no_journal().unwrap_or_else(|| {
                    "no journal entry matching since nftban started (is the service logging to the journal under these matches?)"
                        .to_string()
                })
            }
            _ if lines == 0 => "no line read yet since nftban started (nothing written to the file?)".to_string(),
            _ if matched == 0 => format!(
                "{lines} lines read, none matched the ruleset: is the service logging the failures here, in this format?"
            ),
            _ if too_old == matched => format!(
                "{lines} lines read, {matched} matched, all dated before findtime: not counted (an old log read late, or a clock off?)"
            ),
            _ if jail_failures == 0 => {
                format!("{matched} lines matched but none counted (all from ignoreip, or hostnames)")
            }
            _ => format!("{lines} lines read, {matched} matched"),
        };
        SourceStatus {
            path: self.path.display().to_string(),
            state: state.to_string(),
            error,
            lines,
            matched,
            too_old,
            truncated: self.truncated.load(Relaxed),
            invalid_utf8: self.invalid_utf8.load(Relaxed),
            last_match_ago: self
                .last_match()
                .map(|t| now.duration_since(t).unwrap_or_default().as_secs()),
            diagnosis,
            files: members.iter().map(|m| m.status(jail_failures, now)).collect(),
        }
    }
}
