//! What one request did, told in the log: each address on a line of its
//! own up to [`EACH`], past that one summary line. `nftban ban -` of
//! 100,000 addresses (or a kernel meter round in a flood, a feed) must not
//! write 100,000 log lines: the request's answer and `nftban status` list
//! every address; the log says what happened. The requests of one
//! `nftban ban -` add up to one line (see [`super::held`]).

use std::mem::discriminant;
use std::time::Duration;

use crate::config::format_duration;

/// The most addresses told one line each.
pub(super) const EACH: usize = 10;

/// The addresses shown in a summary line.
const SHOWN: usize = 3;

/// What a [`Told`]'s lines are about, which says its summary line and its
/// level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Refused before the plan (the never-ban list, the jail's `ignoreip`):
    /// the request's answer says why for each.
    Refused,
    /// On the never-ban list, refused by [`super::Engine::impose`] itself
    /// (escalation and captured prefixes come there unchecked).
    NeverBanned,
    /// Bans, the longest running for `upto`.
    Ban { upto: Option<Duration> },
    /// Unbans.
    Unban,
}

/// Lines to log for one kind of action of one request: `(address, the rest
/// of its line)`.
#[derive(Debug)]
pub(super) struct Told {
    kind: Kind,
    jail: String,
    /// Who and why, as the lines say it (`by hand`).
    how: String,
    /// The first [`EACH`] + 1 items: all a summary needs.
    items: Vec<(String, String)>,
    /// How many were added.
    count: usize,
}

impl Told {
    pub(super) fn new(kind: Kind, jail: &str, how: &str) -> Told {
        Told {
            kind,
            jail: jail.to_string(),
            how: how.to_string(),
            items: Vec::new(),
            count: 0,
        }
    }

    /// One address and the line it would have of its own.
    pub(super) fn add(&mut self, address: String, line: String) {
        self.add_with(|| (address, line));
    }

    /// As [`Told::add`], the address and line made only if they can be
    /// told: a request of a million bans formats a dozen lines, not a
    /// million (that showed in the profile of `nftban ban -`).
    pub(super) fn add_with(&mut self, item: impl FnOnce() -> (String, String)) {
        self.count += 1;
        if self.items.len() <= EACH {
            self.items.push(item());
        }
    }

    /// Whether `other` adds up with this into one summary: the same jail,
    /// kind and wording (bans of any length).
    pub(super) fn same_line(&self, other: &Told) -> bool {
        self.jail == other.jail && self.how == other.how && discriminant(&self.kind) == discriminant(&other.kind)
    }

    /// Add `other`'s addresses (see [`Told::same_line`]) after this one's,
    /// as if one request had told them all: the counts add up, the first
    /// items are kept, and bans run for up to the longer of the two.
    pub(super) fn merge(&mut self, other: Told) {
        self.count += other.count;
        let room = (EACH + 1).saturating_sub(self.items.len());
        self.items.extend(other.items.into_iter().take(room));
        if let (Kind::Ban { upto }, Kind::Ban { upto: theirs }) = (&mut self.kind, other.kind) {
            *upto = (*upto).max(theirs);
        }
    }

    /// Whether there is nothing to tell.
    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The lines to log: each item's, or one summary past [`EACH`].
    fn lines(self) -> Vec<String> {
        if self.count <= EACH {
            return self.items.into_iter().map(|(_, line)| line).collect();
        }
        let first: Vec<&str> = self.items.iter().take(SHOWN).map(|(a, _)| a.as_str()).collect();
        let (n, how, first) = (self.count, &self.how, format!("{}, ...", first.join(", ")));
        vec![match self.kind {
            Kind::Refused => {
                format!("{n} addresses not banned ({how}): {first}; the request's answer says why for each")
            }
            Kind::NeverBanned => format!("{n} addresses not banned ({how}): never banned: {first}"),
            Kind::Ban { upto } => {
                let upto = upto.map(format_duration).unwrap_or_default();
                let jail = &self.jail;
                format!(
                    "Ban {n} addresses and prefixes for up to {upto} ({how}): {first}; `nftban status {jail}` lists them"
                )
            }
            Kind::Unban => format!("Unban {n} addresses ({how}): {first}"),
        }]
    }

    /// Log them, with the jail as a field, refusals as warnings; returns
    /// the lines logged.
    pub(super) fn log(self) -> Vec<String> {
        let jail = self.jail.clone();
        let warn = matches!(self.kind, Kind::Refused | Kind::NeverBanned);
        let lines = self.lines();
        for line in &lines {
            if warn {
                tracing::warn!(jail = %jail, "{line}");
            } else {
                tracing::info!(jail = %jail, "{line}");
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Option<Duration> = Some(Duration::from_secs(3600));

    /// `n` bans from `192.0.2.{from}` on, each for `upto`.
    fn bans(from: usize, n: usize, upto: Option<Duration>) -> Told {
        let mut t = Told::new(Kind::Ban { upto }, "manual", "by hand");
        for i in from..from + n {
            t.add(format!("192.0.2.{i}"), format!("Ban 192.0.2.{i} for 1h (by hand)"));
        }
        t
    }

    fn told(n: usize) -> Vec<String> {
        bans(0, n, HOUR).lines()
    }

    /// The summary line of `n` bans from `192.0.2.0` on.
    fn summary(n: usize, upto: &str) -> [String; 1] {
        [format!(
            "Ban {n} addresses and prefixes for up to {upto} (by hand): 192.0.2.0, 192.0.2.1, 192.0.2.2, ...; `nftban status manual` lists them"
        )]
    }

    #[test]
    fn a_few_are_told_each_many_in_one_line() {
        assert_eq!(told(0), Vec::<String>::new());
        assert_eq!(
            told(2),
            ["Ban 192.0.2.0 for 1h (by hand)", "Ban 192.0.2.1 for 1h (by hand)"]
        );
        assert_eq!(told(EACH).len(), EACH);
        assert_eq!(told(100), summary(100, "1h"));
    }

    /// Past [`EACH`] + 1, no line is made: a request of many bans does not
    /// format one per address.
    #[test]
    fn lines_past_the_first_few_are_never_made() {
        let mut t = Told::new(Kind::Unban, "manual", "by hand");
        let mut made = 0;
        for i in 0..1000 {
            t.add_with(|| {
                made += 1;
                (format!("192.0.2.{i}"), format!("Unban 192.0.2.{i}"))
            });
        }
        assert_eq!(made, EACH + 1);
        assert_eq!(
            t.lines(),
            ["Unban 1000 addresses (by hand): 192.0.2.0, 192.0.2.1, 192.0.2.2, ..."]
        );
    }

    /// Chunks merged say what one request of them all would have said: the
    /// count adds up, the first addresses are the first chunk's, the time
    /// is the longest of any chunk; a few in all are still told each.
    #[test]
    fn merged_chunks_are_told_as_one_request() {
        let mut t = bans(0, 20, HOUR);
        t.merge(bans(20, 30, Some(Duration::from_secs(7200))));
        t.merge(bans(50, 5, HOUR));
        assert_eq!(t.lines(), summary(55, "2h"));
        let mut t = bans(0, 4, HOUR);
        t.merge(bans(4, 3, HOUR));
        let lines = t.lines();
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[6], "Ban 192.0.2.6 for 1h (by hand)");
        // Past EACH together, though neither was: the first three shown.
        let mut t = bans(0, 6, None);
        t.merge(bans(6, 6, HOUR));
        assert_eq!(t.lines(), summary(12, "1h"));
        // An empty chunk changes nothing, and keeps no more than EACH + 1.
        let mut t = bans(0, 8, HOUR);
        t.merge(bans(8, 0, None));
        t.merge(bans(8, 8, HOUR));
        assert_eq!((t.count, t.items.len()), (16, EACH + 1));
    }

    #[test]
    fn only_the_same_jail_kind_and_wording_add_up() {
        let t = bans(0, 1, HOUR);
        assert!(t.same_line(&bans(1, 1, Some(Duration::from_secs(60)))));
        assert!(!t.same_line(&Told::new(Kind::Ban { upto: HOUR }, "sshd", "by hand")));
        assert!(!t.same_line(&Told::new(Kind::Ban { upto: HOUR }, "manual", "by hand, forced")));
        assert!(!t.same_line(&Told::new(Kind::Unban, "manual", "by hand")));
        assert!(!Told::new(Kind::Refused, "manual", "by hand").same_line(&Told::new(
            Kind::NeverBanned,
            "manual",
            "by hand"
        )));
    }
}
