//! What a source's reader sends the engine: the failures of one read, with
//! the checkpoint after it (a file position, a journal cursor), in one
//! message.
//!
//! A reader wakes for every write to its file (a thousand times a second
//! under a steady load). Sending each failure and then the position as
//! messages of their own woke the engine thread twice per write; one
//! message per read wakes it once, and no later than before: the message
//! goes as soon as the read is handled. A long catch-up read (lines written
//! while the daemon was stopped) sends every [`Outbox::LIMIT`] failures, so
//! memory stays bounded.

use std::sync::mpsc::SyncSender;
use std::time::SystemTime;

use ipnet::IpNet;

use super::Event;
use crate::sources::Checkpoint;

/// One failure line of `net` (an address, or a prefix the rule captured)
/// in jail number `jail`, dated `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub jail: usize,
    pub net: IpNet,
    pub at: SystemTime,
}

/// Failures gathered during one read of a source.
pub struct Outbox {
    tx: SyncSender<Event>,
    failures: Vec<Failure>,
}

impl Outbox {
    /// Failures sent at once when a read gathers this many.
    pub const LIMIT: usize = 1024;

    pub fn new(tx: SyncSender<Event>) -> Outbox {
        Outbox {
            tx,
            failures: Vec::new(),
        }
    }

    /// Keep a failure for the next [`Outbox::send`].
    pub fn failure(&mut self, failure: Failure) {
        self.failures.push(failure);
        if self.failures.len() >= Self::LIMIT {
            self.send(None);
        }
    }

    /// Send what was gathered and, if given, the checkpoint that follows
    /// it (the engine saves a checkpoint only after handling the failures
    /// before it). Nothing is sent when there is nothing to say.
    pub fn send(&mut self, checkpoint: Option<Checkpoint>) {
        if self.failures.is_empty() && checkpoint.is_none() {
            return;
        }
        let failures = std::mem::take(&mut self.failures);
        let _ = self.tx.send(Event::Lines { failures, checkpoint });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::file::Position;

    fn failure(i: usize) -> Failure {
        Failure {
            jail: 0,
            net: IpNet::from(std::net::IpAddr::from([192, 0, 2, (i % 256) as u8])),
            at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn one_message_per_read_and_bounded_catch_up() {
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let mut out = Outbox::new(tx);
        out.send(None);
        assert!(rx.try_recv().is_err(), "nothing to say, nothing sent");
        out.failure(failure(1));
        out.failure(failure(2));
        assert!(rx.try_recv().is_err(), "held until the read ends");
        let pos = Position {
            offset: 10,
            head_len: 1,
            head_hash: 2,
        };
        let checkpoint = Checkpoint::File {
            path: "/var/log/x".into(),
            position: pos,
        };
        out.send(Some(checkpoint.clone()));
        match rx.try_recv().unwrap() {
            Event::Lines {
                failures,
                checkpoint: got,
            } => {
                assert_eq!(failures, vec![failure(1), failure(2)]);
                assert_eq!(got, Some(checkpoint));
            }
            _ => panic!("not a Lines event"),
        }
        for i in 0..Outbox::LIMIT + 1 {
            out.failure(failure(i));
        }
        match rx.try_recv().unwrap() {
            Event::Lines { failures, checkpoint } => {
                assert_eq!(failures.len(), Outbox::LIMIT);
                assert_eq!(checkpoint, None);
            }
            _ => panic!("not a Lines event"),
        }
        assert!(rx.try_recv().is_err());
    }
}
