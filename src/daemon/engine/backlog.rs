//! What the ban history could not write yet, kept in order to be written
//! again.
//!
//! A history write that fails (a full disk, an I/O error) must not be
//! lost: the ban is in the kernel, and without its record a restart
//! neither restores nor shows it, and `unban` answers "not banned". So the
//! history keeps such writes here, in the order they were made (a ban and
//! then its unban must reach the database in that order), and writes them
//! again at every save until it works.
//!
//! Memory is bounded: past [`CAPACITY`] records, the oldest ban waiting is
//! dropped to make room (an old ban ends sooner than a new one, so it
//! matters less after a restart) and counted in [`Backlog::dropped`]. An
//! unban is never dropped for room; when nothing but unbans waits, a new
//! ban is dropped (counted) and a new unban is refused, so that the caller
//! can say the unban was not recorded rather than lose it silently.

use std::collections::VecDeque;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::store::BanRecord;

/// Records kept at most. A ban record is about a hundred bytes: the
/// backlog stays within some tens of MiB even when full.
pub(super) const CAPACITY: usize = 100_000;

/// A write of the history that waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Write {
    Ban(BanRecord),
    /// `jail: None` is every jail.
    Unban {
        jail: Option<String>,
        net: IpNet,
        at: SystemTime,
    },
    /// A jail left the config: its running bans are lifted.
    JailRemoved {
        jail: String,
        at: SystemTime,
    },
}

/// One step of a replay: bans that wait one after the other go together,
/// in one write.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step<'a> {
    Bans(&'a [BanRecord]),
    Unban {
        jail: Option<&'a str>,
        net: &'a IpNet,
        at: SystemTime,
    },
    JailRemoved {
        jail: &'a str,
        at: SystemTime,
    },
}

/// The writes that wait, oldest first.
#[derive(Debug)]
pub(super) struct Backlog {
    writes: VecDeque<Write>,
    capacity: usize,
    dropped: u64,
}

impl Default for Backlog {
    fn default() -> Backlog {
        Backlog::with_capacity(CAPACITY)
    }
}

impl Backlog {
    pub(super) fn with_capacity(capacity: usize) -> Backlog {
        Backlog {
            writes: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// How many records wait.
    pub(super) fn len(&self) -> usize {
        self.writes.len()
    }

    /// Records dropped for room since start.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Keep `write` after the others. When full, the oldest ban makes room
    /// (or a new ban is itself dropped when no ban waits); `Err` gives back
    /// an unban (or removed jail) that could not be kept.
    pub(super) fn push(&mut self, write: Write) -> Result<(), Write> {
        if self.writes.len() >= self.capacity {
            match self.writes.iter().position(|w| matches!(w, Write::Ban(_))) {
                Some(oldest) => {
                    self.writes.remove(oldest);
                    self.dropped += 1;
                }
                None if matches!(write, Write::Ban(_)) => {
                    self.dropped += 1;
                    return Ok(());
                }
                None => return Err(write),
            }
        }
        self.writes.push_back(write);
        Ok(())
    }

    /// Hand the writes to `write`, oldest first, each removed once written;
    /// stops at the first error and returns it (what is left waits for the
    /// next time). Returns how many records were written.
    pub(super) fn replay<E>(&mut self, mut write: impl FnMut(Step) -> Result<(), E>) -> Result<usize, E> {
        let mut written = 0;
        while let Some(first) = self.writes.front() {
            let n = match first {
                Write::Ban(_) => {
                    let bans: Vec<BanRecord> = self
                        .writes
                        .iter()
                        .map_while(|w| match w {
                            Write::Ban(b) => Some(b.clone()),
                            _ => None,
                        })
                        .collect();
                    write(Step::Bans(&bans))?;
                    bans.len()
                }
                Write::Unban { jail, net, at } => {
                    write(Step::Unban {
                        jail: jail.as_deref(),
                        net,
                        at: *at,
                    })?;
                    1
                }
                Write::JailRemoved { jail, at } => {
                    write(Step::JailRemoved { jail, at: *at })?;
                    1
                }
            };
            self.writes.drain(..n);
            written += n;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Origin;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn ban(net: &str) -> Write {
        Write::Ban(BanRecord {
            jail: "sshd".into(),
            net: net.parse().unwrap(),
            at: t(0),
            expires: t(600),
            origin: Origin::Auto,
            reason: None,
        })
    }

    fn unban(net: &str) -> Write {
        Write::Unban {
            jail: None,
            net: net.parse().unwrap(),
            at: t(1),
        }
    }

    /// What a replay hands out, as text, in order.
    fn steps(b: &mut Backlog, fail_at: Option<usize>) -> (Vec<String>, Result<usize, usize>) {
        let mut seen = Vec::new();
        let result = b.replay(|step| {
            if Some(seen.len()) == fail_at {
                return Err(seen.len());
            }
            seen.push(match step {
                Step::Bans(bans) => format!(
                    "bans {}",
                    bans.iter().map(|b| b.net.to_string()).collect::<Vec<_>>().join(" ")
                ),
                Step::Unban { net, .. } => format!("unban {net}"),
                Step::JailRemoved { jail, .. } => format!("jail {jail}"),
            });
            Ok(())
        });
        (seen, result)
    }

    #[test]
    fn writes_replay_in_order_with_consecutive_bans_together() {
        let mut b = Backlog::default();
        for w in [
            ban("192.0.2.1/32"),
            ban("192.0.2.2/32"),
            unban("192.0.2.1/32"),
            ban("192.0.2.3/32"),
        ] {
            b.push(w).unwrap();
        }
        b.push(Write::JailRemoved {
            jail: "old".into(),
            at: t(2),
        })
        .unwrap();
        assert_eq!(b.len(), 5);
        let (seen, result) = steps(&mut b, None);
        assert_eq!(
            seen,
            [
                "bans 192.0.2.1/32 192.0.2.2/32",
                "unban 192.0.2.1/32",
                "bans 192.0.2.3/32",
                "jail old"
            ]
        );
        assert_eq!(result, Ok(5));
        assert!(b.is_empty());
    }

    #[test]
    fn a_failed_step_stops_the_replay_and_keeps_the_rest() {
        let mut b = Backlog::default();
        for w in [ban("192.0.2.1/32"), unban("192.0.2.1/32"), ban("192.0.2.3/32")] {
            b.push(w).unwrap();
        }
        let (seen, result) = steps(&mut b, Some(1));
        assert_eq!(seen, ["bans 192.0.2.1/32"]);
        assert_eq!(result, Err(1));
        assert_eq!(b.len(), 2);
        let (seen, result) = steps(&mut b, None);
        assert_eq!(seen, ["unban 192.0.2.1/32", "bans 192.0.2.3/32"]);
        assert_eq!(result, Ok(2));
    }

    #[test]
    fn when_full_the_oldest_ban_makes_room_and_unbans_stay() {
        let mut b = Backlog::with_capacity(3);
        for w in [
            unban("192.0.2.9/32"),
            ban("192.0.2.1/32"),
            ban("192.0.2.2/32"),
            ban("192.0.2.3/32"),
        ] {
            b.push(w).unwrap();
        }
        assert_eq!((b.len(), b.dropped()), (3, 1));
        let (seen, _) = steps(&mut b, None);
        assert_eq!(seen, ["unban 192.0.2.9/32", "bans 192.0.2.2/32 192.0.2.3/32"]);

        // Nothing but unbans: a new ban is dropped, a new unban refused.
        let mut b = Backlog::with_capacity(2);
        b.push(unban("192.0.2.1/32")).unwrap();
        b.push(unban("192.0.2.2/32")).unwrap();
        assert_eq!(b.push(ban("192.0.2.3/32")), Ok(()));
        assert_eq!(b.dropped(), 1);
        assert_eq!(b.push(unban("192.0.2.3/32")), Err(unban("192.0.2.3/32")));
        assert_eq!(b.len(), 2);
    }
}
