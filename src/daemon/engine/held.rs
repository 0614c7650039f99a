//! One `nftban ban -` (or `unban -`) told in the log as one command, not
//! as the requests of 10,000 addresses it is sent as (issue 16: one
//! summary line per bulk ban). Every request but the last of such a
//! command says `more` (docs/cli.md, "The control socket"): its [`Told`]s
//! are held here instead of logged, the next request's of the same jail,
//! kind and wording add to them, and the last logs the lot. A command that
//! never sends its last request (the client killed, an invalid address
//! after some were sent) is logged once no request of it came for
//! [`QUIET`], and at a stop or reload.
//!
//! The requests carry nothing that ties them to their command, so two
//! bulk bans into one jail at once may be told as one line; each answer
//! and `nftban status` still list every address.

use std::time::{Duration, SystemTime};

use super::told::Told;

/// How long a held summary waits for the next request of its command
/// (each request is sent as soon as the one before it is answered).
pub(super) const QUIET: Duration = Duration::from_secs(10);

/// Where a request stands in its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// More requests of the same command follow: its lines wait for them.
    More,
    /// The command's last request (or only one): its lines are logged.
    Last,
}

impl Chunk {
    /// The protocol's `more` flag.
    pub fn more(more: bool) -> Chunk {
        if more {
            Chunk::More
        } else {
            Chunk::Last
        }
    }
}

/// The summaries of commands with more requests to come.
#[derive(Default)]
pub(super) struct Held {
    /// Each with when a request last added to it.
    waiting: Vec<(Told, SystemTime)>,
    /// Every line logged, in order, for the engine's tests.
    #[cfg(test)]
    pub(super) logged: Vec<String>,
}

impl Held {
    /// Log `told`, with what is held of the same line before it, or hold
    /// it with that until the command's last request.
    pub(super) fn tell(&mut self, told: Told, chunk: Chunk, now: SystemTime) {
        let told = match self.waiting.iter().position(|(t, _)| t.same_line(&told)) {
            Some(k) => {
                let (mut held, _) = self.waiting.remove(k);
                held.merge(told);
                held
            }
            None => told,
        };
        match chunk {
            Chunk::More if !told.is_empty() => self.waiting.push((told, now)),
            Chunk::More => {}
            Chunk::Last => self.log(told),
        }
    }

    /// Log what waited [`QUIET`] without a request of its command (or
    /// since a time the clock has gone back past).
    pub(super) fn quiet(&mut self, now: SystemTime) {
        let (done, waiting) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(_, at)| now.duration_since(*at).map_or(true, |d| d >= QUIET));
        self.waiting = waiting;
        for (told, _) in done {
            self.log(told);
        }
    }

    /// Log everything held (a stop or reload).
    pub(super) fn all(&mut self) {
        for (told, _) in std::mem::take(&mut self.waiting) {
            self.log(told);
        }
    }

    fn log(&mut self, told: Told) {
        let _lines = told.log();
        #[cfg(test)]
        self.logged.extend(_lines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::engine::told::Kind;

    fn unbans(jail: &str, n: usize) -> Told {
        let mut t = Told::new(Kind::Unban, jail, "by hand");
        for i in 0..n {
            t.add(format!("192.0.2.{i}"), format!("Unban 192.0.2.{i} (by hand)"));
        }
        t
    }

    #[test]
    fn the_last_request_logs_what_the_others_held() {
        let now = SystemTime::now();
        let mut held = Held::default();
        held.tell(unbans("sshd", 30), Chunk::More, now);
        held.tell(unbans("manual", 0), Chunk::More, now);
        held.tell(unbans("sshd", 30), Chunk::More, now);
        assert!(held.logged.is_empty());
        assert_eq!(held.waiting.len(), 1, "nothing held of nothing");
        held.tell(unbans("sshd", 5), Chunk::Last, now);
        assert_eq!(
            held.logged,
            ["Unban 65 addresses (by hand): 192.0.2.0, 192.0.2.1, 192.0.2.2, ..."]
        );
        assert!(held.waiting.is_empty());
        // A request on its own is logged as it comes.
        held.tell(unbans("sshd", 1), Chunk::Last, now);
        assert_eq!(held.logged[1], "Unban 192.0.2.0 (by hand)");
    }

    /// A command whose last request never came is logged once [`QUIET`]
    /// passed since its latest one, or at a stop.
    #[test]
    fn what_waits_is_logged_when_its_command_went_quiet_or_at_a_stop() {
        let now = SystemTime::now();
        let mut held = Held::default();
        held.tell(unbans("sshd", 20), Chunk::More, now);
        held.tell(unbans("manual", 20), Chunk::More, now + QUIET / 2);
        held.quiet(now + QUIET - Duration::from_millis(1));
        assert!(held.logged.is_empty());
        held.quiet(now + QUIET);
        assert_eq!(
            held.logged,
            ["Unban 20 addresses (by hand): 192.0.2.0, 192.0.2.1, 192.0.2.2, ..."]
        );
        held.all();
        assert_eq!(held.logged.len(), 2);
        assert!(held.waiting.is_empty());
        // The clock set back: not held until it catches up.
        held.tell(unbans("sshd", 20), Chunk::More, now);
        held.quiet(now - Duration::from_secs(3600));
        assert_eq!(held.logged.len(), 3);
    }
}
