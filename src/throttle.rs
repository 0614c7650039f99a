//! How often a repeated warning is logged: an attacker who writes a million
//! over-long or garbled lines must not get a million lines into the admin's
//! log (filling the disk, drowning everything else), nor must a kernel set
//! that cannot be read twice a second. The
//! first occurrence is logged at once; the next ones are counted, and the
//! first one a minute or more after the last message is logged with how many
//! came since. Pure and clock-free: the caller says what time it is.

use std::time::{Duration, Instant};

/// One kind of warning of one source.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    /// When the last message was logged.
    last: Option<Instant>,
    /// Occurrences since then, not logged.
    held: u64,
}

impl Throttle {
    /// At most one message per this span.
    pub(crate) const EVERY: Duration = Duration::from_secs(60);

    /// One more occurrence, at `now`. `Some(n)`: log it now, saying `n`
    /// occurrences since the last message (this one included); `None`:
    /// hold it back, it is counted for the next message.
    pub(crate) fn note(&mut self, now: Instant) -> Option<u64> {
        self.held += 1;
        let due = self
            .last
            .is_none_or(|t| now.checked_duration_since(t).is_some_and(|d| d >= Self::EVERY));
        if !due {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first occurrence is said at once; then at most one message a
    /// minute, each with the count of occurrences since the one before.
    #[test]
    fn once_a_minute_with_the_count_since() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut t = Throttle::default();
        assert_eq!(t.note(t0), Some(1));
        assert_eq!(t.note(s(1)), None);
        assert_eq!(t.note(s(59)), None);
        assert_eq!(t.note(s(60)), Some(3), "two held back, and this one");
        assert_eq!(t.note(s(61)), None);
        assert_eq!(t.note(s(1000)), Some(2));
        assert_eq!(t.note(s(1060)), Some(1));
    }

    /// A million occurrences within a minute give one message.
    #[test]
    fn a_flood_gives_one_message() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        let said = (0..1_000_000u64)
            .filter(|i| t.note(t0 + Duration::from_micros(*i * 50)).is_some())
            .count();
        assert_eq!(said, 1);
    }
}
