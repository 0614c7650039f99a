//! What one request did, told in the log: each address on a line of its
//! own up to [`EACH`], past that one summary line. `nftban ban -` of
//! 100,000 addresses (or a kernel meter round in a flood, a feed) must not
//! write 100,000 log lines: the request's answer and `nftban status` list
//! every address; the log says what happened.

use tracing::Level;

/// The most addresses told one line each.
pub(super) const EACH: usize = 10;

/// The addresses shown in a summary line.
const SHOWN: usize = 3;

/// Lines to log for one kind of action of one request: `(address, the rest
/// of its line)`.
pub(super) struct Told {
    level: Level,
    jail: String,
    /// The first [`EACH`] + 1 items: all a summary needs.
    items: Vec<(String, String)>,
    /// How many were added.
    count: usize,
}

impl Told {
    pub(super) fn new(level: Level, jail: &str) -> Told {
        Told {
            level,
            jail: jail.to_string(),
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

    /// The lines to log: each item's, or one `summary` (given the count and
    /// the first addresses) past [`EACH`].
    fn lines(self, summary: impl FnOnce(usize, &str) -> String) -> Vec<String> {
        if self.count <= EACH {
            return self.items.into_iter().map(|(_, line)| line).collect();
        }
        let first: Vec<&str> = self.items.iter().take(SHOWN).map(|(a, _)| a.as_str()).collect();
        vec![summary(self.count, &format!("{}, ...", first.join(", ")))]
    }

    /// Log them, with the jail as a field.
    pub(super) fn log(self, summary: impl FnOnce(usize, &str) -> String) {
        let (level, jail) = (self.level, self.jail.clone());
        for line in self.lines(summary) {
            match level {
                Level::WARN => tracing::warn!(jail = %jail, "{line}"),
                _ => tracing::info!(jail = %jail, "{line}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn told(n: usize) -> Vec<String> {
        let mut t = Told::new(Level::INFO, "manual");
        for i in 0..n {
            t.add(format!("192.0.2.{i}"), format!("Ban 192.0.2.{i} for 1h (by hand)"));
        }
        t.lines(|n, first| format!("Ban {n} addresses for 1h (by hand): {first}"))
    }

    #[test]
    fn a_few_are_told_each_many_in_one_line() {
        assert_eq!(told(0), Vec::<String>::new());
        assert_eq!(
            told(2),
            ["Ban 192.0.2.0 for 1h (by hand)", "Ban 192.0.2.1 for 1h (by hand)"]
        );
        assert_eq!(told(EACH).len(), EACH);
        assert_eq!(
            told(100),
            ["Ban 100 addresses for 1h (by hand): 192.0.2.0, 192.0.2.1, 192.0.2.2, ..."]
        );
    }

    /// Past [`EACH`] + 1, no line is made: a request of many bans does not
    /// format one per address.
    #[test]
    fn lines_past_the_first_few_are_never_made() {
        let mut t = Told::new(Level::INFO, "manual");
        let mut made = 0;
        for i in 0..1000 {
            t.add_with(|| {
                made += 1;
                (format!("192.0.2.{i}"), format!("Ban 192.0.2.{i}"))
            });
        }
        assert_eq!(made, EACH + 1);
        let lines = t.lines(|n, first| format!("Ban {n} addresses: {first}"));
        assert_eq!(lines, ["Ban 1000 addresses: 192.0.2.0, 192.0.2.1, 192.0.2.2, ..."]);
    }
}
